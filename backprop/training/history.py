"""The training history: one record (a dict of floats) per epoch, and every step's loss.

Columns written by `backprop.fit`: ``epoch`` (1-based), ``loss`` (mean training loss over the
epoch's batches, weighted by batch size, as scikit-learn's ``loss_curve_``), the training metric
(``accuracy`` or ``r2``) when ``train_metrics`` is on, ``val_loss`` and ``val_<metric>`` with
validation data, ``lr`` (the learning rate of the epoch's last step), ``time`` (seconds) and
``samples_per_s``, and with ``diagnostics`` the gradient-flow columns of `diagnostics`.

Host-only module: `History.to_arrays` / `History.from_arrays` store the history in checkpoints
as NumPy arrays (8 bytes a value, exact) instead of JSON text.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from typing import Any

import numpy as np

__all__ = ["History"]


class History:
    """Per-epoch records plus the per-step training losses.

    ``history["val_loss"]`` is that column as a list (NaN where an epoch lacks it);
    ``history.records[-1]`` the last epoch's record; ``history.step_losses`` every step's loss.
    """

    def __init__(
        self, records: list[dict[str, float]] | None = None, step_losses: list[float] | None = None
    ) -> None:
        self.records: list[dict[str, float]] = list(records or [])
        self.step_losses: list[float] = list(step_losses or [])

    def append(self, record: dict[str, float], step_losses: list[float]) -> None:
        self.records.append(dict(record))
        self.step_losses.extend(step_losses)

    @property
    def columns(self) -> list[str]:
        """Every column name, in first-seen order."""
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    @property
    def last(self) -> dict[str, float]:
        """The latest epoch's record (empty before the first epoch ends)."""
        return self.records[-1] if self.records else {}

    def __getitem__(self, column: str) -> list[float]:
        if column not in self.columns:
            raise KeyError(f"history has no column {column!r}; it has {self.columns}")
        return [record.get(column, math.nan) for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, columns={self.columns})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"records": [...], "step_losses": [...]}``."""
        return {"records": [dict(r) for r in self.records], "step_losses": list(self.step_losses)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(data.get("records"), data.get("step_losses"))

    def to_json(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write `to_dict` as JSON (NaN written as NaN, which Python's json reads back)."""
        path = pathlib.Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    def to_csv(self, path: str | pathlib.Path) -> pathlib.Path:
        """One row per epoch, one column per history column (empty where missing)."""
        path = pathlib.Path(path)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.records)
        return path

    # -- compact storage (checkpoints) -----------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(layout, tree)``: the history as arrays, or None when it holds a value that is not
        a float or an int, or records whose keys are not in `columns` order (use `to_dict`).

        ``tree``: ``{"step_losses": (S,), "columns": [(E,) array per column], "present":
        [(E,) uint8 per column listed in layout["gaps"]]}``: step losses in float32 when that is
        exact (a float32 run's), else float64; a column float64, or int64 when every value is
        an int. ``layout`` (JSON): ``{"epochs": E, "columns": names, "ints": names of the int
        columns, "gaps": indices of the columns some record lacks}``.
        `from_arrays` rebuilds an equal history: same values bit for bit (NaN and -0.0 too),
        same types, same keys in the same order.
        """
        columns = self.columns
        if not all(isinstance(v, float) for v in self.step_losses) or not all(
            list(r) == [c for c in columns if c in r] for r in self.records
        ):
            return None
        layout: dict[str, Any] = {
            "epochs": len(self.records),
            "columns": columns,
            "ints": [],
            "gaps": [],
        }
        tree: dict[str, Any] = {
            "step_losses": _narrow(np.asarray(self.step_losses, dtype=np.float64)),
            "columns": [],
            "present": [],
        }
        for i, name in enumerate(columns):
            present = [name in r for r in self.records]
            values = [r[name] for r in self.records if name in r]
            kind = _column_kind(values)
            if kind is None:
                return None
            if kind == "int":
                layout["ints"].append(name)
            filled = iter(values)
            tree["columns"].append(
                np.asarray([next(filled) if p else 0 for p in present], dtype=_DTYPES[kind])
            )
            if not all(present):
                layout["gaps"].append(i)
                tree["present"].append(np.asarray(present, dtype=np.uint8))
        return layout, tree

    @classmethod
    def from_checkpoint(cls, checkpoint: Any) -> History:
        """The history in a loaded checkpoint of `fit` (``load_checkpoint(path)``): its arrays
        (`from_arrays`), or the JSON of checkpoints written before them (`from_dict`)."""
        stored, arrays = checkpoint.meta["history"], checkpoint.trees.get("history")
        return cls.from_dict(stored) if arrays is None else cls.from_arrays(stored, arrays)

    @classmethod
    def from_arrays(cls, layout: Any, tree: Any) -> History:
        """The history `to_arrays` stored. Raises ValueError naming what is malformed."""
        n, columns, ints, gaps = _check_layout(layout)
        if not isinstance(tree, dict) or set(tree) != {"step_losses", "columns", "present"}:
            keys = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
            raise ValueError(
                f"the history arrays should be step_losses, columns and present, found {keys}"
            )
        steps, arrays, masks = tree["step_losses"], tree["columns"], tree["present"]
        _check_column_arrays(arrays, masks, len(columns), len(gaps), n)
        wrong = [
            c for c, a in zip(columns, arrays, strict=True) if (a.dtype.kind == "f") == (c in ints)
        ]
        if wrong:
            raise ValueError(f"the history's columns {wrong} are stored in the wrong dtype")
        if getattr(steps, "ndim", None) != 1 or steps.dtype.kind != "f":
            raise ValueError("the history's step_losses should be a 1-D float array")
        present = [[True] * n for _ in columns]
        for i, mask in zip(gaps, masks, strict=True):
            present[i] = [bool(p) for p in mask.tolist()]
        values = [
            [int(v) for v in a.tolist()] if name in ints else [float(v) for v in a.tolist()]
            for name, a in zip(columns, arrays, strict=True)
        ]
        records = [
            {c: values[i][e] for i, c in enumerate(columns) if present[i][e]} for e in range(n)
        ]
        return cls(records, [float(v) for v in steps.tolist()])


_DTYPES = {"float": np.float64, "int": np.int64}
_INT64 = np.iinfo(np.int64)


def _narrow(values: np.ndarray) -> np.ndarray:
    """float32 when that holds every value bit for bit (the losses of a float32 run: half the
    bytes), else the float64 array."""
    with np.errstate(over="ignore"):
        single = values.astype(np.float32)
    exact = np.array_equal(single.astype(np.float64).view(np.uint64), values.view(np.uint64))
    return single if exact else values


def _column_kind(values: list[Any]) -> str | None:
    """ "float" (every value a float), "int" (every value an int within int64), else None."""
    if all(isinstance(v, float) for v in values):
        return "float"
    if all(type(v) is int and _INT64.min <= v <= _INT64.max for v in values):
        return "int"
    return None


def _check_layout(layout: Any) -> tuple[int, list[str], set[str], list[int]]:
    ok = isinstance(layout, dict) and all(
        isinstance(layout.get(k), list) for k in ("columns", "ints", "gaps")
    )
    ok = ok and type(layout.get("epochs")) is int and layout["epochs"] >= 0
    columns = layout["columns"] if ok else []
    if not (
        ok
        and all(isinstance(c, str) for c in [*columns, *layout["ints"]])
        and len(set(columns)) == len(columns)
        and set(layout["ints"]) <= set(columns)
        and all(type(i) is int and 0 <= i < len(columns) for i in layout["gaps"])
        and layout["gaps"] == sorted(set(layout["gaps"]))
    ):
        raise ValueError(
            "the history layout should be {'epochs': int >= 0, 'columns': [unique names], "
            "'ints': [names among them], 'gaps': [sorted column indices]}, found "
            f"{repr(layout)[:200]}"
        )
    return layout["epochs"], columns, set(layout["ints"]), layout["gaps"]


def _check_column_arrays(arrays: Any, masks: Any, n_columns: int, n_gaps: int, n: int) -> None:
    """The column arrays and masks are lists of 1-D numeric arrays of ``n`` (epochs) values."""
    if not isinstance(arrays, list) or not isinstance(masks, list):
        raise ValueError("the history's columns and present should be lists of arrays")
    if len(arrays) != n_columns or len(masks) != n_gaps:
        raise ValueError(
            f"the history lists {n_columns} columns ({n_gaps} with gaps) but holds "
            f"{len(arrays)} column arrays and {len(masks)} masks"
        )
    shapes = {getattr(a, "shape", None) for a in [*arrays, *masks]}
    if shapes - {(n,)} or any(a.dtype.kind not in "fiu" for a in [*arrays, *masks]):
        raise ValueError(
            f"the history's column arrays should hold {n} numbers each (one per epoch), found "
            f"shapes {sorted(str(s) for s in shapes)}"
        )
