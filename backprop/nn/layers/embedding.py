"""`EmbeddingBag`: the mean of the embeddings of a row's token ids (-1 pads).

Cost of the backward pass. The Array API has no scatter-add (``np.add.at``,
``Tensor.index_add_``), so dJ/dE is accumulated as a dense product instead: the bag matrix
C (N, V) from N*T*V comparisons of the ids with ``arange(V)`` (an (N, T, V) temporary), then
C^T @ dy, N*V*D multiply-adds, and a dense (V, D) gradient even where few rows occur. A
scatter costs N*T*D. Measured forward + backward on NumPy (1 BLAS thread, N=32, T=16, D=32,
best of 7; /tmp script, numbers in docs/layers.md): V=250: 0.75 ms, as fast as ``np.add.at``
(0.76 ms); V=2,000: 4.8 ms against 0.85 ms (6x); V=20,000: 65 ms against 1.4 ms (about 50x,
the (N, T, V) comparison temporary is 10 M entries). Fine for vocabularies of a few thousand;
for larger ones the gradient needs a backend's scatter, which the standard does not have.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from array_api_compat import device

from ._base import Layer, register, sum_to

__all__ = ["EmbeddingBag"]


@register("embedding_bag")
@dataclasses.dataclass(frozen=True, repr=False)
class EmbeddingBag(Layer):
    """``y[n] = mean of E[ids[n, t]]`` over the non-padding tokens t of row n.

    Shapes: ids (..., N, T) integers in [-1, vocab_size), -1 = padding; E (vocab_size, dim);
    y (..., N, dim); a row of padding only gives zeros. Init: E ~ N(0, 1), as torch's
    ``nn.EmbeddingBag``: a one-token bag then feeds the next layer unit-variance features,
    the input scale its Glorot init assumes. Not penalized by L2.

    K stacked models (an ensemble): E (K, vocab_size, dim), ids (N, T) shared or (K, N, T), y
    (K, N, dim); member k reads row ``ids + k*vocab_size`` of E flattened to (K*vocab_size, dim),
    one gather for all members.

    Backward: with the bag matrix C[n, v] = (count of v in row n) / max(count_n, 1),
    y = C @ E, so dJ/dE = C^T @ dy (summed over leading axes). Token ids have no gradient:
    dx is None.
    """

    vocab_size: int
    dim: int
    input_kind: ClassVar[str] = "int"
    stackable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(
                    f"layer 'embedding_bag': {name} must be an int >= 1, received {v!r}"
                )

    @classmethod
    def examples(cls):
        return [(cls(6, 3), (4,)), (cls(3, 2), (5,))]

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"layer 'embedding_bag' takes rows of T token ids, input shape (T,), received "
                f"{tuple(input_shape)}"
            )
        return (self.dim,)

    def init(self, input_shape, rng):
        shape = self.output_shape(input_shape)
        return {"E": rng.normal(0.0, 1.0, size=(self.vocab_size, self.dim))}, shape

    def forward(self, xp, params, x, *, train=False):
        emb = params["E"]
        keep = x >= 0
        ids = xp.where(keep, x, xp.zeros_like(x))  # padding reads row 0, weighted by 0 below
        if emb.ndim > 2:  # stacked: member k's rows start at k*vocab_size of the flat table
            members = emb.shape[0]
            first = xp.arange(members, dtype=x.dtype, device=device(x)) * self.vocab_size
            ids = ids + xp.reshape(first, (members, 1, 1))
            emb = xp.reshape(emb, (members * self.vocab_size, self.dim))
        rows = xp.take(emb, xp.reshape(ids, (-1,)), axis=0)
        rows = xp.reshape(rows, (*ids.shape, self.dim))
        weight = xp.astype(keep, emb.dtype)
        count = xp.clip(xp.sum(weight, axis=-1, keepdims=True), min=1.0)
        y = xp.sum(rows * xp.expand_dims(weight, axis=-1), axis=-2) / count
        return y, (x, count)

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        x, count = cache
        vocab = xp.arange(self.vocab_size, dtype=x.dtype, device=device(x))
        hits = xp.expand_dims(x, axis=-1) == vocab  # (..., N, T, V); -1 matches nothing
        bag = xp.sum(xp.astype(hits, dy.dtype), axis=-2) / count  # C (..., N, V)
        grad = sum_to(xp, xp.matrix_transpose(bag) @ dy, params["E"].shape)
        return {"E": grad}, None
