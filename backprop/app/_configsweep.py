"""Ensembles and sweeps in a config: ``[training] ensemble = K`` and the ``[sweep]`` table.

Host-only helpers of `backprop.config`. K members of the model train as one program
(`backprop.fit(..., ensemble=K, sweep=...)`), parameters stacked on a leading member axis;
member k starts from ``seed + k``. ``[sweep]`` gives hyperparameters per member, each a list of
K numbers (K = their common length; with ``ensemble`` too, they must hold ``ensemble`` values)::

    [sweep]
    lr = [0.01, 0.03, 0.1]        # the optimizer's lr, member by member (replaces [optimizer] lr)
    alpha = [0.0, 1e-4, 1e-3]     # [model] alpha (L2), member by member
    weight_decay = [0.0, 0.01, 0.1]   # AdamW's decoupled weight decay

The keys that may vary per member come from the registries: ``alpha`` (the model's L2) and the
optimizers' ``member_fields`` (every optimizer's ``lr``, AdamW's ``weight_decay``). Every other
hyperparameter is one number shared by all members, and a list anywhere but ``[sweep]`` is
refused with a message pointing here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._configkinds import _closest, _is_number, shown

__all__ = [
    "MAX_MEMBERS",
    "SweepConfig",
    "check_members",
    "ensemble_size",
    "lists_elsewhere",
    "sweep_keys",
]

# One program holds K copies of every parameter and optimizer state; the benchmark uses
# 64. The bound keeps a stray huge value (2**64) a config error instead of an out-of-memory kill.
MAX_MEMBERS = 4096

MODEL_KEYS = ("alpha",)  # [model] keys an Ensemble takes per member


def ensemble_size(k: int) -> str | None:
    """The range check of ``[training] ensemble``."""
    return None if 1 <= k <= MAX_MEMBERS else f"the number of members, from 1 to {MAX_MEMBERS}"


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """``[sweep]``: per-member hyperparameters, ``{key: [K numbers]}`` (empty: no sweep)."""

    options: dict = dataclasses.field(default_factory=dict)

    @property
    def members(self) -> int | None:
        """K, the lists' length; None without a sweep."""
        return len(next(iter(self.options.values()))) if self.options else None

    @property
    def fit_sweep(self) -> dict[str, list[float]] | None:
        """``sweep`` as `backprop.fit` takes it: ``{key: [floats]}``, or None."""
        return {k: [float(v) for v in vs] for k, vs in self.options.items()} or None


def sweep_keys(optimizer: str | None = None) -> dict[str, str]:
    """The keys ``[sweep]`` accepts -> their section: ``alpha`` -> model and the per-member
    fields of ``optimizer`` (None: of every registered optimizer) -> optimizer."""
    from ..training.optimizers import OPTIMIZERS

    names = OPTIMIZERS.names() if optimizer is None else [optimizer]
    keys = dict.fromkeys(MODEL_KEYS, "model")
    for name in names:
        if name in OPTIMIZERS:
            keys.update(dict.fromkeys(OPTIMIZERS.get(name).member_fields, "optimizer"))
    return keys


def _with(key: str) -> list[str]:
    from ..training.optimizers import OPTIMIZERS

    return [n for n in OPTIMIZERS.names() if key in OPTIMIZERS.get(n).member_fields]


def lists_elsewhere(raw: dict[str, Any], problems: list[str]) -> None:
    """A list for a sweepable key in its own section (``--set optimizer.lr=[0.01,0.1]``): one
    problem pointing to ``[sweep]``; the key is dropped from ``raw`` (reported once)."""
    for key, section in sweep_keys().items():
        table = raw.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), list):
            value = table.pop(key)
            shown_value = "[" + ",".join(str(v) for v in value) + "]"
            problems.append(
                f"[{section}] {key} = {value!r}: one number, shared by every member; to give each "
                f"ensemble member its own {key}, put the list in the [sweep] table (sweep.{key} = "
                f"{value!r}, or --set sweep.{key}={shown_value}), or give one number"
            )


def check_members(s: dict[str, Any], clean: set[str], problems: list[str]) -> None:
    """``[training] ensemble`` against ``[sweep]``, and each sweep list: a known key the
    configured optimizer takes per member, K finite numbers its own checks accept; what an
    ensemble cannot train with (`_unsupported`)."""
    training, sweep, optimizer = s["training"], s["sweep"], s["optimizer"]
    if sweep is None or not sweep.options:
        if "training" in clean and training.ensemble is not None:
            _unsupported(s, clean, problems)
        return
    lengths: dict[str, int] = {}
    for key, value in sweep.options.items():
        if _sweep_problem(key, value, optimizer, clean, problems) is None:
            lengths[key] = len(value)
    if len(lengths) < len(sweep.options):
        return
    if len(set(lengths.values())) > 1:
        problems.append(
            f"[sweep]: the lists have different lengths ({_listed(lengths)}); K members need K "
            "values in every list, one per member"
        )
    elif "training" in clean and training.ensemble not in (None, sweep.members):
        problems.append(
            f"[training] ensemble = {training.ensemble} but the [sweep] lists hold "
            f"{sweep.members} value(s) ({_listed(lengths)}); give {training.ensemble} values per "
            f"list, set ensemble = {sweep.members}, or remove ensemble (a sweep alone sets K)"
        )
    elif "optimizer" in clean and optimizer is not None:
        _values_problem(sweep, optimizer, problems)
    if {"training", "optimizer"} <= clean:
        _unsupported(s, clean, problems)


def _unsupported(s: dict[str, Any], clean: set[str], problems: list[str]) -> None:
    """What `fit` refuses for ensembles, said before any data is loaded."""
    what = f"ensemble = {s['training'].ensemble}" if s["training"].ensemble else "a [sweep]"
    if s["training"].diagnostics:
        problems.append(
            f"[training] diagnostics = true does not work with {what} (one gradient-flow table "
            "per model); remove diagnostics, or train one member alone"
        )


def _sweep_problem(
    key: Any, value: Any, optimizer: Any, clean: set[str], problems: list[str]
) -> str | None:
    before = len(problems)
    every = sweep_keys()
    if key not in every:
        problems.append(
            f"[sweep] {shown(key)}: not a per-member hyperparameter; "
            f"{_closest(str(key), list(every))}[sweep] takes {sorted(every)}; any other key "
            "is one value shared by every member and stays in its own section"
        )
    elif (
        every[key] == "optimizer"
        and "optimizer" in clean
        and optimizer is not None
        and key not in sweep_keys(optimizer.name)
    ):
        problems.append(
            f"[sweep] {key}: optimizer {optimizer.name!r} has no per-member {key} (it is a "
            f"hyperparameter of {_with(key)}); set [optimizer] name to one of those, or remove "
            f"sweep.{key}"
        )
    elif not (isinstance(value, list) and value and all(_is_number(v) for v in value)):
        problems.append(
            f"[sweep] {key}: expected a non-empty list of finite numbers, one per member (e.g. "
            f"{key} = [0.01, 0.1]), received {value!r}"
        )
    elif len(value) > MAX_MEMBERS:
        problems.append(
            f"[sweep] {key}: {len(value)} values, but an ensemble holds at most {MAX_MEMBERS} "
            "members; split the sweep into several runs"
        )
    elif key in MODEL_KEYS and any(v < 0 for v in value):
        problems.append(f"[sweep] {key}: expected numbers >= 0, received {value!r}")
    return "problem" if len(problems) > before else None


def _values_problem(sweep: SweepConfig, optimizer: Any, problems: list[str]) -> None:
    """The optimizer built with each of the sweep's lists: its own range checks, per member
    (an optimizer that fails alone was reported by its own section's checks)."""
    try:
        optimizer.build()
    except (ValueError, TypeError):
        return
    for key, value in sweep.options.items():
        if key in MODEL_KEYS:
            continue
        try:
            dataclasses.replace(optimizer, options={**optimizer.options, key: value}).build()
        except (ValueError, TypeError) as exc:
            problems.append(f"[sweep] {key} = {value!r}: {exc}")


def _listed(lengths: dict[str, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in lengths.items())
