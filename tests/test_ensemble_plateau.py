"""Schedules that watch a column (ReduceOnPlateau) with ``fit(..., ensemble=K / sweep=...)``.

Proven here: each member keeps its own plateau state (best, bad epochs, scale), fed by its own
column (``loss[k]``, ``val_loss[k]``, ``val_accuracy[k]``) and its own base rate, so member k's
learning rates, losses and parameters are those of member k trained alone with the schedule
(NumPy and array_api_strict bit for bit, other float64 backends to rounding); the schedule's
stop rule stops that member only, training ends when the last stops; the members' rate curves
differ when their plateaus do; a diverged member's state stays where its parameters were put
back; data sources; checkpoints (the state is ``{"members": [K states]}``) resume exactly and
a state of another length is refused; a config with ``[optimizer.schedule] name =
"reduce_on_plateau"`` and ``[training] ensemble = 3`` trains.
"""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
from conftest import backend_or_skip
from fit_helpers import blobs, classifier

import backprop as bp
from backprop.app import cli
from backprop.training import checkpoint
from backprop.training.checkpoint import CheckpointError

K, SEED, LRS = 3, 5, [0.5, 0.1, 0.03]
X, LABELS = blobs(20, 3, 4)


def _model():
    return classifier((4, 8, 3))


def _plateau(monitor):
    """Cut by 2 after every epoch without a 0.01 improvement; stop below 0.01 (measured on
    these data: members stop after 12-23 epochs, at three different epochs)."""
    return bp.get_schedule(
        "reduce_on_plateau", monitor=monitor, patience=0, factor=0.5, min_delta=0.01, min_lr=0.01
    )


def _kw(monitor="loss", **changes):
    kw = dict(
        seed=SEED, epochs=30, batch_size=16, dtype="float64", verbose=0, validation_split=0.25,
        optimizer=bp.SGD(0.1, momentum=0.5), schedule=_plateau(monitor),
    )  # fmt: skip
    return {**kw, **changes}


def _alone(k, **kw):
    """Member k trained alone: its start ``init(SEED + k)``, its rate, the same batches."""
    kw = {**kw, "optimizer": bp.SGD(LRS[k], momentum=0.5)}
    return bp.fit(_model(), X, LABELS, params=_model().init(SEED + k, dtype=kw["dtype"]), **kw)


def _host(result, params):
    return [np.asarray(result.backend.to_numpy(v)) for p in params for v in p.values()]


def _untimed(records):
    return [{c: v for c, v in r.items() if c not in ("time", "samples_per_s")} for r in records]


@pytest.mark.parametrize("monitor", ["loss", "val_loss", "val_accuracy"])
def test_member_k_is_member_k_alone_with_its_own_plateau(monitor):
    ens = bp.fit(_model(), X, LABELS, sweep={"lr": LRS}, **_kw(monitor))
    alone = [_alone(k, **_kw(monitor)) for k in range(K)]
    for k in range(K):
        own = ens.member_history(k)
        assert _untimed(own.records) == _untimed(alone[k].history.records)  # lr column too
        assert own.step_losses == alone[k].history.step_losses
        mine, theirs = _host(ens, ens.member_params(k)), _host(alone[k], alone[k].params)
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
        assert "reduce_on_plateau" in alone[k].stop_reason
        assert "learning-rate schedule 'reduce_on_plateau' ended training" in ens.stop_reasons[k]
    # the stop rule stops each member where it stops alone; the run ends with the last
    assert ens.stopped == [a.epochs for a in alone] and len(set(ens.stopped)) == K
    assert ens.epochs == max(ens.stopped) < 30
    assert ens.stop_reason.startswith("every member stopped")
    # each plateau is its own: the members' first cuts come in different epochs (one state
    # for all would cut every member in the same epoch)
    curves = [ens.member_history(k)["lr"] for k in range(K)]
    first_cut = [next(e for e, lr in enumerate(curves[k]) if lr < LRS[k]) for k in range(K)]
    assert len(set(first_cut)) > 1, first_cut
    # a stopped member is frozen: its rate (and parameters) stay as they were
    k = int(np.argmin(ens.stopped))
    frozen = [r[f"lr[{k}]"] for r in ens.history.records[ens.stopped[k] - 1 :]]
    assert len(frozen) > 1 and len(set(frozen)) == 1


@pytest.mark.parametrize("name", ["array_api_strict", "torch"])  # JAX: 9 s of compiling
def test_other_backends_member_equals_alone(name):
    """float64: the same rate curves (the plateau decisions agree), losses to rounding."""
    backend = backend_or_skip(name)
    if not backend.supports_dtype("float64"):
        pytest.skip(f"{backend.name} on {backend.device_name} has no float64")
    kw = _kw("val_loss", backend=backend, epochs=10)
    ens = bp.fit(_model(), X, LABELS, sweep={"lr": LRS}, **kw)
    for k in range(K):
        alone = _alone(k, **kw)
        got, want = ens.member_history(k), alone.history
        assert got["lr"] == want["lr"]
        np.testing.assert_allclose(got.step_losses, want.step_losses, rtol=1e-12)
        if backend.name == "array_api_strict":
            assert got.step_losses == want.step_losses
    assert ens.member_history(0)["lr"][-1] < LRS[0]  # a cut happened


def test_diverged_member_keeps_the_state_of_its_last_good_epoch():
    """A member put back to the previous epoch (divergence) does not step its plateau with
    the diverged epoch's values (a NaN never improves: it would count a bad epoch and cut)."""
    seen = []
    spy = bp.LambdaCallback(on_train_end=lambda run: seen.append(run.schedule_state))
    schedule = bp.get_schedule("reduce_on_plateau", patience=0, min_delta=0.01, min_lr=0.0)
    ens = bp.fit(
        _model(), X * 1e3, LABELS, sweep={"lr": [1e-6, 1e4]}, optimizer=bp.SGD(0.1),
        schedule=schedule, callbacks=[spy], seed=SEED, epochs=3, batch_size=16,
        dtype="float64", verbose=0,
    )  # fmt: skip
    assert ens.stopped == [None, 0] and ens.stop_reasons[1].startswith("diverged")
    assert seen[0]["members"][1] == schedule.init()  # never stepped: no epoch was good
    assert ens.history["lr[1]"] == [1e4] * 3
    assert seen[0]["members"][0]["scale"] < 1.0  # member 0 (no progress at 1e-6) was cut


def test_on_a_memory_mapped_source_as_in_memory(tmp_path):
    """The loop over data sources takes each step's rates from the members' states."""
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", LABELS)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    kw = _kw("loss", validation_split=0.0, epochs=12)
    source = bp.fit(_model(), *mm, sweep={"lr": LRS}, **kw)
    memory = bp.fit(_model(), X, LABELS, sweep={"lr": LRS}, **kw)
    assert _untimed(source.history.records) == _untimed(memory.history.records)
    assert source.history.step_losses == memory.history.step_losses
    assert len({source.history[f"lr[{k}]"][-1] / LRS[k] for k in range(K)}) > 1


# -- checkpoints ----------------------------------------------------------------------------------


def _resume_kw(directory, interrupt_at=None):
    steps = []

    def on_batch_end(run, loss):
        steps.append(1)
        if interrupt_at is not None and len(steps) == interrupt_at:
            raise KeyboardInterrupt

    callbacks = [
        bp.ModelCheckpoint(directory, every=1),
        bp.LambdaCallback(on_batch_end=on_batch_end),
    ]
    return {**_kw("val_loss", epochs=16), "callbacks": callbacks}


def test_resume_equals_uninterrupted(tmp_path):
    full = bp.fit(_model(), X, LABELS, sweep={"lr": LRS}, **_resume_kw(tmp_path / "full"))
    assert min(s for s in full.stopped if s is not None) < 16  # a stop went through
    steps_per_epoch = 3  # 45 training rows, batches of 16
    with pytest.raises(bp.TrainingInterrupted):  # in epoch 9: last.npz holds epoch 8
        bp.fit(
            _model(), X, LABELS, sweep={"lr": LRS},
            **_resume_kw(tmp_path / "cut", 8 * steps_per_epoch + 2),
        )  # fmt: skip
    saved = checkpoint.load_checkpoint(tmp_path / "cut" / "last.npz").meta["schedule_state"]
    assert list(saved) == ["members"] and len(saved["members"]) == K
    assert len({s["scale"] for s in saved["members"]}) > 1  # cut at different epochs
    resumed = bp.fit(
        _model(), X, LABELS, sweep={"lr": LRS}, resume=tmp_path / "cut" / "last.npz",
        **_resume_kw(tmp_path / "cut"),
    )  # fmt: skip
    for a, b in zip(_host(full, full.params), _host(resumed, resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _untimed(resumed.history.records) == _untimed(full.history.records)
    assert resumed.history.step_losses == full.history.step_losses
    assert resumed.stopped == full.stopped and resumed.stop_reasons == full.stop_reasons


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (lambda s: s[:2], "a list of 3 JSON objects"),
        (lambda s: [s[0], {"scale": 1.0}, s[2]], r"schedule_state\['members'\]\[1\]"),
    ],
)
def test_resume_refuses_edited_member_states(tmp_path, members, expected):
    kw = _kw("loss", epochs=2, callbacks=[bp.ModelCheckpoint(tmp_path, every=1)])
    bp.fit(_model(), X, LABELS, sweep={"lr": LRS}, **kw)
    ckpt = checkpoint.load_checkpoint(tmp_path / "last.npz")
    meta, trees = copy.deepcopy(ckpt.meta), dict(ckpt.trees)
    host = {"history": trees.pop("history")} if "history" in trees else None
    meta["schedule_state"]["members"] = members(meta["schedule_state"]["members"])
    checkpoint.save_checkpoint(tmp_path / "edited.npz", trees, meta, None, host)
    with pytest.raises(CheckpointError, match=expected):
        bp.fit(_model(), X, LABELS, sweep={"lr": LRS}, resume=tmp_path / "edited.npz", **kw)


# -- configs --------------------------------------------------------------------------------------
TOML = """\
[data]
name = "spirals"
n_per_class = 20

[model]
hidden_sizes = [8]
output = "softmax"
loss = "cross_entropy"

[optimizer]
name = "sgd"
lr = 0.3

[optimizer.schedule]
name = "reduce_on_plateau"
monitor = "val_loss"
patience = 0
factor = 0.5
min_delta = 0.01

[training]
epochs = 6
batch_size = 16
validation_split = 0.25
ensemble = 3
"""


def test_a_config_ensemble_with_reduce_on_plateau_trains(capsys, tmp_path):
    (tmp_path / "plateau.toml").write_text(TOML)
    run = tmp_path / "run"
    code = cli.main(["train", str(tmp_path / "plateau.toml"), "--run-dir", str(run), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"lr[0]", "lr[1]", "lr[2]", "val_loss[2]"} <= set(rows[0])
    rates = {tuple(float(r[f"lr[{k}]"]) for r in rows) for k in range(K)}
    assert all(max(r) == 0.3 for r in rates) and min(min(r) for r in rates) < 0.3  # cut
