"""Host-side target preparation, class weights and validation splits (NumPy only)."""

from __future__ import annotations

from math import ceil

import numpy as np
import pytest

from backprop.data import (
    DataError,
    class_labels,
    compute_sample_weight,
    one_hot,
    prepare_targets,
    validation_split,
)

class_weight_mod = pytest.importorskip(
    "sklearn.utils.class_weight", reason="sklearn oracles need scikit-learn ('.[sklearn]')"
)
model_selection = pytest.importorskip("sklearn.model_selection")


def _labels(counts, seed=0):
    """Shuffled int labels with ``counts[c]`` rows of class c."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


# -- prepare_targets -------------------------------------------------------------------------


def test_integer_labels_become_one_hot_for_softmax():
    labels = np.array([2, 0, 1, 2])
    y = prepare_targets(labels, 3, "softmax", "cross_entropy")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, one_hot(labels, 3))


@pytest.mark.parametrize(
    ("Y", "n_out", "output", "loss", "expected"),
    [
        (np.array([0, 1, 1]), 1, "sigmoid", "binary_cross_entropy", [[0.0], [1.0], [1.0]]),
        (np.array([0.5, -2.0]), 1, "identity", "mse", [[0.5], [-2.0]]),
        ([[0.2, 0.8], [1.0, 0.0]], 2, "softmax", "cross_entropy", [[0.2, 0.8], [1.0, 0.0]]),
        ([[1, 1], [0, 1]], 2, "sigmoid", "binary_cross_entropy", [[1.0, 1.0], [0.0, 1.0]]),
        (np.array([[3], [4]], np.float32), 1, "identity", "mse", [[3.0], [4.0]]),
    ],
    ids=["int-labels-sigmoid", "1d-regression", "probability-rows", "multilabel", "float32"],
)
def test_prepare_targets_keeps_columns(Y, n_out, output, loss, expected):
    y = prepare_targets(Y, n_out, output, loss)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(
    ("Y", "n_out", "output", "loss", "match"),
    [
        (
            np.array([0, 3, -1, 3]),
            3,
            "softmax",
            "cross_entropy",
            r"outside the allowed range \[0, 3\) .*: -1, 3 \(first in row 1\)",
        ),
        (np.array([0.0, 1.0]), 2, "softmax", "cross_entropy", r"integer class labels.*astype"),
        ([[0.0, 1.0, 0.0]], 2, "softmax", "cross_entropy", "3 columns but the model expects 2"),
        (
            np.array([0.0, 2.0, -0.5]),
            1,
            "sigmoid",
            "binary_cross_entropy",
            r"binary_cross_entropy must lie in \[0, 1\] \(probabilities or 0/1 labels\), "
            r"received values in \[-0.5, 2\]",
        ),
        ([[1.0, 0.0], [0.5, 0.0]], 2, "softmax", "cross_entropy", "row 1 sums to 0.5 "),
        ([[2.0, -1.0]], 2, "softmax", "cross_entropy", r"received values in \[-1, 2\]"),
        ([[np.nan]], 1, "identity", "mse", "NaN or infinite"),
        (["a", "b"], 1, "identity", "mse", "must be numeric"),
    ],
    ids=[
        "labels-out-of-range",
        "1d-floats-softmax",
        "columns",
        "bce-range",
        "ce-row-sum",
        "ce-range",
        "nan",
        "strings",
    ],
)
def test_prepare_targets_errors(Y, n_out, output, loss, match):
    with pytest.raises(DataError, match=match):
        prepare_targets(Y, n_out, output, loss)


def test_prepare_targets_accepts_registered_objects():
    import backprop as bp

    y = prepare_targets(
        np.array([1, 0]), 2, bp.get_activation("softmax"), bp.get_loss("cross_entropy")
    )
    np.testing.assert_array_equal(y, [[0.0, 1.0], [1.0, 0.0]])


# -- class_labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("Y", "expected"),
    [
        ([[0.1, 0.7, 0.2], [1.0, 0.0, 0.0]], [1, 0]),
        ([[0.2], [0.9], [0.5]], [0, 1, 0]),
    ],
    ids=["argmax", "one-column"],
)
def test_class_labels(Y, expected):
    labels = class_labels(np.asarray(Y))
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, expected)


def test_class_labels_needs_a_matrix():
    with pytest.raises(DataError, match=r"shape \(N, K\).*received dtype int64 and shape \(3,\)"):
        class_labels(np.array([0, 1, 2]))


# -- compute_sample_weight -------------------------------------------------------------------

BALANCED_CASES = {
    "3-classes": (one_hot(_labels([30, 6, 12]), 3), [30, 6, 12]),
    "absent-class": (one_hot(_labels([5, 0, 20, 9]), 4), [5, 0, 20, 9]),
    "one-column": (_labels([25, 7])[:, None].astype(float), [25, 7]),
}


@pytest.mark.parametrize("case", BALANCED_CASES)
@pytest.mark.parametrize("with_sample_weight", [False, True])
def test_balanced_matches_sklearn(case, with_sample_weight):
    Y, _ = BALANCED_CASES[case]
    labels = class_labels(Y)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, Y.shape[0]) if with_sample_weight else None
    cw = class_weight_mod.compute_class_weight(
        "balanced", classes=np.unique(labels), y=labels, sample_weight=sw
    )
    expected = cw[np.searchsorted(np.unique(labels), labels)] * (1.0 if sw is None else sw)
    w = compute_sample_weight(Y, "balanced", sw)
    np.testing.assert_allclose(w, expected / expected.mean(), rtol=1e-13)


def test_balanced_without_sample_weight_is_sklearn_exactly():
    """Unweighted balanced weights already average 1, so rescaling leaves sklearn's values."""
    labels = _labels([40, 10])
    w = compute_sample_weight(one_hot(labels, 2), "balanced")
    cw = class_weight_mod.compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    np.testing.assert_allclose(w, cw[labels], rtol=1e-14)


def test_dict_class_weight_leaves_missing_classes_at_one():
    labels = _labels([4, 4, 4])
    w = compute_sample_weight(one_hot(labels, 3), {0: 4.0, np.int64(2): 0.0})
    raw = np.array([4.0, 1.0, 0.0])[labels]
    np.testing.assert_allclose(w, raw / raw.mean(), rtol=1e-15)


WEIGHT_CASES = {
    "balanced": ("balanced", None),
    "dict": ({1: 3.0}, None),
    "sample": (None, np.linspace(0.0, 5.0, 48)),
    "both": ({0: 0.5, 2: 2.0}, np.linspace(1.0, 2.0, 48)),
}


@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_weights_average_one(case):
    class_weight, sample_weight = WEIGHT_CASES[case]
    w = compute_sample_weight(one_hot(_labels([30, 6, 12]), 3), class_weight, sample_weight)
    assert w.dtype == np.float64 and w.shape == (48,)
    assert w.mean() == pytest.approx(1.0, rel=1e-15)


def test_sample_weight_alone_is_rescaled():
    sw = np.array([1.0, 2.0, 3.0, 0.0])
    w = compute_sample_weight(np.zeros((4, 1)), sample_weight=sw)
    np.testing.assert_allclose(w, sw / 1.5, rtol=1e-15)


def test_no_weights_gives_none():
    assert compute_sample_weight(np.zeros((3, 2))) is None


Y3 = one_hot(_labels([3, 3, 3]), 3)


@pytest.mark.parametrize(
    ("Y", "class_weight", "sample_weight", "match"),
    [
        (Y3, {3: 2.0}, None, r"key 3, but classes are the integers 0..2"),
        (np.zeros((4, 1)), {2: 1.0}, None, r"key 2, but classes are the integers 0..1"),
        (Y3, {"a": 2.0}, None, r"key 'a', but classes are the integers"),
        (Y3, {0: -1.0}, None, r"class_weight\[0\] must be a finite number >= 0, received -1.0"),
        (Y3, "balance", None, r"class_weight must be None, 'balanced' or a dict .* 'balance'"),
        (np.eye(3)[[0, 1]] + np.eye(3)[[2, 2]], "balanced", None, "row 0 of Y sums to 2"),
        (Y3, None, np.ones(8), r"shape \(9,\).*received dtype float64 and shape \(8,\)"),
        (Y3, None, np.ones((9, 1)), r"shape \(9,\).*shape \(9, 1\)"),
        (
            Y3,
            None,
            np.r_[1.0, np.nan, np.ones(7)],
            r"1 NaN or infinite value\(s\), first at index 1",
        ),
        (Y3, None, np.r_[np.ones(4), -2.0, np.ones(4)], r"negative value\(s\), first at index 4"),
        (Y3, None, np.zeros(9), "sample_weight is 0 for every row"),
        (Y3, {0: 0.0}, (class_labels(Y3) == 0).astype(float), "every row has weight 0"),
    ],
    ids=[
        "key-out-of-range",
        "key-one-column",
        "key-not-int",
        "negative-class-weight",
        "bad-class-weight",
        "multilabel",
        "sw-length",
        "sw-2d",
        "sw-nan",
        "sw-negative",
        "sw-all-zero",
        "all-zero-after-class-weight",
    ],
)
def test_sample_weight_errors(Y, class_weight, sample_weight, match):
    with pytest.raises(DataError, match=match):
        compute_sample_weight(Y, class_weight, sample_weight)


# -- validation_split ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [7, 10, 50, 101])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 1 / 3, 0.7])
def test_validation_size_follows_train_test_split(n, fraction):
    _, val = validation_split(np.zeros((n, 1)), fraction, seed=0, stratify=False)
    _, sk_val = model_selection.train_test_split(np.arange(n), test_size=fraction)
    assert len(val) == len(sk_val) == ceil(fraction * n)


def _check_partition(train, val, n):
    for idx in (train, val):
        assert idx.dtype == np.int64
        assert np.all(np.diff(idx) > 0)  # sorted, no duplicates
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))


STRAT_COUNTS = {"balanced": [20, 20, 20], "skewed": [70, 9, 2, 19], "binary": [13, 4]}


@pytest.mark.parametrize("stratify", [False, True])
def test_split_is_a_partition_and_reproducible(stratify):
    Y = one_hot(_labels(STRAT_COUNTS["skewed"]), 4)
    first = validation_split(Y, 0.2, seed=7, stratify=stratify)
    _check_partition(*first, 100)
    assert len(first[1]) == 20
    again = validation_split(Y, 0.2, seed=7, stratify=stratify)
    other = validation_split(Y, 0.2, seed=8, stratify=stratify)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


STRAT_CASES = [(counts, False) for counts in STRAT_COUNTS.values()] + [([13, 4], True)]


@pytest.mark.parametrize(
    ("counts", "one_column"), STRAT_CASES, ids=[*STRAT_COUNTS, "binary-one-column"]
)
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.8])
def test_stratified_keeps_class_proportions(counts, one_column, fraction):
    labels = _labels(counts, seed=3)
    Y = labels[:, None].astype(float) if one_column else one_hot(labels, len(counts))
    n = len(labels)
    train, val = validation_split(Y, fraction, seed=0, stratify=True)
    _check_partition(train, val, n)
    n_val = ceil(fraction * n)
    assert len(val) == n_val
    per_class = np.bincount(labels[val], minlength=len(counts))
    _assert_largest_remainder(per_class, np.asarray(counts), n_val)
    assert np.all(np.bincount(labels[train], minlength=len(counts)) >= 1)


def _assert_largest_remainder(per_class, counts, n_val):
    """The documented allocation, checked exactly: class c gets floor(n_val * n_c / N) rows, plus
    one for the classes with the largest remainders that can still spare a row (at least one
    stays in training); equal remainders may go either way (ties are broken at random)."""
    exact = n_val * counts / counts.sum()
    base = np.floor(exact).astype(int)
    extra = per_class - base
    assert per_class.sum() == n_val, (per_class, n_val)
    assert set(extra.tolist()) <= {0, 1}, (per_class, exact)
    can_spare = counts - 1 - base > 0
    assert not np.any(extra[~can_spare]), (per_class, exact)
    remainder = exact - base
    given, passed_over = remainder[extra == 1], remainder[(extra == 0) & can_spare]
    if given.size and passed_over.size:  # every class given a row outranks every one passed over
        assert given.min() >= passed_over.max(), (per_class, exact)


def test_stratified_keeps_one_row_per_class_in_training_when_it_must():
    """Five 2-row classes cannot give their rounded-up 1.8 rows; the big class takes them."""
    labels = _labels([2, 2, 2, 2, 2, 100])
    train, val = validation_split(one_hot(labels, 6), 0.9, seed=0, stratify=True)
    _check_partition(train, val, 110)
    assert len(val) == ceil(0.9 * 110)
    np.testing.assert_array_equal(np.bincount(labels[train], minlength=6)[:5], 1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_fraction_outside_unit_interval_is_a_value_error(fraction):
    with pytest.raises(ValueError, match=r"validation_fraction must be a number in \(0, 1\)"):
        validation_split(np.zeros((10, 1)), fraction, seed=0, stratify=False)


@pytest.mark.parametrize(
    ("Y", "fraction", "stratify", "match"),
    [
        (
            np.zeros((50, 1)),
            0.99,
            False,
            r"validation_fraction=0.99 of 50 samples leaves no training rows \(50 for validation\);"
            r" use a smaller fraction or pass validation_data",
        ),
        (one_hot(_labels([10, 1, 10]), 3), 0.2, True, "class 1 has only 1 sample"),
        (
            one_hot(_labels([2, 2, 2]), 3),
            0.6,
            True,
            r"leaves 2 training rows for 3 classes",
        ),
        (np.array([[1.0, 1.0], [0.0, 1.0]] * 5), 0.2, True, r"multi-label.*stratify=False"),
        (np.zeros(10), 0.2, False, r"shape \(N, K\)"),
    ],
    ids=[
        "no-training-rows",
        "singleton-class",
        "fewer-train-rows-than-classes",
        "multilabel",
        "1d",
    ],
)
def test_validation_split_errors(Y, fraction, stratify, match):
    with pytest.raises(DataError, match=match):
        validation_split(Y, fraction, seed=0, stratify=stratify)
