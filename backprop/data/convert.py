"""A CSV file -> ``.npy`` files, in chunks of rows: features ``x.npy`` (N, d) and targets
``y.npy`` (N,), which a config's ``npy`` dataset (and `backprop.fit`) opens memory-mapped
(``np.load(path, mmap_mode="r")``), so a table larger than memory can be trained on.

Host-only module (NumPy and the csv module). The CSV is read twice, never whole: the first pass
checks its shape (a header row or not, the same cell count on every row) and the target column
(integer class labels, real values or class names) and counts the rows; the second reads
``chunk_rows`` rows at a time, checks every feature cell (a finite number) and appends them to
the output. The cells and messages are `backprop.data.files.load_csv`'s: the same float64
values (``dtype="float64"`` gives its arrays bit for bit, ``"float32"`` their cast), integer
targets int64 (as written: ``3``, not ``3.0``), and an error names the file, the line, the
column and the cell. Both files are written to temporary names in the output directory and
renamed at the end: a failure leaves no partial ``x.npy``/``y.npy``.

The first row is a header of column names unless every cell of it is a number (then the file
has none and the columns are named by position: ``"0"``, ``"1"``, ...). The target is the last
column unless ``target`` names one (a header name, or a column number: ``2``, ``-1``).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .checks import DataError
from .files import (
    _DELIMITERS,
    _did_you_mean,
    _existing_file,
    _is_number,
    _number,
    _numeric_columns,
)

__all__ = ["csv_to_npy"]

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")  # load_csv's integer class labels: 3, not 3.0
DTYPES = ("float32", "float64")


def csv_to_npy(
    csv_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    target: str | int | None = None,
    chunk_rows: int = 65536,
    dtype: str = "float32",
    features_name: str = "x.npy",
    targets_name: str = "y.npy",
    overwrite: bool = False,
    delimiter: str = ",",
) -> dict[str, Any]:
    """Convert ``csv_path`` to ``out_dir/features_name`` (N, d) in ``dtype`` and
    ``out_dir/targets_name`` (N,): int64 when every target cell is an integer, class names
    (``<U``) when none is a number, else ``dtype``. ``out_dir`` is created when missing.

    Returns ``{"features", "targets"}`` (the paths), ``"rows"``, ``"columns"`` (d),
    ``"feature_names"``, ``"target"`` (its column name), ``"target_kind"`` ("integer",
    "float" or "text"), ``"header"`` (whether the file had one), ``"dtype"``,
    ``"targets_dtype"`` and ``"seconds"``. Raises `DataError` for a bad file or option,
    `FileExistsError` when an output exists and not ``overwrite``.
    """
    start = time.perf_counter()
    chunk_rows, dtype = _check_options(chunk_rows, dtype, features_name, targets_name, delimiter)
    source = _existing_file(csv_path, "CSV", key="the CSV path")
    out = _out_dir(out_dir)
    paths = {"features": out / features_name, "targets": out / targets_name}
    _refuse_existing(paths, overwrite)
    layout = _read(source, delimiter, lambda rows: _Layout.scan(rows, source, target, delimiter))
    out.mkdir(parents=True, exist_ok=True)
    temps: dict[str, str] = {}
    try:
        for key, path in paths.items():  # new files with the umask's permissions, as np.save
            temps[key] = str(out / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            open(temps[key], "xb").close()
        _read(source, delimiter, lambda rows: layout.write(rows, temps, dtype, chunk_rows))
        _refuse_existing(paths, overwrite)  # one may have appeared meanwhile
        for key, path in paths.items():
            os.replace(temps[key], path)
            del temps[key]  # only once it is renamed: else removed below
    finally:
        for temp in temps.values():  # a failure: no partial output is left
            Path(temp).unlink(missing_ok=True)
    return {
        **{key: str(path) for key, path in paths.items()},
        "rows": layout.rows,
        "columns": len(layout.features),
        "feature_names": [layout.header[c] for c in layout.features],
        "target": layout.header[layout.target],
        "target_kind": layout.kind,
        "header": layout.has_header,
        "dtype": dtype,
        "targets_dtype": str(layout.target_dtype(dtype)),
        "seconds": time.perf_counter() - start,
    }


def _check_options(chunk_rows, dtype, features_name, targets_name, delimiter):
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise DataError(
            f"chunk_rows must be an integer >= 1 (rows read and written at a time), received "
            f"{chunk_rows!r}; pass e.g. --chunk-rows 65536"
        )
    if dtype not in DTYPES:
        raise DataError(
            f"dtype must be one of {list(DTYPES)} (the features' type in the .npy file), "
            f"received {dtype!r}; pass --dtype float32 or --dtype float64"
        )
    names = (features_name, targets_name)
    if any(not isinstance(n, str) or not n or Path(n).name != n for n in names) or (
        features_name == targets_name
    ):
        raise DataError(
            f"the output file names must be two different plain file names such as 'x.npy' and "
            f"'y.npy', received {features_name!r} and {targets_name!r}"
        )
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise DataError(
            f"the delimiter must be one character such as ',' or ';' (not a quote or a line "
            f"break), received {delimiter!r}; pass the file's separator with --delimiter"
        )
    return chunk_rows, dtype


def _out_dir(out_dir: Any) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(
            f"OUT_DIR {str(out)!r} is a file, expected a directory (created when missing) for "
            "the .npy files: choose another path"
        )
    return out


def _refuse_existing(paths: dict[str, Path], overwrite: bool) -> None:
    there = [str(p) for p in paths.values() if p.exists()]
    if there and not overwrite:
        raise FileExistsError(
            f"{', '.join(repr(p) for p in there)} already exist(s); expected new output files: "
            "pass --overwrite (overwrite=True) to replace them, or choose another OUT_DIR"
        )


def _read(source: Path, delimiter: str, consume: Any) -> Any:
    """``consume(rows)`` over the file's non-blank rows ``(line number, cells)``, with
    load_csv's message for a file that is not UTF-8 CSV."""
    try:
        with open(source, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            return consume((reader.line_num, row) for row in reader if row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{str(source)!r} could not be read as UTF-8 CSV ({exc}); expected a text file with "
            f"{delimiter!r}-separated cells: check the file and the delimiter (--delimiter)"
        ) from None


class _Layout:
    """What the first pass learned: the column names, the target column and its kind, the
    number of data rows; `write` is the second pass."""

    def __init__(self, source: Path, header: list[str], has_header: bool, target: int) -> None:
        self.source, self.header, self.has_header, self.target = source, header, has_header, target
        self.features = [c for c in range(len(header)) if c != target]
        self.rows, self.kind, self.width = 0, "integer", 1

    @classmethod
    def scan(cls, rows: Iterator, source: Path, target: Any, delimiter: str) -> _Layout:
        first = next(rows, None)
        if first is None:
            raise DataError(
                f"{str(source)!r} is empty; expected an optional header row, then data rows"
            )
        second = next(rows, None)
        cells = [c.strip() for c in first[1]]
        has_header = _is_header(cells, None if second is None else second[1])
        header = cells if has_header else [str(i) for i in range(len(cells))]
        _check_header(source, header, delimiter)
        layout = cls(source, header, has_header, _target_index(source, header, target))
        targets = _TargetColumn()
        head = [item for item in ([] if has_header else [first]) + [second] if item is not None]
        for line, row in _chain(head, rows):
            if len(row) != len(header):
                raise DataError(
                    f"{str(source)!r} line {line} has {len(row)} cells, expected {len(header)} "
                    f"(as the {'header' if has_header else 'first'} row); fix that row, or pass "
                    "--delimiter if it is not a comma"
                )
            targets.add(line, row[layout.target])
            layout.rows += 1
        if layout.rows < 2:
            raise DataError(
                f"{str(source)!r} has {layout.rows} data row(s), expected at least 2; check "
                "that the file is complete"
            )
        layout.kind, layout.width = targets.kind(source, header[layout.target])
        return layout

    def target_dtype(self, dtype: str) -> np.dtype:
        kinds = {"integer": np.int64, "float": dtype, "text": f"<U{self.width}"}
        return np.dtype(kinds[self.kind])

    def write(self, rows: Iterator, temps: dict[str, str], dtype: str, chunk_rows: int) -> None:
        """The second pass: rows -> the temporary files, ``chunk_rows`` at a time."""
        if self.has_header:
            next(rows, None)
        shapes = {"features": (self.rows, len(self.features)), "targets": (self.rows,)}
        dtypes = {"features": np.dtype(dtype), "targets": self.target_dtype(dtype)}
        with contextlib.ExitStack() as stack:
            files = {k: stack.enter_context(open(temps[k], "wb")) for k in temps}
            for k, f in files.items():
                header = {"descr": np.lib.format.dtype_to_descr(dtypes[k]), "shape": shapes[k]}
                np.lib.format.write_array_header_1_0(f, {**header, "fortran_order": False})
            written, chunk = 0, []
            for item in rows:
                chunk.append(item)
                if len(chunk) == chunk_rows:
                    written += self._append(chunk, files, dtypes)
                    chunk = []
            written += self._append(chunk, files, dtypes) if chunk else 0
        if written != self.rows:
            self._changed(f"{self.rows} data rows on the first reading, {written} on the second")

    def _changed(self, what: str) -> None:
        raise DataError(
            f"{str(self.source)!r} changed while being converted ({what}); expected the same "
            "file on both readings: convert it again when nothing writes to it"
        )

    def _append(self, chunk: list, files: dict[str, Any], dtypes: dict[str, np.dtype]) -> int:
        if any(len(row) != len(self.header) for _, row in chunk):
            self._changed(f"line {next(ln for ln, r in chunk if len(r) != len(self.header))}")
        x = self._features(chunk)
        t = self.target
        if self.kind == "text":
            y = np.asarray([row[t].strip() for _, row in chunk], dtypes["targets"])
        else:
            y = np.asarray([_number(self.source, ln, self.header[t], row[t].strip(), None)
                            for ln, row in chunk])  # fmt: skip
        files["features"].write(np.ascontiguousarray(x, dtypes["features"]).data)
        files["targets"].write(np.ascontiguousarray(y, dtypes["targets"]).data)
        return len(chunk)

    def _features(self, chunk: list) -> np.ndarray:
        """The chunk's feature cells as float64 (rows, d): Python's ``float`` on each cell, as
        load_csv; a bad cell -> load_csv's message (its own loop finds and names it)."""
        cols = self.features
        try:
            cells = (float(row[c]) for _, row in chunk for c in cols)
            x = np.fromiter(cells, np.float64, len(chunk) * len(cols)).reshape(len(chunk), -1)
        except ValueError:
            x = None
        if x is None or not np.isfinite(x).all():
            names = [self.header[c] for c in cols]
            x = _numeric_columns(self.source, self.header, chunk, names, None)
        return x


class _TargetColumn:
    """The target cells seen so far: numbers (integers?), text, empty or non-finite cells."""

    def __init__(self) -> None:
        self.number = self.text = self.empty = self.bad = None  # the first (line, cell)
        self.whole, self.width, self.empties = True, 1, 0

    def add(self, line: int, raw: str) -> None:
        cell = raw.strip()
        if not cell:
            self.empty = self.empty or (line, cell)
            self.empties += 1
            return
        try:
            value = float(cell)
        except ValueError:
            self.text = self.text or (line, cell)
            self.width = max(self.width, len(cell))
            return
        self.number = self.number or (line, cell)
        self.whole = self.whole and _INTEGER.fullmatch(raw) is not None
        if not math.isfinite(value):
            self.bad = self.bad or (line, cell)

    def kind(self, source: Path, name: str) -> tuple[str, int]:
        """("integer" | "float" | "text", the longest class name), or load_csv's message."""
        where = f"{str(source)!r}: target column {name!r}"
        if self.text and self.number:
            raise DataError(
                f"{where} mixes numbers (line {self.number[0]}: {self.number[1]!r}) and text "
                f"(line {self.text[0]}: {self.text[1]!r}); expected all numbers (values or "
                "class indices) or all class names: fix or drop those rows"
            )
        if self.text and self.empty:
            raise DataError(
                f"{str(source)!r} line {self.empty[0]}, target column {name!r} is empty (a "
                f"missing class label, {self.empties} row(s)); fill in or drop those rows"
            )
        if self.text:
            return "text", self.width
        first = min(c for c in (self.empty, self.bad) if c) if self.empty or self.bad else None
        if first is not None:
            _number(source, first[0], name, first[1], None)  # raises its message
        return ("integer" if self.whole else "float"), 1


def _chain(head: list, rows: Iterator) -> Iterator:
    yield from head
    yield from rows


def _is_header(first: list[str], second: list[str] | None) -> bool:
    """Whether the first row names the columns: some cell of it is not a number where the
    second row has one (a data row with class names as targets is no header); with one row
    alone, whether any cell is not a number."""
    if second is None:
        return not all(_is_number(c) for c in first)
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second, strict=False))


def _check_header(source: Path, header: list[str], delimiter: str) -> None:
    """Distinct non-empty names, more than one column (else: probably another delimiter)."""
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        raise DataError(
            f"{str(source)!r}: the header row {header} has duplicate or empty column names "
            f"{dupes or ['']}; expected one distinct name per column: rename them"
        )
    if len(header) < 2:
        others = [d for d in _DELIMITERS if d != delimiter and d in header[0]]
        hint = (
            f"; it contains {others[0]!r}: the file looks {others[0]!r}-separated, pass "
            f"--delimiter '{_DELIMITERS[others[0]]}'"
            if others
            else ""
        )
        raise DataError(
            f"{str(source)!r} has one column {header[0]!r} with delimiter {delimiter!r}; "
            f"expected at least one feature and one target column{hint}"
        )


def _target_index(source: Path, header: list[str], target: Any) -> int:
    """The target column: None -> the last; a header name; or a column number (from 0;
    negative from the end)."""
    if target is None:
        return len(header) - 1
    if isinstance(target, str) and target.strip() in header:
        return header.index(target.strip())
    number = target if isinstance(target, int) and not isinstance(target, bool) else None
    if isinstance(target, str) and re.fullmatch(r"\s*-?\d+\s*", target):
        number = int(target)
    if number is not None and -len(header) <= number < len(header):
        return number % len(header)
    raise DataError(
        f"{str(source)!r} has no column {target!r}; {_did_you_mean(str(target), header)}its "
        f"columns are {header}; pass --target with one of those names, or a column number "
        f"from 0 to {len(header) - 1} (-1: the last)"
    )
