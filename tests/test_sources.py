"""Data sources for data larger than memory (`backprop.data.sources`): row sources read the
same bits as `np.load`, without mapping the file; errors name the file and the fix; batch
streams and the prefetch thread behave, and never leave a thread behind.

Host-only: these sources hand NumPy arrays to fit, so no backend parametrization applies."""

from __future__ import annotations

import gc
import itertools
import pickle
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop.data import DataError, _npyrows, sources
from backprop.data._npyrows import MemmapRows
from backprop.data.sources import (
    ArrayDataset,
    ArrayRows,
    BatchStream,
    NpyRows,
    Prefetcher,
    Subset,
    as_dataset,
    is_batch_stream,
    open_npy,
)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DTYPES = ["float32", "float64", "int64", ">f8"]
# 1-D with small rows (gaps read through), 2-D, and 3-D rows larger than the 4 KiB gap
SHAPES = [(2000,), (300, 3), (40, 4, 160)]


def _array(shape, dtype, seed=0):
    values = np.random.default_rng(seed).normal(size=shape) * 1000
    return values.astype(dtype)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{(dtype, shape): (path, array)} for every dtype and shape, written once."""
    root = tmp_path_factory.mktemp("npy")
    out = {}
    for i, (dtype, shape) in enumerate(itertools.product(DTYPES, SHAPES)):
        path = root / f"a{i}.npy"
        arr = _array(shape, dtype, seed=i)
        np.save(path, arr)
        out[dtype, shape] = (path, arr)
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_npy_rows_equal_np_load_bit_for_bit(saved, dtype, shape, data):
    path, arr = saved[dtype, shape]
    idx = np.array(data.draw(st.lists(st.integers(0, shape[0] - 1), max_size=64)), np.int64)
    start = data.draw(st.integers(0, shape[0]))
    stop = data.draw(st.integers(start, shape[0]))
    rows = NpyRows(path)
    out = rows.rows(idx)
    expected = np.load(path)[idx]
    assert out.shape == expected.shape and out.flags.c_contiguous and out.dtype.isnative
    assert out.dtype == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out.view(np.uint8), expected.astype(out.dtype).view(np.uint8))
    np.testing.assert_array_equal(rows.read(start, stop), arr[start:stop])
    rows.close()


def test_npy_rows_unsorted_repeats_empty_and_ranges(saved):
    path, arr = saved["float64", (300, 3)]
    rows = NpyRows(path)
    idx = np.array([299, 0, 5, 5, 4, 299, 6, 0])
    np.testing.assert_array_equal(rows.rows(idx), arr[idx])
    assert rows.rows(np.array([], np.int64)).shape == (0, 3)
    assert rows.rows([]).shape == (0, 3)
    for bad in ([300], [-1], [0, 1000]):
        with pytest.raises(IndexError, match=r"out of range .* 300 rows: expected indices in "):
            rows.rows(np.array(bad))
    with pytest.raises(IndexError, match="must be integers"):
        rows.rows(np.array([0.5]))
    with pytest.raises(IndexError, match=r"read\(2, 301\) is out of range"):
        rows.read(2, 301)
    assert (rows.path, rows.offset, rows.shape, rows.dtype) == (path, 128, (300, 3), arr.dtype)


def test_npy_rows_pickle_threads_and_close(saved):
    path, arr = saved["int64", (300, 3)]
    rows = NpyRows(path)
    rows.rows([1])  # opens the descriptor, which pickling must drop
    copy = pickle.loads(pickle.dumps(rows))
    np.testing.assert_array_equal(copy.rows([7, 2]), arr[[7, 2]])
    results, rng = {}, np.random.default_rng(0)
    orders = [rng.integers(0, 300, 100) for _ in range(4)]

    def read(k):
        results[k] = [rows.rows(orders[k][i : i + 10]) for i in range(0, 100, 10)]

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_array_equal(np.concatenate(results[k]), arr[orders[k]])
    rows.close()
    rows.close()
    np.testing.assert_array_equal(rows.rows([3]), arr[[3]])  # reopens lazily
    rows.close()
    copy.close()


def _memmaps(tmp_path):
    """(name, memmap-like, expected in-memory array, expected RowSource type, file offset)."""
    arr = _array((20, 5), "float64")
    np.save(tmp_path / "c.npy", arr)
    np.save(tmp_path / "f.npy", np.asfortranarray(arr))
    (tmp_path / "raw.bin").write_bytes(b"x" * 100 + arr.tobytes())
    loaded = np.load(tmp_path / "c.npy", mmap_mode="r")
    raw = np.memmap(tmp_path / "raw.bin", dtype="float64", mode="r", offset=100, shape=(20, 5))
    copy_on_write = np.load(tmp_path / "c.npy", mmap_mode="c")
    return [
        ("np.load", loaded, arr, NpyRows, 128),
        ("np.memmap offset", raw, arr, NpyRows, 100),
        ("row slice", loaded[3:9], arr[3:9], NpyRows, 128 + 3 * 40),
        ("slice of a slice", raw[3:9][2:], arr[5:9], NpyRows, 100 + 5 * 40),
        ("fortran", np.load(tmp_path / "f.npy", mmap_mode="r"), arr, MemmapRows, None),
        ("strided rows", loaded[::2], arr[::2], MemmapRows, None),
        ("columns", loaded[:, 1:3], arr[:, 1:3], MemmapRows, None),
        ("copy on write", copy_on_write, arr, MemmapRows, None),
    ]


def test_from_memmap_reads_the_same_rows(tmp_path):
    for name, mm, expected, kind, offset in _memmaps(tmp_path):
        rows = NpyRows.from_memmap(mm)
        assert type(rows) is kind, name
        if offset is not None:
            assert rows.offset == offset, name
        idx = np.array([len(expected) - 1, 0, 2, 2, 1])
        np.testing.assert_array_equal(rows.rows(idx), expected[idx], err_msg=name)
        np.testing.assert_array_equal(rows.read(1, 3), expected[1:3], err_msg=name)
        assert type(rows.rows(idx)) is np.ndarray and rows.rows(idx).flags.c_contiguous, name


def _vm_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_reading_a_64_mb_file_keeps_resident_memory_small(tmp_path, monkeypatch):
    """pread copies one batch at a time: the file's pages never join this process's RSS (a
    file above MAP_BYTES, here lowered to 16 MiB). The control (reading the same rows through
    np.load's memmap) shows the test can fail."""
    monkeypatch.setattr(_npyrows, "MAP_BYTES", 16 << 20)
    n, width = 8192, 2048  # float32: 64 MiB
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (n, width)}
        np.lib.format.write_array_header_1_0(f, header)
        chunk = np.arange(256 * width, dtype="<f4").reshape(256, width)
        for start in range(0, n, 256):
            f.write((chunk + start * width).tobytes())
    order = np.random.default_rng(0).permutation(n)

    def grow(source):
        before, total = _vm_rss_bytes(), 0.0
        for i in range(0, n, 256):
            total += float(source.rows(order[i : i + 256])[:, 0].sum())
        return _vm_rss_bytes() - before, total

    rows = NpyRows(path)
    grew, total = grow(rows)
    rows.close()
    assert total == float(np.arange(n, dtype=np.float64).sum() * width)
    assert grew < 16 * 2**20, f"RSS grew by {grew / 2**20:.1f} MiB reading through pread"
    mapped = MemmapRows(np.load(path, mmap_mode="r"))
    mapped_grew, _ = grow(mapped)
    assert mapped_grew > 32 * 2**20, "control: touching a memmap's pages counts in RSS"
    del mapped


def _write_then(tmp_path, name, arr, edit=None):
    path = tmp_path / name
    np.save(path, arr, allow_pickle=True)
    if edit is not None:
        path.write_bytes(edit(path.read_bytes()))
    return path


def test_open_npy_errors_name_the_file_and_the_fix(tmp_path):
    good = _write_then(tmp_path, "y.npy", np.zeros(10))
    text = tmp_path / "x.npy"
    text.write_text("1,2,3\n4,5,6\n")
    truncated = _write_then(tmp_path, "t.npy", np.zeros((10, 3)), lambda b: b[:-8])
    corrupt = _write_then(
        tmp_path, "h.npy", np.zeros(10), lambda b: b[:10] + b"{'descr': 1" + b[21:]
    )
    objects = _write_then(tmp_path, "o.npy", np.array([{"a": 1}, None], dtype=object))
    short = _write_then(tmp_path, "s.npy", np.zeros(7))
    missing = tmp_path / "missing.npy"
    cases = [
        (missing, FileNotFoundError, r"features file .*g\.npy does not exist.*path"),
        (tmp_path, FileNotFoundError, r"is a directory; expected a \.npy file"),
        (text, DataError, r"x\.npy is not a \.npy file: it starts with b'1,2,3.*np\.save"),
        (truncated, DataError, r"t\.npy is truncated: .*\(10, 3\).*240 bytes.*holds 232; re-"),
        (corrupt, DataError, r"h\.npy has a corrupt \.npy header .*re-create the file"),
        (objects, DataError, r"o\.npy holds Python objects .*never unpickles: save a numeric"),
        (short, DataError, r"features file .*s\.npy has 7 rows but the targets .*y\.npy has 10"),
    ]
    for path, error, message in cases:
        with pytest.raises(error, match=message):
            open_npy(path, good)
    with pytest.raises(DataError, match=r"weights .*w\.npy must be numeric of shape \(10,\)"):
        open_npy(good, good, _write_then(tmp_path, "w.npy", np.ones((10, 2))))


def test_open_npy_reads_features_targets_weights(tmp_path):
    x, y, w = _array((30, 4), "float32"), np.arange(30) % 3, np.linspace(0.5, 1.5, 30)
    paths = [_write_then(tmp_path, f"{n}.npy", a) for n, a in (("x", x), ("y", y), ("w", w))]
    np.save(tmp_path / "xf.npy", np.asfortranarray(x))
    ds = open_npy(*paths)
    assert len(ds) == 30 and type(ds.x) is NpyRows and isinstance(ds.w, np.ndarray)
    idx = np.array([29, 3, 3, 0])
    for got, expected in zip(ds.rows(idx), (x[idx], y[idx], w[idx]), strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ds.targets(), y)
    ds.close()
    fortran = open_npy(tmp_path / "xf.npy", paths[1])
    assert type(fortran.x) is MemmapRows
    np.testing.assert_array_equal(fortran.rows(idx)[0], x[idx])


class UserRows:
    """A user RowSource: squares of the row number, never materialized."""

    def __init__(self, n):
        self.shape, self.dtype = (n, 2), np.dtype("float64")

    def __len__(self):
        return self.shape[0]

    def rows(self, idx):
        idx = np.asarray(idx, dtype=np.float64)
        return np.stack([idx, idx**2], axis=1)

    def read(self, start, stop):
        return self.rows(np.arange(start, stop))


class UserDataset:
    def __len__(self):
        return 6

    def rows(self, idx):
        idx = np.asarray(idx)
        return idx[:, None] * 1.0, idx % 2


def test_as_dataset_kinds(tmp_path):
    X, Y = _array((12, 3), "float64"), np.arange(12)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    for plain in [(X, Y), (X.tolist(), Y.tolist()), (tuple(X.tolist()), Y)]:
        assert as_dataset(*plain) is None
    idx = np.array([11, 0, 4])
    for x_in, y_in in [(mm, Y), (X, np.load(tmp_path / "x.npy", mmap_mode="r")), (mm, Y.tolist())]:
        ds = as_dataset(x_in, y_in)
        assert isinstance(ds, ArrayDataset) and len(ds) == 12
        np.testing.assert_array_equal(ds.rows(idx)[0], np.asarray(x_in)[idx])
        np.testing.assert_array_equal(ds.rows(idx)[1], np.asarray(y_in)[idx])
    assert type(as_dataset(mm, Y).x) is NpyRows and type(as_dataset(mm, Y).y) is ArrayRows
    user = as_dataset(UserRows(12), Y)
    assert user.x.__class__ is UserRows
    np.testing.assert_array_equal(user.rows([3])[0], [[3.0, 9.0]])
    np.testing.assert_array_equal(user.targets(), Y)
    dataset = UserDataset()
    assert as_dataset(dataset) is dataset
    assert isinstance(dataset, sources.Dataset) and isinstance(UserRows(1), sources.RowSource)


def test_as_dataset_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((12, 3)))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    for X in (mm, UserRows(12)):
        with pytest.raises(TypeError, match=r"returns one array, and Y is missing: pass the"):
            as_dataset(X)
    with pytest.raises(TypeError, match=r"already returns \(x, y\), and Y was given.*Y=None"):
        as_dataset(UserDataset(), np.zeros(6))
    with pytest.raises(DataError, match=r"features have 12 rows but the targets have 11"):
        as_dataset(mm, np.zeros(11))
    with pytest.raises(DataError, match=r"features have 5 rows but the targets have 12"):
        as_dataset(UserRows(5), mm)


def test_subset_and_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_CHUNK_BYTES", 24)  # 3 rows a chunk: targets() loops
    x, y, w = _array((10, 2), "float32"), _array((10, 3), "float64"), np.arange(10.0)
    ds = ArrayDataset(ArrayRows(x), NpyRows.from_memmap(_memmap(tmp_path, y)), w)
    np.testing.assert_array_equal(ds.targets(), y)
    index = np.array([9, 2, 4, 4, 0])
    sub = Subset(ds, index)
    assert len(sub) == 5
    for got, expected in zip(sub.rows([4, 1]), (x[[0, 2]], y[[0, 2]], w[[0, 2]]), strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(sub.targets(), y[index])
    np.testing.assert_array_equal(Subset(sub, [4, 0]).targets(), y[[0, 9]])
    assert not hasattr(Subset(UserDataset(), [1]), "targets")
    with pytest.raises(IndexError, match=r"row index 5 is out of range for Subset"):
        sub.rows([5])
    with pytest.raises(IndexError, match=r"row index 10 is out of range"):
        Subset(ds, [10])
    with pytest.raises(DataError, match=r"sample weights w must be numeric of shape \(10,\)"):
        ArrayDataset(ArrayRows(x), ArrayRows(y), np.ones(9))


def _memmap(tmp_path, arr):
    np.save(tmp_path / "m.npy", arr)
    return np.load(tmp_path / "m.npy", mmap_mode="r")


def _batches(n=3):
    rng = np.random.default_rng(1)
    return [(rng.normal(size=(4, 2)), rng.normal(size=(4, 1))) for _ in range(n)]


def _same(a, b):
    for (xa, ya, wa), (xb, yb, *wb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        assert wa is None if not wb else np.array_equal(wa, wb[0])


def test_batch_stream_forms():
    batches = _batches()
    listed = BatchStream(batches)
    _same(list(listed.epoch(0)), batches)
    _same(list(listed.epoch(1)), batches)
    assert (listed.n_batches, len(listed), listed.reproducible) == (3, 3, False)

    once = BatchStream(b for b in batches)
    _same(list(once.epoch(0)), batches)
    message = r"generator/iterator .* one epoch of batches; fit asked for epoch 2: pass a re-"
    with pytest.raises(ValueError, match=message):
        once.epoch(1)
    assert once.n_batches is None and not once.reproducible

    calls = []

    def per_epoch(e):
        calls.append(e)
        return [(np.full((2, 1), e), np.zeros(2), np.ones(2))]

    fn = BatchStream(per_epoch)
    assert [float(x[0, 0]) for e in (0, 3) for x, _, _ in fn.epoch(e)] == [0.0, 3.0]
    assert calls == [0, 3] and fn.reproducible and fn.n_batches is None
    with pytest.raises(TypeError, match="has no length"):
        len(fn)
    with pytest.raises(TypeError, match=r"returned int for epoch 0; expected an iterable"):
        BatchStream(lambda e: 3).epoch(0)
    with pytest.raises(TypeError, match=r"iterable of \(x, y\) batches or a function"):
        BatchStream(3)


def test_batch_stream_from_a_torch_dataloader():
    torch = pytest.importorskip("torch", reason="the DataLoader case needs torch")
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.arange(20, dtype=torch.float32).reshape(10, 2).requires_grad_(False)
    loader = DataLoader(TensorDataset(x, torch.arange(10)), batch_size=4)
    stream = BatchStream(loader)
    for e in (0, 1):
        got = list(stream.epoch(e))
        assert [b[0].shape for b in got] == [(4, 2), (4, 2), (2, 2)]
        assert all(type(b[0]) is np.ndarray and b[2] is None for b in got)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), np.arange(10))
    assert stream.n_batches == 3 and not stream.reproducible and is_batch_stream(loader)
    grads = [(torch.ones(2, 2, requires_grad=True), torch.zeros(2))]
    assert next(BatchStream(grads).epoch(0))[0].dtype == np.float32


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (np.zeros((4, 2)), r"batch 2 of epoch 1 .* is a ndarray of shape \(4, 2\); expected a"),
        ((np.zeros((4, 2)),), r"is a tuple of 1 item\(s\) \(ndarray\); expected a tuple \(x, y\)"),
        ({"x": 1, "y": 2}, r"is a dict with keys \['x', 'y'\]"),
        ((np.zeros((4, 2)), np.zeros(3)), r"has x \(4, 2\), y \(3,\): expected the same number"),
        ((np.zeros((4, 2)), np.zeros(4), np.ones(3)), r"x \(4, 2\), y \(4,\), w \(3,\)"),
        ((np.zeros((0, 2)), np.zeros(0)), r"batch 2 of epoch 1 .* is empty \(x has shape \(0, 2\)"),
        (
            (np.zeros((2, 2)), ["a", "b"]),
            r"y is a list of 2 item\(s\) \(str, str\) with dtype <U1; expected a numeric",
        ),
        ((np.zeros((2, 2)), [[1], [1, 2]]), r"y could not be read as an array"),
    ],
)
def test_batch_stream_malformed_items(item, message):
    stream = BatchStream([_batches(1)[0], item])
    with pytest.raises(DataError, match=message):
        list(stream.epoch(0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.zeros(3), False), ([1, 2], False), ((1,), False), ("x.npy", False), ({}, False),
        (UserDataset(), False), (UserRows(3), False), (iter([]), True),
        ((b for b in []), True), (lambda e: [], True), (BatchStream([]), True),
        (type("Stream", (), {"__iter__": lambda self: iter([])})(), True),
    ],
)  # fmt: skip
def test_is_batch_stream(value, expected):
    assert is_batch_stream(value) is expected


def _slow_square(i):
    time.sleep(0.002 * (i % 3))
    return i * i


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetcher_keeps_order(depth):
    with Prefetcher(_slow_square, range(30), depth=depth) as p:
        assert list(p) == [i * i for i in range(30)]
    assert list(p) == []


def _fail_at(k):
    def produce(i):
        if i == k:
            raise KeyError(f"item {i}")
        return i

    return produce


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetcher_reraises_at_the_failing_item(depth):
    got = []
    p = Prefetcher(_fail_at(4), range(10), depth=depth)
    with pytest.raises(KeyError, match="item 4") as info:
        for value in p:
            got.append(value)
    assert got == [0, 1, 2, 3]
    assert any(f.name == "produce" for f in info.traceback)  # the producer's frames kept
    assert list(p) == []

    def items():
        yield 1
        raise OSError("disk gone")

    p = Prefetcher(lambda i: i, items(), depth=depth)
    assert next(p) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(p)


def test_prefetcher_close_stops_a_blocked_producer():
    p = Prefetcher(lambda i: i, itertools.count(), depth=1)
    assert next(p) == 0
    thread = p._thread
    time.sleep(0.1)  # the producer fills the queue and blocks in put
    assert thread.is_alive()
    start = time.perf_counter()
    p.close()
    assert time.perf_counter() - start < 1.0
    assert not thread.is_alive() and thread not in threading.enumerate()
    with pytest.raises(StopIteration):
        next(p)


def test_prefetcher_garbage_collection_stops_the_thread():
    p = Prefetcher(lambda i: i, itertools.count(), depth=2)
    next(p)
    thread = p._thread
    del p
    gc.collect()
    thread.join(1.0)
    assert not thread.is_alive()


def test_prefetcher_depth_zero_runs_inline():
    calls, before = [], threading.active_count()
    p = Prefetcher(lambda i: calls.append(threading.current_thread()) or i, range(3), depth=0)
    assert calls == [] and threading.active_count() == before
    assert next(p) == 0 and calls == [threading.current_thread()]
    with pytest.raises(ValueError, match=r"depth must be an int >= 0 .* received -1"):
        Prefetcher(lambda i: i, [], depth=-1)


@pytest.mark.parametrize("map_bytes", [0, 1 << 40])
def test_mapped_and_pread_rows_agree(tmp_path, monkeypatch, map_bytes):
    """A file within MAP_BYTES is gathered from a map, a larger one read with pread: the same
    rows either way (random, repeated and unsorted indices; big-endian data)."""
    monkeypatch.setattr(_npyrows, "MAP_BYTES", map_bytes)
    expected = np.arange(300 * 5, dtype=">f8").reshape(300, 5)
    np.save(tmp_path / "a.npy", expected)
    rows = NpyRows(tmp_path / "a.npy")
    idx = np.random.default_rng(1).integers(0, 300, 200)
    got = rows.rows(idx)
    np.testing.assert_array_equal(got, expected[idx])
    assert got.dtype.isnative and (rows._rows_view is not None) == bool(map_bytes)
    rows.close()
