"""Loss and metric of a model on a whole dataset, computed on the device in row chunks.

The forward pass runs over chunks of ``chunk_rows`` rows (bounded memory for large sets); the
outputs (N, n_out) are joined on the device and the loss and metric computed once over all N
rows, so the result equals the one-shot computation. The loss includes the L2 penalty with
N = all rows: J = data loss + alpha/(2N) * sum(W**2).
"""

from __future__ import annotations

from typing import Any

from ..nn.sequential import is_activation
from .metrics import get_metric

__all__ = ["evaluate_arrays", "resolve_metric"]

CHUNK_ROWS = 8192


def resolve_metric(model: Any, metric: str | None = "auto") -> tuple[str | None, float | None]:
    """``(metric name, threshold)``: "auto" gives accuracy for classifiers (threshold 0.5 on
    sigmoid outputs, argmax on softmax) and r2 for regressors; None gives no metric."""
    if metric is None:
        return None, None
    if metric == "auto":
        metric = "accuracy" if model.task == "classification" else "r2"
    get_metric(metric)  # unknown names fail here, before any training
    sigmoid = is_activation(model.output_activation, "sigmoid")
    return metric, (0.5 if sigmoid and metric == "accuracy" else None)


def evaluate_arrays(
    model: Any,
    params: Any,
    X: Any,
    Y: Any,
    metric: str | None,
    threshold: float | None = None,
    chunk_rows: int = CHUNK_ROWS,
    weights: Any = None,
) -> dict[str, Any]:
    """``{"loss": J, metric: value}`` as 0-d arrays of the backend (no host sync).

    X (N, n_in) and Y (N, n_out) are arrays of the parameters' backend and dtype; ``weights``:
    optional per-row loss weights (N,) (J = (1/N) sum_i w_i l_i, as in training).
    """
    xp = model._check_xy(X, Y, params)
    n = X.shape[0]
    starts = range(0, n, chunk_rows)
    parts = [model._forward(xp, params, X[i : min(i + chunk_rows, n), ...]) for i in starts]
    z = xp.concat([p[0] for p in parts], axis=0) if len(parts) > 1 else parts[0][0]
    a = xp.concat([p[1] for p in parts], axis=0) if len(parts) > 1 else parts[0][1]
    w = None if weights is None else xp.reshape(weights, (-1, 1))
    out = {"loss": model._loss_value(xp, params, z, a, Y, w)}
    if metric is not None:
        out[metric] = get_metric(metric)(xp, a, Y, threshold=threshold)
    return out
