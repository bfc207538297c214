"""Reading datasets from files: ``.npz`` arrays and ``.csv`` tables, with errors that name the
file, the column and the row. Host-only module (NumPy and the csv module).
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._options import check_name, check_path
from .checks import DataError

__all__ = ["load_csv", "load_npz"]


def _existing_file(path: Any, what: str, key: str = "data.path") -> Path:
    """``path`` as a Path to an existing file, or a DataError naming it and ``key``."""
    p = Path(check_path(what.strip(".").lower(), path))
    if not p.is_file():
        problem = "is a directory" if p.is_dir() else "does not exist"
        raise DataError(
            f"{what} file {str(p)!r} {problem} (resolved to {str(p.resolve())!r}); expected a "
            f"path to an existing file: check {key}"
        )
    return p


def load_npz(path: str | Path, x: str = "X", y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` (N, d) and ``y`` (N,) or (N, k) from a NumPy ``.npz`` file (no pickles).

    Returns X float64, and Y as integer labels int64, float64 values, or 1-D text class names
    (str), as stored. Write such a file with ``np.savez(path, X=X, y=y)``.
    """
    p = _existing_file(path, ".npz")
    x, y = check_name("npz", "x", x), check_name("npz", "y", y)
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
    """X (N, d) numeric -> float64; Y (N,) or (N, k) numeric -> int64 if integer, else float64;
    Y (N,) text (class names) as it is."""
    if Y.dtype.kind == "U" and Y.ndim == 1 and Y.shape[0] == X.shape[0]:  # class names
        _checked_xy(X, np.zeros(Y.shape[0]), xname, yname)
        return np.asarray(X, np.float64), Y
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
    one of text (no cell a number: ``cat``, ``dog``) gives its stripped strings (N,), class
    names that `backprop.data.labels.encode_targets` turns into indices; otherwise float64 (N,),
    or (N, k) for a list of k target columns. Blank lines are skipped; every feature cell that
    is used must be a finite number (columns not used may hold anything).
    """
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise DataError(
            f"data.delimiter must be one character such as ',' or ';' (not a quote or a line "
            f"break), received {delimiter!r}; set data.delimiter to the file's separator"
        )
    p = _existing_file(path, "CSV")
    targets = list(target) if isinstance(target, list | tuple) else [target]
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            header, rows = _read_csv(csv.reader(f, delimiter=delimiter), p, delimiter)
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
    X = _numeric_columns(p, header, rows, chosen, chosen)
    if len(targets) == 1 and _is_text_column(p, header, rows, targets[0]):
        return X, np.asarray([r[header.index(targets[0])].strip() for _, r in rows])
    Y = _numeric_columns(p, header, rows, targets, None)
    if len(targets) > 1:
        return X, Y
    whole = all(re.fullmatch(r"\s*[+-]?\d+\s*", r[header.index(targets[0])]) for _, r in rows)
    return X, Y[:, 0].astype(np.int64) if whole else Y[:, 0]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_text_column(p: Path, header: list[str], rows: list, name: str) -> bool:
    """Whether target column ``name`` holds class names (no cell a number); a DataError when it
    mixes numbers and text (a typo or a missing-value marker such as "n/a")."""
    c = header.index(name)
    cells = [(line, row[c].strip()) for line, row in rows]
    numbers = [(line, cell) for line, cell in cells if _is_number(cell)]
    text = [(line, cell) for line, cell in cells if cell and not _is_number(cell)]
    if not text:
        return False
    if numbers:
        raise DataError(
            f"{str(p)!r}: target column {name!r} mixes numbers (line {numbers[0][0]}: "
            f"{numbers[0][1]!r}) and text (line {text[0][0]}: {text[0][1]!r}); expected all "
            "numbers (values or class indices) or all class names: fix or drop those rows"
        )
    empty = [line for line, cell in cells if not cell]
    if empty:
        raise DataError(
            f"{str(p)!r} line {empty[0]}, target column {name!r} is empty (a missing class "
            f"label, {len(empty)} row(s)); fill in or drop those rows"
        )
    return True


def _read_csv(
    reader: Any, p: Path, delimiter: str
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (names stripped) and the data rows with their line numbers in the file."""
    rows = [(reader.line_num, row) for row in reader if row]
    if not rows:
        raise DataError(f"{str(p)!r} is empty; expected a header row of column names, then data")
    header = [c.strip() for c in rows[0][1]]
    _check_delimiter(p, header, delimiter)
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


_DELIMITERS = {",": ",", ";": ";", "\t": "\\t", "|": "|"}  # candidates -> as TOML writes them


def _check_delimiter(p: Path, header: list[str], delimiter: str) -> None:
    """A header read as one column that another delimiter would split: the file is separated
    by that one (a semicolon file read with the default comma)."""
    if len(header) != 1:
        return
    counts = {d: header[0].count(d) for d in _DELIMITERS if d != delimiter}
    best = max(counts, key=counts.get)
    if counts[best]:
        toml = _DELIMITERS[best]
        raise DataError(
            f"{str(p)!r}: the header row reads as one column {header[0]!r} with data.delimiter "
            f"{delimiter!r}, but it contains {best!r}: the file looks {best!r}-separated; set "
            f'data.delimiter = "{toml}" in the config (or --set \'data.delimiter="{toml}"\')'
        )


def _numeric_columns(
    p: Path, header: list[str], rows: list, names: list[str], features: list[str] | None
) -> np.ndarray:
    """The columns ``names`` as float64 (N, len(names)); ``features``: the feature columns when
    these are features (a non-number then suggests leaving its column out), None for targets."""
    cols = [header.index(n) for n in names]
    out = np.empty((len(rows), len(cols)))
    for i, (line, row) in enumerate(rows):
        for j, c in enumerate(cols):
            out[i, j] = _number(p, line, header[c], row[c].strip(), features)
    return out


def _number(p: Path, line: int, column: str, cell: str, features: list[str] | None) -> float:
    """A stripped cell as a finite float, or the DataError naming the file, the line, the
    column and the cell (`_leave_out` with ``features``: how to drop a feature column)."""
    try:
        value = float(cell)
    except ValueError:
        what = "is empty" if not cell else f"holds {cell!r}, which is not a number"
        raise DataError(
            f"{str(p)!r} line {line}, column {column!r} {what}; expected a number: "
            f"fix or drop that row{_leave_out(column, features)}"
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"{str(p)!r} line {line}, column {column!r} holds {cell!r}; expected a "
            "finite number: drop or impute that row"
        )
    return value


def _leave_out(column: str, features: list[str] | None) -> str:
    """For a non-number in a feature column: how to leave that column out."""
    if features is None:
        return ""
    rest = [f for f in features if f != column]
    if not rest:
        return f"; {column!r} is the only feature column: choose others with data.features"
    return (
        f"; {column!r} is a feature column (every column but the target, unless data.features "
        f"lists them): to leave it out set data.features = {json.dumps(rest)}"
    )


def _did_you_mean(name: str, names: list[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``names`` (ignoring case), or ``""``."""
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1)
    return f"did you mean {lower[close[0]]!r}? " if close else ""
