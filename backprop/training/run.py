"""`Run`: the state of one `backprop.fit` call, handed to callbacks, and its checkpoints.

A checkpoint (`Run.save_checkpoint`) holds everything needed to continue the run exactly: the
parameters, the optimizer state, the callbacks' arrays (early stopping's best parameters), and
as JSON the model, optimizer and schedule specs, the schedule state, the position (epoch, step,
samples seen), the host RNG states, the history and the callbacks' counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data import _host
from ..nn.sequential import Params, Sequential
from .callbacks import Callback
from .checkpoint import CheckpointError, check_spec, load_checkpoint, save_checkpoint
from .history import History
from .optimizers import Optimizer
from .schedules import Schedule

__all__ = ["RESUME_KEYS", "Run"]

# fit settings a resumed run must share with the saved one (else the batches would differ)
RESUME_KEYS = ("batch_size", "seed", "shuffle", "validation_split", "stratify")


class Run:
    """The state of one `fit` call; callbacks receive it (see `backprop.callbacks`)."""

    def __init__(
        self,
        model: Sequential,
        backend: Any,
        optimizer: Optimizer,
        schedule: Schedule,
        settings: dict[str, Any],
        callbacks: Sequence[Callback],
    ) -> None:
        self.model, self.backend, self.optimizer, self.schedule = (
            model,
            backend,
            optimizer,
            schedule,
        )
        self.settings, self.callbacks = settings, list(callbacks)
        self.params: Params = []
        self.opt_state: Any = None
        self.history = History()
        self.epoch = self.step = self.samples = 0
        self.schedule_state = schedule.init()
        seed = settings["seed"]
        self.rngs = {"order": _host.np_rng(seed + 1), "dropout": _host.np_rng(seed + 3)}
        self.stop_training = False
        self.stop_reason: str | None = None
        self.best_epoch: int | None = None

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, path: Any) -> Any:
        """Write everything needed to continue this run exactly (atomic; see `ModelCheckpoint`)."""
        trees = {"params": self.params, "opt_state": self.opt_state}
        for i, cb in enumerate(self.callbacks):
            trees.update({f"callback{i}_{k}": v for k, v in cb.trees().items()})
        meta = {
            "model": self.model.spec(),
            "optimizer": self.optimizer.spec(),
            "schedule": self.schedule.spec(),
            "schedule_state": self.schedule_state,
            "position": {"epoch": self.epoch, "step": self.step, "samples": self.samples},
            "stop_reason": self.stop_reason if self.stop_training else None,
            "rng": {k: rng.bit_generator.state for k, rng in self.rngs.items()},
            "fit": {k: self.settings[k] for k in RESUME_KEYS},
            "dtype": self.settings["dtype"],
            "backend": self.backend.name,
            "history": self.history.to_dict(),
            "callbacks": [
                {"type": _qualified(cb), "state": cb.state_dict()} for cb in self.callbacks
            ],
            "config": self.settings.get("config"),
        }
        return save_checkpoint(path, trees, meta, self.backend)

    def restore(self, path: Any) -> None:
        """Continue from a checkpoint written by `save_checkpoint` (any backend wrote it)."""
        ckpt = load_checkpoint(path, self.backend, self.settings["dtype"])
        meta = ckpt.meta
        check_spec(meta["model"], self.model.spec(), "model", path)
        check_spec(meta["optimizer"], self.optimizer.spec(), "optimizer", path)
        check_spec(meta["schedule"], self.schedule.spec(), "schedule", path)
        check_spec(meta["fit"], {k: self.settings[k] for k in RESUME_KEYS}, "fit setting", path)
        saved = [c["type"] for c in meta["callbacks"]]
        if not _same_callbacks(saved, self.callbacks):
            raise CheckpointError(
                f"checkpoint {path} was saved with callbacks {saved} but this run has "
                f"{[_qualified(cb) for cb in self.callbacks]}; resume with the same callbacks"
            )
        self.params, self.opt_state = ckpt.trees["params"], ckpt.trees["opt_state"]
        for i, (cb, saved_cb) in enumerate(zip(self.callbacks, meta["callbacks"], strict=True)):
            prefix = f"callback{i}_"
            trees = {k[len(prefix) :]: v for k, v in ckpt.trees.items() if k.startswith(prefix)}
            cb.load_state_dict(saved_cb["state"], trees)
        position = meta["position"]
        self.epoch, self.step, self.samples = (position[k] for k in ("epoch", "step", "samples"))
        self.schedule_state = meta["schedule_state"]
        for k, state in meta["rng"].items():
            self.rngs[k].bit_generator.state = state
        self.history = History.from_dict(meta["history"])
        if meta.get("stop_reason"):  # the run had stopped (early stopping, schedule): stay stopped
            self.stop_training, self.stop_reason = True, meta["stop_reason"]


def _qualified(cb: Any) -> str:
    """The callback class's name as checkpoints store it: ``backprop.Name`` for the project's
    own (its public name, stable when modules move), ``module.QualifiedName`` for anyone
    else's, so a user's class that shares a bare name with ours (``ModelCheckpoint``) is a
    different callback."""
    cls = type(cb)
    if cls.__module__.split(".")[0] == "backprop":
        return f"backprop.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _same_callbacks(saved: list[str], callbacks: Sequence[Callback]) -> bool:
    """Saved names against this run's callbacks; a bare name (a checkpoint written before
    qualified names were stored) is compared with the class's bare name."""
    if len(saved) != len(callbacks):
        return False
    return all(
        s == (_qualified(cb) if "." in s else type(cb).__name__)
        for s, cb in zip(saved, callbacks, strict=True)
    )
