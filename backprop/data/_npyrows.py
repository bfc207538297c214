"""Row sources: one array's rows, read on demand, from a ``.npy`` file, a memmap or memory.

Host-only module: NumPy, ``mmap`` and ``os.pread`` on the CPU; nothing here touches a backend.

A row source of shape ``(N, *row_shape)`` hands out ``rows(idx)``: a new C-contiguous ndarray
of shape ``(len(idx), *row_shape)``, rows in ``idx`` order (any order, repeats allowed), always
in native byte order. `NpyRows` reads a ``.npy`` file larger than `MAP_BYTES` (256 MiB) with
``os.pread`` instead of mapping it, so the process holds about one batch of it whatever the
file's size (pages read stay in the OS page cache, which the kernel may drop, not in this
process's resident set). Mapped, a random row makes the kernel map a whole page-cache folio
around it (up to 2 MiB on Linux 6), so reading a batch through a map of a large file would put
hundreds of MiB in the resident set. A file up to `MAP_BYTES` is mapped and gathered with NumPy
(about 5 times less CPU than a ``pread`` per row): at most `MAP_BYTES` of it is ever resident.
"""

from __future__ import annotations

import ast
import mmap
import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .checks import DataError

__all__ = ["ArrayRows", "MemmapRows", "NpyRows", "RowSource", "check_indices"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 20  # NumPy writes a few hundred bytes; more means a corrupt length field
_GAP_BYTES = 4096  # read through gaps up to this size: one pread beats two at a page apart
_MAX_READ = 1 << 30  # one pread reads at most this much (Linux caps a read near 2 GiB)
MAP_BYTES = 1 << 28  # NpyRows maps files up to this size (256 MiB); larger ones are pread


@runtime_checkable
class RowSource(Protocol):
    """One array's rows, indexable, maybe on disk: ``shape == (N, *row_shape)``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int: ...

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (ints, any order, repeats allowed) as a new in-memory C-contiguous
        ndarray ``(len(idx), *row_shape)``, in ``idx`` order."""
        ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a new ndarray."""
        ...


def check_indices(idx: Any, n: int, what: object) -> np.ndarray:
    """``idx`` as a 1-D intp array of row numbers in ``[0, n)``, else `IndexError` naming
    ``what`` (the source, by its repr: computed only for the message) and the valid range."""
    arr = np.asarray(idx)
    if arr.ndim != 1:
        raise IndexError(f"row indices for {what} must be 1-D, received shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, np.intp)
    if arr.dtype.kind not in "iu":
        raise IndexError(
            f"row indices for {what} must be integers, received dtype {arr.dtype}; "
            "pass e.g. np.arange(...) or idx.astype(int)"
        )
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= n:
        bad = low if low < 0 else high
        raise IndexError(
            f"row index {bad} is out of range for {what}, which has {n} rows: "
            f"expected indices in [0, {n - 1}]"
        )
    return arr.astype(np.intp, copy=False)


def _check_range(start: int, stop: int, n: int, what: object) -> tuple[int, int]:
    start, stop = int(start), int(stop)
    if not 0 <= start <= stop <= n:
        raise IndexError(
            f"read({start}, {stop}) is out of range for {what}, which has {n} rows: "
            f"expected 0 <= start <= stop <= {n}"
        )
    return start, stop


def _native(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _refuse_objects(dtype: np.dtype, what: str) -> None:
    if dtype.hasobject:
        raise DataError(
            f"{what} holds Python objects (dtype {dtype}, stored pickled); backprop reads "
            "numeric arrays only, never unpickles: save a numeric array instead, e.g. "
            "np.save(path, a.astype(np.float32))"
        )


def read_npy_header(path: Path) -> tuple[int, tuple[int, ...], np.dtype, bool]:
    """``(data offset in bytes, shape, dtype, fortran_order)`` of the ``.npy`` file ``path``.

    Parsed here (not by `numpy.load`) so that nothing is unpickled and each defect gets its own
    message: not a .npy file, a corrupt header, object (pickled) arrays, fewer bytes than the
    header promises (truncated).
    """
    with open(path, "rb") as f:
        head = f.read(len(_MAGIC) + 2)
        if len(head) < len(_MAGIC) + 2 or head[: len(_MAGIC)] != _MAGIC:
            raise DataError(
                f"{path} is not a .npy file: it starts with {head[:8]!r}, not the .npy magic "
                f"{_MAGIC!r}; write it with np.save(path, array) (a CSV file: convert it to "
                ".npy first)"
            )
        major = head[-2]
        size_bytes = {1: 2, 2: 4, 3: 4}.get(major)
        if size_bytes is None:
            raise DataError(f"{path}: unknown .npy format version {major}; expected 1, 2 or 3")
        length = int.from_bytes(f.read(size_bytes), "little")
        text = f.read(length) if length <= _MAX_HEADER else b""
        offset = len(_MAGIC) + 2 + size_bytes + length
    if length > _MAX_HEADER or len(text) != length:
        raise DataError(f"{path} has a corrupt .npy header (length {length}); re-create the file")
    shape, dtype, fortran = _parse_header(path, text, "utf8" if major == 3 else "latin1")
    _refuse_objects(dtype, str(path))
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual < expected:
        raise DataError(
            f"{path} is truncated: its header says shape {shape} of {dtype} "
            f"({expected - offset} bytes of data) but the file holds {max(actual - offset, 0)}; "
            "re-create the file (was the copy or the np.save interrupted?)"
        )
    return offset, shape, dtype, fortran


def _parse_header(path: Path, text: bytes, encoding: str) -> tuple[tuple, np.dtype, bool]:
    try:
        header = ast.literal_eval(text.decode(encoding))
        shape = tuple(int(s) for s in header["shape"])
        fortran = bool(header["fortran_order"])
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception as exc:  # a damaged header fails in the parser, a key or the dtype
        raise DataError(
            f"{path} has a corrupt .npy header ({type(exc).__name__}: {exc}); re-create the file "
            "with np.save"
        ) from None
    if not shape or any(s < 0 for s in shape):
        raise DataError(
            f"{path} holds an array of shape {shape}; a row source needs at least one "
            "dimension (rows first)"
        )
    return shape, dtype, fortran


class NpyRows:
    """A `RowSource` over a C-order ``.npy`` file (or raw C-order bytes at ``offset``): rows of a
    file larger than `MAP_BYTES` read with ``os.pread`` (never mapped: resident memory stays
    about one batch), of a smaller file gathered from a read-only map (at most `MAP_BYTES`
    resident), ranges of rows with one ``pread``.

    Attributes: ``path``, ``offset`` (bytes to the first row), ``shape`` ``(N, *row_shape)``,
    ``dtype`` (native byte order: what `rows` returns) and ``file_dtype`` (as stored).
    Thread-safe (neither ``pread`` nor a gather moves a file position); picklable (the
    descriptor and map are reopened lazily after unpickling, e.g. in a DataLoader worker).
    `close` releases them. Like any map, it assumes the file is not truncated while open.
    """

    def __init__(self, path: str | os.PathLike, *, _layout: tuple | None = None) -> None:
        self.path = Path(path)
        if _layout is None:
            if not self.path.is_file():
                raise FileNotFoundError(
                    f"{self.path} does not exist or is not a file; expected a .npy file "
                    "written by np.save: check the path"
                )
            offset, shape, dtype, fortran = read_npy_header(self.path)
            if fortran and len(shape) > 1:
                raise DataError(
                    f"{self.path} stores its array in Fortran (column-major) order, so a row is "
                    "not one contiguous run of bytes; re-save it in C order with "
                    "np.save(path, np.ascontiguousarray(a)), or pass "
                    "np.load(path, mmap_mode='r') instead (slower)"
                )
            _layout = (offset, shape, dtype)
        self.offset, shape, self.file_dtype = _layout
        self.shape = tuple(int(s) for s in shape)
        self.dtype = _native(self.file_dtype)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.file_dtype.itemsize
        self._fd: int | None = None
        self._data_bytes = self.shape[0] * self._row_bytes
        self._map: mmap.mmap | None = None
        self._rows_view: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_memmap(cls, mm: np.memmap) -> NpyRows | MemmapRows:
        """The same bytes as ``mm``, read with ``pread`` when ``mm`` is one C-contiguous run of
        a file opened read-only or shared (``np.load(path, mmap_mode="r")``, ``np.memmap``, a
        row slice ``mm[a:b]`` of either); otherwise (Fortran order, a strided view, a
        copy-on-write map whose changes the file does not have) a `MemmapRows` indexing ``mm``.
        """
        if mm.ndim == 0:
            raise DataError(f"the memmap of {mm.filename} is 0-d; a row source needs rows first")
        start = _file_offset(mm)
        usable = mm.flags.c_contiguous and mm.mode != "c" and start is not None
        if not usable or not Path(mm.filename).is_file():
            return MemmapRows(mm)
        return cls(mm.filename, _layout=(start, mm.shape, mm.dtype))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"NpyRows({str(self.path)!r}, shape={self.shape}, dtype={self.file_dtype})"

    def rows(self, idx: Any) -> np.ndarray:
        """Rows ``idx``: sorted unique rows are coalesced into runs (gaps under 4 KiB read
        through), one ``pread`` per run into one block, then taken back into ``idx`` order.
        When every row is its own run (a random batch of a large file), each is read straight
        into its place instead."""
        idx = check_indices(idx, len(self), self)
        if idx.size == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        if idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):  # a range of rows
            return self.read(int(idx[0]), int(idx[-1]) + 1)  # one read, no second copy
        view = self._view()
        if view is not None:  # a file within MAP_BYTES: NumPy's gather from a read-only map
            out = view.take(idx, axis=0)
            return out if self.file_dtype.isnative else out.astype(self.dtype)
        unique, inverse = np.unique(idx, return_inverse=True)
        starts, stops, where = _runs(unique, max(1, _GAP_BYTES // max(self._row_bytes, 1)))
        if len(starts) == len(idx):  # no repeats, no shared runs
            out = np.empty((len(idx), *self.shape[1:]), self.file_dtype)
            self._read_runs(out, idx, idx + 1)
        else:
            block = np.empty((int((stops - starts).sum()), *self.shape[1:]), self.file_dtype)
            self._read_runs(block, starts, stops)
            out = block.take(where[inverse.reshape(-1)], axis=0)
        return out if self.file_dtype.isnative else out.astype(self.dtype)

    def _view(self) -> np.ndarray | None:
        """The rows as a read-only ndarray over a map of the file, made once, when the file
        holds at most `MAP_BYTES` (then the process's share of it is at most that, however
        many pages it touches); None for a larger file (`rows` reads with ``pread``)."""
        if self._rows_view is None and 0 < self._data_bytes <= MAP_BYTES:
            with self._lock:
                if self._rows_view is None:
                    with open(self.path, "rb") as f:
                        self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    self._rows_view = np.ndarray(
                        self.shape, self.file_dtype, buffer=self._map, offset=self.offset
                    )
        return self._rows_view

    def _read_runs(self, dest: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> None:
        """Rows ``starts[r]:stops[r]`` for each run r, one ``pread`` each, back to back into
        ``dest``."""
        fd, view, at = self._file(), _bytes_of(dest), 0
        offsets = (self.offset + starts * self._row_bytes).tolist()
        sizes = ((stops - starts) * self._row_bytes).tolist()
        for offset, size in zip(offsets, sizes, strict=True):
            part = view[at : at + size]
            if size > _MAX_READ or _preadv(fd, [part], offset) != size:  # rare: loop
                self._read_exact(fd, part, offset)
            at += size

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` in one ``pread``."""
        start, stop = _check_range(start, stop, len(self), self)
        out = np.empty((stop - start, *self.shape[1:]), self.file_dtype)
        self._read_exact(self._file(), _bytes_of(out), self.offset + start * self._row_bytes)
        return out if self.file_dtype.isnative else out.astype(self.dtype)

    def _read_exact(self, fd: int, view: memoryview, offset: int) -> None:
        """Fill ``view`` from ``offset``: one call, looping only on a short read."""
        done = _preadv(fd, [view[:_MAX_READ]], offset) if len(view) else 0
        while done < len(view):
            got = _preadv(fd, [view[done : done + _MAX_READ]], offset + done)
            if got == 0:
                raise DataError(
                    f"{self.path} ended at byte {offset + done}, before the rows its shape "
                    f"{self.shape} promises; was the file truncated while open? re-create it"
                )
            done += got

    def _file(self) -> int:
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return self._fd

    def close(self) -> None:
        """Close the file descriptor and the map (a later read reopens them)."""
        with self._lock:
            fd, self._fd = self._fd, None
            mapped, self._map, self._rows_view = self._map, None, None
        if fd is not None:
            os.close(fd)
        if mapped is not None:
            try:
                mapped.close()
            except BufferError:  # a view of it is still referenced: the GC closes it later
                pass

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # already closed by the OS at shutdown
                pass

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fd"], state["_lock"], state["_map"], state["_rows_view"] = None, None, None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _runs(unique: np.ndarray, gap_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique rows -> runs ``[starts[r], stops[r])`` to read (rows closer than
    ``gap_rows`` share a run) and ``where``: each unique row's position in the runs read back to
    back."""
    breaks = np.flatnonzero(np.diff(unique) > gap_rows) + 1
    bounds = np.concatenate(([0], breaks, [len(unique)]))
    starts, stops = unique[bounds[:-1]], unique[bounds[1:] - 1] + 1
    run_of = np.repeat(np.arange(len(starts)), np.diff(bounds))
    block_start = np.concatenate(([0], np.cumsum(stops - starts)[:-1]))
    return starts, stops, block_start[run_of] + (unique - starts[run_of])


def _bytes_of(array: np.ndarray) -> memoryview:
    """A writable byte view of a new C-contiguous ``array`` (cheap to slice, unlike ndarrays)."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _pread_copy(fd: int, buffers: list[memoryview], offset: int) -> int:
    """`os.preadv` for one buffer where the OS lacks it: pread, then copy."""
    data = os.pread(fd, len(buffers[0]), offset)
    buffers[0][: len(data)] = data
    return len(data)


_preadv = getattr(os, "preadv", _pread_copy)  # preadv reads straight into the buffer


def _file_offset(mm: np.memmap) -> int | None:
    """The file offset of ``mm``'s first byte: its root memmap's ``offset`` plus how far into
    the root's data ``mm`` starts (NumPy keeps a slice's ``offset`` at the root's value)."""
    root = mm
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not isinstance(root.base, mmap.mmap) or getattr(root, "offset", None) is None:
        return None
    delta = mm.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return int(root.offset) + int(delta) if delta >= 0 else None


class MemmapRows:
    """A `RowSource` indexing a memmap (or any array-like with ``shape`` and fancy indexing)
    itself: for layouts ``pread`` cannot read in runs (Fortran order, strided views). The pages
    it touches count in the process's resident memory until the OS drops them."""

    def __init__(self, mm: Any) -> None:
        self.array = mm
        self.shape = tuple(int(s) for s in mm.shape)
        if not self.shape:
            raise DataError("a 0-d array has no rows; a row source needs rows first")
        _refuse_objects(np.dtype(mm.dtype), repr(self))
        self.dtype = _native(np.dtype(mm.dtype))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        name = getattr(self.array, "filename", None) or type(self.array).__name__
        return f"MemmapRows({name!r}, shape={self.shape})"

    def rows(self, idx: Any) -> np.ndarray:
        return _fresh(self.array[check_indices(idx, len(self), self)], self.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = _check_range(start, stop, len(self), self)
        return _fresh(self.array[start:stop], self.dtype)


class ArrayRows:
    """A `RowSource` over an in-memory array, ``np.asarray``'ed once (native byte order)."""

    def __init__(self, array: Any) -> None:
        arr = np.asarray(array)
        if arr.ndim == 0:
            raise DataError(f"a 0-d array ({arr!r}) has no rows; pass an array with rows first")
        self.array = arr if arr.dtype.isnative else arr.astype(_native(arr.dtype))
        self.shape, self.dtype = self.array.shape, self.array.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ArrayRows(shape={self.shape}, dtype={self.dtype})"

    def rows(self, idx: Any) -> np.ndarray:
        return self.array.take(check_indices(idx, len(self), self), axis=0)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = _check_range(start, stop, len(self), self)
        return self.array[start:stop].copy()


def _fresh(part: Any, dtype: np.dtype) -> np.ndarray:
    """A new plain C-contiguous ndarray of ``dtype`` holding ``part`` (never a view of it)."""
    out = np.empty(np.shape(part), dtype)
    out[...] = part
    return out
