"""Class labels as the data gives them -> the class indices a model is trained on, and back.

Host-only module (NumPy). A config's targets (`backprop.experiment.prepare_dataset`) may hold
class labels in any form: integers, integral floats (``1.0`` read from a CSV), text (``"cat"``)
or integers that are not ``0..K-1`` (``{0, 1000}``, ``{1, 2, 3}``). `encode_targets` infers the
classes from the values of a label column (1-D, or one column (N, 1)):

- softmax output: the classes are the sorted distinct labels, K of them; the targets become
  class indices 0..K-1 (int64 (N,), one-hot later), so the output gets K units. One class alone
  is refused (a one-unit softmax always outputs 1 and cannot learn); non-integral numbers are
  refused (those are values, not labels).
- sigmoid output: text with two distinct labels, or (with ``binary_cross_entropy``) two integral
  values other than 0/1 (``{-1, 1}``, ``{1, 2}``), become 0/1 (N, 1), class 1 the larger/later.
- any other output (regression): numbers pass unchanged; text is refused.

``classes`` (a JSON-ready list; ``classes[k]`` is the original label of class index k: ints for
numbers, strings for text) is returned when the labels were re-coded, None when they already
were 0..K-1 (or 0/1) or are not labels. A run stores it as ``preprocessing["classes"]``;
`encode_labels` applies it to new rows and `decode_labels` maps predicted indices back.

Plain ``fit(model, X, y)`` does none of this: there, labels are class indices in
``[0, units)`` (`backprop.data.checks.prepare_targets`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import DataError, _spec_name

__all__ = ["decode_labels", "encode_labels", "encode_targets"]

_TEXT = "USO"  # NumPy kinds of text (and of object arrays, which must then hold only text)


def encode_targets(Y: Any, output: Any, loss: Any) -> tuple[np.ndarray, list[Any] | None]:
    """``(targets for the model, classes or None)``; see the module docstring.

    Multi-column targets (one-hot rows, probabilities, several regression values) pass unchanged.
    """
    output, loss = _spec_name(output), _spec_name(loss)
    host = np.asarray(Y)
    column = _label_column(host)
    if column is None:
        return host, None
    if output == "softmax":
        return _softmax_labels(column)
    if output == "sigmoid":
        return _binary_labels(host, column, loss)
    if column.dtype.kind in _TEXT:
        raise DataError(
            f"the targets are text (e.g. {_shown(np.unique(column.astype(str)))}), but the "
            f"output {output!r} fits numbers (regression); for class labels use "
            'model.output = "softmax" with model.loss = "cross_entropy" (or "sigmoid" with '
            '"binary_cross_entropy" for two classes)'
        )
    return host, None


def encode_labels(Y: Any, classes: list[Any] | None, output: Any) -> np.ndarray:
    """New rows' labels -> the class indices of a trained run: int64 (N,) for a softmax output,
    float64 0/1 (N, 1) for a sigmoid one. ``classes`` is the run's ``preprocessing["classes"]``;
    None: the labels already are indices (integral floats become ints for a softmax).

    Raises `DataError` for labels the run never saw.
    """
    output = _spec_name(output)
    host = np.asarray(Y)
    column = _label_column(host)
    if column is None or (classes is None and output != "softmax"):
        return host
    if classes is None:
        return _integral(column).astype(np.int64)
    known = {_key(c): k for k, c in enumerate(classes)}
    keys = [_key(v) for v in (column.astype(str) if _is_text(classes) else _integral(column))]
    unknown = sorted({str(k) for k in keys if k not in known})
    if unknown:
        raise DataError(
            f"the labels hold {len(unknown)} class(es) the run was not trained on: "
            f"{_shown(unknown)}; it knows {_shown(classes)}; check the target column"
        )
    index = np.asarray([known[k] for k in keys], dtype=np.int64)
    return index if output == "softmax" else index.astype(np.float64)[:, None]


def decode_labels(index: Any, classes: list[Any] | None) -> np.ndarray:
    """Predicted class indices (N,) -> the original labels (N,) (the indices when None)."""
    index = np.asarray(index, dtype=np.int64)
    return index if classes is None else np.asarray(classes)[index]


def _label_column(host: np.ndarray) -> np.ndarray | None:
    if host.ndim == 1 or (host.ndim == 2 and host.shape[1] == 1):
        return host.reshape(-1)
    return None


def _softmax_labels(column: np.ndarray) -> tuple[np.ndarray, list[Any] | None]:
    values = column.astype(str) if column.dtype.kind in _TEXT else _integral(column)
    classes, index = np.unique(_text_or_numbers(values), return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"the targets hold a single class ({_shown(classes)}, all {len(column)} rows), so "
            "the softmax output would have one unit, which always outputs 1.0 and cannot learn; "
            "check the labels (data.target, or the dataset); for yes/no targets with both "
            'values present use model.output = "sigmoid" with "binary_cross_entropy"'
        )
    index = index.astype(np.int64)
    if values.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes))):
        return index, None
    return index, _json(classes)


def _binary_labels(
    host: np.ndarray, column: np.ndarray, loss: Any
) -> tuple[np.ndarray, list[Any] | None]:
    text = column.dtype.kind in _TEXT
    if not text and loss != "binary_cross_entropy":
        return host, None
    values = column.astype(str) if text else column
    if not text:
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            return host, None  # the NaN check downstream names the row
        distinct = np.unique(values)
        if len(distinct) != 2 or set(distinct.tolist()) <= {0, 1} or not _is_whole(distinct):
            return host, None  # 0/1 labels or probabilities: as given
        values = values.astype(np.int64)
    classes, index = np.unique(_text_or_numbers(values), return_inverse=True)
    if len(classes) != 2:
        raise DataError(
            f"a sigmoid output (one unit) takes two classes, but the targets hold "
            f"{len(classes)}: {_shown(classes)}; for more classes use model.output = "
            '"softmax" with model.loss = "cross_entropy"; for one class check the labels'
        )
    return index.astype(np.float64)[:, None], _json(classes)


def _integral(column: np.ndarray) -> np.ndarray:
    """A numeric label column as int64, or a DataError: labels are whole numbers."""
    if column.dtype.kind in "biu":
        return column.astype(np.int64)
    if column.dtype.kind != "f":
        raise DataError(
            f"class labels must be numbers or text, received dtype {column.dtype}; "
            "convert them to integers or strings first"
        )
    bad = ~np.isfinite(column) | (column != np.round(column))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "non-integer values" if np.isfinite(column[row]) else "missing (NaN) or inf values"
        raise DataError(
            f"a softmax output takes class labels, but the targets hold {what} such as "
            f"{column[row].item()!r} (row {row}); for real-valued targets use model.output = "
            '"identity" with model.loss = "mse" (regression); fix or drop missing labels'
        )
    return column.astype(np.int64)


def _text_or_numbers(values: np.ndarray) -> np.ndarray:
    """Text labels must not be empty (a missing cell), numbers pass."""
    if values.dtype.kind == "U":
        empty = np.flatnonzero(np.char.strip(values) == "")
        if empty.size:
            raise DataError(
                f"the class labels are text, but row {int(empty[0])} holds an empty label "
                f"({empty.size} row(s)); fill in or drop the rows with missing labels"
            )
    return values


def _is_whole(values: np.ndarray) -> bool:
    return values.dtype.kind in "biu" or bool(np.all(values == np.round(values)))


def _is_text(classes: list[Any]) -> bool:
    return any(isinstance(c, str) for c in classes)


def _key(value: Any) -> Any:
    return value if isinstance(value, str) else int(value)


def _json(classes: np.ndarray) -> list[Any]:
    return [str(c) if classes.dtype.kind in _TEXT else int(c) for c in classes]


def _shown(values: Any) -> str:
    items = [repr(v.item() if hasattr(v, "item") else v) for v in list(values)[:10]]
    return ", ".join(items) + (", ..." if len(values) > 10 else "")
