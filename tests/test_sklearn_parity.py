"""Loss curves against scikit-learn's MLP from the same initial weights, in float64.

Without shuffling, both estimators take the same batches; the same ``random_state`` gives the
same initial weights (ours draws them as scikit-learn does), or the weights are set by hand and
continued with ``warm_start``. The issue asked for 1e-8 relative with SGD and 1e-6 with Adam;
the curves agree to a few ulps, and the tests hold them to that: measured max relative
differences of the loss curves 0.6-4.4 eps (9.7e-16, the "adaptive" case; Adam's worst 1.5 eps),
of the best loss <= 2.6 eps, of the end weights <= 5.9e-14 relative and 1.1e-15 absolute.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network as sk
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

from backprop.sklearn import MLPClassifier, MLPRegressor

# loss curves and best loss: measured <= 4.4 eps relative with SGD, <= 1.5 eps with Adam
RTOL = {"sgd": 8 * np.finfo(np.float64).eps, "adam": 4 * np.finfo(np.float64).eps}
# end weights: measured <= 5.9e-14 relative (on entries near 0) and <= 1.1e-15 absolute
COEF_RTOL, COEF_ATOL = 1e-13, 2e-15
COMMON = {"hidden_layer_sizes": (7, 5), "shuffle": False, "random_state": 1, "batch_size": 32}


def _data(target: str) -> tuple[np.ndarray, np.ndarray]:
    if target == "regression":
        X, y = make_regression(150, 5, noise=1.0, random_state=0)
        return X, y / y.std()
    X, y = make_classification(150, 5, n_informative=3, n_classes=3, random_state=0)
    if target == "binary":
        return X, y % 2
    if target == "multilabel":
        return X, np.stack([y == 0, y != 1, X[:, 0] > 0], axis=1).astype(int)
    return X, y


def _pair(target: str, **params):
    ours, theirs = (
        (MLPRegressor, sk.MLPRegressor)
        if target == "regression"
        else (MLPClassifier, sk.MLPClassifier)
    )
    return ours(**COMMON, **params), theirs(**COMMON, **params)


def _fit_both(ours, theirs, X, y) -> None:
    for est in (ours, theirs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)


def _assert_same_run(ours, theirs, rtol: float) -> None:
    """Same curve (to rtol), same number of epochs, counters and best loss."""
    a, b = np.asarray(ours.loss_curve_), np.asarray(theirs.loss_curve_)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_)
    assert ours._no_improvement_count == theirs._no_improvement_count
    np.testing.assert_allclose(ours.best_loss_, theirs.best_loss_, rtol=rtol)


CASES = {  # id: (target, solver and parameters)
    "multiclass-sgd": ("multiclass", {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1}),
    "multiclass-sgd-alpha": (
        "multiclass",
        {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1, "alpha": 0.05},
    ),
    "binary-sgd": ("binary", {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1}),
    "multiclass-adam": ("multiclass", {"solver": "adam", "learning_rate_init": 0.01}),
    "binary-adam-alpha": ("binary", {"solver": "adam", "alpha": 0.1, "activation": "logistic"}),
    "multilabel-adam": ("multilabel", {"solver": "adam", "learning_rate_init": 0.01}),
    "regression-sgd": (
        "regression",
        {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.05},
    ),
    "regression-adam-alpha": (
        "regression",
        {"solver": "adam", "alpha": 0.01, "activation": "tanh"},
    ),
    # scikit-learn's other SGD rules: its velocity form of (Nesterov) momentum, invscaling,
    # and adaptive (the rate divided by 5 until it is below 1e-6) with its stopping rule
    "nesterov": ("multiclass", {"solver": "sgd", "momentum": 0.9, "learning_rate_init": 0.05}),
    "invscaling": (
        "multiclass",
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.5, "power_t": 0.3},
    ),
    "adaptive": (
        "binary",
        {
            "solver": "sgd",
            "learning_rate": "adaptive",
            "learning_rate_init": 0.2,
            "tol": 1e-2,
            "n_iter_no_change": 2,
            "max_iter": 100,
        },
    ),
    "stopping-adam": ("regression", {"solver": "adam", "tol": 1e-2, "n_iter_no_change": 3}),
}


@pytest.mark.parametrize("case", CASES)
def test_loss_curve_matches_sklearn_from_the_same_random_state(case):
    target, params = CASES[case]
    params = {"max_iter": 40, **params}
    ours, theirs = _pair(target, **params)
    X, y = _data(target)
    _fit_both(ours, theirs, X, y)
    for a, b in zip(ours.coefs_, theirs.coefs_, strict=True):  # the end weights agree too
        np.testing.assert_allclose(a, b, rtol=COEF_RTOL, atol=COEF_ATOL)
    _assert_same_run(ours, theirs, RTOL[params["solver"]])


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_loss_curve_matches_sklearn_from_weights_set_by_hand(solver):
    """Both estimators get the same hand-made weights after a one-epoch fit (which sets up
    scikit-learn's state) and continue from them with warm_start and a fresh optimizer."""
    X, y = _data("multiclass")
    kwargs = {"solver": solver, "max_iter": 1, "warm_start": True, "learning_rate_init": 0.05}
    ours, theirs = _pair("multiclass", **kwargs)
    _fit_both(ours, theirs, X, y)
    rng = np.random.default_rng(7)
    coefs = [0.3 * rng.standard_normal(c.shape) for c in theirs.coefs_]
    intercepts = [0.1 * rng.standard_normal(b.shape) for b in theirs.intercepts_]
    for est in (ours, theirs):
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        est.set_params(max_iter=25)
    _fit_both(ours, theirs, X, y)
    assert len(ours.loss_curve_) == 26  # the curve continues across warm-start fits
    _assert_same_run(ours, theirs, RTOL[solver])


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam"},
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.5},
        {"solver": "sgd", "learning_rate": "adaptive", "tol": 0.5, "n_iter_no_change": 1},
    ],
    ids=["adam", "invscaling", "adaptive"],
)
def test_partial_fit_matches_sklearn(params):
    """partial_fit continues the optimizer's state, rate and counters across calls."""
    X, y = _data("multiclass")
    ours, theirs = _pair("multiclass", **params)
    for start in [0, 50, 100] * 2:
        for est in (ours, theirs):
            est.partial_fit(X[start : start + 50], y[start : start + 50], classes=[0, 1, 2])
    assert len(ours.loss_curve_) == 6
    _assert_same_run(ours, theirs, RTOL[params["solver"]])
