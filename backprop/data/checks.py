"""Host-side checks of training data, done once where data enters (never in the per-step math).

Host-only module: it uses NumPy on the CPU before anything is moved to a backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "as_column",
    "check_training_data",
    "class_labels",
    "host_array",
    "one_hot",
    "output_size",
    "prepare_targets",
    "prepare_xy",
]

_ROW_SUM_TOL = 1e-6  # how far a cross-entropy target row may sum from 1


class DataError(ValueError):
    """Training data that cannot be used: wrong shape, not numeric, NaN or inf, bad labels."""


def _as_float_matrix(name: str, arr: Any, width: int | None) -> np.ndarray:
    host = host_array(name, arr)
    if host.dtype.kind not in "fiub":
        raise DataError(
            f"{name} must be numeric (float, int or bool), received dtype {host.dtype}; "
            "convert strings or objects to numbers first"
        )
    if host.ndim == 1 and name == "Y":
        host = host[:, None]
    if host.ndim != 2:
        raise DataError(f"{name} must be 2-D (N, features), received shape {host.shape}")
    if width is not None and host.shape[1] != width:
        raise DataError(
            f"{name} has {host.shape[1]} columns but the model expects {width}; "
            "check the model's sizes or the data"
        )
    if host.shape[0] == 0:
        raise DataError(f"{name} has no rows")
    bad = ~np.isfinite(host) if host.dtype.kind == "f" else np.zeros(host.shape, bool)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s), first in row {rows[0]} "
            f"({len(rows)} row(s) affected); clean or impute them before training"
        )
    return host


def host_array(name: str, arr: Any) -> np.ndarray:
    """``np.asarray(arr)``, with a `DataError` for what it cannot take or turns into objects.

    - SciPy sparse matrices are refused (NumPy would make a 0-d object array of them): pass
      ``arr.toarray()``.
    - pandas objects with missing values (NaN, or ``pd.NA`` in the nullable ``Int64``,
      ``Float64``, ``boolean`` dtypes) are reported as missing values with their column; numeric
      nullable columns without any become float64.
    - Ragged lists and other unreadable objects: the error NumPy gave.
    """
    module = type(arr).__module__ or ""
    if module.startswith("scipy.sparse"):
        shape = tuple(getattr(arr, "shape", ()))
        raise DataError(
            f"{name} is a SciPy sparse matrix ({type(arr).__name__}, shape {shape}); backprop "
            f"trains on dense arrays: pass {name}.toarray() (dense float64: "
            f"{math.prod(shape) * 8 / 1e6:.3g} MB)"
        )
    if module.startswith("pandas") and hasattr(arr, "isna"):
        return _pandas_array(name, arr)
    try:
        return np.asarray(arr)
    except Exception as exc:  # ragged lists and odd objects fail in many ways
        raise DataError(f"{name} could not be read as an array: {exc}") from None


def _pandas_array(name: str, frame: Any) -> np.ndarray:
    """A pandas DataFrame or Series as NumPy; missing values named with their column."""
    missing = np.asarray(frame.isna(), dtype=bool)
    if missing.any():
        table = missing.reshape(len(missing), -1)
        labels = list(frame.columns) if hasattr(frame, "columns") else [frame.name]
        cols = [str(labels[j]) for j in np.flatnonzero(table.any(axis=0))]
        row = int(np.flatnonzero(table.any(axis=1))[0])
        raise DataError(
            f"{name} has {int(missing.sum())} missing value(s) (NaN or pd.NA) in column(s) "
            f"{cols}, first in row {row}; fill or drop them first (e.g. .dropna() or "
            ".fillna(value))"
        )
    host = np.asarray(frame)
    if host.dtype == object:  # nullable Int64/Float64/boolean columns: numbers as objects
        try:
            return np.asarray(frame.to_numpy(dtype=np.float64))
        except (TypeError, ValueError):
            dtypes = dict(frame.dtypes) if hasattr(frame, "columns") else {frame.name: frame.dtype}
            text = [str(c) for c, d in dtypes.items() if getattr(d, "kind", "O") not in "biuf"]
            raise DataError(
                f"{name} must be numeric, but column(s) {text} hold text or objects; convert "
                "them to numbers first (e.g. one-hot with pandas.get_dummies) or drop them"
            ) from None
    return host


def check_training_data(
    X: Any, Y: Any, n_in: int | None = None, n_out: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate host training data once; return ``(X, Y)`` as 2-D NumPy arrays (not copied when
    already suitable). A 1-D ``Y`` becomes one column.

    Raises `DataError` naming the problem: not numeric, wrong number of dimensions or columns,
    different row counts, NaN or inf.
    """
    x = _as_float_matrix("X", X, n_in)
    y = _as_float_matrix("Y", Y, n_out)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"X has {x.shape[0]} rows but Y has {y.shape[0]}; they must match")
    return x, y


def one_hot(labels: Any, n_classes: int | None = None) -> np.ndarray:
    """Integer class labels (N,) -> one-hot float64 targets (N, n_classes)."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(
            f"labels must be a 1-D integer array, received dtype {y.dtype} and shape {y.shape}"
        )
    k = int(y.max()) + 1 if n_classes is None else n_classes
    if y.size and (y.min() < 0 or y.max() >= k):
        raise DataError(f"labels must lie in [0, {k}), received range [{y.min()}, {y.max()}]")
    out = np.zeros((y.shape[0], k))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def prepare_targets(Y: Any, n_out: int, output: Any, loss: Any) -> np.ndarray:
    """Targets as the user gave them -> float64 (N, n_out) targets for the model.

    - 1-D *integer* labels (N,) with a softmax output of ``n_out > 1`` units become one-hot rows
      (labels outside ``[0, n_out)`` raise `DataError`). Floats are never taken as labels.
    - Anything else: a 1-D ``Y`` becomes one column; then it must be numeric, finite, (N, n_out).
    - ``cross_entropy`` and ``binary_cross_entropy`` need every target in [0, 1];
      ``cross_entropy`` also needs each row to sum to 1 (within 1e-6).

    ``output`` and ``loss`` are names (a registered object with a ``name`` is accepted too).
    """
    output, loss = getattr(output, "name", output), getattr(loss, "name", loss)
    if output == "softmax" and n_out == 1:
        raise DataError(
            "the model's softmax output has 1 unit: a softmax over one unit always outputs 1.0 "
            "and cannot learn; for 0/1 labels use output='sigmoid' with "
            "loss='binary_cross_entropy', or give the softmax one unit per class (2 for yes/no) "
            "and pass integer class labels"
        )
    host = host_array("Y", Y)
    softmax_labels = output == "softmax" and n_out > 1 and host.ndim == 1
    if softmax_labels and host.dtype.kind in "iu":
        return _labels_to_one_hot(host, n_out)
    if softmax_labels and host.dtype.kind == "f":
        raise DataError(
            f"Y is 1-D with dtype {host.dtype}, but the softmax output has {n_out} units: "
            f"expected integer class labels (N,) in [0, {n_out}) or (N, {n_out}) one-hot rows; "
            "if the values are class indices, convert them with Y.astype(int)"
        )
    y = np.asarray(_as_float_matrix("Y", host, n_out), dtype=np.float64)
    if loss in ("cross_entropy", "binary_cross_entropy"):
        _check_probabilities(y, loss)
    return y


def prepare_xy(
    X: Any,
    Y: Any,
    n_in: int | tuple[int, ...],
    n_out: int,
    output: Any,
    loss: Any,
    input_kind: str = "float",
    vocab_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`prepare_targets` then `check_training_data`: host ``(X, Y)`` ready to move to a backend.

    ``n_in``: the number of features, or one example's input shape (``(length, channels)``).
    ``input_kind="int"``: X holds token ids, integers in [-1, vocab_size) (-1 pads).
    """
    y = prepare_targets(Y, n_out, output, loss)
    shape = (n_in,) if isinstance(n_in, int) else tuple(n_in)
    if len(shape) == 1 and input_kind == "float":
        return check_training_data(X, y, shape[0], n_out)
    x = _check_inputs(X, shape, input_kind, vocab_size)
    _, y = check_training_data(np.zeros((len(y), 1)), y, None, n_out)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"X has {x.shape[0]} rows but Y has {y.shape[0]}; they must match")
    return x, y


def _check_inputs(X: Any, shape: tuple[int, ...], kind: str, vocab_size: int | None) -> np.ndarray:
    """Inputs of any per-example ``shape``: numeric, finite; token ids: integers in
    [-1, vocab_size)."""
    x = host_array("X", X)
    want = "(N, " + ", ".join(str(d) for d in shape) + ")"
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
        raise DataError(
            f"X must have shape {want} for this model's input_shape {shape}, received {x.shape}"
        )
    if x.shape[0] == 0:
        raise DataError("X has no rows")
    if kind == "int":
        if x.dtype.kind not in "iu":
            raise DataError(
                f"X must hold integer token ids {want} (-1 for padding), received dtype "
                f"{x.dtype}; map tokens to ids first (e.g. backprop.datasets.token_ids)"
            )
        low = -1
        high = vocab_size if vocab_size is not None else np.iinfo(np.int32).max
        bad = (x < low) | (x >= high)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
            raise DataError(
                f"X holds token ids outside [-1, {high}) (vocab_size {high}; -1 pads), "
                f"{int(bad.sum())} value(s), first in row {row}; check the vocabulary or the "
                "layer's vocab_size"
            )
        return x
    if x.dtype.kind not in "fiub":
        raise DataError(
            f"X must be numeric (float, int or bool), received dtype {x.dtype}; "
            "convert strings or objects to numbers first"
        )
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
            raise DataError(
                f"X contains {int(bad.sum())} NaN or infinite value(s), first in row {rows[0]} "
                f"({len(rows)} row(s) affected); clean or impute them before training"
            )
    return x


def _labels_to_one_hot(labels: np.ndarray, n_out: int) -> np.ndarray:
    bad = (labels < 0) | (labels >= n_out)
    if bad.any():
        values = np.unique(labels[bad])
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if values.size > 10 else "")
        raise DataError(
            f"Y holds class labels outside the allowed range [0, {n_out}) of the {n_out}-unit "
            f"softmax output: {shown} (first in row {int(np.flatnonzero(bad)[0])}); "
            "relabel the classes as 0..n_out-1 or give the model more output units"
        )
    return one_hot(labels, n_out)


def _check_probabilities(y: np.ndarray, loss: str) -> None:
    lo, hi = float(y.min()), float(y.max())
    if lo < 0.0 or hi > 1.0:
        hint = (
            "pass integer class labels or one-hot rows"
            if loss == "cross_entropy"
            else "pass 0/1 labels, or use loss='mse' for regression targets"
        )
        raise DataError(
            f"targets for {loss} must lie in [0, 1] (probabilities or 0/1 labels), "
            f"received values in [{lo:g}, {hi:g}]; {hint}"
        )
    if loss == "cross_entropy":
        bad, sums = _rows_not_summing_to_one(y)
        if bad.size:
            raise DataError(
                f"targets for cross_entropy must be rows that sum to 1 (one-hot rows or class "
                f"probabilities); row {bad[0]} sums to {sums[bad[0]]:.6g} ({bad.size} row(s) "
                "affected); pass integer labels (N,) or one-hot rows, or use "
                "binary_cross_entropy with a sigmoid output for multi-label targets"
            )


def _rows_not_summing_to_one(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of rows whose sum is not 1 (within ``_ROW_SUM_TOL``), and every row's sum."""
    sums = y.sum(axis=1)
    return np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOL), sums


def class_labels(Y: np.ndarray) -> np.ndarray:
    """Prepared targets (N, K) -> int64 class labels (N,).

    ``argmax`` of each row for K > 1 (one-hot or probability rows); ``y > 0.5`` for K == 1.
    """
    y = _targets_matrix("class_labels", Y)
    if y.shape[1] == 1:
        return (y[:, 0] > 0.5).astype(np.int64)
    return np.argmax(y, axis=1).astype(np.int64)


def _targets_matrix(where: str, Y: Any) -> np.ndarray:
    y = np.asarray(Y)
    if y.ndim != 2 or y.shape[0] == 0 or y.dtype.kind not in "fiub":
        raise DataError(
            f"{where} expects prepared numeric targets of shape (N, K) with N > 0, received "
            f"dtype {y.dtype} and shape {y.shape}; convert them with prepare_targets first"
        )
    return y


def _one_label_per_row(where: str, y: np.ndarray, hint: str) -> np.ndarray:
    """class_labels(y), after checking that each row holds a single class (not multi-label)."""
    if y.shape[1] > 1:
        bad, sums = _rows_not_summing_to_one(y)
        if bad.size:
            raise DataError(
                f"{where} is defined for one class label per row (one-hot or probability rows, "
                f"or one 0/1 column), but row {bad[0]} of Y sums to {sums[bad[0]]:.6g}: these "
                f"look like multi-label targets; {hint}"
            )
    return class_labels(y)


def _spec_name(spec: Any) -> Any:
    """An activation or loss name from a name, a ``{"name": ...}`` table or an instance."""
    return spec.get("name") if isinstance(spec, dict) else getattr(spec, "name", spec)


def output_size(Y: Any, output: Any) -> int:
    """Output units the targets need: their columns, or the classes of integer labels (at least
    2 for a softmax output). A config's targets pass `backprop.data.labels.encode_targets`
    first, so its labels are 0..K-1 here."""
    output = _spec_name(output)
    Y = np.asarray(Y)
    if Y.ndim == 2:
        return int(Y.shape[1])
    if output == "softmax" and Y.dtype.kind in "iu":
        return max(2, int(Y.max()) + 1)
    return 1


def as_column(y: np.ndarray) -> np.ndarray:
    """Targets as a float64 (N, k) matrix: a 1-D ``y`` becomes one column."""
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(-1, 1) if y.ndim == 1 else y
