"""The state of an ensemble `fit` (`EnsembleRun`), per-member early stopping and the snapshot
an interrupt returns to.

An `EnsembleRun` is a `Run` whose model is the `Ensemble` (params stacked, K leading) plus:
``members`` K, ``sweep`` (the per-member values, JSON lists), ``member_order``, the host
generators of `_ensemble_host` and ``member_stop``: per member None while it trains, or
``{"epoch": E, "reason": text}`` once it stopped (early stopping: E its stop epoch;
divergence: E the last good epoch, its parameters put back there). Its checkpoints add
``meta["ensemble"]`` (K, member order, sweep, member_stop); resuming checks K (the model
spec), the optimizer's per-member values (its spec), the member order and the alpha sweep,
and names what differs.
"""

from __future__ import annotations

import copy
from typing import Any

from ..nn.ensemble import Ensemble
from . import _ensemble_host
from ._ensemble_step import select
from ._monitor import initial_best, is_improvement
from ._snapshot import Snapshot
from .callbacks import EarlyStopping, _Monitor
from .checkpoint import CheckpointError
from .run import Run, _refuse

__all__ = ["EnsembleRun", "EnsembleSnapshot", "MemberEarlyStopping", "RunEnsemble"]


class RunEnsemble(Ensemble):
    """The `Ensemble` a run trains: also answers `check_saveable` (`ModelCheckpoint` asks)."""

    def check_saveable(self) -> None:
        self.model.check_saveable()


class MemberEarlyStopping(_Monitor):
    """`EarlyStopping` given to an ensemble fit: each member watched on its own column
    (``"val_loss[k]"``), with its own ``best``, ``best_epoch`` and ``wait`` (lists of K). A
    member that has not improved for ``patience`` epochs stops (`EnsembleRun.stop_member`:
    its parameters and optimizer state freeze); training ends when every member stopped. With
    ``restore_best``, each member ends with the parameters of its own best epoch."""

    def __init__(self, spec: EarlyStopping, members: int) -> None:
        super().__init__("EarlyStopping", spec.monitor, spec.min_delta, spec.mode)
        self.patience, self.restore_best, self.members = spec.patience, spec.restore_best, members
        self.best = [initial_best(self.mode)] * members
        self.best_epoch: list[int | None] = [None] * members
        self.wait = [0] * members
        self.best_params: Any = None

    def on_epoch_end(self, run: Any) -> None:
        record, improved = run.history.last, [False] * self.members
        for k in run.trained_members():
            value = record[f"{self.monitor}[{k}]"]
            if is_improvement(value, self.best[k], self.min_delta, self.mode):
                self.best[k], self.best_epoch[k], self.wait[k] = value, run.epoch, 0
                improved[k] = True
                continue
            self.wait[k] += 1
            if self.wait[k] >= self.patience:
                run.stop_member(
                    k,
                    run.epoch,
                    f"early stopping: {self.monitor} did not improve by more than "
                    f"{self.min_delta:g} for {self.wait[k]} epochs; best {self.best[k]:.6g} at "
                    f"epoch {self.best_epoch[k]}",
                )
        if self.restore_best and any(improved):
            old = run.params if self.best_params is None else self.best_params
            mask = run.backend.asarray([float(i) for i in improved], run.settings["dtype"])
            self.best_params = select(mask, run.params, old, self.members)

    def on_train_end(self, run: Any) -> None:
        run.best_epoch = list(self.best_epoch)
        if self.restore_best and self.best_params is not None:
            mask = [float(e is not None) for e in self.best_epoch]
            mask = run.backend.asarray(mask, run.settings["dtype"])
            run.params = select(mask, self.best_params, run.params, self.members)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": list(self.best),
            "best_epoch": list(self.best_epoch),
            "wait": list(self.wait),
        }

    def load_state_dict(self, state: dict[str, Any], trees: dict[str, Any]) -> None:
        for key in ("best", "best_epoch", "wait"):
            if not isinstance(state[key], list) or len(state[key]) != self.members:
                raise ValueError(f"{key} should be a list of {self.members} values, one per member")
        self.best, self.best_epoch, self.wait = (
            list(state["best"]), list(state["best_epoch"]), list(state["wait"])
        )  # fmt: skip
        self.best_params = trees.get("best_params")

    def trees(self) -> dict[str, Any]:
        return {} if self.best_params is None else {"best_params": self.best_params}


def member_callbacks(callbacks: list, members: int) -> list:
    """The callbacks of an ensemble run: every `EarlyStopping` becomes a `MemberEarlyStopping`."""
    return [
        MemberEarlyStopping(cb, members) if isinstance(cb, EarlyStopping) else cb
        for cb in callbacks
    ]


class EnsembleRun(Run):
    """A `Run` of K members (module docstring)."""

    def __init__(self, ensemble, backend, optimizer, schedule, settings, callbacks, sweep, order):
        super().__init__(ensemble, backend, optimizer, schedule, settings, callbacks)
        self.callbacks = member_callbacks(self.callbacks, ensemble.members)
        self.members, self.sweep, self.member_order = ensemble.members, sweep, order
        self.rngs = _ensemble_host.member_rngs(settings["seed"], self.members, order == "member")
        self.member_stop: list[dict[str, Any] | None] = [None] * self.members

    # -- members ---------------------------------------------------------------------------------
    def trained_members(self) -> list[int]:
        """The members that trained in the epoch that just ended (not stopped before it)."""
        return [k for k, s in enumerate(self.member_stop) if s is None or s["epoch"] >= self.epoch]

    def active(self) -> list[bool]:
        """Which members train in the next epoch."""
        return [s is None for s in self.member_stop]

    def initial_schedule_state(self) -> dict[str, Any]:
        """One schedule state per member: ``{"members": [schedule.init()] * K}``."""
        return _ensemble_host.member_states(self.schedule, self.model.members)

    def stop_member(self, k: int, epoch: int, reason: str) -> None:
        """Freeze member ``k``: its history ends at ``epoch``; training ends with the last."""
        stops = list(self.member_stop)
        stops[k] = {"epoch": int(epoch), "reason": reason}
        self.member_stop = stops  # a new list: snapshots hold the old one
        if not any(self.active()):
            self.stop_training = True
            self.stop_reason = f"every member stopped; the last, member {k}: {reason}"

    # -- checkpoints -----------------------------------------------------------------------------
    def _ensemble_meta(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "member_order": self.member_order,
            "sweep": {k: list(v) for k, v in self.sweep.items()},
        }

    def _fit_settings(self) -> dict[str, Any]:
        """The settings a resumed run must share: a single fit's, the member order and sweep
        (checked before anything else of the checkpoint, with the differing values named)."""
        meta = self._ensemble_meta()
        return {
            **super()._fit_settings(),
            "member_order": meta["member_order"],
            "sweep": meta["sweep"],
        }

    def _checkpoint_parts(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        trees, meta, host = super()._checkpoint_parts()
        meta["ensemble"] = {**self._ensemble_meta(), "member_stop": self.member_stop}
        return trees, meta, host

    def _restore_extra(self, path: Any, meta: dict, trees: dict) -> None:
        saved = meta.get("ensemble")
        if not isinstance(saved, dict):
            raise CheckpointError(
                f"checkpoint {path} is not an ensemble's (it has no 'ensemble' entry); resume it "
                "without ensemble= and sweep=, or start a new ensemble run"
            )
        mine = self._ensemble_meta()
        diff = [
            f"{k}={saved.get(k)!r} (this run: {v!r})" for k, v in mine.items() if saved.get(k) != v
        ]
        if diff:
            raise CheckpointError(
                f"checkpoint {path} was saved by an ensemble run with other settings: "
                f"{', '.join(diff)}; resume with the same ensemble, member_order and sweep, or "
                "start a new run"
            )
        stops = saved.get("member_stop")
        ok = isinstance(stops, list) and len(stops) == self.members
        ok = ok and all(
            s is None
            or (
                isinstance(s, dict)
                and type(s.get("epoch")) is int
                and isinstance(s.get("reason"), str)
            )
            for s in stops
        )
        if not ok:
            _refuse(
                path,
                f"member_stop is {stops!r:.80}",
                f"a list of {self.members} None or {{epoch, reason}}",
            )
        self.member_stop = [None if s is None else dict(s) for s in stops]


class EnsembleSnapshot(Snapshot):
    """A `Snapshot` that also puts back which members had stopped."""

    def __init__(self, run: EnsembleRun) -> None:
        super().__init__(run)
        self.member_stop = copy.deepcopy(run.member_stop)

    def restore(self, run: Any) -> None:
        super().restore(run)
        run.member_stop = copy.deepcopy(self.member_stop)
