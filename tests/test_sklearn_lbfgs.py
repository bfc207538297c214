"""``solver="lbfgs"`` against scikit-learn's, from the same initial weights, in float64.

Both run SciPy's L-BFGS-B with the same options on the same function; only the rounding of the
loss and gradient differs (our backend's sums, scikit-learn's NumPy ones), and L-BFGS on a
non-convex loss amplifies it with the iterations. The issue asks for 1e-6 relative (loss_, and
max |ours - theirs| / max |theirs| per layer for the weights). Measured 2026-11-29, loss /
weights: digits 40 iterations 1.7e-11 / 3.0e-11 (NumPy), 1.5e-11 / 2.7e-11 (JAX); diabetes
1.7e-12 / 1.4e-11 (both); binary 2.0e-11 / 2.0e-10; multilabel 1e-13 / 7e-14; two hidden layers
5.5e-12 / 1.3e-11; with sample_weight from hand-set weights <= 1.1e-14 / 4.0e-14. A long run
drifts apart as any two roundings of a chaotic iteration do (diabetes, 200 iterations of 20
units: 1e-2), so the runs here are short.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import backend_or_skip

pytest.importorskip("sklearn")

from sklearn import neural_network as sk
from sklearn.datasets import (
    load_diabetes,
    load_digits,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from backprop.sklearn import MLPClassifier, MLPRegressor

RTOL = 1e-6  # the bound; measured <= 2e-10 (module docstring)
_DIGITS_X, _DIGITS_Y = load_digits(return_X_y=True)
DIGITS = (MinMaxScaler().fit_transform(_DIGITS_X[:400]), _DIGITS_Y[:400])
_DIAB_X, _DIAB_Y = load_diabetes(return_X_y=True)
DIABETES = (StandardScaler().fit_transform(_DIAB_X), (_DIAB_Y - _DIAB_Y.mean()) / _DIAB_Y.std())
COMMON = {"solver": "lbfgs", "hidden_layer_sizes": (12,), "random_state": 0, "alpha": 1e-3}


def _targets(case: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = DIGITS
    if case == "binary":
        return X, y % 2
    if case == "multilabel":
        return X, np.stack([y % 2, y > 4, y == 0], axis=1)
    return DIABETES if case == "diabetes" else (X, y)


def _pair(case: str, backend: str = "numpy", **params):
    ours, theirs = (
        (MLPRegressor, sk.MLPRegressor) if case == "diabetes" else (MLPClassifier, sk.MLPClassifier)
    )
    params = {**COMMON, **params}
    return ours(backend=backend, **params), theirs(**params)


def _fit_quietly(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def _relative_gaps(ours, theirs) -> tuple[float, float]:
    """|loss_ difference| / |theirs|, and the largest max|a - b| / max|b| over the layers'
    weights and biases."""
    loss = abs(ours.loss_ - theirs.loss_) / abs(theirs.loss_)
    pairs = zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True)
    weights = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in pairs)
    return loss, weights


def _assert_same_fit(ours, theirs) -> None:
    assert ours.n_iter_ == theirs.n_iter_
    loss, weights = _relative_gaps(ours, theirs)
    assert loss <= RTOL and weights <= RTOL, (loss, weights)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("case", ["digits", "diabetes"])
def test_lbfgs_matches_sklearn_from_the_same_random_state(case, backend):
    backend_or_skip(backend)
    ours, theirs = _pair(case, backend, max_iter=40)
    X, y = _targets(case)
    _fit_quietly(ours, X, y)
    _fit_quietly(theirs, X, y)
    assert ours.backend_ == backend
    assert ours.coefs_[0].dtype == np.float64
    _assert_same_fit(ours, theirs)


@pytest.mark.parametrize(
    ("case", "params"),
    [
        ("binary", {"activation": "logistic"}),
        ("multilabel", {"activation": "tanh"}),
        ("digits", {"hidden_layer_sizes": (10, 6)}),
    ],
    ids=["binary", "multilabel", "two-layers"],
)
def test_lbfgs_matches_sklearn_on_other_targets(case, params):
    ours, theirs = _pair(case, max_iter=30, **params)
    X, y = _targets(case)
    _fit_quietly(ours, X, y)
    _fit_quietly(theirs, X, y)
    _assert_same_fit(ours, theirs)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6)


@pytest.mark.parametrize("case", ["digits", "diabetes"])
def test_lbfgs_matches_sklearn_with_sample_weight_from_weights_set_by_hand(case):
    """sample_weight scales the data term and the L2 penalty alpha / (2 sum(w)) as in
    scikit-learn; hand-made weights continue with warm_start on both."""
    X, y = _targets(case)
    ours, theirs = _pair(case, max_iter=1, warm_start=True, alpha=0.5)
    _fit_quietly(ours, X, y)
    _fit_quietly(theirs, X, y)
    rng = np.random.default_rng(3)
    coefs = [0.3 * rng.standard_normal(c.shape) for c in theirs.coefs_]
    intercepts = [0.1 * rng.standard_normal(b.shape) for b in theirs.intercepts_]
    weight = rng.uniform(0.0, 3.0, X.shape[0])
    for est in (ours, theirs):
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        est.set_params(max_iter=25)
        _fit_quietly(est, X, y, sample_weight=weight)
    _assert_same_fit(ours, theirs)


def test_lbfgs_stops_on_tol_as_sklearn_without_warning():
    ours, theirs = _pair("diabetes", hidden_layer_sizes=(5,), tol=1e-2, max_iter=200)
    X, y = _targets("diabetes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.n_iter_ < 200
    _assert_same_fit(ours, theirs)


def test_attributes_are_scikit_learns():
    """No loss_curve_ and the other stochastic attributes (also after a refit that was
    stochastic before); t_ stays 0; loss_ is a float; n_iter_ the iterations."""
    X, y = _targets("digits")
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    _fit_quietly(est, X, y)
    assert hasattr(est, "loss_curve_")
    est.set_params(solver="lbfgs", max_iter=8)
    _fit_quietly(est, X, y)
    for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
        assert not hasattr(est, name), name
    assert (est.n_iter_, est.t_) == (8, 0)
    assert isinstance(est.loss_, float) and est.loss_ > 0
    est.set_params(solver="adam", warm_start=True, max_iter=2)  # continue with another solver
    _fit_quietly(est, X, y)
    assert len(est.loss_curve_) == 2


def test_max_fun_and_max_iter_warn_as_sklearn():
    X, y = _targets("diabetes")
    for params in ({"max_fun": 10, "tol": 0.0}, {"max_iter": 3}):
        ours, theirs = _pair("diabetes", **params)
        with pytest.warns(ConvergenceWarning) as mine:
            ours.fit(X, y)
        with pytest.warns(ConvergenceWarning) as sklearns:
            theirs.fit(X, y)
        assert [str(w.message) for w in mine] == [str(w.message) for w in sklearns]
        assert ours.n_iter_ == theirs.n_iter_ <= params.get("max_iter", 10)


def test_warm_start_runs_max_iter_more_iterations():
    """scikit-learn's test_mlp_warm_start_no_convergence for lbfgs: each warm-started fit runs
    up to max_iter iterations from where the last one ended."""
    X, y = _targets("diabetes")
    est = MLPRegressor(solver="lbfgs", warm_start=True, max_iter=10, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=10"):
        est.fit(X, y)
    first = est.loss_
    est.set_params(max_iter=20)
    with pytest.warns(ConvergenceWarning, match="max_iter=20"):
        est.fit(X, y)
    assert est.n_iter_ == 20 and est.loss_ < first


def test_max_fun_is_validated_like_sklearn():
    X, y = _targets("diabetes")
    with pytest.raises(InvalidParameterError, match="'max_fun' parameter"):
        MLPRegressor(solver="lbfgs", max_fun=0).fit(X, y)
    assert MLPRegressor().get_params()["max_fun"] == 15000


def test_multilabel_and_multi_output_regression():
    """scikit-learn's test_multilabel_classification and test_multioutput_regression."""
    X, Y = make_multilabel_classification(n_samples=50, random_state=0, return_indicator=True)
    clf = MLPClassifier(
        solver="lbfgs", hidden_layer_sizes=50, alpha=1e-5, max_iter=150, random_state=0
    )
    _fit_quietly(clf, X, Y)
    assert clf.score(X, Y) > 0.97
    np.testing.assert_array_equal(clf.predict_proba(X) > 0.5, Y)
    X, Y = make_regression(n_samples=200, n_targets=5, random_state=11)
    reg = MLPRegressor(solver="lbfgs", hidden_layer_sizes=50, max_iter=200, tol=1e-2)
    _fit_quietly(reg.set_params(random_state=1), X, Y)
    assert reg.score(X, Y) > 0.9


def test_binary_classes_and_predict_proba():
    X, y = _targets("binary")
    labels = np.where(y == 1, "odd", "even")
    clf = _fit_quietly(MLPClassifier(**COMMON, max_iter=30), X, labels)
    assert clf.classes_.tolist() == ["even", "odd"]
    proba = clf.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.score(X, labels) > 0.95


def test_float32_inputs_train_in_float64_as_sklearn():
    """Both end with float64 weights from float32-rounded initial ones. scikit-learn hands
    SciPy those float32 weights as x0, and SciPy then evaluates at x rounded to x0's dtype;
    ours evaluates at float64 x, so the runs differ by float32 rounding: measured 2e-7 (loss)
    and 5e-7 (weights) after 10 iterations, held to 1e-5."""
    X, y = _targets("digits")
    ours, theirs = _pair("digits", max_iter=10)
    X32 = X.astype(np.float32)
    _fit_quietly(ours, X32, y)
    _fit_quietly(theirs, X32, y)
    assert ours.coefs_[0].dtype == theirs.coefs_[0].dtype == np.float64
    assert max(_relative_gaps(ours, theirs)) <= 1e-5


def test_dropout_is_refused_and_early_stopping_ignored():
    X, y = _targets("diabetes")
    with pytest.raises(ValueError, match=r"solver='lbfgs'.*dropout=0.3.*Set dropout=0.0"):
        MLPRegressor(solver="lbfgs", dropout=0.3).fit(X, y)
    est = _fit_quietly(MLPRegressor(solver="lbfgs", early_stopping=True, max_iter=5), X, y)
    assert est.n_iter_ == 5 and not hasattr(est, "validation_scores_")


def test_non_finite_loss_raises_sklearns_sentence():
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        _fit_quietly(MLPRegressor(solver="lbfgs"), X, y)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_sparse_inputs_give_the_dense_results(solver):
    """scikit-learn's test_sparse_matrices: SciPy sparse X (densified on the way in) fits and
    predicts as the dense X does, for every solver."""
    sparse = pytest.importorskip("scipy.sparse")
    X, y = _targets("binary")
    X, y = X[:60], y[:60]
    est = MLPClassifier(solver=solver, hidden_layer_sizes=15, max_iter=20, random_state=1)
    dense_pred = _fit_quietly(est, X, y).predict(X)
    coefs = [c.copy() for c in est.coefs_]
    for container in (sparse.csr_matrix, sparse.csr_array, sparse.coo_matrix):
        _fit_quietly(est, container(X), y)
        for a, b in zip(est.coefs_, coefs, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(est.predict(container(X)), dense_pred)
