"""Sample weights and the validation split, on the host. Host-only module (NumPy).

`compute_sample_weight` turns ``class_weight`` and ``sample_weight`` into per-row weights;
`validation_split` picks the held-out rows (stratified by class when asked), from a seed, so
every backend holds out the same rows.
"""

from __future__ import annotations

from math import ceil
from typing import Any

import numpy as np

from .checks import DataError, _one_label_per_row, _targets_matrix

__all__ = ["compute_sample_weight", "validation_split"]


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
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):  # huge (finite) weights overflow the sum: scale first, same ratios
        w = w / w.max()
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
