"""Host-only draws and tables of an ensemble `fit` (NumPy on the host, moved once per epoch).

- Batch orders: shared (one permutation from the run's ``"order"`` generator, seeded
  ``seed + 1`` as in a single `fit`) or per member (member k's from ``"order{k}"``, seeded
  ``seed + 1 + k``: the order ``fit(..., seed=seed + k)`` draws).
- Dropout masks: member k's from its own generator ``"dropout{k}"``, seeded ``seed + 3 + k``:
  the masks ``fit(..., seed=seed + k)`` draws, stacked to (K, B, *shape).
- Learning rates: the schedule's rate for every step and member, (S, K), from each member's
  base rate and schedule state (one schedule call per distinct pair and step).
- Schedule states: one per member, ``{"members": [state_0, ..., state_{K-1}]}`` (one JSON
  dict, so checkpoints and snapshots keep it as they keep one model's); member k's is the
  state a single fit of member k holds: `end_member_states` steps it with member k's own
  column (``"val_loss[k]"``) and base rate.
- On a data source with per-member batch order, the union of the members' rows of a step
  (`union_rows`): read once, each member's batch gathered from it on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import _host

__all__ = [
    "end_member_states",
    "member_masks",
    "member_rngs",
    "member_states",
    "orders",
    "rate_table",
    "union_rows",
]


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


def rate_table(
    schedule: Any, base_lrs: Sequence[float], states: dict[str, Any], **position: Any
) -> np.ndarray:
    """(S, K) learning rates: ``schedule.lr(base_lrs[k], states["members"][k], step=step0 +
    s, ...)``, one column per member.

    ``states``: the members' schedule states (`member_states`); ``position``: ``steps`` (S),
    ``step`` (the first step's index), ``epoch``, ``samples``, ``total_steps``, as the
    single-model loop passes them. Members with the same base rate and state share a column
    (computed once)."""
    steps, step0 = position.pop("steps"), position.pop("step")
    groups: dict[Any, list[int]] = {}
    for k, (base, state) in enumerate(zip(base_lrs, states["members"], strict=True)):
        groups.setdefault(_group(base, state), []).append(k)
    table = np.empty((steps, len(base_lrs)))
    for members in groups.values():
        base, state = base_lrs[members[0]], states["members"][members[0]]
        column = [schedule.lr(base, state, step=step0 + s, **position) for s in range(steps)]
        table[:, members] = np.asarray(column)[:, None]
    return table


def _group(base: float, state: dict[str, Any]) -> Any:
    """What members share a rate column by: the base rate and the state's items (states
    hold floats, ints and bools; anything unhashable is compared by its repr)."""
    key = (base, *state.items())
    try:
        hash(key)
    except TypeError:
        return base, repr(state)
    return key


def member_states(schedule: Any, members: int) -> dict[str, Any]:
    """An ensemble run's starting schedule state: ``{"members": [schedule.init()] * K}``
    (K separate dicts)."""
    return {"members": [schedule.init() for _ in range(members)]}


def end_member_states(
    schedule: Any,
    states: dict[str, Any],
    record: dict[str, float],
    base_lrs: Sequence[float],
    trained: Sequence[int],
) -> dict[str, Any]:
    """The members' states after an epoch (pure: new dicts, ``states`` unchanged).

    Member k in ``trained`` (the members that trained in it): ``schedule.end_epoch(state_k,
    record[f"{monitor}[{k}]"], base_lr=base_lrs[k])`` (value None without a monitor or
    column, as for one model); a frozen member keeps its state."""
    monitor, out = schedule.monitor, list(states["members"])
    for k in trained:
        value = record.get(f"{monitor}[{k}]") if monitor else None
        out[k] = schedule.end_epoch(out[k], value, base_lr=base_lrs[k])
    return {**states, "members": out}


def device_rates(be: Any, table: Any, dtype: Any) -> Any:
    """The rates ``table`` (S, K; an array or nested lists) on the device: (S, K), or (S,)
    when in every step all members share one rate (no sweep of lr): the step's ``lr * g``
    then multiplies by one number, not member by member, the same values (on NumPy three
    times faster for W3's first layer, 54 vs 157 us: the (K, 1, 1) broadcast takes NumPy's
    slow strided loop)."""
    table = np.asarray(table, dtype=float)
    shared = table.shape[1] > 0 and bool(np.all(table == table[:, :1]))
    return be.asarray(table[:, 0] if shared else table, dtype)


def union_rows(idx: np.ndarray, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, positions)`` for the members' rows ``idx`` (K, B): the distinct rows, sorted
    (U,) (a file is read in order), and where each member's row is among them, (K, B) int32:
    ``rows[positions] == idx``. ``size``: pad ``rows`` to this many by repeating the first (a
    compiling backend then sees one shape per batch size, not one per step)."""
    rows, positions = np.unique(idx, return_inverse=True)
    if size is not None and size > len(rows):
        rows = np.concatenate([rows, np.full(size - len(rows), rows[0], dtype=rows.dtype)])
    return rows, positions.reshape(idx.shape).astype(np.int32)
