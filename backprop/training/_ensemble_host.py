"""Host-only draws and tables of an ensemble `fit` (NumPy on the host, moved once per epoch).

- Batch orders: shared (one permutation from the run's ``"order"`` generator, seeded
  ``seed + 1`` as in a single `fit`) or per member (member k's from ``"order{k}"``, seeded
  ``seed + 1 + k``: the order ``fit(..., seed=seed + k)`` draws).
- Dropout masks: member k's from its own generator ``"dropout{k}"``, seeded ``seed + 3 + k``:
  the masks ``fit(..., seed=seed + k)`` draws, stacked to (K, B, *shape).
- Learning rates: the schedule's rate for every step and member, (S, K), from each member's
  base rate (one schedule call per distinct base rate and step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import _host

__all__ = ["member_masks", "member_rngs", "orders", "rate_table"]


def member_rngs(seed: int, members: int, per_member_order: bool) -> dict[str, Any]:
    """The run's host generators (module docstring)."""
    if per_member_order:
        rngs = {f"order{k}": _host.np_rng(seed + 1 + k) for k in range(members)}
    else:
        rngs = {"order": _host.np_rng(seed + 1)}
    rngs.update({f"dropout{k}": _host.np_rng(seed + 3 + k) for k in range(members)})
    return rngs


def orders(rngs: dict[str, Any], n: int, members: int, shuffle: bool) -> np.ndarray:
    """The epoch's rows: (n,) shared, or (K, n) one permutation per member."""
    if not shuffle:
        return _host.arange(n)
    if "order" in rngs:
        return rngs["order"].permutation(n)
    return np.stack([rngs[f"order{k}"].permutation(n) for k in range(members)])


def member_masks(
    rngs: dict[str, Any], members: int, n_rows: int, shapes: Sequence, rates: Sequence[float]
) -> list[np.ndarray | None]:
    """Per dropout layer, the K members' masks for one batch stacked (K, B, *shape), or None."""
    drawn = [
        _host.dropout_masks(rngs[f"dropout{k}"], n_rows, shapes, rates) for k in range(members)
    ]
    return [None if layer[0] is None else np.stack(layer) for layer in zip(*drawn, strict=True)]


def rate_table(schedule: Any, base_lrs: Sequence[float], state: Any, **position: Any) -> np.ndarray:
    """(S, K) learning rates: ``schedule.lr(base_lrs[k], state, step=step0 + s, ...)``.

    ``position``: ``steps`` (S), ``step`` (the first step's index), ``epoch``, ``samples``,
    ``total_steps``, as the single-model loop passes them."""
    steps, step0 = position.pop("steps"), position.pop("step")
    table = np.empty((steps, len(base_lrs)))
    for base in dict.fromkeys(base_lrs):
        column = [schedule.lr(base, state, step=step0 + s, **position) for s in range(steps)]
        for k in (k for k, b in enumerate(base_lrs) if b == base):
            table[:, k] = column
    return table
