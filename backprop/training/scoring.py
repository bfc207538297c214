"""`evaluate`: the loss and metric of parameters on a dataset, as Python floats, from in-memory
arrays (`backprop.training.evaluation`) or a data source read in chunks
(`backprop.training._sourcedata`)."""

from __future__ import annotations

from typing import Any

import backends

from ..nn.model import dtype_name
from ..nn.sequential import first_leaf
from ._ensemble_result import evaluate_members, evaluate_members_source, stacked_model
from ._fitdata import host_xy, move_x
from ._sourcedata import as_source, evaluate_source, is_source
from .evaluation import evaluate_arrays, resolve_metric

__all__ = ["evaluate"]


def evaluate(
    model: Any,
    params: Any,
    X: Any,
    Y: Any = None,
    *,
    metric: str | None = "auto",
    backend: Any = None,
) -> dict[str, float]:
    """Loss and metric of ``params`` on ``(X, Y)`` as Python floats.

    ``X``, ``Y``: host data (NumPy arrays or lists; Y as targets (N, n_out) or integer labels
    for softmax models), checked and moved to ``backend`` (default: the parameters' backend)
    in the parameters' dtype; or arrays of another library already on that backend, used as
    they are; or a data source as `fit` takes them (memory-mapped arrays, a `Dataset`, an
    iterable of ``(x, y)`` batches with Y None), read and scored in chunks of rows.

    An ensemble (a `bp.Ensemble`, or the model with stacked parameters, e.g. an
    `EnsembleResult`'s): ``{"loss": L, metric: M, "members": {"loss": [K floats], metric: [K
    floats]}}``, L and M of the members' averaged outputs (no L2 term), the lists each
    member's own values (see `_ensemble_result.evaluate_members`; on a data source, one read of
    the rows for all members, `evaluate_members_source`).
    """
    model, ensemble = stacked_model(model, params)
    name, threshold = resolve_metric(model, metric)
    be = backends.as_backend(backend) if backend is not None else None
    be = be or backends.backend_of(first_leaf(params))
    dtype = dtype_name(params)
    if is_source(X, Y):
        if ensemble is not None:
            return evaluate_members_source(ensemble, params, as_source(X, Y), name, threshold)
        values = evaluate_source(model, params, as_source(X, Y), name, threshold)
    else:
        if _is_host(X):
            x_host, y_host = host_xy(model, X, Y)
            X, Y = move_x(be, x_host, dtype, model), be.asarray(y_host, dtype)
        if ensemble is not None:
            return evaluate_members(ensemble, params, X, Y, name, threshold)
        values = evaluate_arrays(model, params, X, Y, name, threshold)
    host = be.to_numpy(be.xp.stack(list(values.values())))
    return dict(zip(values, (float(v) for v in host.tolist()), strict=True))


def _is_host(X: Any) -> bool:
    """NumPy arrays and lists are host data: checked, converted and moved like `fit`'s input."""
    return isinstance(X, (list, tuple)) or type(X).__module__.split(".")[0] == "numpy"
