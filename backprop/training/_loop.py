"""The epoch loop of one `fit` call on data held on the device (`_Loop`); the loop over data
that stays on the host (memory-mapped files, loaders) extends it (`training._stream`)."""

from __future__ import annotations

import math
import time
from typing import Any

from ..data import _host
from ..tree import tree_map
from . import _divergence, _progress
from ._epoch_end import make_epoch_end
from ._fitdata import FitData
from ._result import FitResult, TrainingDiverged, TrainingInterrupted
from ._snapshot import Snapshot
from .callbacks import Callback
from .run import Run
from .step import make_batch_step, make_epoch

__all__ = ["_Loop"]


class _Loop:
    """The epoch loop of one `fit` call."""

    snapshot_type: type = Snapshot  # what an interrupt returns to (an ensemble keeps more)

    def __init__(
        self, run: Run, data: FitData, log_every: Any, compile_epoch: Any, given: bool
    ) -> None:
        self.run, self.data = run, data
        be, s = run.backend, run.settings
        self.xp = be.xp
        self._setup(compile_epoch)
        steps = self.n_steps or 0  # unknown (None) for a loader without len()
        self.total_steps = self.n_steps * s["epochs"] if self.n_steps else None
        self.progress = _progress.Progress(s["epochs"], steps, s["verbose"], run.epoch)
        self.log_every = log_every or (max(1, steps // 20) if self.progress.on else 0)
        self.base_lr = float(run.optimizer.lr)
        start = run.params if given else None  # a user's start may be worse than the init
        self.reference = self._reference(start)

    def _setup(self, compile_epoch: Any) -> None:
        """The step and read-out functions and ``n_steps``, the steps per epoch."""
        run, be, s = self.run, self.run.backend, self.run.settings
        compute = s.get("compute_dtype")  # mixed precision: "bfloat16"/"float16", else None
        self.step_fn = make_batch_step(run.model, run.optimizer, be, compute)
        if compile_epoch is None:
            batch_hooks = any(_watches_batches(cb) for cb in run.callbacks)
            compile_epoch = be.compiles and not any(run.model.dropout_rates) and not batch_hooks
        self.epoch_fn = make_epoch(run.model, run.optimizer, be, compute) if compile_epoch else None
        validation = self.data.x_val is not None
        self.columns, self.epoch_end = make_epoch_end(run.model, be, s, validation)
        self.n_steps = -(-self.data.n // s["batch_size"])

    def _reference(self, start: Any) -> float:
        """The untrained model's loss the divergence check compares epochs with."""
        run = self.run
        return _divergence.reference_loss(
            run.model, run.backend, run.settings, self.data, self.n_steps, start
        )

    def train(self) -> FitResult:
        run, t0 = self.run, time.perf_counter()
        for cb in run.callbacks:
            cb.on_train_begin(run)
        self.snapshot = self.snapshot_type(run)
        try:
            while run.epoch < run.settings["epochs"] and not run.stop_training:
                self._epoch()
        except _divergence.Diverged as bad:
            run.params, run.opt_state = self.snapshot.params, self.snapshot.opt_state
            self.progress.close()
            result = self._result(t0, stop_reason=str(bad))
            raise TrainingDiverged(str(bad), result, bad.reason) from None
        except KeyboardInterrupt:
            raise self._interrupted(t0) from None
        for cb in run.callbacks:
            cb.on_train_end(run)
        self.progress.close()
        return self._result(t0, run.stop_reason)

    def _interrupted(self, t0: float) -> TrainingInterrupted:
        """Put the run back at the end of the last finished epoch, let the callbacks save it."""
        run = self.run
        self.progress.close()
        self.snapshot.interrupt(run)
        reason = f"interrupted by the user after epoch {run.epoch}"
        return TrainingInterrupted(f"training {reason}", self._result(t0, reason), run)

    def _result(self, t0: float, stop_reason: str | None) -> FitResult:
        run = self.run
        result = FitResult(
            run.model,
            run.backend,
            run.params,
            run.opt_state,
            run.history,
            run.epoch,
            run.best_epoch,
            stop_reason,
            time.perf_counter() - t0,
        )
        result.summary = _progress.summary(result, run.settings["metric"])
        if run.settings["verbose"]:
            print(result.summary)
        return result

    def _epoch(self) -> None:
        run, data, xp, be = self.run, self.data, self.xp, self.run.backend
        t0 = time.perf_counter()
        bs, n = run.settings["batch_size"], data.n
        order = (
            be.asarray(run.rngs["order"].permutation(n), "int32")
            if run.settings["shuffle"]
            else xp.arange(n, dtype=be.dtype("int32"), device=be.device)
        )
        lrs = [
            run.schedule.lr(
                self.base_lr,
                run.schedule_state,
                step=run.step + b,
                epoch=run.epoch,
                samples=run.samples,
                total_steps=self.total_steps,
            )
            for b in range(self.n_steps)
        ]
        if be.donates:  # the steps donate these buffers; references taken so far stay valid
            run.params, run.opt_state = _copy(xp, run.params), _copy(xp, run.opt_state)
        full = n // bs if self.epoch_fn is not None else 0
        losses = [self._full_batches(order, full, lrs)] if full else []
        for b in range(full, self.n_steps):
            loss = self._step(order[b * bs : min((b + 1) * bs, n)], lrs[b])
            losses.append(loss)
            for cb in run.callbacks:
                cb.on_batch_end(run, loss)
            if self.log_every and (b + 1) % self.log_every == 0:
                self._log(b + 1, loss, lrs[b])
        run.samples += n
        self._end_epoch(losses, lrs[-1], t0)

    def _full_batches(self, order: Any, full: int, lrs: list[float]) -> Any:
        """The epoch's first ``full`` (full-size) batches in one `make_epoch` call; their
        losses (full,)."""
        run, data, xp, be = self.run, self.data, self.xp, self.run.backend
        bs = run.settings["batch_size"]
        rows = xp.reshape(order[: full * bs], (full, bs))
        rates = be.asarray(lrs[:full], run.settings["dtype"])
        run.params, run.opt_state, losses = self.epoch_fn(
            run.params, run.opt_state, data.x, data.y, data.w, rows, rates
        )
        run.step += full
        watchers = [cb for cb in run.callbacks if _watches_batches(cb)]
        for b in range(full if watchers else 0):  # compile_epoch=True: after the loop, in order
            for cb in watchers:
                cb.on_batch_end(run, losses[b])
        return losses

    def _step(self, idx: Any, lr: float) -> Any:
        run, data = self.run, self.data
        masks = self._masks(idx.shape[0])
        run.params, run.opt_state, loss = self.step_fn(
            run.params, run.opt_state, data.x, data.y, data.w, idx, lr, masks
        )
        run.step += 1
        return loss

    def _masks(self, rows: int) -> list | None:
        """The step's dropout masks for a batch of ``rows`` rows, drawn on the host and moved
        (None without dropout)."""
        run = self.run
        if not any(run.model.dropout_rates):
            return None
        host = _host.dropout_masks(
            run.rngs["dropout"], rows, run.model.dropout_shapes, run.model.dropout_rates
        )
        return [None if m is None else run.backend.asarray(m, run.settings["dtype"]) for m in host]

    def _log(self, steps_done: int, loss: Any, lr: float) -> None:
        value = float(loss)
        if not math.isfinite(value):
            raise _divergence.nonfinite(value, self.run, lr)
        self.progress.batch(steps_done, value)

    def _read_out(self, losses: list) -> list[float]:
        """The epoch-end vector on the host (`make_epoch_end`): the epoch's one sync."""
        run, data = self.run, self.data
        values = self.epoch_end(run.params, losses, data.x, data.y, data.x_val, data.y_val)
        return run.backend.to_numpy(values).tolist()

    def _batch_sizes(self) -> list[int]:
        bs, n = self.run.settings["batch_size"], self.data.n
        return [min(bs, n - i * bs) for i in range(self.n_steps)]

    def _end_epoch(self, losses: list, lr: float, t0: float, sizes: Any = None) -> None:
        """``losses``: the epoch's step losses, 0-d arrays and (after `_full_batches`) one
        (S,) array first; ``sizes``: the batches' row counts (default: this loop's batches)."""
        run = self.run
        sizes = self._batch_sizes() if sizes is None else sizes
        host = self._read_out(losses)
        step_losses = host[: len(sizes)]
        bad = next((v for v in step_losses if not math.isfinite(v)), None)
        if bad is not None or not host[-1]:
            raise _divergence.nonfinite(bad, run, lr)
        n = sum(sizes)
        elapsed = time.perf_counter() - t0
        loss = math.fsum(v * s for v, s in zip(step_losses, sizes, strict=True)) / n
        _divergence.check_loss(loss, self.reference, run, lr)
        record = {"epoch": run.epoch + 1, "loss": loss}
        record.update(zip(self.columns, host[len(sizes) : -1], strict=True))
        record.update(lr=lr, time=elapsed, samples_per_s=n / elapsed)
        run.epoch += 1
        run.history.append(record, step_losses)
        self._after_epoch(record)

    def _after_epoch(self, record: dict[str, float]) -> None:
        """The schedule's end of epoch (`_end_schedule`), the callbacks, the progress line and
        the snapshot."""
        run = self.run
        self._end_schedule(record)
        for cb in run.callbacks:
            cb.on_epoch_end(run)
        for cb in run.callbacks:
            cb.after_epoch(run)
        self.progress.epoch(record, run.settings["metric"])
        self.snapshot = self.snapshot_type(run)  # what an interrupt in the next epoch returns to

    def _end_schedule(self, record: dict[str, float]) -> None:
        """Step the schedule's state with the epoch's monitored column; stop training when
        the schedule says so."""
        run = self.run
        monitor = run.schedule.monitor
        run.schedule_state = run.schedule.end_epoch(
            run.schedule_state, record.get(monitor) if monitor else None, base_lr=self.base_lr
        )
        if run.schedule.should_stop(run.schedule_state):
            run.stop_training = True
            run.stop_reason = f"the learning-rate schedule {run.schedule.name!r} ended training"


def _watches_batches(cb: Callback) -> bool:
    """Whether a callback does something in ``on_batch_end`` (a subclass override, or a
    `LambdaCallback` given one)."""
    return type(cb).on_batch_end is not Callback.on_batch_end or "on_batch_end" in vars(cb)


def _copy(xp: Any, tree: Any) -> Any:
    """A copy of every array in ``tree`` (other leaves, e.g. Python numbers, as they are)."""
    return tree_map(lambda a: xp.asarray(a, copy=True) if hasattr(a, "shape") else a, tree)
