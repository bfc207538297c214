"""``fit(..., ensemble=K, sweep=..., member_order=...)``: K members trained as one program.

Proven here:

- member k of an ensemble equals the same model trained alone from ``model.init(seed + k)``
  on the same batches (shared order), on every backend and dtype: the step losses of its
  history to float64 rounding (1e-12 relative) or a few float32 ulps (measured: 0 on NumPy
  and array_api_strict, up to ~2 on torch and JAX), its parameters likewise; on NumPy bit
  for bit (also with ``member_order="member"`` and dropout: member k == ``fit(seed=s + k)``);
- a sweep of lr (with a schedule), alpha and AdamW weight decay equals single runs with
  those values;
- ModelCheckpoint + resume of an interrupted ensemble run equals the uninterrupted run bit
  for bit (NumPy, dropout and per-member early stopping included); another K, sweep or
  member order is a CheckpointError naming it;
- per-member early stopping: members stop at different epochs, each exactly where (and with
  the parameters: at its stop, or its best with restore_best) it stops alone; training ends
  when the last stops;
- a diverging member is frozen at its last good epoch, the others train on; all diverging
  raises TrainingDiverged;
- predict is the mean of predict_members; evaluate on stacked parameters; best_member;
- the argument errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip, eps
from fit_helpers import blobs, classifier

import backprop as bp
from backprop.nn import layers as L
from backprop.training.checkpoint import CheckpointError

K, SEED = 3, 5
X, LABELS = blobs(20, 3, 4)


def _model(alpha=0.0):
    return classifier((4, 8, 3), alpha=alpha)


def _host(result, params):
    return [np.asarray(result.backend.to_numpy(v)) for p in params for v in p.values()]


def _alone(model, k, **kw):
    """Member k trained alone: its own start, the ensemble's batch order (seed SEED)."""
    return bp.fit(model, X, LABELS, params=model.init(seed=SEED + k, dtype=kw["dtype"]), **kw)


def _differences(ens, k, alone):
    """(largest relative difference of the step losses, of the parameters)."""
    got, want = np.array(ens.member_history(k).step_losses), np.array(alone.history.step_losses)
    assert got.shape == want.shape
    steps = float(np.max(np.abs(got - want) / np.abs(want)))
    params = max(
        float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        for a, b in zip(_host(ens, ens.member_params(k)), _host(alone, alone.params), strict=True)
    )
    return steps, params


# -- member k == alone ----------------------------------------------------------------------------


def _kw(backend, dtype):
    """45 training rows in 3 batches of 15: no partial batch (JAX compiles one step less)."""
    return dict(
        seed=SEED, epochs=3, batch_size=15, backend=backend, dtype=dtype, verbose=0,
        validation_split=0.25, optimizer=bp.Adam(lr=0.05),
    )  # fmt: skip


def test_member_equals_alone(backend, dtype):
    ens = bp.fit(_model(), X, LABELS, ensemble=K, **_kw(backend, dtype))
    assert isinstance(ens, bp.training._ensemble_result.EnsembleResult) and ens.members == K
    assert ens.params[0]["W"].shape == (K, 4, 8)
    # float32: a few ulps (measured <= 2.2 on torch/JAX); parameters after 9 Adam steps, whose
    # 1/sqrt(v) amplifies an ulp of a tiny gradient, within 64 ulps of their scale
    loss_tol, param_tol = (
        (1e-12, 1e-12) if dtype == "float64" else (8 * eps(dtype), 64 * eps(dtype))
    )
    for k in range(K):
        alone = _alone(_model(), k, **_kw(backend, dtype))
        assert ens.member_history(k).columns == alone.history.columns
        steps, params = _differences(ens, k, alone)
        if backend.name in ("numpy", "array_api_strict"):
            assert steps == params == 0.0  # same operations in the same order
        assert steps <= loss_tol and params <= param_tol, (k, steps, params)


def test_member_order_with_dropout_equals_fit_with_the_member_seed():
    """member_order="member": member k draws the batch order and dropout masks of
    ``fit(seed=SEED + k)``, so it is that run, bit for bit."""
    model = bp.Sequential(
        [L.Dense(8, "tanh"), L.Dropout(0.3), L.Dense(3, "softmax")],
        loss="cross_entropy", input_shape=(4,),
    )  # fmt: skip
    kw = dict(epochs=2, batch_size=16, dtype="float64", verbose=0, optimizer=bp.SGD(0.1))
    ens = bp.fit(model, X, LABELS, ensemble=K, member_order="member", seed=SEED, **kw)
    shared = bp.fit(model, X, LABELS, ensemble=K, seed=SEED, **kw)
    for k in range(K):
        alone = bp.fit(model, X, LABELS, seed=SEED + k, **kw)
        assert _differences(ens, k, alone) == (0.0, 0.0)
    assert _differences(shared, 0, bp.fit(model, X, LABELS, seed=SEED, **kw)) == (0.0, 0.0)
    assert shared.member_history(1).step_losses != ens.member_history(1).step_losses


# -- sweeps ---------------------------------------------------------------------------------------

SWEEPS = {
    "lr": ({"lr": [0.3, 0.1, 0.01]}, bp.SGD(lr=0.1, momentum=0.9), "exponential"),
    "alpha": ({"alpha": [0.0, 0.1, 1.0]}, bp.Adam(lr=0.02), None),
    "weight_decay": ({"weight_decay": [0.0, 0.1, 0.5], "lr": [0.01, 0.02, 0.03]}, bp.AdamW(), None),
}


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_equals_single_runs(name):
    sweep, optimizer, schedule = SWEEPS[name]
    kw = dict(seed=SEED, epochs=3, batch_size=16, dtype="float64", verbose=0, schedule=schedule)
    ens = bp.fit(_model(), X, LABELS, sweep=sweep, optimizer=optimizer, validation_split=0.2, **kw)
    assert ens.members == K  # from the lists' length
    for k in range(K):
        values = {key: v[k] for key, v in sweep.items()}
        model = _model(values.pop("alpha", 0.0))
        opt = bp.optimizers.get_optimizer(**{**optimizer.spec(), **values})
        alone = _alone(model, k, optimizer=opt, validation_split=0.2, **kw)
        steps, params = _differences(ens, k, alone)
        assert steps <= 1e-13 and params <= 1e-13, (k, steps, params)
        assert ens.member_history(k)["lr"] == alone.history["lr"]


# -- checkpoints ----------------------------------------------------------------------------------


def _dropout_model():
    return bp.Sequential(
        [L.Dense(8, "relu"), L.Dropout(0.2), L.Dense(3, "softmax")],
        loss="cross_entropy", input_shape=(4,),
    )  # fmt: skip


def _resume_kw(directory, interrupt_at=None):
    steps = []

    def on_batch_end(run, loss):
        steps.append(1)
        if interrupt_at is not None and len(steps) == interrupt_at:
            raise KeyboardInterrupt

    callbacks = [
        bp.EarlyStopping(monitor="val_loss", patience=1, min_delta=0.05),
        bp.ModelCheckpoint(directory, every=1),
        bp.LambdaCallback(on_batch_end=on_batch_end),
    ]
    return dict(
        ensemble=K, sweep={"lr": [0.2, 0.05, 0.01]}, seed=SEED, epochs=4, batch_size=16,
        dtype="float64", verbose=0, validation_split=0.25, optimizer=bp.SGD(0.1, momentum=0.5),
        callbacks=callbacks,
    )  # fmt: skip


def _untimed(records):
    return [{c: v for c, v in r.items() if c not in ("time", "samples_per_s")} for r in records]


def test_resume_equals_uninterrupted(tmp_path):
    full = bp.fit(_dropout_model(), X, LABELS, **_resume_kw(tmp_path / "full"))
    steps_per_epoch = 3  # 45 training rows, batches of 16
    with pytest.raises(bp.TrainingInterrupted):  # in epoch 3: last.npz holds epoch 2
        bp.fit(_dropout_model(), X, LABELS, **_resume_kw(tmp_path / "cut", 2 * steps_per_epoch + 2))
    resumed = bp.fit(
        _dropout_model(), X, LABELS, resume=tmp_path / "cut" / "last.npz",
        **_resume_kw(tmp_path / "cut"),
    )  # fmt: skip
    for a, b in zip(_host(full, full.params), _host(resumed, resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _untimed(resumed.history.records) == _untimed(full.history.records)
    assert resumed.history.step_losses == full.history.step_losses
    assert resumed.stopped == full.stopped and resumed.best_epoch == full.best_epoch
    assert any(s is not None for s in full.stopped)  # early stopping state went through


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ensemble": 4, "sweep": None}, "members"),
        ({"sweep": {"lr": [0.2, 0.05, 0.02]}}, "lr"),
        ({"member_order": "member"}, "member_order"),
    ],
)
def test_resume_refuses_another_ensemble(tmp_path, change, named):
    kw = _resume_kw(tmp_path)
    bp.fit(_dropout_model(), X, LABELS, **{**kw, "epochs": 1})
    with pytest.raises(CheckpointError, match=named):
        bp.fit(_dropout_model(), X, LABELS, resume=tmp_path / "last.npz", **{**kw, **change})


# -- early stopping, divergence -------------------------------------------------------------------


@pytest.mark.parametrize("restore_best", [True, False])
def test_members_stop_early_each_as_alone(restore_best):
    lrs = [0.5, 0.1, 0.02]

    def es():
        return bp.EarlyStopping("val_loss", patience=2, min_delta=0.02, restore_best=restore_best)

    kw = dict(
        seed=SEED, epochs=40, batch_size=16, dtype="float64", verbose=0, validation_split=0.25
    )
    ens = bp.fit(
        _model(), X, LABELS, sweep={"lr": lrs}, optimizer=bp.SGD(0.1), callbacks=[es()], **kw
    )
    alone = [
        _alone(_model(), k, optimizer=bp.SGD(lrs[k]), callbacks=[es()], **kw) for k in range(K)
    ]
    assert ens.stopped == [a.epochs for a in alone]
    assert len(set(ens.stopped)) == K  # different epochs
    assert ens.epochs == max(ens.stopped) < 40
    assert ens.best_epoch == [a.best_epoch for a in alone]
    for k in range(K):
        assert _differences(ens, k, alone[k]) == (0.0, 0.0)
        own = ens.member_history(k).records
        assert _untimed(own) == _untimed(alone[k].history.records)
        assert [list(r) for r in own] == [list(r) for r in alone[k].history.records]
    assert ens.best_member == min(
        range(K), key=lambda k: alone[k].history["val_loss"][ens.final_epoch(k) - 1]
    )


def test_diverging_member_is_frozen_and_all_diverging_raises():
    kw = dict(seed=SEED, epochs=3, batch_size=16, dtype="float64", verbose=0)
    opt = bp.SGD(0.1)
    ens = bp.fit(_model(), X * 1e3, LABELS, sweep={"lr": [1e-6, 1e4]}, optimizer=opt, **kw)
    assert ens.stopped[0] is None and ens.stop_reasons[1].startswith("diverged")
    last_good = ens.stopped[1]
    alone = bp.fit(
        _model(), X * 1e3, LABELS, params=_model().init(SEED + 1, dtype="float64"), optimizer=opt,
        **{**kw, "epochs": max(last_good, 1)},
    ) if last_good else None  # fmt: skip
    frozen = _host(ens, ens.member_params(1))
    start = [np.asarray(v) for p in _model().init(SEED + 1, dtype="float64") for v in p.values()]
    for a, b in zip(frozen, _host(alone, alone.params) if alone else start, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(bp.TrainingDiverged, match="every member diverged"):
        bp.fit(_model(), X * 1e3, LABELS, sweep={"lr": [1e4, 3e4]}, optimizer=opt, **kw)


# -- results --------------------------------------------------------------------------------------


def test_predict_evaluate_and_summary():
    ens = bp.fit(_model(), X, LABELS, ensemble=K, seed=SEED, epochs=2, dtype="float64", verbose=0)
    members = ens.predict_members(X)
    assert members.shape == (K, len(X), 3)
    np.testing.assert_allclose(ens.predict(X), members.mean(axis=0), rtol=1e-14)
    scores = bp.evaluate(_model(), ens.params, X, LABELS)
    assert set(scores) == {"loss", "accuracy", "members"}
    for k in range(K):
        alone = bp.evaluate(_model(), ens.member_params(k), X, LABELS)
        assert scores["members"]["loss"][k] == pytest.approx(alone["loss"], rel=1e-13)
        assert scores["members"]["accuracy"][k] == alone["accuracy"]
    mean = ens.predict(X)
    assert scores["loss"] == pytest.approx(
        -np.mean(np.log(mean[np.arange(len(X)), LABELS])), rel=1e-12
    )
    assert scores["accuracy"] == np.mean(mean.argmax(1) == LABELS)
    assert bp.evaluate(ens.ensemble, ens.params, X, LABELS) == scores
    last = ens.history.last
    assert last["loss"] == pytest.approx(np.mean([last[f"loss[{k}]"] for k in range(K)]), rel=1e-15)
    assert ens.best_member == int(np.argmin([last[f"loss[{k}]"] for k in range(K)]))
    assert (
        f"ensemble of {K} members" in ens.summary
        and f"best member {ens.best_member}" in ens.summary
    )


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ensemble": 0}, "ensemble must be the number of members, an int >= 1"),
        ({"ensemble": True}, "ensemble must be"),
        (
            {"ensemble": 3, "sweep": {"lr": [0.1, 0.2]}},
            r"one value per member \(3, from ensemble=3\)",
        ),
        ({"sweep": {"lr": [0.1, 0.2], "alpha": [0.1]}}, r"sweep\['alpha'\] has 1"),
        ({"sweep": {"momentum": [0.1, 0.2]}}, r"unknown key\(s\) \['momentum'\]"),
        ({"sweep": {"lr": [0.1, -1.0]}}, r"sweep\['lr'\] must be a list of finite numbers > 0"),
        ({"sweep": {"weight_decay": [0.1, 0.2]}}, "use AdamW"),
        ({"member_order": "own"}, "member_order must be one of"),
        ({"member_order": "member"}, "applies to ensembles"),
        ({"ensemble": 2, "diagnostics": True}, "diagnostics=True is not supported"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bp.fit(_model(), X, LABELS, epochs=1, verbose=0, **kwargs)


def test_jax_compiled_epoch_reuses_the_step_for_another_sweep():
    """The lr and alpha sweep values are traced: a new sweep traces nothing new."""
    be = backend_or_skip("jax")
    from backprop.training import step

    kw = {**_kw(be, "float32"), "epochs": 1}
    bp.fit(_model(), X, LABELS, sweep={"lr": [0.1, 0.2, 0.3], "alpha": [0.0, 0.1, 0.2]}, **kw)
    fns = {key: fn for key, fn in step._COMPILED.items() if str(key[0]).startswith("ensemble")}
    sizes = {key: fn._cache_size() for key, fn in fns.items()}
    bp.fit(_model(), X, LABELS, sweep={"lr": [0.3, 0.4, 0.5], "alpha": [0.2, 0.3, 0.4]}, **kw)
    assert {key: fn._cache_size() for key, fn in fns.items()} == sizes
    assert any(key[0] == "ensemble_epoch" for key in fns)  # the compiled epoch ran
