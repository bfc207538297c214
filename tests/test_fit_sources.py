"""`fit`, `evaluate` and `FitResult.predict` on data that stays on the host: memory-mapped
``.npy`` files, user `Dataset`s and iterables of batches (issue 17).

The contract: an indexable source trains exactly like the same rows in memory (same batch order,
same step losses, bit for bit on NumPy, torch and array_api_strict; JAX's compiled in-memory
epoch may round differently), and resumes exactly; a stream of batches trains on its own batches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import backends
import backprop as bp
from backprop.data import _host
from backprop.data.checks import DataError

N, N_IN, CLASSES = 300, 6, 3


def _data(n=N):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, N_IN)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def _model(**kw):
    return bp.MLP([N_IN, 12, CLASSES], output="softmax", loss="cross_entropy", **kw)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("npy")
    X, y = _data()
    np.save(d / "x.npy", X)
    np.save(d / "y.npy", y)
    return d


def _mm(files, name):
    return np.load(files / name, mmap_mode="r")


def _same(backend, a, b):
    """Step losses and every history column but time equal (bit for bit except JAX)."""
    cols = [k for k in a.history.records[-1] if k not in ("time", "samples_per_s")]
    got = [a.history.step_losses] + [a.history[k] for k in cols]
    want = [b.history.step_losses] + [b.history[k] for k in cols]
    if backend.name == "jax":
        np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), rtol=1e-5)
    else:
        assert got == want
    assert list(a.history.records[-1]) == list(b.history.records[-1])


OPTIONS = {
    "plain": {},
    "split": {"validation_split": 0.2},
    "weights": {"class_weight": "balanced"},
    "diagnostics": {"diagnostics": True},
}


def test_memmap_trains_like_memory(backend, files):
    """Every backend: batches, validation split and training metric streamed from the file."""
    X, y = _data()
    kw = dict(backend=backend, epochs=2, batch_size=64, verbose=0, validation_split=0.2)
    memory = bp.fit(_model(alpha=1e-3), X, y, **kw)
    mapped = bp.fit(_model(alpha=1e-3), _mm(files, "x.npy"), _mm(files, "y.npy"), **kw)
    _same(backend, mapped, memory)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_memmap_options_like_memory(files, option):
    """NumPy: each fit option on a memmap gives the in-memory numbers bit for bit."""
    X, y = _data()
    kw = dict(epochs=2, batch_size=64, verbose=0, **OPTIONS[option])
    memory = bp.fit(_model(alpha=1e-3), X, y, **kw)
    mapped = bp.fit(_model(alpha=1e-3), _mm(files, "x.npy"), _mm(files, "y.npy"), **kw)
    _same(backends.get_backend("numpy"), mapped, memory)


def test_sources_with_dropout_validation_data_and_sample_weights(files):
    """Dropout masks, a memmap validation set and per-row weights follow the in-memory run."""
    X, y = _data()
    w = np.linspace(0.5, 2.0, N)
    model = bp.Sequential(
        [bp.layers.Dense(12, "relu"), bp.layers.Dropout(0.3), bp.layers.Dense(3, "softmax")],
        loss="cross_entropy",
        input_shape=(N_IN,),
    )
    kw = dict(epochs=2, batch_size=50, verbose=0, sample_weight=w)
    memory = bp.fit(model, X, y, validation_data=(X[:40], y[:40]), **kw)
    val = (_mm(files, "x.npy")[:40], _mm(files, "y.npy")[:40])
    mapped = bp.fit(model, _mm(files, "x.npy"), _mm(files, "y.npy"), validation_data=val, **kw)
    assert mapped.history.step_losses == memory.history.step_losses
    assert mapped.history["val_loss"] == memory.history["val_loss"]


class Rows:
    """A user Dataset: rows computed on demand, never all in memory; has targets()."""

    def __init__(self, X, y):
        self.X, self.y, self.calls = X, y, 0

    def __len__(self):
        return len(self.X)

    def rows(self, idx):
        self.calls += 1
        return self.X[idx], self.y[idx]

    def targets(self):
        return self.y


def test_user_dataset_trains_like_memory():
    X, y = _data()
    source = Rows(X, y)
    kw = dict(epochs=2, batch_size=64, verbose=0, validation_split=0.25)
    memory = bp.fit(_model(), X, y, **kw)
    mine = bp.fit(_model(), source, **kw)
    assert mine.history.step_losses == memory.history.step_losses
    assert source.calls >= 2 * 4  # read batch by batch


def test_resume_from_checkpoint_on_a_source_is_exact(files, tmp_path):
    mm = (_mm(files, "x.npy"), _mm(files, "y.npy"))
    kw = dict(epochs=4, batch_size=64, verbose=0, optimizer=bp.Adam(0.01))
    whole = bp.fit(_model(), *mm, **kw)
    saver = bp.ModelCheckpoint(tmp_path, every=1, keep_best=False)
    bp.fit(_model(), *mm, **{**kw, "epochs": 2}, callbacks=[saver])
    resumed = bp.fit(_model(), *mm, **kw, callbacks=[saver], resume=tmp_path / "last.npz")
    assert resumed.history.step_losses == whole.history.step_losses
    for a, b in zip(bp.tree_leaves(resumed.params), bp.tree_leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)


class _Stop(bp.Callback):
    def __init__(self, at):
        self.at, self.seen = at, 0

    def on_batch_end(self, run, loss):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


def test_interrupt_mid_epoch_restores_and_stops_the_reader(files):
    before = set(threading.enumerate())
    mm = (_mm(files, "x.npy"), _mm(files, "y.npy"))
    with pytest.raises(bp.TrainingInterrupted) as info:
        bp.fit(_model(), *mm, epochs=3, batch_size=64, verbose=0, callbacks=[_Stop(7)])
    assert info.value.result.epochs == 1  # 5 steps an epoch: stopped in epoch 2
    assert len(info.value.result.history.step_losses) == 5
    assert set(threading.enumerate()) <= before  # no prefetch thread left running


def _fit_order_batches(X, y, seed=0, bs=64):
    """fit's own batch order (`Run`'s order generator) as a function of the epoch."""
    orders = []

    def batches(epoch):
        rng = _host.np_rng(seed + 1)
        for _ in range(epoch + 1):
            order = rng.permutation(len(X))
        orders.append(epoch)
        return [(X[order[i : i + bs]], y[order[i : i + bs]]) for i in range(0, len(X), bs)]

    return batches, orders


def test_stream_of_fit_ordered_batches_equals_memory():
    X, y = _data()
    batches, seen = _fit_order_batches(X, y)
    kw = dict(epochs=3, batch_size=64, verbose=0, metric=None)
    memory = bp.fit(_model(), X, y, **kw)
    streamed = bp.fit(_model(), batches, **kw)
    assert streamed.history.step_losses == memory.history.step_losses
    assert streamed.history["loss"] == memory.history["loss"]
    assert seen == [0, 1, 2]


def test_stream_resume_calls_the_function_with_the_epoch(tmp_path):
    X, y = _data()
    batches, seen = _fit_order_batches(X, y)
    kw = dict(epochs=3, verbose=0)
    whole = bp.fit(_model(), batches, **kw)
    saver = bp.ModelCheckpoint(tmp_path, keep_best=False)
    bp.fit(_model(), batches, **{**kw, "epochs": 1}, callbacks=[saver])
    seen.clear()
    resumed = bp.fit(_model(), batches, **kw, callbacks=[saver], resume=tmp_path / "last.npz")
    assert seen == [1, 2]
    assert resumed.history.step_losses == whole.history.step_losses
    assert "accuracy" not in resumed.history.records[-1]  # no second pass over a stream


def test_stream_resume_from_a_reiterable_warns(tmp_path):
    X, y = _data()
    batches = [(X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100)]
    saver = bp.ModelCheckpoint(tmp_path, keep_best=False)
    bp.fit(_model(), batches, epochs=1, verbose=0, callbacks=[saver])
    with pytest.warns(UserWarning, match="not be the one that was interrupted"):
        bp.fit(_model(), batches, epochs=2, verbose=0, callbacks=[saver], resume=saver.last_path)


def test_generator_serves_one_epoch():
    X, y = _data()
    gen = ((X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100))
    with pytest.raises(ValueError, match="epoch 2"):
        bp.fit(_model(), gen, epochs=2, verbose=0)
    gen = ((X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100))
    assert bp.fit(_model(), gen, epochs=1, verbose=0).epochs == 1


def test_torch_dataloader_trains():
    torch = pytest.importorskip("torch")
    X, y = _data()
    ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=50, shuffle=False)
    streamed = bp.fit(_model(), loader, epochs=2, verbose=0, validation_data=(X, y))
    plain = [(X[i : i + 50], y[i : i + 50]) for i in range(0, N, 50)]
    listed = bp.fit(_model(), plain, epochs=2, verbose=0, validation_data=(X, y))
    assert streamed.history.step_losses == listed.history.step_losses
    assert len(streamed.history.step_losses) == 12
    assert streamed.history["val_loss"] == listed.history["val_loss"]


def test_bad_rows_name_where_they_are(tmp_path):
    X, y = _data()
    X[137, 2] = np.nan
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(DataError, match=r"rows .* of .*NaN|NaN.*rows"):
        bp.fit(_model(), mm, y, epochs=1, verbose=0)
    batches = [(X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100)]
    with pytest.raises(DataError, match="batch 2 of epoch 1"):
        bp.fit(_model(), batches, epochs=1, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"validation_split": 0.2}, "validation_split needs indexable data"),
        ({"class_weight": "balanced"}, "yield .x, y, w. batches"),
        ({"Y": np.zeros(3)}, "Y must be None"),
        ({"compile_epoch": True}, "compile_epoch=True needs the data on the device"),
        ({"schedule": "cosine", "iterator": True}, "has no len"),
    ],
)
def test_stream_argument_errors(kwargs, match):
    X, y = _data()
    kwargs = dict(kwargs)
    batches = [(X[i : i + 100], y[i : i + 100]) for i in range(0, N, 100)]
    if kwargs.pop("iterator", False):
        batches = lambda epoch: iter([(X, y)])  # noqa: E731  (no len())
    Y = kwargs.pop("Y", None)
    with pytest.raises(ValueError, match=match):
        bp.fit(_model(), batches, Y, epochs=1, verbose=0, **kwargs)


def test_missing_targets_for_in_memory_x():
    X, _ = _data()
    with pytest.raises(ValueError, match="Y .the targets. is missing"):
        bp.fit(_model(), X, epochs=1, verbose=0)


def test_evaluate_and_predict_read_sources_in_chunks(files, backend):
    X, y = _data()
    model = _model()
    params = model.init(seed=0, backend=backend, dtype="float64")
    mm = (_mm(files, "x.npy"), _mm(files, "y.npy"))
    want = bp.evaluate(model, params, X, y)
    if backend.compiles:  # JAX: the source path's forward is compiled, the in-memory one eager,
        got = bp.evaluate(model, params, *mm)  # and compiled code runs without YNNPACK fusions
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=4 * 2**-52)
    else:
        assert bp.evaluate(model, params, *mm) == want
    stream = [(X[i : i + 128], y[i : i + 128]) for i in range(0, N, 128)]
    got = bp.evaluate(model, params, stream)
    np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-12)
    result = bp.fit(model, X, y, backend=backend, epochs=1, verbose=0)
    if backend.compiles:  # compiled chunks vs one eager pass: float32 within a few ulps
        np.testing.assert_allclose(result.predict(mm[0]), result.predict(X), rtol=8 * 2**-23)
    else:
        np.testing.assert_array_equal(result.predict(mm[0]), result.predict(X))


_RSS_SCRIPT = r"""
import json, sys, numpy as np, backprop as bp
from backprop.data import _npyrows
_npyrows.MAP_BYTES = 16 << 20  # these test files stand for ones beyond the 256 MiB mapped
path, mode = sys.argv[1], sys.argv[2]
model = bp.MLP([256, 16, 3], output="softmax", loss="cross_entropy")
bp.fit(model, np.ones((10, 256)), np.arange(10) % 3, epochs=1, verbose=0)  # imports, compiles
def hwm():
    return int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
before = hwm()
X = np.load(path, mmap_mode="r" if mode == "mapped" else None)
y = np.arange(len(X)) % 3
r = bp.fit(model, X, y, epochs=1, batch_size=512, verbose=0, validation_split=0.1)
print(json.dumps({"grown_mb": (hwm() - before) / 1024, "acc": r.history["accuracy"][-1]}))
"""


def _peak_growth(path, mode):
    # glibc's malloc otherwise raises its mmap threshold to the largest block freed (a chunk of
    # 8 MB) and keeps freed blocks in the prefetch thread's arena: a fixed threshold makes the
    # peak follow what the process holds, not the allocator's caching.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576")
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(path), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["grown_mb"]


def _write(path, rows):
    X = np.lib.format.open_memmap(path, "w+", np.float32, (rows, 256))
    for i in range(0, rows, 16384):
        X[i : i + 16384] = np.random.default_rng(i).standard_normal((min(16384, rows - i), 256))
    X.flush()


def test_training_on_a_file_does_not_load_it(tmp_path):
    """Memory-mapped, the peak resident memory grows by what a few chunks of rows in flight and
    the outputs (N, n_out) take, not with the file: a file twice as large adds almost nothing;
    loaded whole (the control: the measure sees a load) it grows by more than the file."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/status (Linux)")
    _write(tmp_path / "small.npy", 48_000)  # 49 MB
    _write(tmp_path / "big.npy", 96_000)  # 98 MB
    small, big = (
        _peak_growth(tmp_path / "small.npy", "mapped"),
        _peak_growth(tmp_path / "big.npy", "mapped"),
    )
    assert big - small < 20, (small, big)  # for 49 MB more file
    assert big < 64, big
    assert _peak_growth(tmp_path / "big.npy", "loaded") > 98


def test_no_warning_for_a_reproducible_stream(tmp_path):
    X, y = _data()
    batches, _ = _fit_order_batches(X, y)
    saver = bp.ModelCheckpoint(tmp_path, keep_best=False)
    bp.fit(_model(), batches, epochs=1, verbose=0, callbacks=[saver])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bp.fit(_model(), batches, epochs=2, verbose=0, callbacks=[saver], resume=saver.last_path)
