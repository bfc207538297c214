"""Features in a ``.npy`` file larger than memory: the config dataset ``npy`` opens them
memory-mapped (`load_npy`) and never reads them whole; a train/test split and ``standardize``
keep them on disk too (`MappedRows`, `fit_standardizer`, `standardized`).

Host-only module (NumPy). Rows are read with ``pread`` (`backprop.data.sources.NpyRows`), not
through the memory map, and whole-file passes (the NaN check, the standardization statistics)
a chunk of rows at a time, so the process's resident memory stays about one chunk whatever the
file's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._options import _fail
from .checks import DataError
from .files import _existing_file
from .preprocessing import Standardizer
from .sources import NpyRows

__all__ = ["MappedRows", "fit_standardizer", "load_npy", "select_rows", "standardized"]

CHUNK_BYTES = 8 * 2**20  # one chunk of rows in the whole-file passes (float64: ~4x transient)


def load_npy(features: str | Path, targets: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X, Y)`` from two ``.npy`` files (write them with ``np.save``, or convert a CSV with
    ``backprop convert-csv``): X (N, d) numeric, opened read-only memory-mapped
    (``np.load(features, mmap_mode="r")``, a `numpy.memmap`: never read whole, checked for
    NaN and inf in chunks); Y (N,) or (N, k) numeric, or (N,) text class names, read into
    memory (int64 for integers, float64 for reals, as `load_npz` gives them).

    Raises `DataError` naming the file and the key (``data.features``, ``data.targets``).
    """
    X = _open(features, "features")
    Y = np.array(_open(targets, "targets"))  # a copy in memory: targets are small
    _check(X, "features", (2,), features)
    _check(Y, "targets", (1, 2), targets)
    if X.shape[0] != Y.shape[0]:
        raise DataError(
            f"data.features {str(features)!r} has {X.shape[0]} rows but data.targets "
            f"{str(targets)!r} has {Y.shape[0]}; expected one target row per input row: write "
            "both files from the same rows"
        )
    if X.dtype.kind == "f":
        _check_finite(X, features)
    if Y.dtype.kind in "biu":
        return X, Y.astype(np.int64)
    return X, Y if Y.dtype.kind == "U" else Y.astype(np.float64)


def _open(path: Any, key: str) -> np.ndarray:
    if not isinstance(path, str | os.PathLike) or not os.fspath(path).strip():
        raise _fail("npy", key, path, 'a path to a .npy file such as "x.npy"')
    p = _existing_file(path, ".npy", key=f"data.{key}")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(
            f"data.{key} {str(p)!r} is not a readable .npy file (not NumPy's format, truncated, "
            f"empty or holding Python objects): {str(exc)[:160]}; write it with "
            "np.save(path, array) or backprop convert-csv"
        ) from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise DataError(
            f"data.{key} {str(p)!r} is an .npz archive, expected a single-array .npy file; use "
            'name = "npz" with path = ... for an archive, or save each array with np.save'
        )
    return arr


def _check(arr: np.ndarray, key: str, dims: tuple[int, ...], path: Any) -> None:
    text = key == "targets" and arr.dtype.kind == "U" and arr.ndim == 1
    if (arr.dtype.kind not in "biuf" and not text) or arr.ndim not in dims or not arr.size:
        want = "2-D (N, features)" if dims == (2,) else "1-D (N,) or 2-D (N, k)"
        raise DataError(
            f"data.{key} {str(path)!r} must hold a non-empty numeric {want} array, received "
            f"dtype {arr.dtype} and shape {arr.shape}; save numbers with that shape"
        )
    if arr.dtype.kind == "f" and key == "targets" and not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))[0])
        raise DataError(
            f"data.targets {str(path)!r} holds NaN or infinite values, the first in row {row}; "
            "expected finite numbers: drop or impute those rows"
        )


def _check_finite(X: np.ndarray, path: Any) -> None:
    """NaN or inf anywhere in X: a DataError with the count and the first row (one pass)."""
    bad, first, start = 0, None, 0
    for chunk in row_chunks(X):
        wrong = ~np.isfinite(chunk).all(axis=1)
        if wrong.any():
            bad += int((~np.isfinite(chunk)).sum())
            first = start + int(np.flatnonzero(wrong)[0]) if first is None else first
        start += len(chunk)
    if bad:
        raise DataError(
            f"data.features {str(path)!r} holds {bad} NaN or infinite value(s), the first in "
            f"row {first}; expected finite numbers: drop or impute those rows"
        )


def row_chunks(X: np.ndarray, rows: int | None = None) -> Iterator[np.ndarray]:
    """X's rows in order, ``rows`` at a time (default: about `CHUNK_BYTES`), each a new
    in-memory array. A memory map is read with ``pread`` (`NpyRows`): its pages are not mapped
    into the process."""
    row_bytes = max(1, X.dtype.itemsize * int(np.prod(X.shape[1:], dtype=np.int64)))
    rows = rows or max(1, CHUNK_BYTES // row_bytes)
    source = NpyRows.from_memmap(X) if isinstance(X, np.memmap) else None
    for start in range(0, len(X), rows):
        stop = min(start + rows, len(X))
        yield np.array(X[start:stop]) if source is None else source.read(start, stop)


class MappedRows:
    """Rows of a memory-mapped array ``base`` (N, d), read on demand and never whole: the rows
    ``index`` (None: all of them, in order), standardized ``(x - mean) / scale`` in float64 when
    ``scaler`` (a fitted `Standardizer`) is given.

    What a config's ``npy`` features become after a train/test split or ``standardize``. It has
    ``shape``, ``dtype``, ``len``, ``rows(idx)`` (rows ``idx`` as a new array, in ``idx``
    order) and ``read(start, stop)``, what `backprop.fit` takes as a source of rows;
    ``x[key]`` reads rows too, and ``np.asarray(x)`` reads all of them into memory.
    """

    def __init__(self, base: np.ndarray, index: Any = None, scaler: Standardizer | None = None):
        self.base, self.scaler = base, scaler
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self._source = NpyRows.from_memmap(base) if isinstance(base, np.memmap) else None
        n = len(base) if self.index is None else len(self.index)
        self.shape = (n, *base.shape[1:])
        read = base.dtype if self._source is None else self._source.dtype  # native byte order
        self.dtype = np.dtype(np.float64) if scaler is not None else read
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        what = "all rows" if self.index is None else f"{len(self)} selected rows"
        scaled = ", standardized" if self.scaler is not None else ""
        return f"MappedRows({getattr(self.base, 'filename', 'array')}, {what}{scaled})"

    def rows(self, idx: Any) -> np.ndarray:
        """Rows ``idx`` (ints in [0, len)), in that order, as a new in-memory array."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row indices must be in [0, {len(self)}), received {idx.min()}..")
        where = idx if self.index is None else self.index[idx]
        out = np.array(self.base[where]) if self._source is None else self._source.rows(where)
        return out if self.scaler is None else self.scaler.transform(out)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.rows(np.arange(start, min(stop, len(self))))

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            return self.rows(np.arange(len(self))[key])
        if isinstance(key, int | np.integer):
            return self.rows([range(len(self))[key]])[0]
        return self.rows(key)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            raise ValueError("MappedRows reads rows from disk: np.asarray makes a copy")
        out = self.rows(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)

    def select(self, idx: Any) -> MappedRows:
        """The rows ``idx`` of these rows, still on disk."""
        idx = np.asarray(idx, dtype=np.int64)
        return MappedRows(self.base, idx if self.index is None else self.index[idx], self.scaler)

    def chunks(self) -> Iterator[np.ndarray]:
        """These rows (unstandardized, in file order, not ``index`` order) a chunk at a time."""
        picked = None if self.index is None else np.sort(self.index)
        start = 0
        for chunk in row_chunks(self.base):
            stop = start + len(chunk)
            if picked is None:
                yield chunk
            else:
                lo, hi = np.searchsorted(picked, [start, stop])
                if hi > lo:
                    yield chunk[picked[lo:hi] - start]
            start = stop


def select_rows(X: Any, idx: np.ndarray) -> Any:
    """``X[idx]``, except for memory-mapped X (a `numpy.memmap` or `MappedRows`): those rows
    as `MappedRows`, still on disk."""
    if isinstance(X, MappedRows):
        return X.select(idx)
    if isinstance(X, np.memmap):
        return MappedRows(X, idx)
    return X[idx]


def fit_standardizer(X: Any) -> Standardizer:
    """`Standardizer().fit(X)`; for memory-mapped X, the mean and standard deviation (ddof=0)
    of each column accumulated in float64 over chunks of rows (Chan et al.'s pairwise update),
    so the result equals `Standardizer.fit`'s to rounding."""
    if not isinstance(X, MappedRows | np.memmap):
        return Standardizer().fit(X)
    rows = X if isinstance(X, MappedRows) else MappedRows(X)
    n, mean, m2 = 0, 0.0, 0.0
    for chunk in rows.chunks():
        c = chunk.reshape(len(chunk), -1).astype(np.float64)
        if not len(c):
            continue
        c_mean = c.mean(axis=0)
        c_m2 = ((c - c_mean) ** 2).sum(axis=0)
        delta, total = c_mean - mean, n + len(c)
        mean = mean + delta * (len(c) / total)
        m2 = m2 + c_m2 + delta**2 * (n * len(c) / total)
        n = total
    std = np.sqrt(m2 / n)
    tiny = 10.0 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))  # as Standardizer
    scaler = Standardizer()
    scaler.mean, scaler.scale = mean, np.where(std > tiny, std, 1.0)
    return scaler


def standardized(scaler: Standardizer, X: Any) -> Any:
    """``scaler.transform(X)``; memory-mapped X stays on disk, standardized as rows are read."""
    if isinstance(X, MappedRows):
        return MappedRows(X.base, X.index, scaler)
    if isinstance(X, np.memmap):
        return MappedRows(X, None, scaler)
    return scaler.transform(X)
