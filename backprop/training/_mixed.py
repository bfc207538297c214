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

Which backend computes in which type: `backends.Library.compute_dtypes` (JAX and torch:
bfloat16 and float16; CuPy: float16 only; NumPy and array-api-strict: none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from ..nn.layers import Train
from ..nn.sequential import Params, Sequential
from ..tree import tree_leaves, tree_map

__all__ = ["COMPUTE_DTYPES", "INIT_SCALE", "LossScale", "check_compute_dtype", "mixed_step"]

COMPUTE_DTYPES = ("bfloat16", "float16")
MASTER_DTYPE = "float32"
INIT_SCALE = 2.0**15  # float16's first loss scale: (a - y)/N * S stays far below 65504
GROWTH_INTERVAL = 2000  # good steps in a row before the scale doubles (the usual value)


def check_compute_dtype(be: Any, dtype: str, ensemble: bool = False) -> None:
    """Refuse a compute dtype the backend has not (before any training), or an ensemble."""
    if ensemble:
        raise ValueError(
            f"fit: dtype={dtype!r} (mixed precision) is not available for ensembles and sweeps "
            "yet; train the ensemble with dtype float32 or float64, or the members one by one"
        )
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
    """

    def __init__(self, optimizer: Any, growth_interval: int = GROWTH_INTERVAL) -> None:
        self.optimizer, self.growth_interval = optimizer, int(growth_interval)

    def __getattr__(self, name: str) -> Any:  # lr, spec, member_fields... of the optimizer
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"LossScale({self.optimizer!r}, growth_interval={self.growth_interval})"

    def init(self, params: Params) -> dict[str, Any]:
        xp = array_namespace(*tree_leaves(params))
        ref = next(iter(tree_leaves(params)))
        scalar = lambda v: xp.asarray(v, dtype=ref.dtype, device=ref.device)  # noqa: E731
        return {
            "optimizer": self.optimizer.init(params),
            "loss_scale": {"scale": scalar(INIT_SCALE), "good": scalar(0.0)},
        }

    @staticmethod
    def scale(state: dict[str, Any]) -> Any:
        return state["loss_scale"]["scale"]

    def update(self, params: Params, grads: Params, state: dict, lr: Any = None) -> tuple:
        """One step if every gradient is finite, else none; then S halves or (every
        ``growth_interval`` good steps) doubles."""
        leaves = list(tree_leaves(grads))
        xp = array_namespace(*leaves)
        ok = xp.all(xp.stack([xp.all(xp.isfinite(g)) for g in leaves]))
        new_params, new_inner = self.optimizer.update(params, grads, state["optimizer"], lr)
        keep = lambda new, old: xp.where(ok, new, old) if hasattr(new, "shape") else new  # noqa: E731
        scale, good = state["loss_scale"]["scale"], state["loss_scale"]["good"]
        grow = (good + 1.0) >= self.growth_interval
        scale = xp.where(ok, xp.where(grow, scale * 2.0, scale), scale * 0.5)
        good = xp.where(ok & ~grow, good + 1.0, xp.zeros_like(good))
        return tree_map(keep, new_params, params), {
            "optimizer": tree_map(keep, new_inner, state["optimizer"]),
            "loss_scale": {"scale": scale, "good": good},
        }


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
    low = getattr(xp, compute)
    down = lambda v: xp.astype(v, low) if hasattr(v, "shape") else v  # noqa: E731
    x_low = down(xb) if xp.isdtype(xb.dtype, "real floating") else xb
    low_params = tree_map(down, params)
    low_masks = None if masks is None else [None if m is None else down(m) for m in masks]
    z, a, caches = model._forward(xp, low_params, x_low, train=Train(low_masks))
    z, a = xp.astype(z, yb.dtype), xp.astype(a, yb.dtype)
    w = None if weights is None else xp.reshape(weights, (-1, 1))
    loss = model._loss_value(xp, params, z, a, yb, w)
    signal = model._signal(xp, a, yb, w)
    signal = down(signal if scale is None else signal * scale)
    grads, _ = model._backward(xp, low_params, caches, signal, 0.0)
    return loss, tree_map(lambda g: xp.astype(g, yb.dtype), grads)


def mixed_step(model: Sequential, optimizer: Any, compute: str) -> Callable:
    """The pure step ``(params, state, xb, yb, lr, weights, masks) -> (params, state, loss)``
    of `backprop.training.make_step` in mixed precision (compute dtype ``compute``)."""
    scaled = isinstance(optimizer, LossScale)

    def step(params, state, xb, yb, lr=None, weights=None, masks=None):
        scale = LossScale.scale(state) if scaled else None
        loss, grads = mixed_loss_and_grad(model, params, xb, yb, compute, weights, masks, scale)
        xp = array_namespace(loss)
        if scale is not None:
            grads = tree_map(lambda g: g / scale, grads)
        l2 = model.alpha / yb.shape[0]
        if l2:  # the L2 term on the float32 master weights, after unscaling
            grads = [
                layer.add_l2(xp, p, g, l2)
                for layer, p, g in zip(model.layers, params, grads, strict=True)
            ]
        params, state = optimizer.update(params, grads, state, lr)
        return params, state, loss

    return step
