"""scikit-learn's own MLP tests, run against `backprop.sklearn`'s estimators.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is copied into a
temporary folder with its one import of the estimators pointed at `backprop.sklearn`, next to a
``conftest.py`` giving scikit-learn's ``global_random_seed`` fixture the value 42, and run by
pytest in a subprocess (its own rootdir, so this project's pytest settings do not apply to it;
the subprocess timeout bounds it). Every test must pass except the four deselected in `PRIVATE`,
which read scikit-learn's private attributes and methods, not its API. Skipped with the reason
when scikit-learn is missing or was installed without its tests.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="needs scikit-learn (the sklearn extra)")

UPSTREAM = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor\n"
OURS = "from backprop.sklearn import MLPClassifier, MLPRegressor\n"
CONFTEST = "import pytest\n\n\n@pytest.fixture\ndef global_random_seed():\n    return 42\n"
PRIVATE = {  # test -> what of scikit-learn's internals it reads (not part of its API)
    "test_fit": "sets _coef_grads, _intercept_grads, _coef_velocity, ... before partial_fit",
    "test_gradient": "calls the private _loss_grad_lbfgs with scikit-learn's work buffers",
    "test_learning_rate_warmstart": "reads the private _optimizer.learning_rate",
    "test_adaptive_learning_rate": "reads the private _optimizer.learning_rate",
}
TIMEOUT_S = 300  # the module takes 22-35 s on 2 busy cores; a hang fails instead of stalling
_SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)")
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\S* (?:\S+::)?(\S+)", re.M)


def upstream_text() -> str:
    """The upstream module's text with its estimator import pointed at `backprop.sklearn`."""
    if not UPSTREAM.is_file():
        pytest.skip(
            f"scikit-learn {sklearn.__version__} was installed without its tests "
            f"({UPSTREAM} is missing)"
        )
    text = UPSTREAM.read_text(encoding="utf-8")
    if text.count(IMPORT) != 1:
        pytest.fail(
            f"{UPSTREAM} no longer imports the estimators with {IMPORT.strip()!r}; "
            "update IMPORT in this test to the line it uses now"
        )
    return text.replace(IMPORT, OURS)


def run_upstream(tmp_path: Path, *args: str) -> tuple[dict[str, int], dict[str, str], str]:
    """Run the rewritten module in ``tmp_path``; ``(counts, outcome per test id, output)``."""
    (tmp_path / "test_mlp.py").write_text(upstream_text(), encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    deselect = [f"--deselect=test_mlp.py::{name}" for name in PRIVATE]
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
               "test_mlp.py", *deselect, *args]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    output = done.stdout + done.stderr
    tail = output.strip().splitlines()[-1] if output.strip() else ""
    counts = {kind.rstrip("s"): int(n) for n, kind in _SUMMARY.findall(tail)}
    outcomes = {test: outcome for outcome, test in _OUTCOME.findall(output)}
    return counts, outcomes, output


@pytest.mark.slow  # about 25 s: scikit-learn's module trains some 150 networks
def test_upstream_mlp_tests_pass(tmp_path):
    """Every test of scikit-learn's test_mlp.py passes on our estimators (the four reading
    private attributes deselected; pandas-only tests skip where pandas is missing)."""
    counts, outcomes, output = run_upstream(tmp_path)
    failed = sorted(test for test, outcome in outcomes.items() if outcome in ("FAILED", "ERROR"))
    assert not failed, f"{len(failed)} upstream tests fail: {failed}\n{output[-6000:]}"
    assert counts.get("passed", 0) >= 50, f"too few upstream tests ran: {counts}\n{output[-3000:]}"
    assert counts.get("deselected") == len(PRIVATE), counts


def test_runner_detects_failures(tmp_path, monkeypatch):
    """The runner reports an upstream failure, so the test above cannot pass vacuously: the
    upstream module's own check of the error message for non-finite weights, against an
    estimator made to raise another message."""
    text = upstream_text().replace(
        "Solver produced non-finite parameter weights", "A message nobody raises"
    )
    monkeypatch.setattr(sys.modules[__name__], "upstream_text", lambda: text)
    counts, outcomes, _ = run_upstream(tmp_path, "-k", "test_nonfinite_params")
    assert outcomes == {"test_nonfinite_params": "FAILED"}, outcomes
    assert counts.get("failed") == 1, counts


# -- the upstream checks of issue 16's items 2 and 3, on every backend ---------------------------
# (fast and on each backend; the module above runs on NumPy only)

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402

from backprop.sklearn import MLPClassifier, MLPRegressor, SolverDiverged  # noqa: E402

_RNG = np.random.default_rng(0)
X_COUNTS = _RNG.normal(size=(60, 3))
Y_COUNTS = _RNG.poisson(np.exp(0.5 * X_COUNTS[:, 0] + 0.3)).astype(float)  # zeros included


def test_poisson_loss_curve_and_predictions_match_scikit_learn(backend):
    """loss="poisson": exp outputs and half the Poisson deviance (constant term included), so
    from the same initial weights loss_curve_ and predictions are scikit-learn's (full-batch
    SGD without momentum; float64 rounding only)."""
    kw = dict(loss="poisson", hidden_layer_sizes=(5,), solver="sgd", batch_size=60, max_iter=5,
              random_state=0, shuffle=False, momentum=0.0, learning_rate_init=0.01)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 5 epochs, on purpose
        ours = MLPRegressor(**kw, backend=backend.name, dtype="float64").fit(X_COUNTS, Y_COUNTS)
        theirs = SkRegressor(**kw).fit(X_COUNTS, Y_COUNTS)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(ours.predict(X_COUNTS), theirs.predict(X_COUNTS), rtol=1e-10)


def test_poisson_needs_non_negative_targets():
    with pytest.raises(ValueError, match=r"loss='poisson' requires y >= 0, but y has 1 negative"):
        MLPRegressor(loss="poisson").fit(X_COUNTS[:3], [1.0, -2.0, 0.0])
    with pytest.raises(ValueError, match="'loss' parameter of MLPRegressor must be"):
        MLPRegressor(loss="huber").fit(X_COUNTS, Y_COUNTS)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_partial_fit_exists_for_stochastic_solvers_only(estimator):
    assert hasattr(estimator(solver="adam"), "partial_fit")
    assert not hasattr(estimator(solver="lbfgs"), "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        estimator(solver="lbfgs").partial_fit  # noqa: B018
    assert "only available for stochastic optimizers" in str(info.value.__cause__)


def _diverging(backend_name: str, early_stopping: bool) -> MLPRegressor:
    """scikit-learn's test_mlp_diverging_loss setup: learning rate 1 on iris."""
    return MLPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd",
                        learning_rate_init=1, max_iter=20, early_stopping=early_stopping,
                        random_state=0, backend=backend_name, dtype="float64")  # fmt: skip


def test_divergence_with_early_stopping_keeps_the_best_validation_weights(backend):
    """No error (scikit-learn's issue #29504): the diverged epoch scores NaN, the weights are
    those of the best validation score, and a ConvergenceWarning says what happened."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="diverged.*kept the weights of the best"):
        est = _diverging(backend.name, True).fit(X, y)
    assert math.isnan(est.validation_scores_[-1]) and isinstance(est.validation_scores_[-1], float)
    assert len(est.validation_scores_) == len(est.loss_curve_) == est.n_iter_
    best = max(s for s in est.validation_scores_ if not math.isnan(s))
    assert est.best_validation_score_ == best
    assert all(np.isfinite(w).all() for w in est.coefs_)  # the best epoch's, not the last
    assert np.isfinite(est.predict(X)).all()
    with pytest.raises(SolverDiverged, match="MLPRegressor diverged"):
        _diverging(backend.name, False).fit(X, y)


def test_nonfinite_message_starts_with_scikit_learns_sentence(backend):
    X = np.finfo(np.float64).max * np.random.default_rng(0).uniform(size=(10, 2))
    y = np.random.default_rng(1).normal(size=10)
    sentence = (
        "Solver produced non-finite parameter weights. The input data may contain large values "
        "and need to be preprocessed. MLPRegressor diverged: the loss became"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in the forward pass
        with pytest.raises(SolverDiverged, match=re.escape(sentence)):
            MLPRegressor(backend=backend.name, dtype="float64").fit(X, y)


def test_early_stopping_split_messages_start_with_scikit_learns():
    stratified = (
        r"^The least populated classes in y have only 1 member, .* Classes with too few "
        r"members are: \['True'\] \(.*the labels \[1\]\)\. early_stopping holds out a "
        r"stratified validation set"
    )
    with pytest.raises(ValueError, match=stratified):
        MLPClassifier(early_stopping=True).fit([[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1])
    with pytest.raises(ValueError, match=r"^The validation set is too small\. .*holds out 1"):
        MLPRegressor(early_stopping=True).fit(X_COUNTS[:2], Y_COUNTS[:2])
