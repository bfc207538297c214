"""Host-side checks of training data, done once where data enters (never in the per-step math).

Host-only module: it uses NumPy on the CPU before anything is moved to a backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DataError", "check_training_data", "one_hot"]


class DataError(ValueError):
    """Training data that cannot be used: wrong shape, not numeric, NaN or inf, bad labels."""


def _as_float_matrix(name: str, arr: Any, width: int | None) -> np.ndarray:
    try:
        host = np.asarray(arr)
    except Exception as exc:  # ragged lists and odd objects fail in many ways
        raise DataError(f"{name} could not be read as an array: {exc}") from None
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
