"""`backprop.sklearn`: the estimators in scikit-learn's tools, on other libraries' arrays, their
fitted attributes across calls, our extra parameters, and their errors."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import backend_or_skip

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from backprop.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X, Y = make_classification(120, 5, n_informative=3, n_classes=3, random_state=0)
XR, YR = make_regression(120, 5, noise=1.0, random_state=0)
YR = YR / YR.std()
SMALL = {"hidden_layer_sizes": (8,), "max_iter": 20, "random_state": 0}


# -- scikit-learn's tools --------------------------------------------------------------------------


def test_pipeline_grid_search_and_cross_val_score():
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(**SMALL))])
    grid = {"mlp__alpha": [1e-4, 1e-2], "mlp__activation": ["relu", ["tanh"]]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, Y)
    assert search.best_score_ > 0.6
    assert set(search.best_params_) == {"mlp__alpha", "mlp__activation"}
    scores = cross_val_score(MLPRegressor(**SMALL, learning_rate_init=0.03), XR, YR, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.5


def test_clone_keeps_parameters_and_drops_fitted_state():
    est = MLPClassifier(
        **SMALL, backend="numpy", dtype="float32", dropout=[0.1], class_weight={0: 2}
    )
    fitted = est.fit(X, Y)
    copy = clone(fitted)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "coefs_")
    assert copy.set_params(alpha=0.5).alpha == 0.5


def test_pickle_round_trip_predicts_the_same():
    est = MLPClassifier(**SMALL).fit(X, Y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    assert again.loss_curve_ == est.loss_curve_
    again.partial_fit(X, Y)  # the optimizer state (host arrays) came along
    assert len(again.loss_curve_) == len(est.loss_curve_) + 1


def test_import_backprop_works_without_sklearn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import backprop\n"
        "try:\n    import backprop.sklearn\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "backprop.sklearn needs scikit-learn >= 1.6" in out.stdout
    assert "pip install 'backprop-xp[sklearn]'" in out.stdout


# -- inputs of other array libraries ---------------------------------------------------------------


def _library_array(name: str, host: np.ndarray):
    return backend_or_skip(name).asarray(host, "float32" if host.dtype.kind == "f" else "int32")


@pytest.mark.parametrize("library", ["jax", "torch"])
def test_fit_and_predict_on_jax_and_torch_arrays(library):
    """Arrays of another library decide the backend: the same fit as NumPy's in float32, and
    predictions come back as that library's arrays."""
    be = backend_or_skip(library)
    x32 = X.astype(np.float32)
    reference = MLPClassifier(**SMALL).fit(x32, Y)
    est = MLPClassifier(**SMALL).fit(_library_array(library, x32), _library_array(library, Y))
    assert (est.backend_, est.device_) == (library, "cpu")
    assert est.coefs_[0].dtype == np.float32 and isinstance(est.coefs_[0], np.ndarray)
    np.testing.assert_allclose(est.loss_curve_, reference.loss_curve_, rtol=1e-5)
    xb = _library_array(library, x32)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        out = getattr(est, method)(xb)
        assert type(out) is type(xb), method
        expected = getattr(reference, method)(x32)
        if method == "predict":  # labels may only differ where two classes nearly tie
            sure = np.sort(reference.predict_proba(x32), axis=1)
            sure = sure[:, -1] - sure[:, -2] > 1e-4
            np.testing.assert_array_equal(be.to_numpy(out)[sure], expected[sure])
        else:
            np.testing.assert_allclose(be.to_numpy(out), expected, rtol=1e-4, atol=1e-5)
    assert est.score(xb, _library_array(library, Y)) == pytest.approx(reference.score(x32, Y))


@pytest.mark.parametrize("library", ["jax", "torch"])
def test_numpy_fitted_regressor_predicts_library_arrays(library):
    be = backend_or_skip(library)
    est = MLPRegressor(**SMALL).fit(XR.astype(np.float32), YR)
    out = est.predict(_library_array(library, XR.astype(np.float32)))
    assert out.shape == (120,) and be.name == library
    np.testing.assert_allclose(be.to_numpy(out), est.predict(XR), rtol=1e-4, atol=1e-5)


def test_backend_parameter_computes_numpy_inputs_elsewhere():
    backend_or_skip("torch")
    est = MLPClassifier(**SMALL, backend="torch").fit(X, Y)
    reference = MLPClassifier(**SMALL).fit(X, Y)
    assert est.backend_ == "torch" and isinstance(est.predict(X), np.ndarray)
    np.testing.assert_allclose(est.loss_curve_, reference.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(est.predict_proba(X), reference.predict_proba(X), rtol=1e-10)


def test_device_input_with_the_wrong_number_of_features_is_refused():
    est = MLPClassifier(**SMALL).fit(X, Y)
    wrong = _library_array("torch", X[:, :3].astype(np.float32))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 5"):
        est.predict(wrong)


# -- dtype, labels, outputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_dtype", "dtype", "expected"),
    [
        ("float32", None, "float32"),
        ("float64", None, "float64"),
        ("int64", None, "float64"),
        ("float64", "float32", "float32"),
        ("float32", "float64", "float64"),
    ],
)
def test_training_dtype(x_dtype, dtype, expected):
    est = MLPRegressor(**SMALL, dtype=dtype).fit(XR.astype(x_dtype), YR)
    assert {c.dtype.name for c in est.coefs_ + est.intercepts_} == {expected}
    assert est.predict(XR).dtype == expected


def test_string_labels_binary_and_class_weight_by_label():
    labels = np.array(["no", "yes"])[Y % 2]
    est = MLPClassifier(**SMALL, class_weight={"yes": 3.0}).fit(X, labels)
    assert list(est.classes_) == ["no", "yes"] and est.out_activation_ == "logistic"
    assert set(est.predict(X)) <= {"no", "yes"}
    assert est.predict_proba(X).shape == (120, 2)
    heavy = (est.predict(X) == "yes").mean()
    light = (MLPClassifier(**SMALL).fit(X, labels).predict(X) == "yes").mean()
    assert heavy > light  # weighting "yes" predicts it more often
    with pytest.raises(ValueError, match=r"class_weight has the class 'maybe', which is not in"):
        MLPClassifier(**SMALL, class_weight={"maybe": 2.0}).fit(X, labels)


def test_multilabel_targets():
    y = np.stack([Y == 0, Y != 1], axis=1).astype(int)
    est = MLPClassifier(**SMALL).fit(X, y)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 2
    assert est.predict(X).shape == (120, 2) and est.predict_proba(X).shape == (120, 2)
    with pytest.raises(ValueError, match="class_weight needs one class per sample"):
        MLPClassifier(**SMALL, class_weight="balanced").fit(X, y)


def test_predict_log_proba_is_finite_where_probabilities_round_to_zero():
    est = MLPClassifier(**SMALL).fit(X, Y)
    est.coefs_ = [c * 300.0 for c in est.coefs_]  # saturate the softmax
    proba, log_proba = est.predict_proba(X), est.predict_log_proba(X)
    assert (proba == 0).any() and np.isfinite(log_proba).all()
    positive = proba > 1e-300
    np.testing.assert_allclose(log_proba[positive], np.log(proba[positive]), rtol=1e-9, atol=1e-12)


def test_per_layer_activations_dropout_and_our_solvers():
    for solver in ("adamw", "rmsprop"):
        est = MLPClassifier(
            (8, 6),
            ["tanh", "gelu"],
            solver=solver,
            learning_rate_init=0.01,
            dropout=[0.2, 0.0],
            max_iter=30,
            random_state=0,
        ).fit(X, Y)
        assert est.score(X, Y) > 0.6 and est.n_layers_ == 4


# -- state across calls ----------------------------------------------------------------------------


def test_warm_start_continues_from_coefs_set_by_hand():
    est = MLPClassifier(**SMALL, solver="sgd", momentum=0.0).fit(X, Y)
    n = len(est.loss_curve_)
    mine = [np.full_like(c, 0.01) for c in est.coefs_]
    est.coefs_ = [c.copy() for c in mine]
    est.set_params(warm_start=True, max_iter=1, learning_rate_init=1e-6).fit(X, Y)
    for a, b in zip(est.coefs_, mine, strict=True):  # a tiny step from the weights set
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(est.loss_curve_) == n + 1 and est.t_ == (n + 1) * 120
    est.coefs_ = est.coefs_[:1]
    with pytest.raises(ValueError, match=r"warm start: coefs_ and intercepts_ have shapes"):
        est.fit(X, Y)


def test_fit_without_warm_start_starts_over():
    est = MLPClassifier(**SMALL).fit(X, Y)
    first = [c.copy() for c in est.coefs_]
    est.fit(X, Y)
    assert len(est.loss_curve_) == 20
    for a, b in zip(est.coefs_, first, strict=True):
        np.testing.assert_array_equal(a, b)  # same random_state, same run


def test_partial_fit_with_classes():
    est = MLPClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial"):
        est.partial_fit(X, Y)
    first = Y != 2
    est.partial_fit(X[first], Y[first], classes=[0, 1, 2])
    est.partial_fit(X, Y)
    assert list(est.classes_) == [0, 1, 2] and est.predict_proba(X).shape == (120, 3)
    assert est.n_iter_ == 1 and est.t_ == first.sum() + 120 and len(est.loss_curve_) == 2
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        est.partial_fit(X, np.where(Y == 2, 5, Y))
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X, Y, classes=[0, 1, 2])


def test_early_stopping_attributes():
    est = MLPClassifier(**SMALL, early_stopping=True, validation_fraction=0.2).fit(X, Y)
    n = est.n_iter_
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == n
    assert est.best_validation_score_ == max(est.validation_scores_) and est.best_loss_ is None
    assert est.t_ == n * 96  # 24 of the 120 rows are held out
    assert all(v > 0 for v in est.validation_loss_curve_)
    plain = MLPRegressor(**SMALL).fit(XR, YR)
    assert plain.validation_scores_ is None and plain.validation_loss_curve_ is None
    assert plain.best_loss_ == min(plain.loss_curve_)


def test_stopping_rule_and_convergence_warning():
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(20\) reached"):
        MLPClassifier(**SMALL).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = MLPClassifier(**{**SMALL, "max_iter": 200}, tol=1.0, n_iter_no_change=2).fit(X, Y)
    # the first epoch improves on best_loss_ = inf; the next 3 (more than n_iter_no_change=2)
    # do not improve by tol=1.0, so training stops after epoch 4
    assert est.n_iter_ == 4 and est.best_loss_ == min(est.loss_curve_)


def test_verbose_prints_sklearns_lines(capsys):
    MLPClassifier(**{**SMALL, "max_iter": 2}, verbose=True, early_stopping=True).fit(X, Y)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Iteration 1, loss = \d+\.\d{8}", out[0])
    assert re.fullmatch(r"Validation score: \d\.\d{6}", out[1]) and len(out) == 4


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"solver": "newton"}, InvalidParameterError, r"'solver' parameter .* among \{.*'sgd'"),
        ({"activation": "swish"}, InvalidParameterError, r"'activation' parameter .*'logistic'"),
        (
            {"activation": ["tanh", "swish"], "hidden_layer_sizes": (4, 4)},
            ValueError,
            r"unknown activation 'swish': expected one of \['identity', 'logistic'",
        ),
        (
            {"activation": ["tanh"], "hidden_layer_sizes": (4, 4)},
            ValueError,
            "activation lists 1 names but hidden_layer_sizes has 2 hidden layers",
        ),
        ({"hidden_layer_sizes": (4, 0)}, ValueError, "hidden_layer_sizes must be positive"),
        ({"backend": "tensorflow"}, InvalidParameterError, r"'backend' parameter .*'numpy'"),
        ({"momentum": 1.0}, InvalidParameterError, r"'momentum' parameter .* range \[0.0, 1.0\)"),
        (
            {"early_stopping": True, "validation_fraction": 0.0},
            ValueError,
            "early_stopping needs a validation set of at least 2 samples",
        ),
    ],
)
def test_bad_parameters_fail_at_fit_with_the_allowed_values(params, error, match):
    with pytest.raises(error, match=match):
        MLPClassifier(**{**SMALL, **params}).fit(X, Y)


def test_an_activation_registered_after_import_is_accepted():
    from backprop import activations

    @activations.register("test_softsign")
    class Softsign(activations.Activation):
        """a = z / (1 + |z|); f' = (1 - |a|)**2, from the output."""

        def forward(self, xp, z):
            return z / (1.0 + xp.abs(z))

        def derivative(self, xp, z, a):
            return (1.0 - xp.abs(a)) ** 2

    try:
        est = MLPClassifier(**SMALL, activation="test_softsign").fit(X, Y)
        assert est.predict(X).shape == (len(X),)
        MLPClassifier(
            **{**SMALL, "hidden_layer_sizes": (4, 4)}, activation=["relu", "test_softsign"]
        ).fit(X, Y)
        with pytest.raises(InvalidParameterError, match="'test_softsign'"):
            MLPClassifier(**SMALL, activation="test_softsig").fit(X, Y)  # listed among the allowed
    finally:
        activations.ACTIVATIONS._items.pop("test_softsign")
    with pytest.raises(InvalidParameterError, match="'activation' parameter"):
        MLPClassifier(**SMALL, activation="test_softsign").fit(X, Y)


def test_wrong_feature_count_and_unfitted():
    est = MLPRegressor(**SMALL)
    with pytest.raises(Exception, match="not fitted yet"):
        est.predict(XR)
    est.fit(XR, YR)
    with pytest.raises(ValueError, match="X has 4 features, but MLPRegressor is expecting 5"):
        est.predict(XR[:, :4])
