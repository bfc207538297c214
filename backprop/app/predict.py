"""``backprop predict``: a trained run's predictions for new rows, written as CSV.

Host-only module (NumPy and the csv module). `predict_file` reads the rows (`read_inputs`),
applies the run's stored preprocessing (the feature standardizer fitted on its training rows),
runs the model on the chosen backend in chunks of `CHUNK_ROWS` rows and writes one CSV row per
input row (`prediction_table`):

- softmax classifiers: ``class`` (the argmax), then ``prob_<c>`` for every class c;
- sigmoid with one output: ``class`` (1 when p >= 0.5) and ``prob_<c0>, prob_<c1>`` = 1-p, p;
- sigmoid with k outputs (multi-label): ``class_<j>`` and ``prob_<j>`` per output;
- regressors: one column per output, in the original units (the run's target standardizer
  undone), named after the run's CSV target columns, else ``prediction`` / ``prediction_<j>``.

Class names are the original labels when the run stored them (``preprocessing["classes"]``),
else the class index. Inputs: a ``.csv`` with a header row (the run's ``data.features`` and
``data.delimiter`` apply; a target column, the run's or ``--target``, is dropped when present)
or a ``.npz`` (the array the run read as X: its ``data.x``, else ``"X"``).
"""

from __future__ import annotations

import csv
import os
import pathlib
import sys
import zipfile
from typing import Any

import numpy as np

import backends

from ..data.checks import DataError
from ..data.preprocessing import Standardizer
from ..nn.model import dtype_name
from ..nn.sequential import is_activation
from . import experiment

__all__ = ["CHUNK_ROWS", "predict_file", "prediction_table", "read_inputs"]

CHUNK_ROWS = 8192


def predict_file(
    path: str | os.PathLike,
    data: str | os.PathLike,
    *,
    target: str | None = None,
    out: str | os.PathLike | None = None,
    backend: str = "numpy",
    device: str | None = None,
) -> tuple[experiment.LoadedRun, int]:
    """Predict every row of ``data`` with the run at ``path`` (a run directory or one of its
    checkpoints); write the CSV to ``out`` (None: standard output). Returns ``(run, rows)``.

    Raises `DataError` for an unreadable file or rows that do not fit the model, `OSError`
    when ``out`` cannot be written.
    """
    be = backends.get_backend(backend, device=None if device in (None, "default") else device)
    run = experiment.load_run(path, be)
    x = read_inputs(data, run, target)
    if "features" in run.preprocessing:
        x = Standardizer.from_dict(run.preprocessing["features"]).transform(x)
    header, rows = prediction_table(run, _outputs(run, be, x))
    _write_csv(header, rows, out)
    return run, len(rows)


def _outputs(run: experiment.LoadedRun, be: Any, x: np.ndarray) -> np.ndarray:
    """The model's output activations (N, *output_shape) for host inputs, chunk by chunk (an
    ensemble run's: the members' outputs averaged)."""
    dtype = "int32" if run.model.input_kind == "int" else dtype_name(run.params)
    parts = [
        be.to_numpy(run.predict(be.asarray(x[i : i + CHUNK_ROWS], dtype)))
        for i in range(0, len(x), CHUNK_ROWS)
    ]
    return np.concatenate(parts, axis=0)


# -- reading rows --------------------------------------------------------------------------------
def read_inputs(data: str | os.PathLike, run: experiment.LoadedRun, target: str | None) -> Any:
    """The rows of ``data`` as a host array (N, *input_shape): float64, or int64 token ids."""
    p = pathlib.Path(data)
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise DataError(
            f"--data {str(data)!r}: expected a file ending in one of {sorted(_READERS)}, "
            f"received suffix {p.suffix!r}; save the rows as CSV with a header row, or as .npz"
        )
    if not p.is_file():
        problem = "is a directory" if p.is_dir() else "does not exist"
        raise DataError(f"--data file {str(p)!r} {problem}; expected an existing {p.suffix} file")
    return _check_rows(reader(p, run, target), run, p)


def _csv_rows(p: pathlib.Path, run: experiment.LoadedRun, target: str | None) -> np.ndarray:
    options = run.config.data.options if run.config.data.name == "csv" else {}
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=options.get("delimiter", ","))
            rows = [(reader.line_num, row) for row in reader if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{str(p)!r} could not be read as UTF-8 CSV ({exc})") from None
    if len(rows) < 2:
        raise DataError(f"{str(p)!r} has no data rows; expected a header row, then data rows")
    header = [c.strip() for c in rows[0][1]]
    drop = set(_names(target if target is not None else options.get("target")))
    features = _names(options.get("features")) or [c for c in header if c not in drop]
    missing = [c for c in features if c not in header]
    if missing:
        raise DataError(
            f"{str(p)!r} has no column(s) {missing}; the run reads the features {features}; "
            f"its columns are {header}"
        )
    shape = tuple(run.model.input_shape)
    if len(shape) == 1 and len(features) != shape[0]:
        present = sorted(drop & set(header))
        raise DataError(
            f"{str(p)!r} has {len(features)} feature column(s) {_short(features)}"
            + (f" (without the target column(s) {present})" if present else "")
            + f"; the run's model takes {shape[0]}: pass the columns it was trained on, and "
            "--target COLUMN to leave a target column out"
        )
    return _numbers(p, header, rows[1:], features)


def _short(names: list[str]) -> str:
    return str(names) if len(names) <= 8 else f"[{', '.join(names[:4])}, ..., {names[-1]}]"


def _numbers(p: pathlib.Path, header: list[str], rows: list, features: list[str]) -> np.ndarray:
    cols = [header.index(c) for c in features]
    out = np.empty((len(rows), len(cols)))
    for i, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise DataError(
                f"{str(p)!r} line {line} has {len(row)} cells, expected {len(header)} (one per "
                "header column); fix that row"
            )
        for j, c in enumerate(cols):
            try:
                out[i, j] = float(row[c])
            except ValueError:
                raise DataError(
                    f"{str(p)!r} line {line}, column {header[c]!r} holds {row[c].strip()!r}, "
                    f"expected a number; fix or drop that row (or pass --target {header[c]} if it "
                    "is the target column)"
                ) from None
    return out


def _npz_rows(p: pathlib.Path, run: experiment.LoadedRun, target: str | None) -> np.ndarray:
    cfg = run.config.data
    key = cfg.options.get("x", "X") if cfg.name == "npz" else "X"
    try:
        with open(p, "rb") as handle:
            npz = np.load(handle, allow_pickle=False)
            names = list(getattr(npz, "files", []))
            x = npz[key] if key in names else None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{str(p)!r} is not a readable .npz archive of arrays ({str(exc)[:120]}); "
            f"write it with np.savez(path, {key}=X)"
        ) from None
    if x is None:
        raise DataError(
            f"{str(p)!r} has no array named {key!r} (the inputs the run reads); it holds "
            f"{sorted(names)}; save the rows with np.savez(path, {key}=X)"
        )
    return x


_READERS = {".csv": _csv_rows, ".npz": _npz_rows}


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _check_rows(x: np.ndarray, run: experiment.LoadedRun, p: pathlib.Path) -> np.ndarray:
    """x must be (N, *input_shape) numbers: finite floats, or whole numbers for token ids."""
    shape = tuple(run.model.input_shape)
    if x.dtype.kind not in "biuf" or x.ndim < 1 or tuple(x.shape[1:]) != shape or not len(x):
        what = f"{shape[0]} feature column(s)" if len(shape) == 1 else f"rows of shape {shape}"
        raise DataError(
            f"{str(p)!r} gives inputs of shape {tuple(x.shape)} ({x.dtype}); the run's model "
            f"takes {what}, so expected shape (N, {', '.join(map(str, shape))}); "
            + (
                "pass the same columns the run was trained on (--target names a column to leave "
                "out)"
                if len(shape) == 1
                else "save such rows in a .npz file: np.savez(path, X=X)"
            )
        )
    x = np.asarray(x, np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
        raise DataError(f"{str(p)!r} holds NaN or infinite values, the first in row {row}")
    if run.model.input_kind == "int":
        vocab = getattr(run.model.layers[0], "vocab_size", None) or np.iinfo(np.int32).max
        if not np.array_equal(x, np.round(x)) or ((x < -1) | (x >= vocab)).any():
            raise DataError(
                f"{str(p)!r}: this model takes integer token ids in [-1, {vocab}) (-1 pads); "
                "some values are fractions or outside that range: map tokens with the run's "
                "vocabulary"
            )
        return x.astype(np.int64)
    return x


# -- the table -----------------------------------------------------------------------------------
def prediction_table(run: experiment.LoadedRun, a: np.ndarray) -> tuple[list[str], list[list]]:
    """The CSV header and rows for the model's outputs ``a`` (N, *output_shape)."""
    model, n = run.model, len(a)
    if model.task != "classification":
        return _regression(run, a.reshape(n, -1))
    if a.ndim != 2:
        raise DataError(
            f"predict writes one row per input, but this classifier outputs shape {a.shape[1:]} "
            "per row; use model.predict from Python"
        )
    if is_activation(model.output_activation, "sigmoid") and a.shape[1] > 1:  # multi-label
        k = a.shape[1]
        header = [f"class_{j}" for j in range(k)] + [f"prob_{j}" for j in range(k)]
        return header, [[*(int(v >= 0.5) for v in r), *map(str, r)] for r in a]
    if a.shape[1] == 1:  # one sigmoid unit: p(class 1), class 1 when p >= 0.5
        index, a = (a[:, 0] >= 0.5).astype(int), np.concatenate([1 - a, a], axis=1)
    else:
        index = np.argmax(a, axis=1)
    labels = _class_labels(run.preprocessing, a.shape[1])
    header = ["class"] + [f"prob_{c}" for c in labels]
    return header, [[labels[i], *map(str, r)] for i, r in zip(index, a, strict=True)]


def _class_labels(preprocessing: dict[str, Any], k: int) -> list[Any]:
    """The run's original class labels when it stored ``k`` of them, else 0..k-1."""
    classes = preprocessing.get("classes")
    if isinstance(classes, dict):  # {"values": [...]} or {"labels": [...]}
        classes = classes.get("values", classes.get("labels"))
    if isinstance(classes, list) and len(classes) == k:
        return classes
    return list(range(k))


def _regression(run: experiment.LoadedRun, a: np.ndarray) -> tuple[list[str], list[list]]:
    if "targets" in run.preprocessing:
        a = Standardizer.from_dict(run.preprocessing["targets"]).inverse_transform(a)
    data = run.config.data
    names = _names(data.options.get("target")) if data.name == "csv" else []
    k = a.shape[1]
    if len(names) != k:
        names = ["prediction"] if k == 1 else [f"prediction_{j}" for j in range(k)]
    return names, [list(map(str, r)) for r in a]


def _write_csv(header: list[str], rows: list[list], out: str | os.PathLike | None) -> None:
    if out is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return
    try:
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise OSError(
            f"could not write the predictions to {str(out)!r}: {exc.strerror or exc}; "
            "check that its folder exists and is writable"
        ) from None
