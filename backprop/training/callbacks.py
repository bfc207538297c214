"""Callbacks: code the fit loop calls at the end of each batch, each epoch and the run.

Every hook receives the `Run` (see `backprop.fit`): ``run.params``, ``run.opt_state``,
``run.history``, ``run.epoch`` (epochs completed), ``run.step``, ``run.model``,
``run.backend``. A callback stops training by setting ``run.stop_training = True`` (and
``run.stop_reason``), and may replace ``run.params`` (early stopping restores the best ones).

``on_batch_end(run, loss)`` receives the step's loss as a 0-d array of the backend: reading it
(``float(loss)``) waits for the device, so a callback that reads every step slows GPU training.

Early stopping and checkpointing are callbacks too; their counters are saved in checkpoints
through ``state_dict``/``load_state_dict`` (JSON values) and ``trees`` (arrays).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

from ._monitor import check_monitor_mode, initial_best, is_improvement, mode_for

__all__ = ["Callback", "EarlyStopping", "LambdaCallback", "ModelCheckpoint"]


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, run: Any) -> None: ...

    def on_batch_end(self, run: Any, loss: Any) -> None: ...

    def on_epoch_end(self, run: Any) -> None: ...

    def after_epoch(self, run: Any) -> None:
        """Runs once every callback's ``on_epoch_end`` has run: the place to save the run's
        state (`ModelCheckpoint`), so what is saved includes every callback's update."""

    def on_train_end(self, run: Any) -> None: ...

    def on_interrupt(self, run: Any) -> None:
        """Runs instead of ``on_train_end`` when training is interrupted (Ctrl-C) during an
        epoch, once `backprop.fit` has put ``run`` back at the end of the last finished epoch
        (parameters, optimizer and schedule state, position, RNG states, history, and every
        callback's `state_dict`); `backprop.fit` then raises `TrainingInterrupted`. The place
        to save what the run needs to be resumed (`ModelCheckpoint` writes ``last.npz``)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state saved in checkpoints (counters, best values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], trees: dict[str, Any]) -> None:
        """Restore what `state_dict` and `trees` saved."""

    def trees(self) -> dict[str, Any]:
        """Arrays to save in checkpoints, e.g. early stopping's best parameters."""
        return {}


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda run: ...)``."""

    def __init__(
        self,
        on_train_begin: Callable[[Any], None] | None = None,
        on_batch_end: Callable[[Any, Any], None] | None = None,
        on_epoch_end: Callable[[Any], None] | None = None,
        on_train_end: Callable[[Any], None] | None = None,
        on_interrupt: Callable[[Any], None] | None = None,
    ) -> None:
        for name, fn in {
            "on_train_begin": on_train_begin,
            "on_batch_end": on_batch_end,
            "on_epoch_end": on_epoch_end,
            "on_train_end": on_train_end,
            "on_interrupt": on_interrupt,
        }.items():
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {name} must be callable, received {fn!r}")
                setattr(self, name, fn)


class _Monitor(Callback):
    """Shared by the callbacks that watch one history column for improvement."""

    def __init__(self, owner: str, monitor: str, min_delta: float, mode: str) -> None:
        check_monitor_mode(owner, monitor, mode)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"{owner}: min_delta must be a number >= 0, received {min_delta!r}")
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.mode = mode_for(monitor, mode)
        self.best = initial_best(self.mode)
        self.best_epoch: int | None = None

    @property
    def watching(self) -> bool:
        """Whether the monitored column is read (so it must exist in the history)."""
        return True

    def _value(self, run: Any) -> float:
        record = run.history.last
        if self.monitor not in record:
            raise KeyError(
                f"{type(self).__name__} monitors {self.monitor!r} but the history has "
                f"{sorted(record)}; monitor one of those (val_* columns need validation data)"
            )
        return record[self.monitor]

    def _improved(self, run: Any) -> bool:
        value = self._value(run)
        if not is_improvement(value, self.best, self.min_delta, self.mode):
            return False
        self.best, self.best_epoch = value, run.epoch
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any], trees: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode``: "min" (losses), "max" (accuracy, r2) or "auto" (from the name). With
    ``restore_best`` the run ends with the parameters of the best epoch (``run.best_epoch``),
    not the last one.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        super().__init__("EarlyStopping", monitor, min_delta, mode)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, received {patience!r}")
        self.patience, self.restore_best = patience, bool(restore_best)
        self.wait = 0
        self.best_params: Any = None

    def on_epoch_end(self, run: Any) -> None:
        if self._improved(run):
            self.wait = 0
            self.best_params = run.params if self.restore_best else None
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.stop_training = True
            run.stop_reason = (
                f"early stopping: {self.monitor} did not improve by more than {self.min_delta:g} "
                f"for {self.wait} epochs; best {self.best:.6g} at epoch {self.best_epoch}"
            )

    def on_train_end(self, run: Any) -> None:
        run.best_epoch = self.best_epoch
        if self.restore_best and self.best_params is not None:
            run.params = self.best_params

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any], trees: dict[str, Any]) -> None:
        super().load_state_dict(state, trees)
        self.wait = state["wait"]
        self.best_params = trees.get("best_params")

    def trees(self) -> dict[str, Any]:
        return {} if self.best_params is None else {"best_params": self.best_params}


class ModelCheckpoint(_Monitor):
    """Write ``directory/last.npz`` every ``every`` epochs and at the run's last epoch and, with
    ``keep_best``, ``directory/best.npz`` whenever ``monitor`` improves; when training is
    interrupted, ``last.npz`` of the last finished epoch (`on_interrupt`). Both are complete
    checkpoints (params, optimizer state, schedule, RNG, history) that ``fit(..., resume=path)``
    continues from; each write is atomic, so a killed run leaves the previous file intact.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        every: int = 1,
        keep_best: bool = True,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        mode: str = "auto",
    ) -> None:
        super().__init__("ModelCheckpoint", monitor, min_delta, mode)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"ModelCheckpoint: every must be an int >= 1, received {every!r}")
        self.directory, self.every, self.keep_best = pathlib.Path(directory), every, keep_best
        self._improved_now = False
        self._saved_epoch: int | None = None  # the epoch last.npz was last written at

    def on_train_begin(self, run: Any) -> None:
        """A model that cannot be saved (an unregistered component) fails here, before any
        training, not at the first checkpoint write."""
        run.model.check_saveable()
        self._saved_epoch = None

    @property
    def last_path(self) -> pathlib.Path:
        return self.directory / "last.npz"

    @property
    def best_path(self) -> pathlib.Path:
        return self.directory / "best.npz"

    @property
    def watching(self) -> bool:
        return self.keep_best

    def on_epoch_end(self, run: Any) -> None:
        self._improved_now = self.keep_best and self._improved(run)

    def after_epoch(self, run: Any) -> None:
        # After every on_epoch_end: the files hold every callback's state of this epoch.
        final = run.stop_training or run.epoch == run.settings["epochs"]
        if run.epoch % self.every == 0 or final:
            run.save_checkpoint(self.last_path)
            self._saved_epoch = run.epoch
        if self._improved_now:
            run.save_checkpoint(self.best_path)

    def on_interrupt(self, run: Any) -> None:
        """Write ``last.npz`` for the last finished epoch unless this run already did, so
        ``fit(..., resume=last_path)`` continues exactly where the interrupted run was."""
        if self._saved_epoch != run.epoch:
            run.save_checkpoint(self.last_path)
            self._saved_epoch = run.epoch
