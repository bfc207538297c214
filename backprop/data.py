"""Host-side checks of training data, done once where data enters (never in the per-step math).

Host-only module: it uses NumPy on the CPU before anything is moved to a backend.
"""

from __future__ import annotations

from math import ceil
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "as_column",
    "check_training_data",
    "class_labels",
    "compute_sample_weight",
    "one_hot",
    "output_size",
    "prepare_targets",
    "prepare_xy",
    "validation_split",
]

_ROW_SUM_TOL = 1e-6  # how far a cross-entropy target row may sum from 1


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
    try:
        host = np.asarray(Y)
    except Exception as exc:  # ragged lists and odd objects fail in many ways
        raise DataError(f"Y could not be read as an array: {exc}") from None
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
    try:
        x = np.asarray(X)
    except Exception as exc:  # ragged lists and odd objects fail in many ways
        raise DataError(f"X could not be read as an array: {exc}") from None
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


def compute_sample_weight(
    Y: np.ndarray, class_weight: Any = None, sample_weight: Any = None
) -> np.ndarray | None:
    """Per-row training weights (N,) float64 from ``class_weight`` and ``sample_weight``.

    ``w[n] = sample_weight[n] * class_weight[c_n]`` with ``c_n = class_labels(Y)[n]``, then
    ``w / mean(w)``: weights that average 1 keep the loss (and so the learning rate) on the scale
    of an unweighted run. Returns None when both are None (no weighting at all).

    - ``class_weight``: a dict ``{class_index: weight}`` (classes not named weigh 1.0; indices
      must lie in [0, K), K = 2 for one 0/1 column), or ``"balanced"``: scikit-learn's
      ``n_samples / (n_classes * count[c])`` over the classes present in Y, where with
      ``sample_weight`` the counts and n_samples are weight sums (as scikit-learn's
      ``compute_class_weight(..., sample_weight=...)``). Needs one label per row, not multi-label.
    - ``sample_weight``: shape (N,), finite, >= 0, not all zero.
    """
    if class_weight is None and sample_weight is None:
        return None
    y = _targets_matrix("compute_sample_weight", Y)
    w = np.ones(y.shape[0]) if sample_weight is None else _check_sample_weight(sample_weight, y)
    if class_weight is not None:
        hint = "weight the rows with sample_weight instead"
        labels = _one_label_per_row("class_weight", y, hint)
        n_classes = max(y.shape[1], 2)
        w = w * _class_weights(class_weight, labels, n_classes, w)[labels]
    total = w.sum()
    if total == 0:
        raise DataError(
            "every row has weight 0 after applying class_weight to sample_weight; give at least "
            "one class present in Y a positive weight"
        )
    return w / (total / w.shape[0])


def _check_sample_weight(sample_weight: Any, y: np.ndarray) -> np.ndarray:
    sw = np.asarray(sample_weight)
    if sw.shape != (y.shape[0],) or sw.dtype.kind not in "fiub":
        raise DataError(
            f"sample_weight must be a numeric array of shape ({y.shape[0]},), one weight per row "
            f"of Y, received dtype {sw.dtype} and shape {sw.shape}"
        )
    sw = sw.astype(np.float64)
    for bad, what in ((~np.isfinite(sw), "NaN or infinite"), (sw < 0, "negative")):
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"sample_weight must be finite and >= 0, received {int(bad.sum())} {what} "
                f"value(s), first at index {first} ({sw[first]}); fix or drop those rows"
            )
    if not sw.any():
        raise DataError("sample_weight is 0 for every row; at least one weight must be positive")
    return sw


def _class_weights(
    class_weight: Any, labels: np.ndarray, n_classes: int, w: np.ndarray
) -> np.ndarray:
    """Weight of each class index 0..n_classes-1."""
    if isinstance(class_weight, str) and class_weight == "balanced":
        n_present = np.count_nonzero(np.bincount(labels, minlength=n_classes))
        counts = np.bincount(labels, weights=w, minlength=n_classes)
        per_class = np.ones(n_classes)  # classes absent (or of total weight 0) weigh no row
        nonzero = counts > 0
        per_class[nonzero] = counts.sum() / (n_present * counts[nonzero])
        return per_class
    if not isinstance(class_weight, dict):
        raise DataError(
            "class_weight must be None, 'balanced' or a dict {class_index: weight}, "
            f"received {class_weight!r}"
        )
    per_class = np.ones(n_classes)
    for key, value in class_weight.items():
        if (
            not isinstance(key, int | np.integer)
            or isinstance(key, bool)
            or not (0 <= key < n_classes)
        ):
            raise DataError(
                f"class_weight has key {key!r}, but classes are the integers 0..{n_classes - 1} "
                f"(the target columns; 2 classes for one 0/1 column); use those indices as keys"
            )
        if not isinstance(value, int | float | np.integer | np.floating) or not (
            np.isfinite(value) and value >= 0
        ):
            raise DataError(f"class_weight[{key}] must be a finite number >= 0, received {value!r}")
        per_class[key] = float(value)
    return per_class


def validation_split(
    Y: np.ndarray, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out rows for validation; returns ``(train_idx, val_idx)``, sorted int64 arrays.

    The two are disjoint and together cover ``range(N)``. ``n_val = ceil(fraction * N)``, the rule
    of scikit-learn's ``train_test_split(test_size=fraction)``. Rows are drawn with
    ``numpy.random.default_rng(seed)``: the same seed gives the same split.

    ``stratify=True`` (classification targets, one label per row) keeps each class's share:
    class c with ``n_c`` rows gets ``floor(n_val * n_c / N)`` validation rows, and the remaining
    rows go one each to the classes with the largest remainders (ties broken at random), so the
    total is exactly ``n_val`` and every class is within 1 row of its exact share. A class never
    gives all its rows to validation (at least one stays in training); only when that forces it
    (tiny classes, large fractions) does another class take more than its rounded-up share.

    ``n_val >= 1`` for every fraction > 0, so validation is never empty. Raises ``ValueError``
    for a fraction outside (0, 1); `DataError` when no training rows would be left, and with
    ``stratify`` when a class has fewer than 2 rows or the training side is smaller than the
    number of classes.
    """
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float | np.floating)
        or not (0.0 < fraction < 1.0)
    ):
        raise ValueError(f"validation_fraction must be a number in (0, 1), received {fraction!r}")
    y = _targets_matrix("validation_split", Y)
    n = y.shape[0]
    n_val = ceil(fraction * n)  # >= 1 for any fraction > 0: validation is never empty
    if n_val == n:
        raise DataError(
            f"validation_fraction={fraction} of {n} samples leaves no training rows ({n_val} "
            "for validation); use a smaller fraction or pass validation_data"
        )
    rng = np.random.default_rng(seed)
    if not stratify:
        perm = rng.permutation(n)
        return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
    labels = _one_label_per_row("stratified validation_split", y, "pass stratify=False")
    counts = np.bincount(labels)
    small = np.flatnonzero((counts > 0) & (counts < 2))
    if small.size:
        raise DataError(
            f"class {small[0]} has only 1 sample, too few to stratify the validation split "
            "(each class needs at least 2: one for training, one for validation); "
            "pass stratify=False or validation_data"
        )
    per_class = _allocate(counts, n_val, fraction, rng)
    val = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in enumerate(per_class)]
    )
    train_mask = np.ones(n, dtype=bool)
    train_mask[val] = False
    return np.flatnonzero(train_mask).astype(np.int64), np.sort(val).astype(np.int64)


def _allocate(
    counts: np.ndarray, n_val: int, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Validation rows per class: largest remainder of ``n_val * counts / N``, at most
    ``counts - 1`` per (present) class, summing to exactly ``n_val``."""
    n, n_present = int(counts.sum()), int(np.count_nonzero(counts))
    if n_val > n - n_present:
        raise DataError(
            f"validation_fraction={fraction} of {n} samples leaves {n - n_val} training rows for "
            f"{n_present} classes, but a stratified split keeps at least one row of every class "
            "in training; use a smaller fraction or pass stratify=False"
        )
    exact = n_val * counts / n
    alloc = np.floor(exact).astype(np.int64)
    capacity = np.maximum(counts - 1 - alloc, 0)
    # random order first, then a stable sort by remainder: equal remainders are broken at random
    order = rng.permutation(counts.size)
    order = order[np.argsort(-(exact - alloc)[order], kind="stable")]
    left = n_val - int(alloc.sum())
    while left > 0:  # one pass suffices unless capacity caps force a second round
        for c in order:
            if left and capacity[c] > 0:
                alloc[c] += 1
                capacity[c] -= 1
                left -= 1
    return alloc


def output_size(Y: Any, output: str) -> int:
    """Output units the targets need: their columns, or the classes of integer labels."""
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
