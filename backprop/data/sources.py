"""Data sources for data larger than memory: what `fit` accepts besides in-memory arrays.

Host-only module: NumPy on the CPU; batches reach a backend only after they leave here.

Three kinds of training data:

- in-memory arrays (ndarray, list, torch tensor, pandas): `as_dataset` returns None and fit
  keeps its in-memory path;
- an indexable `Dataset`: ``len(ds)`` rows and ``ds.rows(idx) -> (x, y)`` or ``(x, y, w)``
  host arrays in ``idx`` order. fit draws each batch's indices from the same host permutation
  as for arrays, so batch order, results and exact resume match the in-memory run. Built from
  `RowSource` s (one array's rows each): `NpyRows` (a ``.npy`` file read with ``pread``, never
  mapped), `MemmapRows`, `ArrayRows`; `open_npy` opens ``.npy`` files, `as_dataset` wraps
  memmaps and user sources, `Subset` is a view on some rows (e.g. a validation split);
- a `BatchStream`: an iterable of ready ``(x, y[, w])`` host batches (a generator, a PyTorch
  DataLoader, a function ``epoch -> iterable``). No shuffling of ours: only the function form
  can be replayed exactly on resume, since fit cannot replay a DataLoader's own shuffling.

`Prefetcher` produces items (batches read, or moved to a device) ahead in a background thread.
"""

from __future__ import annotations

import collections.abc
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._npyrows import (
    ArrayRows,
    MemmapRows,
    NpyRows,
    RowSource,
    check_indices,
    read_npy_header,
)
from ._prefetch import Prefetcher
from .checks import DataError, host_array

__all__ = [
    "ArrayDataset",
    "ArrayRows",
    "BatchStream",
    "Dataset",
    "MemmapRows",
    "NpyRows",
    "Prefetcher",
    "RowSource",
    "Subset",
    "as_dataset",
    "is_batch_stream",
    "open_npy",
]

_CHUNK_BYTES = 1 << 24  # targets() reads y in chunks of about this size


@runtime_checkable
class Dataset(Protocol):
    """An indexable source of training examples: ``len(ds)`` rows and ``ds.rows(idx)`` ->
    ``(x, y)`` or ``(x, y, w)`` host arrays, rows in ``idx`` order (``x``: ``(len(idx), ...)``,
    ``y``: ``(len(idx), ...)``, ``w``: ``(len(idx),)`` sample weights)."""

    def __len__(self) -> int: ...

    def rows(self, idx: np.ndarray) -> tuple: ...


class ArrayDataset:
    """A `Dataset` from two `RowSource` s of the same length and optional in-memory sample
    weights ``w`` of shape ``(N,)``: ``rows(idx) = (x.rows(idx), y.rows(idx)[, w[idx]])``."""

    def __init__(self, x: RowSource, y: RowSource, w: Any = None) -> None:
        if len(x) != len(y):
            raise DataError(
                f"the features have {len(x)} rows but the targets have {len(y)} ({x!r}, {y!r}); "
                "they must have one row per example: check that the files belong together"
            )
        self.x, self.y, self.w = x, y, None if w is None else _weights(w, len(x), "w")

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        weights = "" if self.w is None else ", w"
        return f"ArrayDataset({self.x!r}, {self.y!r}{weights})"

    def rows(self, idx: Any) -> tuple[np.ndarray, ...]:
        idx = check_indices(idx, len(self), self)
        xy = (self.x.rows(idx), self.y.rows(idx))
        return xy if self.w is None else (*xy, self.w[idx])

    def targets(self) -> np.ndarray:
        """All of ``y`` (for stratified splits, class weights), read in chunks of ~16 MB."""
        return _read_all(self.y)

    def close(self) -> None:
        """Close the sources' files (a later read reopens them)."""
        for source in (self.x, self.y):
            getattr(source, "close", lambda: None)()


class Subset:
    """A `Dataset` view on rows ``index`` of ``base``: ``rows(idx) = base.rows(index[idx])``.

    Offers ``targets()`` (``base.targets()[index]``) when ``base`` does."""

    def __init__(self, base: Dataset, index: Any) -> None:
        self.base = base
        self.index = check_indices(index, len(base), base)
        if hasattr(base, "targets"):  # an instance attribute, so hasattr() tells the truth
            self.targets = self._targets

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"Subset({self.base!r}, {len(self.index)} rows)"

    def rows(self, idx: Any) -> tuple:
        return self.base.rows(self.index[check_indices(idx, len(self), self)])

    def _targets(self) -> np.ndarray:
        return self.base.targets()[self.index]


def _read_all(source: RowSource) -> np.ndarray:
    out = np.empty(source.shape, source.dtype)
    row_bytes = max(1, out[:1].nbytes)
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, len(source), step):
        stop = min(start + step, len(source))
        out[start:stop] = source.read(start, stop)
    return out


def _weights(w: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(w)
    if arr.shape != (n,) or arr.dtype.kind not in "fiub":
        raise DataError(
            f"the sample weights {name} must be numeric of shape ({n},), one per row, "
            f"received dtype {arr.dtype} and shape {arr.shape}"
        )
    return arr


def open_npy(
    features: str | os.PathLike, targets: str | os.PathLike, weights: Any = None
) -> ArrayDataset:
    """An `ArrayDataset` over the ``.npy`` files ``features`` ``(N, ...)`` and ``targets``
    ``(N, ...)``, read with ``pread`` (C order) or through a memmap (Fortran order); nothing is
    loaded. ``weights``: an optional ``.npy`` file of ``(N,)`` numbers, loaded in memory.

    Raises FileNotFoundError (no such file) or `DataError` (not a .npy file, corrupt header,
    truncated, a pickled object array, row counts that differ), naming the file and the fix.
    """
    x, y = _open_rows(features, "features"), _open_rows(targets, "targets")
    if len(x) != len(y):
        raise DataError(
            f"the features file {features} has {len(x)} rows but the targets file {targets} has "
            f"{len(y)}; they must have one row per example: check that the files belong together"
        )
    if weights is None:
        return ArrayDataset(x, y)
    source = _open_rows(weights, "weights")
    try:
        w = source.read(0, len(source))
    finally:
        getattr(source, "close", lambda: None)()
    return ArrayDataset(x, y, _weights(w, len(x), f"file {weights}"))


def _open_rows(path: str | os.PathLike, name: str) -> NpyRows | MemmapRows:
    p = Path(path)
    if not p.is_file():
        why = "is a directory" if p.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"the {name} file {p} {why}; expected a .npy file written by np.save "
            f"(relative paths start at {Path.cwd()}): check the path"
        )
    offset, shape, dtype, fortran = read_npy_header(p)
    if fortran and len(shape) > 1:  # rows are not contiguous on disk: index a memmap
        return MemmapRows(np.load(p, mmap_mode="r"))
    return NpyRows(p, _layout=(offset, shape, dtype))


def _is_rows(obj: Any) -> bool:
    """Has ``rows`` and a length: a `RowSource` or a `Dataset`."""
    return callable(getattr(obj, "rows", None)) and hasattr(obj, "__len__")


def _yields_tuples(source: Any) -> bool:
    """Whether ``source.rows`` returns ``(x, y[, w])`` (a Dataset) or one array (a RowSource),
    seen on its first row."""
    if len(source) == 0:
        raise DataError(f"{source!r} has no rows; training needs at least one")
    return isinstance(source.rows(np.arange(1)), (tuple, list))


def _as_rows(obj: Any, name: str) -> RowSource:
    if isinstance(obj, np.memmap):
        return NpyRows.from_memmap(obj)
    if _is_rows(obj):  # a user RowSource
        return obj
    return ArrayRows(host_array(name, obj))


def as_dataset(X: Any, Y: Any = None) -> Dataset | None:
    """``(X, Y)`` as a `Dataset`, or None when both are ordinary in-memory data (ndarray that
    is not a memmap, list, tuple, torch tensor, pandas...), which fit handles as today.

    - a memmap (X or Y): an `ArrayDataset` reading it with ``pread`` (`NpyRows.from_memmap`);
    - a user `RowSource` (``rows``, ``__len__`` and ``shape``) and Y: an `ArrayDataset`;
    - a `Dataset` (``rows`` returning ``(x, y[, w])``) and no Y: X itself.

    Raises TypeError for a Dataset given with a Y, or a RowSource/memmap without one; `DataError`
    when the row counts differ.
    """
    memmap = isinstance(X, np.memmap) or isinstance(Y, np.memmap)
    if not (memmap or _is_rows(X) or _is_rows(Y)):
        return None
    if Y is None:
        if isinstance(X, np.memmap) or not _yields_tuples(X):
            raise TypeError(
                f"X is a row source ({type(X).__name__}) whose rows(idx) returns one array, and "
                "Y is missing: pass the targets as Y, or pass a Dataset whose rows(idx) returns "
                "(x, y) or (x, y, w)"
            )
        return X
    if _is_rows(X) and not hasattr(X, "shape") and _yields_tuples(X):
        raise TypeError(
            f"X is a Dataset ({type(X).__name__}) whose rows(idx) already returns (x, y), and Y "
            "was given too: pass Y=None (the targets come from the Dataset)"
        )
    return ArrayDataset(_as_rows(X, "X"), _as_rows(Y, "Y"))


def is_batch_stream(X: Any) -> bool:
    """Whether ``X`` is a stream of batches for `BatchStream`: a `BatchStream`, a function
    ``epoch -> iterable``, or an iterable that is not array data (a generator, an iterator, a
    PyTorch DataLoader), i.e. not an ndarray, list, tuple, str, bytes, dict, `Dataset` or
    anything with a ``shape``."""
    if isinstance(X, BatchStream):
        return True
    array_like = (np.ndarray, list, tuple, str, bytes, dict, range)
    if isinstance(X, array_like) or hasattr(X, "shape") or _is_rows(X) or isinstance(X, type):
        return False
    return callable(X) or hasattr(X, "__iter__")


class BatchStream:
    """Host batches from ``source``, one epoch at a time (`epoch`).

    ``source`` is one of:

    - a re-iterable (a DataLoader, a list of batches, any object whose ``__iter__`` returns a
      fresh iterator): iterated once per epoch;
    - a one-shot iterator or generator: it serves ONE epoch; a second raises ValueError;
    - a function ``epoch -> iterable`` (epoch counted from 0): the only `reproducible` form,
      since fit cannot replay a DataLoader's own shuffling on resume, but a function of the
      epoch number can.

    Each item is ``(x, y)`` or ``(x, y, w)`` (tuple or list) of NumPy arrays, torch tensors
    (detached, moved to the CPU) or anything ``np.asarray`` takes.
    """

    def __init__(self, source: Any) -> None:
        if isinstance(source, BatchStream):
            source = source.source
        if isinstance(source, collections.abc.Iterator):
            self.kind = "iterator"
        elif hasattr(source, "__iter__"):
            self.kind = "iterable"
        elif callable(source):
            self.kind = "function"
        else:
            raise TypeError(
                f"a batch stream must be an iterable of (x, y) batches or a function "
                f"epoch -> iterable, received {type(source).__name__}"
            )
        self.source = source
        self._served: int | None = None  # the epoch a one-shot iterator gave

    @property
    def reproducible(self) -> bool:
        """True only for a function of the epoch: the same epoch gives the same batches."""
        return self.kind == "function"

    @property
    def n_batches(self) -> int | None:
        """Batches per epoch when the source has a length (a list, a DataLoader), else None."""
        try:
            return len(self)
        except TypeError:
            return None

    def __len__(self) -> int:
        if self.kind == "function" or not hasattr(self.source, "__len__"):
            raise TypeError(f"the batch source {type(self.source).__name__} has no length")
        return len(self.source)

    def __repr__(self) -> str:
        return f"BatchStream({type(self.source).__name__}, {self.kind})"

    def epoch(self, e: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Epoch ``e``'s (0-based) batches as host ``(x, y, w or None)``; raises ValueError at
        once when a one-shot iterator is asked for a second epoch."""
        if self.kind == "iterator":
            if self._served is not None:
                raise ValueError(
                    f"the batch source is a generator/iterator ({type(self.source).__name__}), "
                    f"so it yields one epoch of batches; fit asked for epoch {e + 1}: pass a "
                    "re-iterable (a list, a DataLoader) or a function epoch -> iterable"
                )
            self._served = e
            items: Iterable = self.source
        elif self.kind == "function":
            items = self.source(e)
            if not hasattr(items, "__iter__"):
                raise TypeError(
                    f"the batch function returned {type(items).__name__} for epoch {e}; "
                    "expected an iterable of (x, y) or (x, y, w) batches"
                )
        else:
            items = self.source
        return _host_batches(items, e)


def _host_batches(items: Iterable, e: int) -> Iterator[tuple]:
    for b, item in enumerate(items):
        yield _host_batch(item, f"batch {b + 1} of epoch {e + 1} (counting from 1)")


def _host_batch(item: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One item as host ``(x, y, w or None)``, checked: a 2- or 3-tuple, rows that match."""
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        raise DataError(
            f"{where} is {_describe(item)}; expected a tuple (x, y) or (x, y, w) of arrays "
            "with one row per example"
        )
    x, y = _host(item[0], "x", where), _host(item[1], "y", where)
    w = _host(item[2], "w", where) if len(item) == 3 and item[2] is not None else None
    if x.shape[0] == 0:
        raise DataError(f"{where} is empty (x has shape {x.shape}); expected at least one row")
    if y.shape[0] != x.shape[0] or (w is not None and w.shape != (x.shape[0],)):
        got = f"x {x.shape}, y {y.shape}" + ("" if w is None else f", w {w.shape}")
        raise DataError(
            f"{where} has {got}: expected the same number of rows in each (and w of shape (rows,))"
        )
    return x, y, w


def _host(a: Any, name: str, where: str) -> np.ndarray:
    try:
        if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, maybe on a GPU
            a = a.detach().cpu().numpy()
        arr = np.asarray(a)
    except Exception as exc:  # bfloat16 tensors, ragged lists, odd objects
        raise DataError(f"{where}: {name} could not be read as an array: {exc}") from None
    if arr.ndim == 0 or arr.dtype.kind not in "fiub":
        raise DataError(
            f"{where}: {name} is {_describe(a)} with dtype {arr.dtype}; expected a numeric "
            "array with one row per example"
        )
    return arr


def _describe(item: Any) -> str:
    kind = type(item).__name__
    if hasattr(item, "shape"):
        return f"a {kind} of shape {tuple(item.shape)}"
    if isinstance(item, dict):
        return f"a dict with keys {list(item)[:5]}"
    if isinstance(item, (tuple, list)):
        return f"a {kind} of {len(item)} item(s) ({', '.join(type(i).__name__ for i in item[:4])})"
    return f"a {kind}"
