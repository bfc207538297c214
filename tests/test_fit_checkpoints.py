"""Checkpointing and resuming `fit` through the public API.

A resumed run is the run that was never interrupted (bitwise on one backend, to float32 rounding
across backends), early stopping included; a checkpoint that does not belong to the run, or is
damaged, is refused with a `CheckpointError` and left as it was; `ModelCheckpoint` writes what it
promises and nothing else; a diverging run never overwrites a good checkpoint.

Each JAX `fit` compiles its step (~0.5 s), so the straight runs and the 3-epoch checkpoints that
several tests compare against are made once per module (`runs`).
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, backend_or_skip, eps

import backprop as bp
from backprop.data import datasets

X_SPIRALS, Y_SPIRALS = datasets.make_spirals(n_per_class=40, seed=0)  # 80 rows, 2 classes
# 4 steps per epoch, 3 with a validation split: whole batches only, since on JAX a partial batch
# costs one more compilation per fit.
BATCH, SEED = 20, 3
WALL_CLOCK = ("time", "samples_per_s")  # the only history columns two equal runs do not share


# -- helpers -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    """One training configuration: the arguments every compared run shares."""

    id: str
    optimizer: bp.Optimizer
    schedule: Any = None
    dropout: float = 0.0
    fit_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


PLAIN = Case("plain", bp.SGD(lr=0.1, momentum=0.9))
CASES = [
    # ReduceOnPlateau has state (best, bad_epochs, scale): the loss falls until epoch 3 and rises
    # in epoch 4, so the rate halves from epoch 5 on only if the resumed run knows the best loss.
    Case(
        "sgd-momentum-plateau-dropout-classweight",
        bp.SGD(lr=0.2, momentum=0.9),
        bp.get_schedule("reduce_on_plateau", monitor="loss", patience=0, factor=0.5),
        dropout=0.2,
        fit_kwargs={"class_weight": {0: 1.0, 1: 3.0}},
    ),
    Case(
        "adam-cosine-warmup-dropout-balanced-valsplit",
        bp.Adam(lr=0.01),
        bp.get_schedule("cosine", warmup_steps=5, decay_steps=15, min_lr=1e-4),
        dropout=0.2,
        fit_kwargs={"class_weight": "balanced", "validation_split": 0.25},
    ),
]


def _model(sizes=(2, 8, 2), dropout: float = 0.0) -> bp.MLP:
    return bp.MLP(sizes, hidden="tanh", output="softmax", loss="cross_entropy", dropout=dropout)


def _fit(backend, dtype: str, case: Case, epochs: int, **overrides) -> bp.FitResult:
    """`bp.fit` on the spirals with ``case``'s arguments; ``overrides`` replace any of them."""
    kwargs = dict(
        optimizer=case.optimizer,
        schedule=case.schedule,
        backend=backend,
        dtype=dtype,
        epochs=epochs,
        batch_size=BATCH,
        seed=SEED,
        verbose=0,
        **case.fit_kwargs,
    )
    kwargs.update(overrides)
    model = kwargs.pop("model", None) or _model(dropout=case.dropout)
    return bp.fit(model, X_SPIRALS, Y_SPIRALS, **kwargs)


def _saver(directory: pathlib.Path, every: int = 1) -> bp.ModelCheckpoint:
    """The checkpoints of the compared runs; "loss" exists with or without validation data."""
    return bp.ModelCheckpoint(directory, every=every, monitor="loss")


def _host(backend, tree) -> list[dict[str, np.ndarray]]:
    """A params-like tree (list of dicts of arrays) on the host; ``backend=None``: NumPy already."""
    move = np.asarray if backend is None else backend.to_numpy
    return [{k: np.asarray(move(v)) for k, v in layer.items()} for layer in tree]


def _assert_params_equal(actual, expected) -> None:
    """Bitwise: same keys, dtypes, shapes and values (both `_host` trees)."""
    assert len(actual) == len(expected)
    for a_layer, e_layer in zip(actual, expected, strict=True):
        assert list(a_layer) == list(e_layer)
        for key in e_layer:
            np.testing.assert_array_equal(a_layer[key], e_layer[key], strict=True)


def _history(result: bp.FitResult) -> tuple[list[dict[str, float]], list[float]]:
    records = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in result.history.records]
    return records, result.history.step_losses


def _same_run_rtol(backend, dtype: str) -> float | None:
    """None, meaning bitwise, on a CPU: there every backend was measured to repeat a resumed run
    bit for bit (the same operations on the same bits). A GPU may reduce with atomics (XLA) whose
    order changes between runs, so a rerun may differ as another backend does: the cross-backend
    tolerance of `test_resume_on_another_backend`, 50 eps."""
    return None if backend.device_name == "cpu" else 50 * eps(dtype)


def _assert_same_run(backend, dtype: str, actual: bp.FitResult, expected: bp.FitResult) -> None:
    """Same params, optimizer state and history (less the wall clock): bitwise where
    `_same_run_rtol` says so, else to that tolerance."""
    rtol = _same_run_rtol(backend, dtype)
    trees = [(actual.params, expected.params)] + [
        (actual.opt_state[k], expected.opt_state[k])
        for k in ("velocity", "m", "v")
        if k in expected.opt_state
    ]
    for a_tree, e_tree in trees:
        if rtol is None:
            _assert_params_equal(_host(backend, a_tree), _host(backend, e_tree))
        else:
            for a, e in zip(_host(backend, a_tree), _host(backend, e_tree), strict=True):
                for key in e:
                    np.testing.assert_allclose(a[key], e[key], rtol=rtol, atol=rtol)
    if rtol is None:
        assert _history(actual) == _history(expected)
        return
    (a_records, a_steps), (e_records, e_steps) = _history(actual), _history(expected)
    assert [sorted(r) for r in a_records] == [sorted(r) for r in e_records]
    for column in e_records[0]:
        a_col, e_col = [r[column] for r in a_records], [r[column] for r in e_records]
        np.testing.assert_allclose(a_col, e_col, rtol=rtol, err_msg=column)
    np.testing.assert_allclose(a_steps, e_steps, rtol=rtol)


def _files(directory: pathlib.Path) -> set[str]:
    """Every entry of ``directory``, hidden ones included (temporary files start with '.')."""
    return {p.name for p in directory.iterdir()}


def _checkpoint_epoch(path: pathlib.Path) -> int | None:
    return bp.load_checkpoint(path).meta["position"]["epoch"] if path.exists() else None


class AfterEpoch(bp.Callback):
    """Calls ``fn(run)`` in ``after_epoch``: after every ``on_epoch_end``, and after the
    ``after_epoch`` of the callbacks listed before it, so after a `ModelCheckpoint` before it has
    written this epoch's files."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def after_epoch(self, run) -> None:
        self.fn(run)


class _Runs:
    """The 6-epoch straight runs and the 3-epoch runs (with their last.npz) of each backend,
    case and dtype, each made once. Tests only read them; a test resumes from its own copy."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self._straight: dict[tuple, bp.FitResult] = {}
        self._first: dict[tuple, tuple[bp.FitResult, pathlib.Path]] = {}

    def straight(self, backend, case: Case, dtype: str) -> bp.FitResult:
        key = (backend.name, case.id, dtype)
        if key not in self._straight:
            self._straight[key] = _fit(backend, dtype, case, epochs=6)
        return self._straight[key]

    def first(self, backend, case: Case, dtype: str) -> tuple[bp.FitResult, pathlib.Path]:
        key = (backend.name, case.id, dtype)
        if key not in self._first:
            directory = self.directory / "-".join(key)
            result = _fit(backend, dtype, case, epochs=3, callbacks=[_saver(directory)])
            self._first[key] = (result, directory / "last.npz")
        return self._first[key]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> _Runs:
    return _Runs(tmp_path_factory.mktemp("runs"))


def _resume(runs, start, finish, case: Case, dtype: str, directory: pathlib.Path):
    """Copy ``start``'s 3-epoch last.npz into ``directory`` and continue it to 6 epochs on
    ``finish``, checkpointing into the same directory as a restarted job would."""
    path = directory / "last.npz"
    shutil.copyfile(runs.first(start, case, dtype)[1], path)
    return _fit(finish, dtype, case, epochs=6, callbacks=[_saver(directory)], resume=path)


# -- 1. a resumed run is the uninterrupted run ---------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_resume_equals_uninterrupted(backend, case, runs, tmp_path):
    _assert_resume_equals_uninterrupted(backend, case, "float32", runs, tmp_path)


def _assert_resume_equals_uninterrupted(backend, case, dtype, runs, tmp_path) -> None:
    """3 epochs, then resume to 6 == 6 epochs straight. Params, optimizer state (Adam's 0-d step
    count too), both host RNG streams (batch order, dropout masks), the schedule state and the
    history come back exactly, so the resumed run repeats the same operations on the same bits:
    bitwise equal on a CPU (see `_same_run_rtol`)."""
    straight = runs.straight(backend, case, dtype)
    first, path = runs.first(backend, case, dtype)
    ckpt = bp.load_checkpoint(path)
    assert ckpt.meta["position"]["epoch"] == first.epochs == 3 and ckpt.meta["dtype"] == dtype
    resumed = _resume(runs, backend, backend, case, dtype, tmp_path)
    assert (resumed.epochs, resumed.stop_reason) == (6, None)
    _assert_same_run(backend, dtype, resumed, straight)
    assert [r["epoch"] for r in resumed.history.records] == [1, 2, 3, 4, 5, 6]
    assert len(set(resumed.history["lr"])) > 1  # the schedule did change the rate
    if "t" in straight.opt_state:  # Adam's step count: a 0-d array of the params' dtype
        t = ckpt.trees["opt_state"]["t"]
        assert t.shape == () and t.dtype == dtype and float(t) == 3 * 3  # 3 epochs of 3 steps
        assert float(backend.to_numpy(resumed.opt_state["t"])) == 6 * 3
    # ModelCheckpoint's best value came back too: best.npz (not copied) is written again only
    # if an epoch after the checkpoint beats the best loss of the first three.
    assert _checkpoint_epoch(tmp_path / "last.npz") == 6
    best = int(np.argmin(resumed.history["loss"])) + 1
    assert _checkpoint_epoch(tmp_path / "best.npz") == (best if best > 3 else None)
    assert _files(tmp_path) == {"last.npz"} | ({"best.npz"} if best > 3 else set())


class Killed(Exception):
    """The process dying mid-run, simulated."""


class Crash(bp.Callback):
    """Kills the run at the end of epoch ``at``, once the checkpoint callback before it has
    written the epoch. ``Crash(None)`` never does; the resumed run carries one because a
    checkpoint resumes only with the same callback types."""

    def __init__(self, at: int | None) -> None:
        self.at = at

    def after_epoch(self, run) -> None:
        if run.epoch == self.at:
            raise Killed(f"simulated kill after epoch {run.epoch}")


def test_resume_after_a_kill_keeps_the_planned_schedule(tmp_path):
    """A run planned for 6 epochs and killed after 3 resumes on the same cosine curve, whose
    default decay spans ``total_steps`` (from ``epochs``). Host-side logic: NumPy suffices."""
    be = backend_or_skip("numpy")
    case = Case("cosine-total-steps", bp.Adam(lr=0.02), bp.get_schedule("cosine", warmup_steps=4))
    straight = _fit(be, "float32", case, epochs=6)
    with pytest.raises(Killed, match="after epoch 3"):
        _fit(be, "float32", case, epochs=6, callbacks=[_saver(tmp_path), Crash(3)])
    assert _checkpoint_epoch(tmp_path / "last.npz") == 3
    resumed = _fit(
        be,
        "float32",
        case,
        epochs=6,
        callbacks=[_saver(tmp_path), Crash(None)],
        resume=tmp_path / "last.npz",
    )
    _assert_same_run(be, "float32", resumed, straight)


# -- 2. across backends ----------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["to-numpy", "from-numpy"])
@pytest.mark.parametrize("other", [name for name in BACKENDS if name != "numpy"])
def test_resume_on_another_backend(other, direction, runs, tmp_path):
    """Checkpoint on one backend, resume on the other: the run continues the one that stayed on
    the first backend, dropout masks and plateau schedule included. Only the summation order of
    matmuls and reductions changes (BLAS vs XLA vs ATen), so losses and params differ by float32
    rounding: measured <= 2 eps on CPU over the 12 resumed steps; 50 eps leaves room for other
    BLAS builds and GPUs."""
    case, start = CASES[0], backend_or_skip(other)
    finish = backend_or_skip("numpy")
    if direction == "from-numpy":
        start, finish = finish, start
    first, path = runs.first(start, case, "float32")
    assert bp.load_checkpoint(path).meta["backend"] == start.name
    resumed = _resume(runs, start, finish, case, "float32", tmp_path)
    straight = runs.straight(start, case, "float32")
    losses = np.asarray(resumed.history.step_losses)
    assert losses.shape == (6 * 4,)
    assert losses[:12].tolist() == first.history.step_losses  # the checkpoint's own history
    tol = 50 * eps("float32")
    np.testing.assert_allclose(losses, straight.history.step_losses, rtol=tol)
    assert resumed.history["lr"] == straight.history["lr"]
    for a_layer, e_layer in zip(
        _host(finish, resumed.params), _host(start, straight.params), strict=True
    ):
        for key in e_layer:
            np.testing.assert_allclose(a_layer[key], e_layer[key], rtol=tol, atol=tol)


# -- 3. early stopping survives a resume -----------------------------------------------------------
def _assert_early_stopping_resumes(backend, order: str, directory: pathlib.Path) -> None:
    """Resume from the checkpoint of the epoch before early stopping fires (its wait counter at
    patience - 1, its best epoch and best params from before): the resumed run must stop at the
    same epoch, report the same best epoch and restore the same best params."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(80, 2)), rng.integers(0, 2, size=80)  # random labels: overfits fast

    def run(epochs: int, resume=None) -> bp.FitResult:
        stopper = bp.EarlyStopping(monitor="val_loss", patience=3, restore_best=True)
        saver = bp.ModelCheckpoint(directory, keep_best=False)

        def keep(run) -> None:  # every epoch's checkpoint, to resume from any of them
            shutil.copyfile(saver.last_path, directory / f"epoch{run.epoch}.npz")

        callbacks = [stopper, saver] if order == "stopper-first" else [saver, stopper]
        return bp.fit(
            _model(),
            X,
            y,
            optimizer=bp.Adam(lr=0.05),
            backend=backend,
            epochs=epochs,
            batch_size=BATCH,
            seed=SEED,
            validation_split=0.25,
            callbacks=[*callbacks, AfterEpoch(keep)],
            verbose=0,
            resume=resume,
        )

    straight = run(30)
    assert straight.stop_reason is not None and "early stopping" in straight.stop_reason
    stop = straight.epochs
    assert straight.best_epoch is not None and straight.best_epoch < stop - 1
    resumed = run(30, resume=directory / f"epoch{stop - 1}.npz")
    assert (resumed.epochs, resumed.best_epoch) == (stop, straight.best_epoch)
    assert resumed.stop_reason == straight.stop_reason
    _assert_same_run(backend, "float32", resumed, straight)
    # The checkpoint of the stopping epoch remembers the stop: resuming it trains no further.
    again = run(30, resume=directory / f"epoch{stop}.npz")
    assert (again.epochs, again.best_epoch, again.stop_reason) == (
        stop,
        straight.best_epoch,
        straight.stop_reason,
    )
    _assert_same_run(backend, "float32", again, straight)


def test_resume_keeps_early_stopping_state(backend, tmp_path):
    _assert_early_stopping_resumes(backend, "stopper-first", tmp_path)


def test_resume_keeps_early_stopping_state_whatever_the_callback_order(tmp_path):
    """A checkpoint holds the state at the end of the epoch, whichever callback writes it. The
    callback order is backend-independent, so NumPy alone checks it."""
    _assert_early_stopping_resumes(backend_or_skip("numpy"), "saver-first", tmp_path)


# -- 4. refused checkpoints ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> pathlib.Path:
    """A 2-epoch NumPy run's last.npz; tests work on copies."""
    directory = tmp_path_factory.mktemp("saved_run")
    _fit(backend_or_skip("numpy"), "float32", PLAIN, epochs=2, callbacks=[_saver(directory)])
    return directory / "last.npz"


MISMATCHES = {
    "model-sizes": (
        {"model": _model((2, 16, 2))},
        r"for a model with sizes=\[2, 8, 2\] but this model has sizes=\[2, 16, 2\]",
    ),
    "model-dropout": (
        {"model": _model(dropout=0.5)},
        r"dropout=\[0\.0\] but this model has dropout=\[0\.5\]",
    ),
    "optimizer-lr": (
        {"optimizer": bp.SGD(lr=0.2, momentum=0.9)},
        r"for an optimizer with lr=0\.1 but this optimizer has lr=0\.2",
    ),
    "optimizer-momentum": (
        {"optimizer": bp.SGD(lr=0.1, momentum=0.5)},
        r"momentum=0\.9 but this optimizer has momentum=0\.5",
    ),
    "optimizer-kind": ({"optimizer": bp.Adam(lr=0.1)}, r"name=\"sgd\".*name=\"adam\""),
    "schedule": (
        {"schedule": bp.get_schedule("step", step_size=2)},
        r"for a schedule with name=\"constant\".* but this schedule has name=\"step\"",
    ),
    "batch-size": (
        {"batch_size": 32},
        r"for a fit setting with batch_size=20 but this fit setting has batch_size=32",
    ),
    "seed": ({"seed": 4}, r"for a fit setting with seed=3 but this fit setting has seed=4"),
    "validation-split": (
        {"validation_split": 0.25},
        r"validation_split=0\.0 but this fit setting has validation_split=0\.25",
    ),
    "callbacks-same-bare-name": (  # a user's class named like ours is another callback
        {"swap_saver": True},
        r"saved with callbacks \['backprop\.ModelCheckpoint'\] but this run has "
        r"\['test_fit_checkpoints\.ModelCheckpoint'\]",
    ),
    "callbacks": (
        {"extra_callbacks": [bp.EarlyStopping(monitor="loss")]},
        r"callbacks \['backprop\.ModelCheckpoint'\] but this run has "
        r"\['backprop\.ModelCheckpoint', 'backprop\.EarlyStopping'\]",
    ),
}


@pytest.mark.parametrize(("overrides", "match"), MISMATCHES.values(), ids=MISMATCHES.keys())
def test_resume_refuses_a_different_run(saved_run, overrides, match, tmp_path):
    path = tmp_path / "last.npz"
    shutil.copyfile(saved_run, path)
    before = path.read_bytes()
    overrides = dict(overrides)
    saver = _saver(tmp_path)
    if overrides.pop("swap_saver", False):
        saver = ModelCheckpoint(tmp_path, every=1, monitor="loss")
    overrides["callbacks"] = [saver, *overrides.pop("extra_callbacks", [])]
    with pytest.raises(bp.CheckpointError, match=match) as info:
        _fit(backend_or_skip("numpy"), "float32", PLAIN, epochs=4, resume=path, **overrides)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before  # the failed resume wrote nothing
    assert _files(tmp_path) == {"last.npz"}


class ModelCheckpoint(bp.ModelCheckpoint):
    """A user's callback that happens to share our class's bare name."""


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_truncate, "is truncated or corrupt"),
        (_flip_middle_byte, "is truncated or corrupt"),
        (None, "does not exist"),
    ],
    ids=["truncated", "one-byte-flipped", "missing"],
)
def test_resume_refuses_a_damaged_file(saved_run, damage, match, tmp_path):
    path = tmp_path / "last.npz"
    if damage is not None:
        path.write_bytes(damage(saved_run.read_bytes()))
    before = path.read_bytes() if damage is not None else None
    with pytest.raises(bp.CheckpointError, match=match) as info:
        _fit(
            backend_or_skip("numpy"),
            "float32",
            PLAIN,
            epochs=4,
            callbacks=[_saver(tmp_path)],
            resume=path,
        )
    assert str(path) in str(info.value)
    if before is None:
        assert _files(tmp_path) == set()
    else:
        assert path.read_bytes() == before and _files(tmp_path) == {"last.npz"}


def test_params_and_resume_together_are_refused(saved_run):
    be = backend_or_skip("numpy")
    params = _model().init(seed=0, backend=be)
    with pytest.raises(ValueError, match="give params or resume, not both"):
        _fit(be, "float32", PLAIN, epochs=4, params=params, resume=saved_run)


# -- 5. what ModelCheckpoint writes ----------------------------------------------------------------
def test_last_checkpoint_every_n_epochs(backend, tmp_path):
    """``every=2`` over 5 epochs: last.npz is written at epochs 2 and 4, and at the final epoch 5
    (a run always ends with its last state saved), each time with that epoch's params and
    history; nothing else (no best.npz, no temporary file) is left in the directory."""
    seen: list[tuple[int | None, list]] = []

    def look(run) -> None:
        seen.append((_checkpoint_epoch(tmp_path / "last.npz"), _host(backend, run.params)))

    saver = bp.ModelCheckpoint(tmp_path, every=2, keep_best=False)
    _fit(
        backend,
        "float32",
        PLAIN,
        epochs=5,
        validation_split=0.25,
        callbacks=[saver, AfterEpoch(look)],
    )
    assert [epoch for epoch, _ in seen] == [None, 2, 2, 4, 5]
    ckpt = bp.load_checkpoint(tmp_path / "last.npz")
    _assert_params_equal(_host(None, ckpt.trees["params"]), seen[4][1])
    assert [r["epoch"] for r in bp.History.from_checkpoint(ckpt).records] == [1, 2, 3, 4, 5]
    assert _files(tmp_path) == {"last.npz"}


def test_last_checkpoint_alone_needs_no_monitored_column(tmp_path):
    """``keep_best=False`` watches nothing, so a run without validation data may keep the default
    ``monitor="val_loss"``."""
    be = backend_or_skip("numpy")
    _fit(be, "float32", PLAIN, epochs=2, callbacks=[bp.ModelCheckpoint(tmp_path, keep_best=False)])
    assert _checkpoint_epoch(tmp_path / "last.npz") == 2
    assert _files(tmp_path) == {"last.npz"}


@pytest.mark.parametrize(
    ("monitor", "best"), [("val_loss", np.argmin), ("val_accuracy", np.argmax)]
)
def test_best_checkpoint_follows_the_monitor(backend, monitor, best, tmp_path):
    """best.npz is written only in epochs where ``monitor`` improves: after every epoch it holds
    the best epoch so far (the first one on ties, as argmin/argmax) and that epoch's params."""
    seen: list[tuple[int | None, list]] = []

    def look(run) -> None:
        seen.append((_checkpoint_epoch(tmp_path / "best.npz"), _host(backend, run.params)))

    saver = bp.ModelCheckpoint(tmp_path, every=3, monitor=monitor)
    # A large step makes the validation curve go up and down, so some epochs do not improve.
    result = _fit(
        backend,
        "float32",
        Case("jumpy", bp.SGD(lr=1.0, momentum=0.9)),
        epochs=8,
        validation_split=0.25,
        callbacks=[saver, AfterEpoch(look)],
    )
    column = np.asarray(result.history[monitor])
    expected = [int(best(column[: k + 1])) + 1 for k in range(len(column))]
    assert [epoch for epoch, _ in seen] == expected
    assert len(set(expected)) < len(expected) - 1, f"{monitor} improved too often: {column}"
    ckpt = bp.load_checkpoint(tmp_path / "best.npz")
    assert ckpt.meta["position"]["epoch"] == expected[-1]
    assert ckpt.meta["callbacks"][0]["state"]["best"] == column[expected[-1] - 1]
    _assert_params_equal(_host(None, ckpt.trees["params"]), seen[expected[-1] - 1][1])
    assert _checkpoint_epoch(tmp_path / "last.npz") == 8  # every=3, and the final epoch 8
    assert _files(tmp_path) == {"last.npz", "best.npz"}


# -- 6. the NaN guard never writes a bad checkpoint ------------------------------------------------
def test_divergence_keeps_the_last_good_checkpoint(backend, tmp_path):
    """Inputs and targets scaled by 10, SGD(lr=0.05, momentum=0.9): the loss falls for 2 epochs,
    rises in the 3rd, and the weights overflow in the 4th. `TrainingDiverged` carries the
    params and optimizer state of the end of epoch 3, the ones last.npz holds."""
    good: list[tuple[list, list]] = []

    def look(run) -> None:
        good.append((_host(backend, run.params), _host(backend, run.opt_state["velocity"])))

    with pytest.raises(bp.TrainingDiverged, match="training diverged") as info:
        bp.fit(
            bp.MLP([2, 8, 2], hidden="relu"),
            10.0 * X_SPIRALS,
            10.0 * Y_SPIRALS,
            optimizer=bp.SGD(lr=0.05, momentum=0.9),
            backend=backend,
            epochs=30,
            batch_size=BATCH,
            seed=SEED,
            callbacks=[_saver(tmp_path), bp.LambdaCallback(on_epoch_end=look)],
            verbose=0,
        )
    result = info.value.result
    assert result.epochs == len(good) == len(result.history) == 3
    assert f"the parameters from the end of epoch {result.epochs}" in str(info.value)
    params = _host(backend, result.params)
    assert all(np.isfinite(a).all() for layer in params for a in layer.values())
    _assert_params_equal(params, good[-1][0])
    _assert_params_equal(_host(backend, result.opt_state["velocity"]), good[-1][1])
    last = bp.load_checkpoint(tmp_path / "last.npz")
    assert last.meta["position"]["epoch"] == result.epochs
    _assert_params_equal(_host(None, last.trees["params"]), good[-1][0])
    _assert_params_equal(_host(None, last.trees["opt_state"]["velocity"]), good[-1][1])
    best = bp.load_checkpoint(tmp_path / "best.npz")
    assert all(np.isfinite(a).all() for layer in best.trees["params"] for a in layer.values())
    assert _files(tmp_path) == {"last.npz", "best.npz"}


# -- last, because on JAX float64 switches on x64 for the whole process, and every step and
# every eager op compiled before is compiled again after it -------------------------------------
def test_resume_equals_uninterrupted_float64(backend, runs, tmp_path):
    if not backend.supports_dtype("float64"):
        pytest.skip(f"{backend.name} on {backend.device_name} has no float64")
    _assert_resume_equals_uninterrupted(backend, CASES[1], "float64", runs, tmp_path)


def test_resume_keeps_the_samples_seen_for_invscaling(tmp_path):
    """InverseScaling's rate depends only on the samples seen (`Run.samples`, the checkpoint's
    ``position.samples``), so it restarts at ``base_lr`` if a resume forgets them. Host-side
    logic: NumPy suffices."""
    be = backend_or_skip("numpy")
    case = Case("sgd-invscaling", bp.SGD(lr=0.1), bp.get_schedule("invscaling", power_t=0.5))
    straight = _fit(be, "float32", case, epochs=4)
    _fit(be, "float32", case, epochs=2, callbacks=[_saver(tmp_path)])
    assert bp.load_checkpoint(tmp_path / "last.npz").meta["position"]["samples"] == 2 * 80
    resumed = _fit(
        be, "float32", case, epochs=4, callbacks=[_saver(tmp_path)], resume=tmp_path / "last.npz"
    )
    expected_lr = [0.1 / (e * 80 + 1) ** 0.5 for e in range(4)]  # rate of each epoch's steps
    np.testing.assert_allclose(straight.history["lr"], expected_lr, rtol=1e-12)
    assert resumed.history["lr"] == straight.history["lr"]
    _assert_same_run(be, "float32", resumed, straight)
