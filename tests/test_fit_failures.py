"""How `backprop.fit` fails (issue 15, items 2-4): a loss that explodes but stays finite raises
`TrainingDiverged`, in the scikit-learn wrapper too; data too large for the training dtype is a
`DataError` naming it; Ctrl-C (`KeyboardInterrupt`) during training leaves the run, its result
and ``last.npz`` at the end of the last finished epoch, from which a resumed run is bit for bit
the uninterrupted one."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from conftest import backend_or_skip
from fit_helpers import blobs

import backprop as bp
from backprop.app import cli

X, LABELS = blobs(n_per_class=20)  # (60, 4), 3 classes
Y_REG = X @ np.random.default_rng(0).normal(size=4)
CONFIGS = pathlib.Path(__file__).parent.parent / "configs"


def _host(backend, tree) -> list[np.ndarray]:
    """Every array of a parameter (or any) tree as a host copy; ``backend`` None: host already."""
    return [np.array(a if backend is None else backend.to_numpy(a)) for a in bp.tree_leaves(tree)]


def _assert_bitwise_equal(actual: list, expected: list) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_array_equal(a, e, err_msg=f"array {i}")
        assert a.dtype == e.dtype


def _classifier() -> bp.MLP:
    return bp.MLP([4, 16, 3], hidden="relu", output="softmax", loss="cross_entropy")


# -- 2. a finite but exploding loss ----------------------------------------------------------------
# Adam's steps are bounded by lr, so at lr=1e3 (classifier) or 10 (regressor) the weights grow
# by that much a step and the loss explodes while staying finite: the NaN guard never fires.
EXPLODING = {
    "classifier": (_classifier, LABELS, bp.Adam(lr=1e3)),
    "regressor": (lambda: bp.MLP([4, 16, 1], hidden="relu"), Y_REG, bp.Adam(lr=10.0)),
}


@pytest.mark.parametrize("case", list(EXPLODING))
def test_an_exploding_finite_loss_raises_training_diverged(backend, case):
    make, Y, optimizer = EXPLODING[case]
    options = dict(optimizer=optimizer, backend=backend, epochs=3, batch_size=20, verbose=0)
    unchecked = bp.fit(make(), X, Y, divergence_factor=None, **options)  # what it used to do
    assert all(np.isfinite(unchecked.history["loss"])), "the loss stays finite"
    with pytest.raises(bp.TrainingDiverged) as info:
        bp.fit(make(), X, Y, **options)
    message = str(info.value)
    assert "mean training loss of epoch 1 is" in message
    assert "more than 10 times the untrained model's loss" in message
    assert "Lower the learning rate" in message
    assert "divergence_factor=10 set that limit, divergence_factor=None turns it off" in message
    assert info.value.reason in message
    result = info.value.result
    assert result.epochs == len(result.history) == 0
    initial = make().init(seed=0, backend=backend, dtype="float32")
    _assert_bitwise_equal(_host(backend, result.params), _host(backend, initial))


class _Jump(bp.Schedule):
    """The base rate in the first epoch, 1e5 times it after (a test-only schedule)."""

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return base_lr if epoch < 1 else 1e5 * base_lr


def test_divergence_keeps_the_last_good_epoch_and_respects_the_factor():
    """The loss explodes from the 2nd epoch on (lr raised after the 1st): the result holds the
    1st epoch's parameters; a factor above the loss ratio lets the run finish."""
    be = backend_or_skip("numpy")
    seen = []
    log = bp.LambdaCallback(on_epoch_end=lambda run: seen.append(_host(be, run.params)))
    options = dict(optimizer=bp.Adam(lr=1e-2), schedule=_Jump(), epochs=3, batch_size=20, verbose=0)
    with pytest.raises(bp.TrainingDiverged, match="mean training loss of epoch 2") as info:
        bp.fit(_classifier(), X, LABELS, callbacks=[log], **options)
    assert info.value.result.epochs == len(seen) == 1
    _assert_bitwise_equal(_host(be, info.value.result.params), seen[0])
    finished = bp.fit(_classifier(), X, LABELS, divergence_factor=1e30, **options)
    assert finished.epochs == 3


def test_starting_from_worse_weights_than_the_init_is_not_a_divergence():
    """With ``params`` given the reference is the worse of theirs and the init's loss."""
    options = dict(optimizer=bp.SGD(lr=1e-9), epochs=1, verbose=0)
    init = _classifier().init(seed=0, dtype="float64")
    big = [{k: 100.0 * v for k, v in layer.items()} for layer in init]
    from_big = bp.fit(_classifier(), X, LABELS, params=big, **options).history["loss"][0]
    from_init = bp.fit(_classifier(), X, LABELS, **options).history["loss"][0]
    assert from_big > 10 * from_init  # the init's loss alone would have called this divergence


@pytest.mark.parametrize("factor", [1, 0.5, -3.0, float("inf"), float("nan"), "10", True])
def test_divergence_factor_is_checked(factor):
    with pytest.raises(ValueError, match=r"divergence_factor must be a finite number > 1.*None"):
        bp.fit(_classifier(), X, LABELS, divergence_factor=factor, epochs=1, verbose=0)


def test_the_digits_config_at_lr_1e3_fails_with_exit_1(capsys):
    """The issue's case: this used to exit 0 at chance accuracy with a loss of 2255."""
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn")
    argv = ["train", CONFIGS / "digits.toml", "--no-save", "--quiet"]
    argv += ["--set", "optimizer.lr=1e3", "--set", "training.epochs=3"]
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 1
    assert "TrainingDiverged" in err and "mean training loss of epoch 1" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_a_diverging_sklearn_fit_raises_solver_diverged(kind):
    """On NumPy: the estimators hand the backend to `fit`, whose check runs on each (above)."""
    pytest.importorskip("sklearn")
    from backprop.sklearn import MLPClassifier, MLPRegressor, SolverDiverged

    Y = EXPLODING[kind][1]
    estimator = {"classifier": MLPClassifier, "regressor": MLPRegressor}[kind]
    # keywords: MLPRegressor's first parameter is `loss`, as in scikit-learn >= 1.7
    model = estimator(hidden_layer_sizes=(16,), learning_rate_init=1e3, max_iter=5, random_state=0)
    with pytest.raises(SolverDiverged) as info:
        model.fit(X, Y)
    assert isinstance(info.value, ValueError) and isinstance(info.value, bp.TrainingDiverged)
    message = str(info.value)
    assert message.startswith(f"{estimator.__name__} diverged: the mean training loss of epoch")
    assert "Lower learning_rate_init (now 1000)" in message and "StandardScaler" in message
    assert "divergence_factor" not in message  # not an estimator parameter


# -- 3. values the training dtype cannot hold ------------------------------------------------------
@pytest.mark.parametrize("where", ["X", "Y", "validation_data X", "validation_data Y"])
def test_values_beyond_float32_are_a_data_error(backend, where):
    """1e39 is a finite float64 but infinite in float32: the error names the array, the value
    and the fix, instead of a divergence blamed on the learning rate."""
    big = {k: 1.0 for k in ("X", "Y", "validation_data X", "validation_data Y")}
    big[where] = 1e39
    model = bp.MLP([4, 8, 1], hidden="tanh")
    val = (X * big["validation_data X"], Y_REG * big["validation_data Y"])
    with pytest.raises(bp.DataError) as info:
        bp.fit(model, X * big["X"], Y_REG * big["Y"], validation_data=val, backend=backend,
               dtype="float32", epochs=1, verbose=0)  # fmt: skip
    message = str(info.value)
    assert message.startswith(f"{where} holds values up to ")
    assert "e+39 in absolute value, beyond the largest float32 (3.403e+38)" in message
    assert 'scale the data (e.g. standardize it) or train with dtype="float64"' in message


def test_values_beyond_float32_train_in_float64():
    model = bp.MLP([4, 8, 1], hidden="tanh")
    result = bp.fit(model, X * 1e39, Y_REG, dtype="float64", epochs=1, verbose=0)
    assert result.epochs == 1


# -- 4. Ctrl-C -------------------------------------------------------------------------------------
def _options(backend, **extra):
    """5 epochs of 6 steps (48 training rows, batch 8) with dropout (the host dropout RNG) and
    a plateau schedule (schedule state), so a resume must restore both exactly."""
    options = dict(
        optimizer=bp.SGD(lr=0.05, momentum=0.9),
        schedule=bp.get_schedule("reduce_on_plateau", patience=1),
        backend=backend,
        epochs=5,
        batch_size=8,
        seed=3,
        validation_split=0.2,
        verbose=0,
    )
    return {**options, **extra}


def _model(dropout: float = 0.2) -> bp.MLP:
    return bp.MLP(
        [4, 16, 3], hidden="relu", output="softmax", loss="cross_entropy", dropout=dropout
    )


def _assert_same_run(resumed: bp.FitResult, uninterrupted: bp.FitResult) -> None:
    assert resumed.epochs == uninterrupted.epochs == 5
    _assert_bitwise_equal(
        _host(resumed.backend, resumed.params),
        _host(uninterrupted.backend, uninterrupted.params),
    )
    assert resumed.history.step_losses == uninterrupted.history.step_losses
    for column in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert resumed.history[column] == uninterrupted.history[column], column


def _interrupt_and_resume(backend, tmp_path, hooks, model, **extra) -> bp.TrainingInterrupted:
    """Train with ``hooks`` (which raise KeyboardInterrupt) and a `ModelCheckpoint` in
    tmp_path/run, resume from its last.npz (a copy, kept for the caller's checks), and check
    the result is the uninterrupted run's; return the interruption."""
    noop = bp.LambdaCallback(**{k: (lambda *args: None) for k in hooks})

    def checkpoints(name: str) -> bp.ModelCheckpoint:
        return bp.ModelCheckpoint(tmp_path / name, every=100, monitor="loss")

    options = _options(backend, **extra)
    with pytest.raises(bp.TrainingInterrupted) as info:
        bp.fit(
            model, X, LABELS, callbacks=[checkpoints("run"), bp.LambdaCallback(**hooks)], **options
        )
    resumed_cb, plain_cb = checkpoints("resumed"), checkpoints("plain")
    last = tmp_path / "run" / "last.npz"
    resumed = bp.fit(model, X, LABELS, callbacks=[resumed_cb, noop], resume=last, **options)
    plain = bp.fit(model, X, LABELS, callbacks=[plain_cb, noop], **options)
    _assert_same_run(resumed, plain)
    assert resumed_cb.state_dict() == plain_cb.state_dict()
    return info.value


@pytest.mark.parametrize("name", ["numpy", "jax", "torch"])
def test_ctrl_c_in_epoch_3_resumes_bit_identical(name, tmp_path):
    backend = backend_or_skip(name)
    epochs_seen: list[int] = []

    def press_ctrl_c(run, loss) -> None:
        epochs_seen.append(run.epoch)
        if epochs_seen.count(2) == 3:  # the 3rd step of the 3rd epoch
            raise KeyboardInterrupt

    stop = _interrupt_and_resume(backend, tmp_path, {"on_batch_end": press_ctrl_c}, _model())
    assert isinstance(stop, KeyboardInterrupt)
    assert str(stop) == "training interrupted by the user after epoch 2"
    result = stop.result
    assert result.epochs == len(result.history) == 2
    assert result.stop_reason == "interrupted by the user after epoch 2"
    assert stop.run.epoch == 2 and stop.run.step == 12 and stop.run.samples == 96
    assert len(stop.run.history.step_losses) == 12
    last = bp.load_checkpoint(tmp_path / "run" / "last.npz")
    assert last.meta["position"] == {"epoch": 2, "step": 12, "samples": 96}
    _assert_bitwise_equal(_host(None, last.trees["params"]), _host(backend, result.params))


@pytest.mark.parametrize("name", ["numpy", "jax"])
def test_ctrl_c_between_compiled_epochs_rolls_back_the_epoch(name, tmp_path):
    """compile_epoch=True (one jax.lax.scan per epoch on JAX): the interrupt comes from a
    callback's on_epoch_end in epoch 3, after ModelCheckpoint's on_epoch_end updated its best;
    the run, the history and that best all go back to the end of epoch 2."""
    backend = backend_or_skip(name)

    def press_ctrl_c(run) -> None:
        if run.epoch == 3:
            raise KeyboardInterrupt

    stop = _interrupt_and_resume(
        backend, tmp_path, {"on_epoch_end": press_ctrl_c}, _model(0.0), compile_epoch=True
    )
    assert stop.result.epochs == len(stop.result.history) == 2
    last = bp.load_checkpoint(tmp_path / "run" / "last.npz")
    assert last.meta["position"]["epoch"] == 2
    assert last.meta["callbacks"][0]["state"]["best_epoch"] == 2


def test_ctrl_c_in_the_first_epoch_saves_epoch_0(tmp_path):
    def press_ctrl_c(run, loss) -> None:
        raise KeyboardInterrupt

    backend = backend_or_skip("numpy")
    stop = _interrupt_and_resume(backend, tmp_path, {"on_batch_end": press_ctrl_c}, _model())
    assert stop.result.epochs == 0 and stop.result.stop_reason.endswith("after epoch 0")


def test_on_interrupt_sees_the_rolled_back_run():
    seen = []

    def press_ctrl_c(run, loss) -> None:
        if run.epoch == 1:
            raise KeyboardInterrupt

    hooks = bp.LambdaCallback(
        on_batch_end=press_ctrl_c,
        on_interrupt=lambda run: seen.append((run.epoch, run.step, len(run.history))),
    )
    with pytest.raises(KeyboardInterrupt):
        bp.fit(_model(), X, LABELS, callbacks=[hooks], **_options("numpy"))
    assert seen == [(1, 6, 1)]
