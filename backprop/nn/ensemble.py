"""`Ensemble`: K copies of one `Sequential` (other seeds, other hyperparameters) as one program.

Every parameter array gets a leading member axis of size K, and one batched forward and
backward runs all members: the layers' own hand-derived code, with matmul broadcasting over
the member axis (no per-member Python loop in the math). Shapes, K members and N rows:

- params: the model's tree, each array shaped by `Layer.stacked_shapes` (right-aligned against
  the activations (K, N, ...)): Dense W (K, n_in, u), b (K, 1, u); LayerNorm gamma and beta
  (K, 1, ..., F); Conv1D W (K, k, C_in, f), b (K, 1, 1, f); EmbeddingBag E (K, V, D).
  `member` gives member k's params in the model's own shapes, `stack` the inverse.
- X: (N, *input_shape), shared by the members (broadcast by matmul, never copied K times), or
  (K, N, *input_shape), one batch per member (e.g. per-member batch orders). Y: (N, *output)
  or (K, N, *output); weights (N,) or (K, N); dropout masks, one per dropout layer,
  (K, N, *shape) (each member its own) or (N, *shape) (shared).
- outputs (K, N, *output_shape); losses (K,).

The losses reduce per member (`Loss.values`: member k's mean over its own N rows), the fused
output delta (a - y)/N stays per member, and the gradients keep the member axis (`sum_to`
sums only over axes a parameter was broadcast along): grads[k] is dJ_k/dparams_k, member k's
own gradient, the same as ``model.loss_and_grad`` gives member k alone, to rounding.

>>> import backprop as bp
>>> ens = bp.Ensemble(bp.MLP([4, 8, 3], output="softmax", loss="cross_entropy"), 5)
>>> params = ens.init(seed=0)                       # member k: model.init(seed=0 + k)
>>> params[0]["W"].shape, params[0]["b"].shape
((5, 4, 8), (5, 1, 8))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from array_api_compat import array_namespace, device

import backends

from ..tree import tree_map
from ._checks import _shapes, float_dtype_name, params_mismatch
from ._members import PerMember
from .sequential import Params, Sequential, first_leaf

__all__ = ["Ensemble"]


class Ensemble:
    """K members of one ``model`` (a `Sequential`), parameters stacked on a leading axis.

    Parameters
    ----------
    model : Sequential
        The members' architecture, loss and default L2 ``alpha``.
    k : int
        The number of members, >= 1.

    Every layer with parameters must be ``stackable`` (all the shipped layers are); the
    error names one that is not.
    """

    def __init__(self, model: Sequential, k: int) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(
                f"Ensemble needs a backprop.Sequential (or bp.MLP) model, received "
                f"{type(model).__name__}"
            )
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(
                f"Ensemble needs k, the number of members, an int >= 1; received {k!r}"
            )
        self.model, self.members = model, int(k)
        self._stacked = []
        for i, (layer, shape) in enumerate(zip(model.layers, model.shapes, strict=False)):
            try:
                self._stacked.append(layer.stacked_shapes(shape, self.members))
            except TypeError as exc:
                raise TypeError(f"layer {i}: {exc}") from None
        if not _shape_leaves(self._stacked):
            raise ValueError(
                f"Ensemble: the model has no parameters, so its {k} members would all be the "
                "same function; give it a layer with parameters (e.g. Dense)"
            )

    # -- description -----------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """``{"type": "ensemble", "members": K, "model": model.spec()}`` (JSON values)."""
        return {"type": "ensemble", "members": self.members, "model": self.model.spec()}

    def key(self) -> Any:
        """A hashable key of the whole structure: K and the model's full `Sequential.key`
        (never a bare name: two ensembles share compiled code only when they compute the same)."""
        return (type(self), self.members, self.model.key())

    def __repr__(self) -> str:
        return f"Ensemble({self.model!r}, k={self.members})"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.model.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.model.output_shape

    @property
    def dropout_shapes(self) -> list[tuple[int, ...]]:
        """Per-example mask shapes; the masks of an ensemble are (K, N, *shape)."""
        return self.model.dropout_shapes

    def param_shapes(self) -> list[Any]:
        """The stacked shape of every parameter, structured like ``params``."""
        return self._stacked

    # -- parameters ------------------------------------------------------------------------------
    def init(
        self,
        seed: int = 0,
        backend: Any = "numpy",
        dtype: str = "float32",
        seeds: Sequence[int] | None = None,
    ) -> Params:
        """Member k's parameters are ``model.init(seed + k)`` (or ``model.init(seeds[k])``),
        drawn on the host in float64, stacked, then cast and moved to ``backend`` once: the
        same numbers as each member's own init, on every backend."""
        be, dtype = backends.as_backend(backend), float_dtype_name(dtype)
        host = [self.model.init_host(s) for s in self._seeds(seed, seeds)]
        return tree_map(lambda v: be.asarray(v, dtype), self._stack(host))

    def _seeds(self, seed: int, seeds: Sequence[int] | None) -> list[int]:
        if seeds is None:
            _check_int("seed", seed)
            return [seed + i for i in range(self.members)]
        seeds = list(seeds)
        if len(seeds) != self.members:
            raise ValueError(
                f"seeds must hold one seed per member ({self.members}), received {len(seeds)}"
            )
        for s in seeds:
            _check_int("seeds", s)
        return seeds

    def stack(self, member_params: Sequence[Params]) -> Params:
        """K members' params (each as ``model.init`` gives them) -> the stacked params."""
        member_params = list(member_params)
        if len(member_params) != self.members:
            raise ValueError(
                f"stack needs the params of {self.members} members, received {len(member_params)}"
            )
        for p in member_params:
            self.model._check_params(p)
        return self._stack(member_params)

    def _stack(self, member_params: list[Params]) -> Params:
        return _stack_tree(member_params, self._stacked)

    def member(self, params: Params, i: int) -> Params:
        """Member ``i``'s params in the model's own shapes (a view where the backend has one)."""
        self._check_params(params)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < self.members:
            raise IndexError(f"member index must be an int in [0, {self.members}), received {i!r}")
        return _map_shapes(lambda v, s: _reshape(v[i, ...], s), params, self.model.param_shapes())

    def unstack(self, params: Params) -> list[Params]:
        """``[member(params, 0), ..., member(params, K - 1)]``."""
        return [self.member(params, i) for i in range(self.members)]

    # -- forward / backward ----------------------------------------------------------------------
    def forward(self, params: Params, X: Any) -> tuple[Any, Any, list]:
        """Inference: ``(z_out, a_out, caches)`` like `Sequential.forward`, z and a
        (K, N, *output_shape)."""
        xp = self._check_x(X, params)
        return self.model._forward(xp, params, X)

    def predict(self, params: Params, X: Any) -> Any:
        """Every member's outputs (K, N, *output_shape)."""
        return self.forward(params, X)[1]

    def predict_mean(self, params: Params, X: Any) -> Any:
        """The ensemble's prediction: the members' outputs averaged, (N, *output_shape)."""
        a = self.predict(params, X)
        return array_namespace(a).mean(a, axis=0)

    def loss(self, params: Params, X: Any, Y: Any, weights: Any = None, alpha: Any = None) -> Any:
        """Each member's loss J_k with its L2 penalty, (K,)."""
        xp, w, alpha = self._check_xy(params, X, Y, weights, alpha)
        z, a, _ = self.model._forward(xp, params, X)
        return self.model._loss_value(xp, params, z, a, Y, w, alpha, per_model=True)

    def loss_and_grad(
        self,
        params: Params,
        X: Any,
        Y: Any,
        weights: Any = None,
        masks: Sequence[Any] | None = None,
        alpha: Any = None,
    ) -> tuple[Any, Params]:
        """Losses (K,) and gradients (stacked like ``params``): grads[k] = dJ_k/dparams_k.

        ``weights``: (N,) or (K, N) per-row weights. ``masks``: one dropout mask per dropout
        layer, (K, N, *shape) or (N, *shape). ``alpha``: the L2 alpha, None for the model's,
        a number, or K numbers (a sweep; a (K,) array also works).
        """
        losses, grads, _ = self.backprop(params, X, Y, weights, masks, alpha)
        return losses, grads

    def backprop(
        self,
        params: Params,
        X: Any,
        Y: Any,
        weights: Any = None,
        masks: Sequence[Any] | None = None,
        alpha: Any = None,
    ) -> tuple[Any, Params, tuple[list, list]]:
        """`loss_and_grad` plus ``(deltas, caches)`` as `Sequential.backprop` gives them."""
        stacked = self._check_xy(params, X, Y, weights, alpha)
        return self.model.backprop(params, X, Y, masks=masks, stacked=stacked)

    # -- checks (shapes and dtypes only: safe under jax.jit) -------------------------------------
    def _check_params(self, params: Params) -> None:
        n = len(self.model.layers)
        if not isinstance(params, (list, tuple)) or len(params) != n:
            raise ValueError(
                f"params must be a list of {n} layer dicts (from Ensemble.init), received "
                f"{type(params).__name__}"
                + (f" of length {len(params)}" if isinstance(params, (list, tuple)) else "")
            )
        for i, (expected, p) in enumerate(zip(self._stacked, params, strict=True)):
            got = _shapes(p)
            if got != expected:
                layer = self.model.layers[i]
                raise ValueError(
                    params_mismatch(i, layer, got, expected, "Ensemble.init", "ensemble")
                )

    def _check_x(self, X: Any, params: Params) -> Any:
        self._check_params(params)
        xp = self.model._check_x_array(X, first_leaf(params))
        self._check_members_axis("X", X, self.model.input_shape)
        return xp

    def _check_xy(self, params, X, Y, weights, alpha) -> tuple[Any, Any, Any]:
        """The namespace, the weights as (..., N, 1) (or None) and alpha (a float, or a
        `PerMember` in the parameters' dtype)."""
        self._check_params(params)
        ref = first_leaf(params)
        xp = self.model._check_xy_arrays(X, Y, ref)
        self._check_members_axis("X", X, self.model.input_shape)
        self._check_members_axis("Y", Y, self.model.output_shape)
        w = None
        if weights is not None:
            self._check_members_axis("weights", weights, ())
            w = xp.reshape(weights, (*weights.shape, 1))
        return xp, w, self._alpha(xp, alpha, ref)

    def _check_members_axis(self, name: str, arr: Any, example: tuple[int, ...]) -> None:
        """``arr`` is (N, *example), shared, or (K, N, *example), one per member."""
        shape, k = tuple(arr.shape), self.members
        if len(shape) == len(example) + 1 or (len(shape) == len(example) + 2 and shape[0] == k):
            return
        tail = "".join(f", {d}" for d in example)
        raise ValueError(
            f"{name} must have shape (N{tail}), shared by the members, or ({k}, N{tail}), one "
            f"per member of this {k}-member ensemble; received {shape}"
        )

    def _alpha(self, xp: Any, alpha: Any, ref: Any) -> Any:
        if alpha is None:
            return self.model.alpha
        if hasattr(alpha, "shape") and alpha.ndim == 1 and alpha.shape[0] == self.members:
            return PerMember(xp.astype(alpha, ref.dtype) if alpha.dtype != ref.dtype else alpha)
        values = [alpha] if isinstance(alpha, numbers.Real) else alpha
        ok = isinstance(values, Sequence) and len(values) in (1, self.members)
        ok = ok and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < math.inf
            for v in values
        )
        if not ok:
            raise ValueError(
                f"alpha must be a number >= 0 or a list of {self.members} of them (one per "
                f"member), received {alpha!r}"
            )
        values = [float(v) for v in values]
        if len(set(values)) == 1:  # one value: a plain float, the arithmetic of one model
            return values[0]
        return PerMember(xp.asarray(values, dtype=ref.dtype, device=device(ref)))


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be int(s), received {value!r}")


def _shape_leaves(tree: Any) -> list[tuple[int, ...]]:
    """The shapes (tuples) in a tree of dicts and lists of shapes, in `tree_leaves` order."""
    if isinstance(tree, dict):
        return [s for v in tree.values() for s in _shape_leaves(v)]
    if isinstance(tree, list):
        return [s for v in tree for s in _shape_leaves(v)]
    return [tuple(tree)]


def _stack_tree(members: list[Any], shapes: Any) -> Any:
    """The members' trees stacked leaf by leaf on a new first axis, each reshaped to its
    stacked shape in ``shapes`` (the 1-axes that right-align it against the activations).
    Dicts are matched by key, not order (``jax.jit`` returns dicts with sorted keys)."""
    if isinstance(shapes, dict):
        return {k: _stack_tree([m[k] for m in members], v) for k, v in shapes.items()}
    if isinstance(shapes, list):
        return [_stack_tree([m[i] for m in members], v) for i, v in enumerate(shapes)]
    xp = array_namespace(*members)
    return xp.reshape(xp.stack(members, axis=0), shapes)


def _map_shapes(fn: Any, tree: Any, shapes: Any) -> Any:
    """``fn(leaf, shape)`` over ``tree`` and a tree of shapes of the same structure (by key)."""
    if isinstance(tree, dict):
        return {k: _map_shapes(fn, v, shapes[k]) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_shapes(fn, v, shapes[i]) for i, v in enumerate(tree))
    return fn(tree, shapes)


def _reshape(v: Any, shape: tuple[int, ...]) -> Any:
    return array_namespace(v).reshape(v, shape)
