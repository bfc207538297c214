"""The training history: one record (a dict of floats) per epoch, and every step's loss.

Columns written by `backprop.fit`: ``epoch`` (1-based), ``loss`` (mean training loss over the
epoch's batches, weighted by batch size, as scikit-learn's ``loss_curve_``), the training metric
(``accuracy`` or ``r2``) when ``train_metrics`` is on, ``val_loss`` and ``val_<metric>`` with
validation data, ``lr`` (the learning rate of the epoch's last step), ``time`` (seconds) and
``samples_per_s``, and with ``diagnostics`` the gradient-flow columns of `diagnostics`.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from typing import Any

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
