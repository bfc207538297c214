"""The streaming benchmark's files: W1 as ``.npy`` and a big file written in chunks.

Nothing here holds a big array whole: `NpyWriter` writes the ``.npy`` header for the final shape
and then appends row chunks, so a 4 GiB file costs one chunk (32 MiB) of memory to write.
After writing, `drop_from_page_cache` asks the kernel to forget the file's pages, so training
reads it from the disk rather than from the cache the writer filled.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from typing import Any

import numpy as np

from .workloads import Workload, make_data

__all__ = [
    "BigFile",
    "NpyWriter",
    "drop_from_page_cache",
    "free_bytes",
    "space_problem",
    "write_big",
    "write_w1",
]

GIB = 2**30
SPACE_FACTOR = 1.5  # free disk space needed, in multiples of the files' size
CHUNK_ROWS = 8192  # rows per write: 32 MiB of 1024 float32 features


class BigFile:
    """The big-file case: an MLP ``sizes`` trained with SGD, ``batch_size`` rows a step, on
    ``rows`` standard normal float32 rows of ``sizes[0]`` features and the labels of a random
    linear teacher (as `workloads.make_data`)."""

    sizes = (1024, 64, 10)
    batch_size = 512
    lr = 0.1
    seed = 0

    def __init__(self, gib: float) -> None:
        self.gib = gib
        self.rows = max(self.batch_size, int(gib * GIB) // (4 * self.sizes[0]))

    @property
    def x_bytes(self) -> int:
        return self.rows * self.sizes[0] * 4

    @property
    def nbytes(self) -> int:
        """Features (float32) and labels (int64) on disk, headers aside."""
        return self.x_bytes + self.rows * 8


class NpyWriter:
    """Write a C-order ``.npy`` of ``shape`` and ``dtype`` chunk by chunk (rows along axis 0).

    ``with NpyWriter(path, shape, dtype) as w: w.write(chunk)``; on leaving, the rows written
    must add up to ``shape[0]`` (else the file is removed and ValueError raised), and the file
    is flushed to the disk (fsync), so its pages are clean and can be dropped from the cache.
    """

    def __init__(self, path: pathlib.Path, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.shape, self.dtype = pathlib.Path(path), shape, np.dtype(dtype)
        self.rows = 0

    def __enter__(self) -> NpyWriter:
        self._file = open(self.path, "wb")  # closed in __exit__
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_1_0(self._file, header)
        return self

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        if chunk.shape[1:] != self.shape[1:]:
            raise ValueError(f"chunk rows of shape {chunk.shape[1:]}, expected {self.shape[1:]}")
        chunk.tofile(self._file)
        self.rows += len(chunk)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        if kind is None and self.rows != self.shape[0]:
            self.path.unlink()
            raise ValueError(f"{self.path}: wrote {self.rows} rows, the header says {self.shape}")


def write_w1(w: Workload, folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """``w``'s data (`make_data`) as ``x.npy`` (n, n_in) float32 and ``y.npy`` (n,) int64."""
    X, y = make_data(w)
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    np.save(x_path, X)
    np.save(y_path, y)
    return x_path, y_path


def write_big(big: BigFile, folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """``big_x.npy`` (rows, n_in) float32 standard normal and ``big_y.npy`` (rows,) int64
    labels ``argmax(x @ T)`` of a fixed random teacher T, written `CHUNK_ROWS` rows at a time."""
    n_in, n_out = big.sizes[0], big.sizes[-1]
    rng = np.random.default_rng(big.seed)
    teacher = rng.standard_normal((n_in, n_out), dtype=np.float32)
    x_path, y_path = folder / "big_x.npy", folder / "big_y.npy"
    with NpyWriter(x_path, (big.rows, n_in), np.float32) as xw:
        with NpyWriter(y_path, (big.rows,), np.int64) as yw:
            for start in range(0, big.rows, CHUNK_ROWS):
                rows = min(CHUNK_ROWS, big.rows - start)
                chunk = rng.standard_normal((rows, n_in), dtype=np.float32)
                xw.write(chunk)
                yw.write(np.argmax(chunk @ teacher, axis=1))
    return x_path, y_path


def drop_from_page_cache(*paths: pathlib.Path) -> bool:
    """Ask the kernel to drop the files' (clean) pages from its cache, so the next read comes
    from the disk; True when it could be asked (Linux ``posix_fadvise``)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def free_bytes(folder: pathlib.Path) -> int:
    """Free bytes on the file system that holds ``folder``."""
    return shutil.disk_usage(folder).free


def space_problem(folder: pathlib.Path, needed: int) -> str | None:
    """Why ``needed`` bytes of files cannot go to ``folder`` (less than `SPACE_FACTOR` times
    that free), or None when they can."""
    free = free_bytes(folder)
    if free >= SPACE_FACTOR * needed:
        return None
    return (
        f"the benchmark's files need {needed / GIB:.2f} GiB in {folder} and its disk has "
        f"{free / GIB:.2f} GiB free ({SPACE_FACTOR}x the size is required, the rest headroom); "
        "pass a smaller --big-gb (0 skips the big file) or --tmp DIR on a disk with more room"
    )
