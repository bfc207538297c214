"""Mixed precision for `fit` (``dtype="bfloat16"`` or ``"float16"``).

The master weights, the optimizer state, the data on the device, evaluation and metrics stay in
float32. Each training step:

1. casts the float32 parameters W, the batch X and the dropout masks to the compute dtype c;
2. runs the forward pass and the hand-derived backward pass (`Sequential._backward`, the same
   code as in float32) in c;
3. computes the loss J and the output signal (fused ``(a - y)/N`` or dJ/da) in float32 from the
   output pre-activation and activation cast up to float32, so the loss's mean and the
   softmax's log-sum-exp are float32 reductions; the signal is cast back to c (times the loss
   scale S for float16) for the backward pass;
4. casts the gradients up to float32, divides by S, adds the L2 term ``alpha/N * W`` on the
   float32 W, and lets the optimizer update the float32 master weights.

bfloat16 has float32's exponent range (8 bits), so gradients do not underflow: no loss
scaling. float16 (5 exponent bits, largest 65504, smallest normal 6e-5) does: `LossScale`
wraps the optimizer with dynamic loss scaling. The output signal is multiplied by S
(``INIT_SCALE`` = 2**15) so small gradients stay representable; the float32 gradients are
divided by S; a step whose gradients are not all finite is skipped (parameters and optimizer
state unchanged) and S halves; after ``growth_interval`` (2000) good steps in a row S doubles.
S and the good-step counter are part of the optimizer state (``opt_state["loss_scale"]``), so
checkpoints save them and a resumed run continues exactly.

Ensembles (`fit(..., ensemble=K)`, `ensemble_loss_and_grad`, `ensemble_precision`): the same
steps for K members stacked on a leading axis, in one batched pass; the losses, signals and L2
terms per member. float16 keeps one S per member (``LossScale(..., members=K)``): a member
whose gradients overflow skips its own step and halves its own S, and the optimizer's shared
step count becomes one per member, so member k trains exactly as it would alone.

Which backend computes in which type: `backends.Library.compute_dtypes` (JAX and torch:
bfloat16 and float16; CuPy: float16 only; NumPy and array-api-strict: none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from ..nn._members import per_member
from ..nn.layers import Train
from ..nn.sequential import Params, Sequential
from ..tree import tree_leaves, tree_map

__all__ = [
    "COMPUTE_DTYPES",
    "INIT_SCALE",
    "LossScale",
    "check_compute_dtype",
    "ensemble_loss_and_grad",
    "ensemble_precision",
    "mixed_step",
]

COMPUTE_DTYPES = ("bfloat16", "float16")
MASTER_DTYPE = "float32"
INIT_SCALE = 2.0**15  # float16's first loss scale: (a - y)/N * S stays far below 65504
GROWTH_INTERVAL = 2000  # good steps in a row before the scale doubles (the usual value)


def check_compute_dtype(be: Any, dtype: str) -> None:
    """Refuse a compute dtype the backend has not (before any training), ensemble or not."""
    if dtype not in be.library.compute_dtypes:
        has = [name for name in ("jax", "torch", "cupy") if dtype in _library_dtypes(name)]
        raise ValueError(
            f"fit: backend {be.name!r} has no {dtype}: mixed precision computes the forward and "
            f"backward passes in {dtype}, which {be.name!r} cannot; use backend "
            f"{' or '.join(has)}, or dtype float32"
        )


def _library_dtypes(name: str) -> tuple[str, ...]:
    from backends import _registry

    library = _registry._LIBRARIES.get(name)
    return tuple(getattr(library, "compute_dtypes", ()))


class LossScale:
    """``optimizer`` with float16 dynamic loss scaling (module docstring).

    State: ``{"optimizer": optimizer's state, "loss_scale": {"scale": S, "good": n}}`` (0-d
    float32 arrays). `update` takes the gradients already divided by S: it skips the step when
    one is not finite. Everything else (``lr``, ``spec``) is the wrapped optimizer's.

    ``members=K`` (an `backprop.Ensemble`'s stacked parameters): one loss scale per member,
    S and n (K,), and a member whose gradients are not all finite skips its own update and
    halves its own S while the others step, as each would alone. The wrapped optimizer's
    shared 0-d state (Adam's step count t) becomes one value per member, (K,), since a member
    that skipped has taken fewer steps: member k's state is then exactly its state alone.
    """

    def __init__(
        self, optimizer: Any, growth_interval: int = GROWTH_INTERVAL, members: int | None = None
    ) -> None:
        self.optimizer, self.growth_interval = optimizer, int(growth_interval)
        self.members = None if members is None else int(members)

    def __getattr__(self, name: str) -> Any:  # lr, spec, member_fields... of the optimizer
        if name in ("optimizer", "members"):
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        members = "" if self.members is None else f", members={self.members}"
        return f"LossScale({self.optimizer!r}, growth_interval={self.growth_interval}{members})"

    def init(self, params: Params) -> dict[str, Any]:
        xp = array_namespace(*tree_leaves(params))
        ref = next(iter(tree_leaves(params)))
        shape = () if self.members is None else (self.members,)
        scalar = lambda v: xp.full(shape, v, dtype=ref.dtype, device=ref.device)  # noqa: E731
        inner = self.optimizer.init(params)
        if self.members is not None:  # shared counters (Adam's t): one per member
            inner = tree_map(lambda s: _per_member(xp, s, self.members), inner)
        return {
            "optimizer": inner,
            "loss_scale": {"scale": scalar(INIT_SCALE), "good": scalar(0.0)},
        }

    @staticmethod
    def scale(state: dict[str, Any]) -> Any:
        """S: 0-d, or (K,) one per member."""
        return state["loss_scale"]["scale"]

    def update(
        self, params: Params, grads: Params, state: dict, lr: Any = None, *, members: Any = None
    ) -> tuple:
        """One step if every gradient is finite, else none; then S halves or (every
        ``growth_interval`` good steps) doubles. ``members=K``: all of it per member."""
        if members != self.members:
            raise ValueError(
                f"LossScale: update(..., members={members}) but the loss scale was built for "
                f"members={self.members}; build LossScale(optimizer, members={members})"
            )
        leaves = list(tree_leaves(grads))
        xp = array_namespace(*leaves)
        if members is None:
            ok = xp.all(xp.stack([xp.all(xp.isfinite(g)) for g in leaves]))
            new_params, new_inner = self.optimizer.update(params, grads, state["optimizer"], lr)
        else:  # ok (K,): each member's own gradients finite
            ok = xp.all(xp.stack([_all_member(xp, xp.isfinite(g)) for g in leaves]), axis=0)
            new_params, new_inner = _stacked_update(
                xp, self.optimizer, params, grads, state["optimizer"], lr, members
            )
        keep = lambda new, old: _where(xp, ok, new, old)  # noqa: E731
        scale, good = state["loss_scale"]["scale"], state["loss_scale"]["good"]
        grow = (good + 1.0) >= self.growth_interval
        scale = xp.where(ok, xp.where(grow, scale * 2.0, scale), scale * 0.5)
        good = xp.where(ok & ~grow, good + 1.0, xp.zeros_like(good))
        return tree_map(keep, new_params, params), {
            "optimizer": tree_map(keep, new_inner, state["optimizer"]),
            "loss_scale": {"scale": scale, "good": good},
        }


def _per_member(xp: Any, leaf: Any, k: int) -> Any:
    """A 0-d state leaf as K copies (K,); a stacked leaf (K, ...) as it is."""
    if not hasattr(leaf, "shape") or leaf.ndim > 0:
        return leaf
    return xp.broadcast_to(xp.reshape(leaf, (1,)), (k,)) * 1.0  # a new array, not a view


def _all_member(xp: Any, flags: Any) -> Any:
    """(K,): whether all of member k's slice of ``flags`` (K, ...) is true."""
    return xp.all(flags, axis=tuple(range(1, flags.ndim))) if flags.ndim > 1 else flags


def _where(xp: Any, ok: Any, new: Any, old: Any) -> Any:
    """``new`` where ``ok``; ``ok`` 0-d, or (K,) per member (the leaf's first axis)."""
    if not hasattr(new, "shape"):
        return new
    mask = ok if ok.ndim == 0 else xp.reshape(ok, (ok.shape[0], *(1,) * (new.ndim - 1)))
    return xp.where(mask, new, old)


def _stacked_update(xp, optimizer, params, grads, inner, lr, k) -> tuple[Params, Any]:
    """``optimizer.update(..., members=k)`` with per-member counters (K,) in ``inner``.

    Every leaf is viewed with the same number of axes D, (K, 1, ..., *own shape) (a counter:
    (K, 1, ..., 1)), so a counter broadcasts against each leaf member by member inside the
    optimizer's one-model formulas (``m / (1 - b1**t)``); then back to its own shape. Only
    reshapes: the arithmetic is each member's own."""
    d = max(p.ndim for p in tree_leaves(params))

    def pad(a: Any) -> Any:
        if not hasattr(a, "shape") or not 0 < a.ndim < d:
            return a
        return xp.reshape(a, (a.shape[0], *(1,) * (d - a.ndim), *a.shape[1:]))

    def back(new: Any, old: Any) -> Any:
        return xp.reshape(new, old.shape) if hasattr(new, "shape") else new

    new_params, new_inner = optimizer.update(
        tree_map(pad, params), tree_map(pad, grads), tree_map(pad, inner), lr, members=k
    )
    return tree_map(back, new_params, params), tree_map(back, new_inner, inner)


def _low_pass(model, xp, params, x, y, w, alpha, compute, masks, scale, per_model) -> tuple:
    """``(J, dJ/dW * S)``: the forward and backward passes in ``compute``, J and the output
    signal in float32 (module docstring), the gradients cast up, without the L2 term.
    ``scale``: None, 0-d, or (K,) one per stacked model."""
    low = getattr(xp, compute)
    down = lambda v: xp.astype(v, low) if hasattr(v, "shape") else v  # noqa: E731
    x_low = down(x) if xp.isdtype(x.dtype, "real floating") else x
    low_params = tree_map(down, params)
    low_masks = None if masks is None else [None if m is None else down(m) for m in masks]
    z, a, caches = model._forward(xp, low_params, x_low, train=Train(low_masks))
    z, a = xp.astype(z, y.dtype), xp.astype(a, y.dtype)
    loss = model._loss_value(xp, params, z, a, y, w, alpha, per_model=per_model)
    signal = model._signal(xp, a, y, w)
    signal = down(signal if scale is None else signal * per_member(scale, signal))
    grads, _ = model._backward(xp, low_params, caches, signal, 0.0)
    return loss, tree_map(lambda g: xp.astype(g, y.dtype), grads)


def mixed_loss_and_grad(
    model: Sequential,
    params: Params,
    xb: Any,
    yb: Any,
    compute: str,
    weights: Any = None,
    masks: Any = None,
    scale: Any = None,
) -> tuple[Any, Params]:
    """``(J, dJ/dW * S)``: J float32, the gradients float32 and still multiplied by ``scale``
    S (None: 1) and without the L2 term; the passes in ``compute`` (module docstring).

    ``params``, ``xb`` (B, n_in), ``yb`` (B, n_out), ``weights`` (B,) and ``masks``: float32
    (``xb``: int32 token ids for an `EmbeddingBag` model, kept as they are)."""
    xp = model._check_xy(xb, yb, params)
    w = None if weights is None else xp.reshape(weights, (-1, 1))
    return _low_pass(model, xp, params, xb, yb, w, None, compute, masks, scale, False)


def _finish(model: Sequential, xp: Any, params: Params, grads: Params, scale: Any, l2: Any):
    """The float32 gradients: divided by S (0-d or per member), plus the L2 term ``l2 * W``
    on the float32 master weights (``l2``: alpha/N, a number or a `PerMember`)."""
    if scale is not None:
        grads = tree_map(lambda g: g / per_member(scale, g), grads)
    if l2:
        grads = [
            layer.add_l2(xp, p, g, l2)
            for layer, p, g in zip(model.layers, params, grads, strict=True)
        ]
    return grads


def mixed_step(model: Sequential, optimizer: Any, compute: str) -> Callable:
    """The pure step ``(params, state, xb, yb, lr, weights, masks) -> (params, state, loss)``
    of `backprop.training.make_step` in mixed precision (compute dtype ``compute``)."""
    scaled = isinstance(optimizer, LossScale)

    def step(params, state, xb, yb, lr=None, weights=None, masks=None):
        scale = LossScale.scale(state) if scaled else None
        loss, grads = mixed_loss_and_grad(model, params, xb, yb, compute, weights, masks, scale)
        xp = array_namespace(loss)
        grads = _finish(model, xp, params, grads, scale, model.alpha / yb.shape[0])
        params, state = optimizer.update(params, grads, state, lr)
        return params, state, loss

    return step


def ensemble_loss_and_grad(
    ens: Any,
    params: Params,
    x: Any,
    y: Any,
    compute: str,
    weights=None,
    masks=None,
    alpha=None,
    scale: Any = None,
) -> tuple[Any, Params]:
    """`Ensemble.loss_and_grad` in mixed precision: losses (K,) float32 and the float32
    gradients of every member, unscaled (``scale``: None, or the (K,) per-member S) and with
    each member's L2 term; arguments and shapes as there, float32, passes in ``compute``."""
    xp, w, alpha = ens._check_xy(params, x, y, weights, alpha)
    model = ens.model
    loss, grads = _low_pass(model, xp, params, x, y, w, alpha, compute, masks, scale, True)
    l2 = alpha / y.shape[-1 - len(model.output_shape)]
    return loss, _finish(model, xp, params, grads, scale, l2)


def ensemble_precision(dtype: str, members: int, *optimizers: Any) -> tuple[Any, str, list]:
    """``(compute dtype or None, the dtype of the master weights, the optimizers)`` of an
    ensemble fit asked for ``dtype``: float16 wraps each optimizer in a per-member
    `LossScale`; float32/float64 are returned as they are."""
    if dtype not in COMPUTE_DTYPES:
        return None, dtype, list(optimizers)
    if dtype == "float16":
        optimizers = tuple(LossScale(o, members=members) for o in optimizers)
    return dtype, MASTER_DTYPE, list(optimizers)
