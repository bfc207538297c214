"""Every metric against scikit-learn on every backend and dtype; results stay on the device."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, eps

from backprop._registry import UnknownNameError
from backprop.data import one_hot
from backprop.training.metrics import METRICS, get_metric

sklearn_metrics = pytest.importorskip(
    "sklearn.metrics", reason="metric oracles need scikit-learn (pip install '.[sklearn]')"
)

N = 60


def _softmax_case(rng):
    return rng.uniform(size=(N, 4)), one_hot(rng.integers(0, 4, N), 4)


def _multilabel_case(rng):
    return rng.uniform(size=(N, 3)), rng.integers(0, 2, (N, 3)).astype(float)


def _binary_case(rng):
    return rng.uniform(size=(N, 1)), rng.integers(0, 2, (N, 1)).astype(float)


def _on(backend, dtype, *hosts):
    """Device copies, and the host values as the device holds them (float32-rounded or not)."""
    device = [backend.asarray(h, dtype) for h in hosts]
    return device, [np.asarray(h, dtype).astype(np.float64) for h in hosts]


def _check_result(backend, dtype, result, expected, *, rtol):
    """A 0-d array of the backend in ``dtype`` (not a Python float), close to ``expected``."""
    assert result.ndim == 0
    assert result.dtype == backend.dtype(dtype)
    assert_close(backend, result, expected, rtol=rtol, atol=rtol)


# the mean of N zeros and ones: a sum of exact integers and one division
@pytest.mark.parametrize(
    ("make", "threshold"),
    [(_softmax_case, None), (_multilabel_case, 0.5), (_multilabel_case, 0.3), (_binary_case, None)],
    ids=["softmax", "multilabel", "multilabel-t0.3", "binary-1col"],
)
def test_accuracy_matches_sklearn(backend, dtype, make, threshold):
    (a, y), (a_h, y_h) = _on(backend, dtype, *make(np.random.default_rng(0)))
    result = get_metric("accuracy")(backend.xp, a, y, threshold=threshold)
    if threshold is None and y_h.shape[1] > 1:
        expected = sklearn_metrics.accuracy_score(y_h.argmax(axis=1), a_h.argmax(axis=1))
    else:  # label-indicator matrices: sklearn's subset accuracy
        t = 0.5 if threshold is None else threshold
        expected = sklearn_metrics.accuracy_score((y_h > t).astype(int), (a_h > t).astype(int))
    assert 0.0 < expected < 1.0  # the case exercises both right and wrong rows
    _check_result(backend, dtype, result, expected, rtol=4 * eps(dtype))


def _r2_case(rng, constant: str):
    y = rng.normal(size=(N, 3))
    a = y + 0.7 * rng.normal(size=(N, 3))
    if constant == "predicted":  # ss_tot == ss_res == 0 -> 1.0
        y[:, 1] = a[:, 1] = 2.5
    elif constant == "missed":  # ss_tot == 0 < ss_res -> 0.0
        y[:, 1] = 2.5
    elif constant == "both":
        y[:, 1] = a[:, 1] = -1.25
        y[:, 2] = 0.5
    return a, y


@pytest.mark.parametrize("constant", ["none", "predicted", "missed", "both"])
def test_r2_matches_sklearn(backend, dtype, constant):
    (a, y), (a_h, y_h) = _on(backend, dtype, *_r2_case(np.random.default_rng(1), constant))
    result = get_metric("r2")(backend.xp, a, y)
    expected = sklearn_metrics.r2_score(y_h, a_h)  # uniform_average, force_finite=True
    # sums of N squared terms and a ratio: rounding grows with N, hence N * eps
    _check_result(backend, dtype, result, expected, rtol=N * eps(dtype))


@pytest.mark.parametrize(("predicted", "expected"), [(True, 1.0), (False, 0.0)])
def test_r2_constant_column_is_exact_for_any_value(backend, dtype, predicted, expected):
    """0.1 is not representable and a library's mean of sixty 0.1s may be off by an ulp; the
    constant column must still score exactly 1.0 (predicted) or 0.0 (missed)."""
    y = np.full((N, 3), 0.1)
    a = y if predicted else y + np.random.default_rng(4).normal(size=(N, 3))
    (a_d, y_d), _ = _on(backend, dtype, a, y)
    _check_result(backend, dtype, get_metric("r2")(backend.xp, a_d, y_d), expected, rtol=0.0)


def test_r2_of_perfect_predictions_is_one(backend, dtype):
    (y,), _ = _on(backend, dtype, np.random.default_rng(2).normal(size=(N, 3)))
    _check_result(backend, dtype, get_metric("r2")(backend.xp, y, y), 1.0, rtol=0.0)


def _numpy_metric(name, a, y):
    """The metric written out in NumPy float64: accuracy as the fraction of rows whose argmax
    agrees, R^2 as the mean over columns of 1 - sum((y - a)^2) / sum((y - mean(y))^2)."""
    if name == "accuracy":
        return np.mean(a.argmax(axis=1) == y.argmax(axis=1))
    ss_res = ((y - a) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return np.mean(1.0 - ss_res / ss_tot)


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_runs_compiled(backend, name):
    """No Python branching on array values: the metric traces under jax.jit (backend.compile)
    and the compiled value is the one written out in NumPy float64 on the same float32 inputs:
    measured within 1.8 eps(float32) (r2 on numpy; accuracy within 0.6 eps, jax's float32 mean)."""
    assert set(METRICS.names()) == {"accuracy", "r2"}  # a new metric needs its NumPy reference
    a_host, y_host = _softmax_case(np.random.default_rng(3))
    (a, y), (a_h, y_h) = _on(backend, "float32", a_host, y_host)
    metric = get_metric(name)
    compiled = backend.compile(lambda a, y: metric(backend.xp, a, y))
    expected = _numpy_metric(name, a_h, y_h)
    assert 0.0 < abs(expected) < 1.0  # not a trivial value
    assert_close(backend, compiled(a, y), expected, rtol=4 * eps("float32"))


def test_unknown_metric_name_lists_the_allowed_ones():
    with pytest.raises(
        UnknownNameError, match=r"unknown metric 'acuracy'.*did you mean 'accuracy'"
    ):
        get_metric("acuracy")


def test_callable_passes_through():
    assert get_metric(len) is len


@pytest.mark.parametrize("name", METRICS.names())
def test_mismatched_shapes_are_an_error(name):
    with pytest.raises(ValueError, match=r"same 2-D shape \(N, K\), received a \(4, 2\) and y"):
        get_metric(name)(np, np.zeros((4, 2)), np.zeros((4, 3)))
