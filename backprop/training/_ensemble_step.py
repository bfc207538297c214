"""The compiled functions of an ensemble `fit`: the step, the epoch (a scan of steps) and the
epoch-end read-out, for K members stacked on a leading axis (`backprop.Ensemble`).

``step(params, state, x, y, w, idx, lr, masks, alpha, active) -> (params, state, losses)``:
rows ``idx`` (B,) shared by the members, or (K, B) one batch per member, gathered on the
device; one batched `Ensemble.loss_and_grad` (losses (K,)) and one optimizer update
(``members=K``) for all members. ``lr`` (K,): each member's rate this step; ``alpha``: None
(the model's) or (K,) per-member L2 alphas; ``active``: None (every member trains) or (K,)
with 1.0 where a member trains and 0.0 where it is frozen: a frozen member's parameters and
optimizer state stay as they were (``where(active, new, old)`` on every leaf stacked by member;
shared state such as Adam's step count moves on). The sweep values are traced arrays, so a new
sweep does not recompile; the compile key is the `Ensemble` (K and the model), the optimizer
and the compute dtype.

Mixed precision (``compute`` "bfloat16" or "float16", `backprop.training._mixed`): float32
master weights, optimizer state and data; each step casts them down, runs the members'
batched forward and backward in ``compute``, the losses and output signal in float32 and
updates the float32 weights, exactly as one model's mixed step does for each member. float16:
the optimizer is a `_mixed.LossScale` with ``members=K``, one loss scale per member (a member
whose gradients overflow skips its own update and halves its own scale).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from ..nn.ensemble import Ensemble
from ..tree import tree_leaves, tree_map
from ._mixed import LossScale, ensemble_loss_and_grad
from .evaluation import CHUNK_ROWS
from .metrics import get_metric
from .step import _compiled

__all__ = [
    "ensemble_columns",
    "make_ensemble_epoch",
    "make_ensemble_epoch_end",
    "make_ensemble_step",
]


def _rows(be: Any, x: Any, idx: Any) -> Any:
    """Rows ``idx`` of ``x`` (N, ...): (B, ...) for idx (B,), (K, B, ...) for idx (K, B)."""
    if idx.ndim == 1:
        return be.take_rows(x, idx)
    xp = array_namespace(x)
    flat = be.take_rows(x, xp.reshape(idx, (-1,)))
    return xp.reshape(flat, (*idx.shape, *x.shape[1:]))


def select(active: Any, new: Any, old: Any, members: int) -> Any:
    """Per leaf stacked by member (leading axis K): member k's slice of ``new`` where
    ``active[k]`` is 1.0, of ``old`` where it is 0.0; other leaves (shared) from ``new``."""

    def pick(n: Any, o: Any) -> Any:
        if not hasattr(n, "shape") or n.ndim == 0 or n.shape[0] != members:
            return n
        xp = array_namespace(n)
        mask = xp.reshape(active > 0.5, (members, *(1,) * (n.ndim - 1)))
        return xp.where(mask, n, o)

    return tree_map(pick, new, old)


def _grads(ens: Ensemble, compute: str | None, scaled: bool) -> Callable:
    """``(params, state, x, y, w, masks, alpha) -> (losses (K,), grads)``: the float32 or
    float64 `Ensemble.loss_and_grad`, or its mixed-precision twin (`_mixed`; ``scaled``: the
    per-member loss scales are in ``state``)."""
    if compute is None:
        return lambda params, state, *args: ens.loss_and_grad(params, *args)

    def grads(params, state, x, y, w, masks, alpha):
        scale = LossScale.scale(state) if scaled else None
        return ensemble_loss_and_grad(ens, params, x, y, compute, w, masks, alpha, scale)

    return grads


def _pure_step(ens: Ensemble, optimizer: Any, be: Any, compute: str | None = None) -> Callable:
    k = ens.members
    loss_and_grad = _grads(ens, compute, isinstance(optimizer, LossScale))

    def step(params, state, x, y, w, idx, lr, masks, alpha, active):
        wb = None if w is None else _rows(be, w, idx)
        losses, grads = loss_and_grad(
            params, state, _rows(be, x, idx), _rows(be, y, idx), wb, masks, alpha
        )
        new_params, new_state = optimizer.update(params, grads, state, lr, members=k)
        if active is not None:
            new_params = select(active, new_params, params, k)
            new_state = select(active, new_state, state, k)
        return new_params, new_state, losses

    return step


def _kind(name: str, compute: str | None) -> str:
    """The cache kind: ``name``, with the compute dtype of mixed precision ("ensemble_step",
    "ensemble_step[bfloat16]"): a float32 and a bfloat16 step are two programs."""
    return name if compute is None else f"{name}[{compute}]"


def make_ensemble_step(
    ens: Ensemble, optimizer: Any, be: Any, compute: str | None = None
) -> Callable:
    """The step (module docstring), compiled, cached and donating ``params`` and ``state``;
    ``compute``: None, or "bfloat16"/"float16" for mixed precision (part of the cache key: a
    float32 and a bfloat16 step of the same ensemble and optimizer are two programs)."""
    step = _pure_step(ens, optimizer, be, compute)
    return _compiled(
        _kind("ensemble_step", compute), ens, optimizer, be,
        lambda: be.compile(step, donate_argnums=(0, 1)),
    )  # fmt: skip


def make_ensemble_epoch(
    ens: Ensemble, optimizer: Any, be: Any, compute: str | None = None
) -> Callable:
    """``(params, state, x, y, w, order, lrs, alpha, active) -> (params, state, losses)``:
    ``order`` (S, B) or (S, K, B), ``lrs`` (S, K), ``losses`` (S, K); the steps through
    ``backend.scan`` (one ``jax.lax.scan`` on JAX), each the same step as `make_ensemble_step`
    (``compute`` likewise)."""
    step = _pure_step(ens, optimizer, be, compute)

    def epoch(params, state, x, y, w, order, lrs, alpha, active):
        def body(carry, row):
            idx, lr = row
            params, state, losses = step(*carry, x, y, w, idx, lr, None, alpha, active)
            return (params, state), losses

        (params, state), losses = be.scan(body, (params, state), (order, lrs))
        return params, state, losses

    return _compiled(
        _kind("ensemble_epoch", compute), ens, optimizer, be,
        lambda: be.compile(epoch, donate_argnums=(0, 1)),
    )  # fmt: skip


def ensemble_columns(settings: dict[str, Any], validation: bool) -> list[str]:
    """The per-member columns the read-out fills besides the loss, in the vector's order."""
    metric = settings["metric"]
    names = [metric] if settings["train_metrics"] and metric is not None else []
    if validation:
        names += ["val_loss", *([f"val_{metric}"] if metric is not None else [])]
    return names


def forward_all(ens: Ensemble, params: Any, x: Any) -> tuple[Any, Any]:
    """``(z, a)`` of every member on ``x`` (N, ...): (K, N, *output), in row chunks."""
    xp, n = array_namespace(x), x.shape[0]
    parts = [
        ens.model._forward(xp, params, x[i : min(i + CHUNK_ROWS, n), ...])
        for i in range(0, n, CHUNK_ROWS)
    ]
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    return xp.concat([p[0] for p in parts], axis=-2), xp.concat([p[1] for p in parts], axis=-2)


def member_scores(ens, params, x, y, metric, threshold, alpha=None, weights=None) -> dict:
    """``{"loss": (K,), metric: (K,)}``: each member's loss (with its L2 penalty) and metric
    on all of ``x``, ``y``, as `evaluation.evaluate_arrays` gives one model's."""
    z, a = forward_all(ens, params, x)
    return scores_from_outputs(ens, params, z, a, y, metric, threshold, alpha, weights)


def scores_from_outputs(ens, params, z, a, y, metric, threshold, alpha=None, weights=None) -> dict:
    """`member_scores` from outputs already computed: ``z``, ``a`` (K, N, n_out), ``y`` (N,
    n_out), ``weights`` (N,) on the backend or None, ``alpha`` as there."""
    xp = array_namespace(a)
    w = None if weights is None else xp.reshape(weights, (-1, 1))
    alpha = ens._alpha(xp, alpha, next(tree_leaves(params)))
    out = {"loss": ens.model._loss_value(xp, params, z, a, y, w, alpha, per_model=True)}
    if metric is not None:
        fn = get_metric(metric)
        out[metric] = xp.stack(
            [fn(xp, a[k, ...], y, threshold=threshold) for k in range(ens.members)]
        )
    return out


def make_ensemble_epoch_end(
    ens: Ensemble, be: Any, settings: dict[str, Any], validation: bool
) -> tuple[list[str], Callable]:
    """``(columns, epoch_end)``: ``epoch_end(params, losses, x, y, x_val, y_val, alpha)`` is one
    vector: the S x K step losses (step-major; ``losses``: (K,) and (s, K) arrays in step
    order), then K values per column, then K flags (1.0 where every parameter of the member
    is finite). One call, one device->host copy per epoch."""
    metric, threshold = settings["metric"], settings["threshold"]
    names, xp = ensemble_columns(settings, validation), be.xp

    def epoch_end(params, losses, x, y, x_val, y_val, alpha):
        out: list[Any] = []
        if settings["train_metrics"] and metric is not None:
            out.append(member_scores(ens, params, x, y, metric, threshold, alpha)[metric])
        if validation:
            out += list(member_scores(ens, params, x_val, y_val, metric, threshold, alpha).values())
        finite = [xp.all(xp.isfinite(p), axis=tuple(range(1, p.ndim))) for p in tree_leaves(params)]
        flags = xp.astype(
            xp.all(xp.stack(finite), axis=0), out[0].dtype if out else losses[0].dtype
        )
        steps = [v if v.ndim == 2 else xp.reshape(v, (1, -1)) for v in losses]
        return xp.concat([xp.reshape(xp.concat(steps, axis=0), (-1,)), *out, flags])

    fn = get_metric(metric) if metric is not None else None
    kind = ("ensemble_epoch_end", metric, fn, threshold, settings["train_metrics"], validation)
    return names, _compiled(kind, ens, None, be, lambda: be.compile(epoch_end))
