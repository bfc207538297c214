"""`Dense`: the fully connected layer ``a = f(x @ W + b)``, forward and backward side by side."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from ...data import _host
from ._base import Activated, register, sum_to

__all__ = ["Dense"]


@register("dense")
@dataclasses.dataclass(frozen=True, repr=False)
class Dense(Activated):
    """Fully connected layer ``z = x @ W + b``, ``a = f(z)``.

    Shapes: x (..., N, n_in), W (n_in, units), b (units,), z and a (..., N, units).
    K stacked models (an ensemble): W (K, n_in, units), b (K, 1, units), x (N, n_in) or
    (K, N, n_in), z and a (K, N, units); matmul broadcasts over the member axis.
    Init: Glorot-uniform W ~ U(-r, r), r = sqrt(6 / (n_in + units)); b = 0.

    Backward from ``dz = dJ/dz`` (`backward_z`), the lines the docs point at:
    dJ/dW = x^T @ dz (summed over leading axes); dJ/db = sum of dz over rows;
    dJ/dx = dz @ W^T, the ``dJ/da`` of the layer below.
    """

    units: int
    activation: Any = None
    penalized: ClassVar[tuple[str, ...]] = ("W",)
    weights: ClassVar[tuple[str, ...]] = ("W",)
    stackable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        u = self.units
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ValueError(f"layer 'dense': units must be an int >= 1, received {u!r}")
        super().__post_init__()

    @classmethod
    def examples(cls):
        return [(cls(3), (4,)), (cls(2, "tanh"), (3,)), (cls(3, "softmax"), (2,))]

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"layer 'dense' takes 1-D features (n_in,), received input shape "
                f"{tuple(input_shape)}; put Flatten() or GlobalAveragePool1D() before it"
            )
        return (self.units,)

    def init(self, input_shape, rng):
        (n_in,) = input_shape
        self.output_shape(input_shape)
        limit = math.sqrt(6.0 / (n_in + self.units))
        w = rng.uniform(-limit, limit, size=(n_in, self.units))
        return {"W": w, "b": _host.zeros((self.units,))}, (self.units,)

    def affine(self, xp, params, x):
        return x @ params["W"] + params["b"]

    def backward_z(self, xp, params, cache, dz, *, need_dx=True):
        w = params["W"]
        grad_w = sum_to(xp, xp.matrix_transpose(cache.x) @ dz, w.shape)
        grad_b = sum_to(xp, xp.sum(dz, axis=-2), params["b"].shape)
        dx = dz @ xp.matrix_transpose(w) if need_dx else None
        return {"W": grad_w, "b": grad_b}, dx
