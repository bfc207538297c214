"""`fit`'s end-of-epoch read-out in one call: the step losses, the training metric, the
validation loss and metric, the gradient-flow diagnostics and whether every parameter is finite,
packed into one vector.

The function is compiled and cached like the training step (`backprop.training`), so on JAX the
whole read-out is one dispatch instead of dozens of eager operations per epoch, and on every
backend it ends in a single device->host copy (the epoch's one sync).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..nn.diagnostics import flow_columns, gradient_flow
from ..nn.sequential import Sequential, first_leaf
from ..tree import tree_leaves
from .evaluation import evaluate_arrays
from .metrics import get_metric
from .step import _compiled

__all__ = ["DIAGNOSTIC_ROWS", "epoch_columns", "make_epoch_end"]

DIAGNOSTIC_ROWS = 256  # rows of the fixed batch the gradient-flow diagnostics use


def epoch_columns(model: Sequential, settings: dict[str, Any], validation: bool) -> list[str]:
    """The history columns the read-out fills besides the loss, in the vector's order."""
    metric = settings["metric"]
    names = [metric] if settings["train_metrics"] and metric is not None else []
    if validation:
        names += ["val_loss", *([f"val_{metric}"] if metric is not None else [])]
    if settings["diagnostics"]:
        names += flow_columns(model)
    return names


def make_epoch_end(
    model: Sequential, backend: Any, settings: dict[str, Any], validation: bool
) -> tuple[list[str], Callable]:
    """``(columns, epoch_end)``. ``epoch_end(params, losses, x, y, x_val, y_val)`` returns one
    vector: the S step losses (``losses``: 0-d arrays and (k,) arrays, in step order), then one
    value per column, then 1.0 if every parameter is finite else 0.0."""
    metric, threshold = settings["metric"], settings["threshold"]
    names = epoch_columns(model, settings, validation)
    xp = backend.xp

    def epoch_end(params, losses, x, y, x_val, y_val):
        out: dict[str, Any] = {}
        if settings["train_metrics"] and metric is not None:
            out[metric] = evaluate_arrays(model, params, x, y, metric, threshold)[metric]
        if validation:
            val = evaluate_arrays(model, params, x_val, y_val, metric, threshold)
            out.update({f"val_{k}": v for k, v in val.items()})
        if settings["diagnostics"]:
            rows = min(DIAGNOSTIC_ROWS, x.shape[0])
            out.update(gradient_flow(model, params, x[:rows, ...], y[:rows, ...]))
        assert list(out) == names, (list(out), names)  # epoch_columns mirrors this function
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in tree_leaves(params)]))
        dtype = first_leaf(params).dtype
        tail = xp.stack([*out.values(), xp.astype(finite, dtype)])
        return xp.concat([*_vectors(xp, losses), tail])

    # The metric function itself, not only its name: a metric registered again under the same
    # name (a re-run notebook cell) must not reuse the compiled read-out of the old one.
    fn = get_metric(metric) if metric is not None else None
    kind = (
        "epoch_end", metric, fn, threshold, settings["train_metrics"], validation,
        settings["diagnostics"],
    )  # fmt: skip
    return names, _compiled(kind, model, None, backend, lambda: backend.compile(epoch_end))


def _vectors(xp: Any, losses: Sequence[Any]) -> list[Any]:
    """The losses as 1-d arrays in order: runs of 0-d arrays stacked, (k,) arrays as they are."""
    vectors, run = [], []
    for value in losses:
        if value.ndim == 0:
            run.append(value)
            continue
        if run:
            vectors.append(xp.stack(run))
            run = []
        vectors.append(value)
    if run:
        vectors.append(xp.stack(run))
    return vectors
