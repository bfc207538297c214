"""`fit`'s data that stays on the host: indexable sources and streams of batches, prepared.

Host-only module: it handles host NumPy batches (read from a source, checked, labels made
one-hot) before they are moved to the backend; the math never sees NumPy.

What `prepare_source` does mirrors `backprop.training._fitdata.prepare_data` for in-memory
arrays, row for row, so the same data as a memory-mapped file trains to the same numbers:

- a validation split draws the same train/validation indices (from the targets, read whole:
  they are small next to the inputs, which are never read whole), and the training rows become
  a `Subset` view in the same order as ``x[train_idx]``;
- class and sample weights are computed over all training rows, rescaled to mean 1, kept on the
  host (8 bytes a row) and gathered per batch;
- every batch goes through the same checks as in-memory data (`host_xy`: shape, finiteness,
  labels -> one-hot; `check_castable`), and a bad batch raises `DataError` naming its rows.

`evaluate_source` scores parameters on a source in row chunks of
`backprop.training.evaluation.CHUNK_ROWS` (the chunks `evaluate_arrays` uses, so the numbers are
the same), reading the next chunk in a background thread while the device computes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import backends

from ..data import sources
from ..data.checks import DataError, prepare_targets
from ..data.weights import compute_sample_weight, validation_split
from ..nn.model import dtype_name
from ..nn.sequential import Sequential, first_leaf
from ._fitdata import _width, check_castable, host_xy, move_x
from .evaluation import CHUNK_ROWS, evaluate_arrays
from .metrics import get_metric
from .step import _compiled

__all__ = [
    "DeviceData",
    "SourceData",
    "as_source",
    "evaluate_source",
    "is_row_source",
    "is_source",
    "move_batch",
    "predict_source",
    "prepare_source",
    "source_outputs",
]


@dataclasses.dataclass
class DeviceData:
    """Validation data given as in-memory arrays: checked and moved to the backend once."""

    x: Any
    y: Any


@dataclasses.dataclass
class SourceData:
    """Training data read from the host as training goes.

    ``train``: a `Dataset` (indexable: fit draws the batch order, as for arrays) or a
    `BatchStream` (the loader's own batches); ``w``: host weights (N,) of an indexable training
    set, or None; ``val``: validation data (a `Dataset`, `DeviceData`) or None.
    """

    train: Any
    w: Any = None
    val: Any = None

    @property
    def indexable(self) -> bool:
        return not isinstance(self.train, sources.BatchStream)

    @property
    def n(self) -> int | None:
        return len(self.train) if self.indexable else None

    @property
    def x_val(self) -> Any:  # what `check_monitors` asks: is there validation data?
        return self.val


def is_source(X: Any, Y: Any) -> bool:
    """Whether ``fit(model, X, Y)`` gets a data source (a memmap, a `Dataset`, a `RowSource`,
    an iterable of batches, a list of ``(x, y)`` batches) rather than in-memory arrays."""
    return _is_stream(X, Y) or sources.as_dataset(X, Y) is not None


def _is_stream(X: Any, Y: Any) -> bool:
    if sources.is_batch_stream(X):
        return True
    return (  # a list of batches [(x, y), ...]: pairs of arrays, never valid inputs
        isinstance(X, list)
        and len(X) > 0
        and all(isinstance(b, (tuple, list)) and len(b) in (2, 3) for b in X)
        and all(hasattr(b[0], "shape") for b in X)
    )


def prepare_source(
    model: Sequential,
    X: Any,
    Y: Any,
    be: Any,
    s: dict[str, Any],
    validation_data: Any,
    class_weight: Any,
    sample_weight: Any,
) -> SourceData:
    """The training source, its weights and the validation data (see the module docstring)."""
    if _is_stream(X, Y):
        return _stream(model, X, Y, be, s, validation_data, class_weight, sample_weight)
    ds = sources.as_dataset(X, Y)
    if sample_weight is not None and len(np.shape(sample_weight)) != 1:
        raise DataError(f"sample_weight must be 1-D (N,), received shape {np.shape(sample_weight)}")
    weighted = class_weight is not None or sample_weight is not None
    if s["validation_split"]:
        y_all = _targets(model, ds, "validation_split")
        compute_sample_weight(y_all, class_weight, sample_weight)  # checks them against all rows
        train_idx, val_idx = validation_split(
            y_all, s["validation_split"], s["seed"] + 2, s["stratify"]
        )
        train, val = sources.Subset(ds, train_idx), sources.Subset(ds, val_idx)
        y_train = y_all[train_idx] if weighted else None
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)[train_idx]
    else:
        train, val = ds, _validation(model, be, s["dtype"], validation_data)
        y_train = _targets(model, ds, "class_weight/sample_weight") if weighted else None
    w = compute_sample_weight(y_train, class_weight, sample_weight) if weighted else None
    if w is not None:
        check_castable(be, s["dtype"], **{"the sample weights": w})
    return SourceData(train, w, val)


def _stream(model, X, Y, be, s, validation_data, class_weight, sample_weight) -> SourceData:
    what = f"X is an iterable of batches ({type(X).__name__})"
    if Y is not None:
        raise ValueError(
            f"fit: {what} that yields (x, y) or (x, y, w) tuples, so Y must be None; received "
            f"Y of type {type(Y).__name__}. Pass fit(model, batches) or fit(model, batches, None)"
        )
    if s["validation_split"]:
        raise ValueError(
            f"fit: {what}: validation_split needs indexable data (fit would have to hold rows "
            "back from your loader); pass validation_data=(X_val, Y_val) instead"
        )
    if class_weight is not None or sample_weight is not None:
        raise ValueError(
            f"fit: {what}: class_weight and sample_weight need every row up front; yield "
            "(x, y, w) batches with your per-row weights instead"
        )
    return SourceData(
        sources.BatchStream(X), None, _validation(model, be, s["dtype"], validation_data)
    )


def _targets(model: Sequential, ds: Any, why: str) -> np.ndarray:
    """All targets of ``ds`` prepared like `host_xy`'s (float64, one-hot labels)."""
    targets = getattr(ds, "targets", None)
    if targets is None:
        raise ValueError(
            f"fit: {why} on a {type(ds).__name__} needs all of its targets, and it has no "
            "targets() method; add one returning Y (N,) or (N, n_out), or pass "
            "validation_data and per-row weights in the batches it returns"
        )
    return _prepared_targets(model, targets())


def _prepared_targets(model: Sequential, Y: Any) -> np.ndarray:
    """``Y`` checked and prepared as `host_xy` does (float64 (N, n_out), labels one-hot)."""
    output = model.output_activation
    return prepare_targets(
        Y, _width(model.output_shape), getattr(output, "name", None), model.loss_function.name
    )


def _validation(model: Sequential, be: Any, dtype: str, validation_data: Any) -> Any:
    if validation_data is None:
        return None
    X_val, Y_val = validation_data
    ds = sources.as_dataset(X_val, Y_val)
    if ds is not None:
        return ds
    x, y = host_xy(model, X_val, Y_val)
    check_castable(be, dtype, **{"validation_data X": x, "validation_data Y": y})
    return DeviceData(move_x(be, x, dtype, model), be.asarray(y, dtype))


def move_batch(
    model: Sequential,
    be: Any,
    dtype: str,
    batch: tuple,
    where: str,
    n_rows: int | None = None,
    checked: bool = False,
) -> tuple:
    """Host ``(x, y[, w])`` rows checked like in-memory data and moved to ``be``:
    ``(x, y, w or None, rows)``. A problem raises `DataError` prefixed with ``where``.

    ``n_rows``: the rows of the whole batch when ``batch`` is this process's share of it (a
    multi-process run, `Backend.process_rows`); the arrays then span every process's rows.
    ``checked``: these inputs passed the checks before (an earlier epoch read every row), so
    only the targets are prepared (labels made one-hot), as in-memory data is checked once."""
    x, y, w = (*batch, None)[:3]
    try:
        if checked:
            x, y = np.asarray(x), _prepared_targets(model, y)
        else:
            x, y = host_xy(model, x, y)
            check_castable(be, dtype, X=x, Y=y)
        if w is not None:
            w = _batch_weights(w, x.shape[0])
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    rows = int(x.shape[0]) if n_rows is None else n_rows
    n_dev = be.n_devices
    if n_dev > 1 and rows % n_dev:
        raise DataError(
            f"{where}: {rows} rows do not split over the backend's {n_dev} devices; "
            f"make every batch's row count a multiple of {n_dev}"
        )
    if n_rows is None:
        moved = (move_x(be, x, dtype, model), be.asarray(y, dtype))
    else:
        x_kind = "int32" if model.input_kind == "int" else dtype
        moved = (be.batch_asarray(x, x_kind, rows), be.batch_asarray(y, dtype, rows))
    wd = None if w is None else be.batch_asarray(w, dtype, rows)
    return (*moved, wd, rows)


def _batch_weights(w: Any, rows: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (rows,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError(
            f"the batch's weights must be {rows} finite numbers >= 0 (one per row), received "
            f"shape {w.shape}" + ("" if w.shape != (rows,) else " with negative or NaN values")
        )
    return w


def _forward_fn(model: Sequential, be: Any) -> Any:
    """``(params, x) -> (z, a)``, compiled and cached per model and backend."""
    xp = be.xp

    def forward(params, x):
        z, a, _ = model._forward(xp, params, x)
        return z, a

    return _compiled("forward", model, None, be, lambda: be.compile(forward))


def _chunks(n: int, chunk_rows: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + chunk_rows, n)) for i in range(0, n, chunk_rows)]


def as_source(X: Any, Y: Any) -> Any:
    """``(X, Y)`` as a `Dataset`, or a `BatchStream` for an iterable of batches (Y None)."""
    if _is_stream(X, Y):
        if Y is not None:
            raise ValueError(
                f"X is an iterable of (x, y) batches ({type(X).__name__}), so Y must be None"
            )
        return sources.BatchStream(X)
    return sources.as_dataset(X, Y)


def evaluate_source(
    model: Sequential,
    params: Any,
    data: Any,
    metric: str | None,
    threshold: float | None = None,
    weights: Any = None,
    rows: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """``{"loss": J, metric: value}`` of ``params`` on the first ``rows`` rows (default all)
    of the `Dataset` ``data`` (or `DeviceData`, or one pass of a `BatchStream`), as 0-d
    arrays of the backend: the numbers `evaluate_arrays` gives for the same rows in memory (the
    same chunks). Only the outputs (N, n_out) are kept on the device, never all the inputs.
    ``weights``: host per-row loss weights (N,) or None."""
    if isinstance(data, DeviceData):
        return evaluate_arrays(model, params, data.x, data.y, metric, threshold)
    z, a, Y = source_outputs(model, params, data, rows, chunk_rows)
    be = backends.backend_of(first_leaf(params))
    xp, dtype = be.xp, dtype_name(params)
    w = None if weights is None else be.asarray(weights[: Y.shape[0]], dtype)
    w = None if w is None else xp.reshape(w, (-1, 1))
    out = {"loss": model._loss_value(xp, params, z, a, Y, w)}
    if metric is not None:
        out[metric] = get_metric(metric)(xp, a, Y, threshold=threshold)
    return out


def source_outputs(
    model: Sequential,
    params: Any,
    data: Any,
    rows: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    forward: Any = None,
) -> tuple[Any, Any, Any]:
    """``(z, a, Y)`` on the backend: the outputs of ``forward(params, x) -> (z, a)`` (default:
    the model's compiled forward pass) on the first ``rows`` rows (default all) of the
    `Dataset` ``data`` (or one pass of a `BatchStream`), read in chunks one ahead and joined
    along the rows axis (-2: (N, n_out), or (K, N, n_out) for an ensemble's stacked
    parameters); ``Y`` (N, n_out) the prepared targets. The inputs are never all held."""
    be = backends.backend_of(first_leaf(params))
    xp, dtype = be.xp, dtype_name(params)
    forward = _forward_fn(model, be) if forward is None else forward
    zs, outs, ys = [], [], []
    if isinstance(data, sources.BatchStream):
        items, counter = data.epoch(0), iter(range(1, 1 << 62))

        def produce(batch):
            return move_batch(model, be, dtype, batch[:2], f"batch {next(counter)}")

    else:
        n = len(data) if rows is None else min(rows, len(data))
        items = _chunks(n, chunk_rows)

        def produce(idx):
            return move_batch(model, be, dtype, data.rows(idx)[:2], _where(data, idx))

    with sources.Prefetcher(produce, items, depth=1) as chunks:  # chunks are big: one ahead
        for x, y, _, _ in chunks:
            z, a = forward(params, x)
            zs.append(z), outs.append(a), ys.append(y)
    if not zs:
        raise DataError(f"{data!r} has no rows to evaluate on")
    z, a = (xp.concat(v, axis=-2) if len(v) > 1 else v[0] for v in (zs, outs))
    return z, a, (xp.concat(ys, axis=0) if len(ys) > 1 else ys[0])


def is_row_source(X: Any) -> bool:
    """A memmap or an object with ``rows`` and a length: inputs read in chunks."""
    return isinstance(X, np.memmap) or sources._is_rows(X)


def predict_source(
    model: Sequential, params: Any, X: Any, chunk_rows: int = CHUNK_ROWS, forward: Any = None
) -> Any:
    """Outputs (N, n_out) as a host NumPy array for the inputs of a row source ``X`` (a
    memmap, a `RowSource`), computed in chunks: the inputs are never all in memory.
    ``forward``: ``(params, x) -> (z, a)`` instead of the model's (an ensemble's: its
    ``a`` (K, N, n_out), joined along the rows axis -2)."""
    be = backends.backend_of(first_leaf(params))
    rows = sources._as_rows(X, "X")
    if tuple(rows.shape[1:]) != tuple(model.input_shape):
        raise DataError(
            f"X has rows of shape {tuple(rows.shape[1:])}, the model takes "
            f"{tuple(model.input_shape)}; pass inputs of that shape"
        )
    forward = _forward_fn(model, be) if forward is None else forward
    x_kind = "int32" if model.input_kind == "int" else dtype_name(params)

    def produce(idx):
        return be.asarray(rows.rows(idx), x_kind)

    out = []
    with sources.Prefetcher(produce, _chunks(len(rows), chunk_rows), depth=1) as chunks:
        for x in chunks:
            out.append(be.to_numpy(forward(params, x)[1]))
    return np.concatenate(out, axis=-2)


def _where(data: Any, idx: np.ndarray) -> str:
    span = f"{idx[0]}..{idx[-1]}" if len(idx) else "none"
    return f"rows {span} of {data!r}"
