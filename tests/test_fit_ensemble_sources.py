"""``fit(..., ensemble=K)`` on data that stays on the host: memory-mapped ``.npy`` files,
`Dataset`s and iterables of batches (issue 18 on issue 17's sources).

The contract: an indexable source trains an ensemble exactly like the same rows in memory
(the host permutation of fit, shared or per member; the same step losses and read-out, bit for
bit on NumPy, torch and array_api_strict; JAX within the tolerance tests/test_fit_sources.py
uses), so member k on a source also equals member k trained alone on it; one read of the rows
serves every member; a stream gives every member the same batches; checkpoints resume exactly;
the result predicts and scores on sources; an ``npy`` config trains an ensemble.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import backend_or_skip

import backends
import backprop as bp
from backprop.app import cli
from backprop.nn import layers as L
from backprop.training._ensemble_result import evaluate_members_source
from backprop.training._sourcedata import as_source
from backprop.training.evaluation import CHUNK_ROWS

N, N_IN, CLASSES, K, SEED = 300, 6, 3, 3, 4


def _data(n=N):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, N_IN)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def _model(**kw):
    return bp.MLP([N_IN, 12, CLASSES], output="softmax", loss="cross_entropy", **kw)


def _dropout_model():
    return bp.Sequential(
        [L.Dense(12, "relu"), L.Dropout(0.3), L.Dense(CLASSES, "softmax")],
        loss="cross_entropy", input_shape=(N_IN,),
    )  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("npy")
    X, y = _data()
    np.save(d / "x.npy", X)
    np.save(d / "y.npy", y)
    return d


def _mm(files):
    return np.load(files / "x.npy", mmap_mode="r"), np.load(files / "y.npy", mmap_mode="r")


def _untimed(history):
    return [{c: v for c, v in r.items() if c not in ("time", "samples_per_s")} for r in history]


def _same(backend, a, b):
    """Step losses and every history column but time, per member too (exact except JAX)."""
    got = [a.history.step_losses, *[list(r.values()) for r in _untimed(a.history.records)]]
    want = [b.history.step_losses, *[list(r.values()) for r in _untimed(b.history.records)]]
    assert list(a.history.records[-1]) == list(b.history.records[-1])
    if backend.name == "jax":  # its in-memory epoch is one compiled scan (tests/test_fit_sources)
        np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), rtol=1e-5)
    else:
        assert got == want


def _host(result, params):
    return [np.asarray(result.backend.to_numpy(v)) for p in params for v in p.values()]


def _params_equal(a, pa, b, pb):
    for x, y in zip(_host(a, pa), _host(b, pb), strict=True):
        np.testing.assert_array_equal(x, y)


class Rows:
    """A user Dataset that records every read; it has no __array__, so it is never read whole."""

    def __init__(self, X, y):
        self.X, self.y, self.reads = X, y, []

    def __len__(self):
        return len(self.X)

    def rows(self, idx):
        self.reads.append(len(idx))
        return self.X[idx], self.y[idx]

    def targets(self):
        return self.y


class XRows:
    """A user RowSource of inputs (len, shape, rows): no __array__, it cannot be loaded whole."""

    def __init__(self, X):
        self.X, self.shape = X, X.shape

    def __len__(self):
        return len(self.X)

    def rows(self, idx):
        return self.X[idx]


# -- indexable sources == memory -------------------------------------------------------------------


def test_memmap_ensemble_trains_like_memory(backend, files):
    """Every backend: shared batches, validation split, training metric and a sweep of alpha."""
    X, y = _data()
    kw = dict(
        backend=backend, epochs=2, batch_size=60, verbose=0, validation_split=0.2, seed=SEED,
        sweep={"alpha": [0.0, 1e-3, 1e-2]},
    )  # fmt: skip
    if backend.name == "jax":  # each read-out shape compiles: 9 s instead of 4.5 on 2 busy cores
        kw.update(train_metrics=False, divergence_factor=None)
    memory = bp.fit(_model(), X, y, **kw)
    mapped = bp.fit(_model(), *_mm(files), **kw)
    _same(backend, mapped, memory)
    assert "val_loss[2]" in mapped.history.columns


@pytest.mark.parametrize("order", ["shared", "member"])
def test_member_k_on_a_source_equals_memory_and_alone(files, order):
    """NumPy, dropout and class weights: the in-memory ensemble bit for bit; member k == the
    model trained alone on the source (shared: from init(seed + k) on seed's batches;
    per-member order: fit(seed=seed + k), its batches and masks)."""
    X, y = _data()
    kw = dict(epochs=2, batch_size=64, verbose=0, class_weight="balanced", seed=SEED)
    memory = bp.fit(_dropout_model(), X, y, ensemble=K, member_order=order, **kw)
    mapped = bp.fit(_dropout_model(), *_mm(files), ensemble=K, member_order=order, **kw)
    _same(backends.get_backend("numpy"), mapped, memory)
    _params_equal(mapped, mapped.params, memory, memory.params)
    for k in range(K) if order == "member" else [0]:  # shared: dropout masks differ but k = 0
        alone = bp.fit(_dropout_model(), *_mm(files), **{**kw, "seed": SEED + k})
        assert mapped.member_history(k).step_losses == alone.history.step_losses
        _params_equal(mapped, mapped.member_params(k), alone, alone.params)


def test_shared_member_equals_alone_on_the_source(files):
    kw = dict(epochs=2, batch_size=64, verbose=0, validation_split=0.25, seed=SEED)
    ens = bp.fit(_model(), *_mm(files), ensemble=K, **kw)
    for k in range(K):
        start = _model().init(seed=SEED + k)
        alone = bp.fit(_model(), *_mm(files), params=start, **kw)
        assert ens.member_history(k).step_losses == alone.history.step_losses
        assert _untimed(ens.member_history(k).records) == _untimed(alone.history.records)


@pytest.mark.parametrize(("order", "largest"), [("shared", 50), ("member", K * 50)])
def test_one_read_per_step_for_all_members(order, largest):
    """A step reads its rows once: the batch (shared) or the union of the K batches (per member),
    never more than K * batch_size rows; the read-out and references read chunks of
    CHUNK_ROWS. Memory follows the batch, not the data: the source is never read whole."""
    X, y = _data()
    source = Rows(X, y)
    bp.fit(_model(), source, ensemble=K, member_order=order, epochs=2, batch_size=50, verbose=0)
    steps = 2 * (N // 50)
    reads = [r for r in source.reads if r > 1]  # 1: as_dataset's probe of the rows
    assert max(reads) <= max(largest, min(N, CHUNK_ROWS))
    step_reads = [r for r in reads if r != N]  # the others: read-out and reference chunks
    assert len(step_reads) == steps, reads
    if order == "member":
        assert max(step_reads) > 50  # the union of several members' batches


# -- streams ---------------------------------------------------------------------------------------


def _fit_order_batches(X, y, bs=60):
    """fit's own shared batch order as a function of the epoch."""

    def batches(epoch):
        rng = np.random.default_rng(SEED + 1)
        for _ in range(epoch + 1):
            order = rng.permutation(len(X))
        return [(X[order[i : i + bs]], y[order[i : i + bs]]) for i in range(0, len(X), bs)]

    return batches


def test_stream_gives_every_member_the_batches():
    X, y = _data()
    kw = dict(epochs=2, batch_size=60, verbose=0, seed=SEED, validation_data=(X[:50], y[:50]))
    memory = bp.fit(_model(), X, y, ensemble=K, train_metrics=False, **kw)
    streamed = bp.fit(_model(), _fit_order_batches(X, y), ensemble=K, **kw)
    assert streamed.history.step_losses == memory.history.step_losses
    assert _untimed(streamed.history.records) == _untimed(memory.history.records)
    assert "accuracy" not in streamed.history.columns  # one pass: no training metric
    listed = [(X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100)]
    ens = bp.fit(_model(), listed, ensemble=2, epochs=1, verbose=0, seed=SEED)
    alone = bp.fit(_model(), listed, epochs=1, verbose=0, params=_model().init(seed=SEED + 1))
    assert ens.member_history(1).step_losses == alone.history.step_losses


def test_stream_resume_calls_the_function_with_the_epoch(tmp_path):
    X, y = _data()
    batches, seen = _fit_order_batches(X, y), []

    def source(epoch):
        seen.append(epoch)
        return batches(epoch)

    kw = dict(epochs=3, verbose=0, ensemble=K, seed=SEED)
    whole = bp.fit(_model(), source, **kw)
    saver = bp.ModelCheckpoint(tmp_path, keep_best=False)
    bp.fit(_model(), source, **{**kw, "epochs": 1}, callbacks=[saver])
    seen.clear()
    resumed = bp.fit(_model(), source, **kw, callbacks=[saver], resume=tmp_path / "last.npz")
    assert seen == [1, 2]
    assert resumed.history.step_losses == whole.history.step_losses


# -- resume, early stopping ------------------------------------------------------------------------


class _Stop(bp.Callback):
    def __init__(self, at):
        self.at, self.seen = at, 0

    def on_batch_end(self, run, loss):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


def _resume_kw(folder, stop_at=None):
    callbacks = [
        bp.EarlyStopping("val_loss", patience=1, min_delta=0.03, restore_best=True),
        bp.ModelCheckpoint(folder, every=1, keep_best=False),
        _Stop(stop_at),  # a resumed run has the callbacks of the saved one
    ]
    return dict(
        ensemble=K, member_order="member", seed=SEED, epochs=8, batch_size=64, verbose=0,
        validation_split=0.2, sweep={"lr": [0.3, 0.05, 0.01]}, optimizer=bp.SGD(0.1),
        callbacks=callbacks,
    )  # fmt: skip


def test_resume_on_a_source_equals_uninterrupted(files, tmp_path):
    """NumPy: interrupted in epoch 3 (last.npz holds epoch 2), resumed: the uninterrupted run
    bit for bit, dropout, per-member order and per-member early stopping included."""
    mm = _mm(files)
    full = bp.fit(_dropout_model(), *mm, **_resume_kw(tmp_path / "full"))
    with pytest.raises(bp.TrainingInterrupted):
        bp.fit(_dropout_model(), *mm, **_resume_kw(tmp_path / "cut", 2 * 4 + 2))
    resumed = bp.fit(
        _dropout_model(), *mm, resume=tmp_path / "cut" / "last.npz", **_resume_kw(tmp_path / "cut")
    )
    _params_equal(full, full.params, resumed, resumed.params)
    assert _untimed(resumed.history.records) == _untimed(full.history.records)
    assert resumed.history.step_losses == full.history.step_losses
    assert resumed.stopped == full.stopped and resumed.best_epoch == full.best_epoch
    assert full.stopped == [7, 5, 2]  # one before the interruption, two after


def test_members_stop_early_as_in_memory(files):
    X, y = _data()
    kw = dict(
        seed=SEED, epochs=30, batch_size=64, verbose=0, validation_split=0.25,
        sweep={"lr": [0.5, 0.1, 0.02]}, optimizer=bp.SGD(0.1),
    )  # fmt: skip

    def es():
        return [bp.EarlyStopping("val_loss", patience=2, min_delta=0.02)]

    memory = bp.fit(_model(), X, y, callbacks=es(), **kw)
    mapped = bp.fit(_model(), *_mm(files), callbacks=es(), **kw)
    assert mapped.stopped == memory.stopped and len(set(mapped.stopped)) > 1
    assert mapped.best_epoch == memory.best_epoch and mapped.best_member == memory.best_member
    _same(backends.get_backend("numpy"), mapped, memory)


# -- results on sources ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
def test_predict_and_evaluate_on_sources(files, name):
    """The chunked results equal the in-memory ones (JAX: its compiled forward pass of the
    chunks rounds like the read-out of test_memmap_ensemble_trains_like_memory, not like the
    eager in-memory predict; skipped for time)."""
    backend = backend_or_skip(name)
    X, y = _data()
    ens = bp.fit(_model(), X, y, ensemble=K, backend=backend, epochs=1, verbose=0, seed=SEED)
    mm = _mm(files)
    for inputs in (mm[0], XRows(X)):
        np.testing.assert_array_equal(ens.predict(inputs), ens.predict(X))
        np.testing.assert_array_equal(ens.predict_members(inputs), ens.predict_members(X))
    assert ens.predict_members(mm[0]).shape == (K, N, CLASSES)
    want = bp.evaluate(_model(), ens.params, X, y)

    def host(report):
        return [report["loss"], report["accuracy"], *report["members"]["loss"]]

    assert bp.evaluate(_model(), ens.params, *mm) == want
    assert bp.evaluate(ens.ensemble, ens.params, XRows(X), y) == want
    got = evaluate_members_source(ens.ensemble, ens.params, as_source(*mm), "accuracy", None)
    assert got == want  # host floats, the in-memory numbers
    stream = [(X[i : i + 128], y[i : i + 128]) for i in range(0, N, 128)]
    streamed = evaluate_members_source(
        ens.ensemble, ens.params, as_source(stream, None), "accuracy", None
    )
    np.testing.assert_allclose(host(streamed), host(want), rtol=1e-6)


def test_config_scores_of_members_read_a_source_in_chunks():
    """The run's test scores (`score_members`) on rows that cannot be loaded whole."""
    from backprop.app._ensemblerun import score_members

    X, y = _data()
    ens = bp.fit(_model(), X, y, ensemble=K, epochs=1, verbose=0, seed=SEED)
    alpha = [0.0, 0.1, 0.2]
    want = score_members(_model(), ens.params, K, X, y, "accuracy", alpha)
    got = score_members(_model(), ens.params, K, XRows(X), y, "accuracy", alpha)
    assert got == want and got.members == want.members


# -- refusals --------------------------------------------------------------------------------------


def test_refusals_say_what_to_do(files, monkeypatch):
    X, y = _data()
    listed = [(X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100)]
    with pytest.raises(ValueError, match="member_order='member' draws each member's batch order"):
        bp.fit(_model(), listed, ensemble=2, member_order="member", epochs=1, verbose=0)
    with pytest.raises(ValueError, match="compile_epoch=True needs the data on the device"):
        bp.fit(_model(), *_mm(files), ensemble=2, compile_epoch=True, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="has no len"):
        bp.fit(_model(), lambda epoch: iter(listed), ensemble=2, schedule="cosine", verbose=0)
    with pytest.raises(ValueError, match=r"Y \(the targets\) is missing"):
        bp.fit(_model(), X, ensemble=2, epochs=1, verbose=0)
    monkeypatch.setattr(backends.Backend, "n_devices", property(lambda self: 2))
    with pytest.raises(ValueError, match="on a data source train on one device"):
        bp.fit(_model(), *_mm(files), ensemble=2, batch_size=60, epochs=1, verbose=0)


# -- the config path -------------------------------------------------------------------------------

MODEL = {"hidden_sizes": [5], "hidden": "tanh", "output": "softmax", "loss": "cross_entropy"}


def _config(folder, data):
    lines = ["[data]", *(f"{k} = {json.dumps(v)}" for k, v in data.items())]
    lines += ["test_fraction = 0.25", "[model]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in MODEL.items()]
    lines += ["[training]", "epochs = 2", "batch_size = 8", "ensemble = 3"]
    path = folder / f"{data['name']}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_npy_config_trains_an_ensemble_like_npz(tmp_path, capsys):
    """`[data] name = "npy"` with `[training] ensemble` (refused before): the npz run's numbers."""
    X, y = _data(40)
    np.save(tmp_path / "x.npy", X.astype(np.float64))
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "d.npz", X=X.astype(np.float64), y=y)
    data = {
        "npy": {"name": "npy", "features": "x.npy", "targets": "y.npy"},
        "npz": {"name": "npz", "path": "d.npz"},
    }
    histories, manifests = {}, {}
    for name, table in data.items():
        run = tmp_path / f"run-{name}"
        argv = ["train", str(_config(tmp_path, table)), "--quiet", "--run-dir", str(run)]
        assert cli.main(argv) == 0, capsys.readouterr().err
        histories[name] = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
        manifests[name] = json.loads((run / "manifest.json").read_text())["result"]
    assert histories["npy"] == [
        {**row, "time": r["time"], "samples_per_s": r["samples_per_s"]}
        for row, r in zip(histories["npz"], histories["npy"], strict=True)
    ]
    assert "loss[2]" in histories["npy"][0]
    assert [m["test"] for m in manifests["npy"]["members"]] == [
        m["test"] for m in manifests["npz"]["members"]
    ]
