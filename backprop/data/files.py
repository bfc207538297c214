"""Reading datasets from files: ``.npz`` arrays and ``.csv`` tables, with errors that name the
file, the column and the row. Host-only module (NumPy and the csv module).
"""

from __future__ import annotations

import csv
import difflib
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checks import DataError

__all__ = ["load_csv", "load_npz"]


def _existing_file(path: Any, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        problem = "is a directory" if p.is_dir() else "does not exist"
        raise DataError(
            f"{what} file {str(p)!r} {problem} (resolved to {str(p.resolve())!r}); expected a "
            "path to an existing file: check data.path"
        )
    return p


def load_npz(path: str | Path, x: str = "X", y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` (N, d) and ``y`` (N,) or (N, k) from a NumPy ``.npz`` file (no pickles).

    Returns X float64, and Y as integer labels int64 or float64 values, as stored. Write such a
    file with ``np.savez(path, X=X, y=y)``.
    """
    p = _existing_file(path, ".npz")
    try:  # our own handle: np.load leaks the one it opens when the archive is corrupt
        with open(p, "rb") as handle:
            npz = np.load(handle, allow_pickle=False)
            if isinstance(npz, np.ndarray):
                raise DataError(
                    f"{str(p)!r} holds a single .npy array, expected an .npz archive of named "
                    "arrays; write one with np.savez(path, X=X, y=y)"
                )
            for key, name in (("data.x", x), ("data.y", y)):
                if name not in npz.files:
                    raise DataError(
                        f"{str(p)!r} has no array named {name!r}; it holds {sorted(npz.files)}; "
                        f"set {key} to one of those names"
                    )
            X, Y = npz[x], npz[y]
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{str(p)!r} is not a readable .npz file (corrupt, truncated, not a zip archive, or "
            f"holding Python objects): {str(exc)[:160]}; write it with np.savez(path, X=X, y=y)"
        ) from None
    return _checked_xy(X, Y, f"{str(p)!r}: array {x!r}", f"{str(p)!r}: array {y!r}")


def _checked_xy(X: np.ndarray, Y: np.ndarray, xname: str, yname: str):
    """X (N, d) numeric -> float64; Y (N,) or (N, k) numeric -> int64 if integer, else float64."""
    for arr, name, dims in ((X, xname, (2,)), (Y, yname, (1, 2))):
        if arr.dtype.kind not in "biuf" or arr.ndim not in dims or arr.shape[0] == 0:
            want = "2-D (N, features)" if dims == (2,) else "1-D (N,) or 2-D (N, k)"
            raise DataError(
                f"{name} must be a non-empty numeric {want} array, received dtype {arr.dtype} "
                f"and shape {arr.shape}; save numbers with that shape"
            )
        bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(arr.shape[0], -1).any(axis=1))[0])
            raise DataError(
                f"{name} holds {int(bad.sum())} NaN or infinite value(s), the first in row {row}; "
                "expected finite numbers: drop or impute those rows"
            )
    if X.shape[0] != Y.shape[0]:
        raise DataError(
            f"{xname} has {X.shape[0]} rows but {yname} has {Y.shape[0]}; expected one target "
            "row per input row"
        )
    ydtype = np.int64 if Y.dtype.kind in "biu" else np.float64
    return np.asarray(X, np.float64), np.asarray(Y, ydtype)


def load_csv(
    path: str | Path,
    target: str | Sequence[str],
    features: Sequence[str] | None = None,
    delimiter: str = ",",
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns of a CSV file with a header row: X (N, d) float64 from ``features``
    (default: every column but the targets), Y from ``target``.

    One target column of integers (as written: ``3``, not ``3.0``) gives int64 class labels (N,);
    otherwise float64 (N,), or (N, k) for a list of k target columns. Blank lines are skipped;
    every cell that is used must be a finite number (columns not used may hold anything).
    """
    p = _existing_file(path, "CSV")
    targets = list(target) if isinstance(target, list | tuple) else [target]
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DataError(f"data.delimiter must be one character such as ',', received {delimiter!r}")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            header, rows = _read_csv(csv.reader(f, delimiter=delimiter), p)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{str(p)!r} could not be read as UTF-8 CSV ({exc}); expected a text file with "
            f"{delimiter!r}-separated cells: check the file and data.delimiter"
        ) from None
    if features is None:
        chosen = [c for c in header if c not in targets]
    else:
        chosen = list(features) if isinstance(features, list | tuple) else [features]
    for name in [*targets, *chosen]:
        if not isinstance(name, str):
            raise DataError(
                f"column names in data.target and data.features must be strings, received "
                f'{name!r}; write the header name, e.g. target = "label"'
            )
        if name not in header:
            raise DataError(
                f"{str(p)!r} has no column {name!r}; {_did_you_mean(name, header)}its columns "
                f"are {header}; check data.target and data.features"
            )
    if set(targets) & set(chosen) or not chosen or not targets:
        raise DataError(
            f"{str(p)!r}: expected at least one target and one feature column, none in both; "
            f"received target {targets} and features {chosen}; fix data.target/data.features"
        )
    X = _numeric_columns(p, header, rows, chosen)
    Y = _numeric_columns(p, header, rows, targets)
    if len(targets) > 1:
        return X, Y
    whole = all(re.fullmatch(r"\s*[+-]?\d+\s*", r[header.index(targets[0])]) for _, r in rows)
    return X, Y[:, 0].astype(np.int64) if whole else Y[:, 0]


def _read_csv(reader: Any, p: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (names stripped) and the data rows with their line numbers in the file."""
    rows = [(reader.line_num, row) for row in reader if row]
    if not rows:
        raise DataError(f"{str(p)!r} is empty; expected a header row of column names, then data")
    header = [c.strip() for c in rows[0][1]]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        raise DataError(
            f"{str(p)!r}: the header row {header} has duplicate or empty column names "
            f"{dupes or ['']}; expected one distinct name per column: rename them"
        )
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(
                f"{str(p)!r} line {line} has {len(row)} cells, expected {len(header)} (one per "
                "header column); fix that row, or set data.delimiter if it is not a comma"
            )
    if len(rows) < 3:
        raise DataError(
            f"{str(p)!r} has {len(rows) - 1} data row(s), expected at least 2; check that the "
            "file is complete"
        )
    return header, rows[1:]


def _numeric_columns(p: Path, header: list[str], rows: list, names: list[str]) -> np.ndarray:
    cols = [header.index(n) for n in names]
    out = np.empty((len(rows), len(cols)))
    for i, (line, row) in enumerate(rows):
        for j, c in enumerate(cols):
            cell = row[c].strip()
            try:
                out[i, j] = value = float(cell)
            except ValueError:
                what = "is empty" if not cell else f"holds {cell!r}, which is not a number"
                raise DataError(
                    f"{str(p)!r} line {line}, column {header[c]!r} {what}; expected a number: "
                    "fix or drop that row, or leave the column out of data.features"
                ) from None
            if not np.isfinite(value):
                raise DataError(
                    f"{str(p)!r} line {line}, column {header[c]!r} holds {cell!r}; expected a "
                    "finite number: drop or impute that row"
                )
    return out


def _did_you_mean(name: str, names: list[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``names`` (ignoring case), or ``""``."""
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1)
    return f"did you mean {lower[close[0]]!r}? " if close else ""
