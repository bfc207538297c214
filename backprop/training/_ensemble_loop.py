"""The epoch loop of an ensemble `fit`: K members, one compiled step per batch for all (on
data sources: `_ensemble_stream.EnsembleSourceLoop`, which extends it).

Like the single-model `_Loop` (one host permutation per epoch moved once, rows gathered on
the device, the compiled epoch on JAX, one host<->device sync per epoch), with per member:

- learning rates (S, K) from each member's base rate (the sweep) and its own schedule state
  (a plateau schedule watches the member's own column, `_after_epoch`);
- dropout masks from each member's generator (`_ensemble_host`);
- the epoch-end read-out: every member's step losses, columns and parameter finiteness;
- divergence: a member whose loss or parameters stop being finite, or whose epoch loss
  exceeds ``divergence_factor`` times its own untrained loss, is put back to the end of the
  previous epoch and frozen (``run.member_stop``, the reason recorded); when every member has
  diverged, `TrainingDiverged` is raised as for one model.

History (`EnsembleResult.member_history` reads it back per member): one record per epoch
with each column's mean over the members whose value is finite ("loss", the metric, "val_*",
"lr"), "time", "samples_per_s" (rows of the data per second) and per-member columns
``"loss[k]"``, ``"val_loss[k]"``, ... (a frozen member: its frozen parameters' values);
``step_losses``: the K losses of every step, step-major.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..nn.sequential import Sequential
from . import _divergence, _ensemble_host, _progress
from ._ensemble_result import EnsembleResult, ensemble_summary
from ._ensemble_run import EnsembleSnapshot, MemberEarlyStopping
from ._ensemble_step import (
    make_ensemble_epoch,
    make_ensemble_epoch_end,
    make_ensemble_step,
    select,
)
from ._loop import _copy, _Loop, _watches_batches

__all__ = ["EnsembleLoop"]


class EnsembleLoop(_Loop):
    """The epoch loop of one ensemble `fit` call (module docstring)."""

    snapshot_type = EnsembleSnapshot

    def __init__(self, run, data, log_every, compile_epoch, given, base_lrs, step_optimizer):
        self.run, self.data, self.xp = run, data, run.backend.xp
        self.members, self.base_lrs = run.members, list(base_lrs)
        self.step_optimizer = step_optimizer
        s = run.settings
        self._setup(compile_epoch)
        steps = self.n_steps or 0  # unknown (None) for a loader without len()
        self.total_steps = self.n_steps * s["epochs"] if self.n_steps else None
        self.progress = _progress.Progress(s["epochs"], steps, s["verbose"], run.epoch)
        self.log_every = log_every or (max(1, steps // 20) if self.progress.on else 0)
        self.references = self._references(run.params if given else None)
        alpha = run.sweep.get("alpha")
        self.alpha = None if alpha is None else run.backend.asarray(list(alpha), s["dtype"])

    def _setup(self, compile_epoch: Any) -> None:
        run, be, s = self.run, self.run.backend, self.run.settings
        ens, opt = run.model, self.step_optimizer
        self.step_fn = self._make_step()
        if compile_epoch is None:
            hooks = any(_watches_batches(cb) for cb in run.callbacks)
            compile_epoch = be.compiles and not any(ens.model.dropout_rates) and not hooks
        self.epoch_fn = (
            make_ensemble_epoch(ens, opt, be, s.get("compute_dtype")) if compile_epoch else None
        )
        validation = self.data.x_val is not None
        self.columns, self.epoch_end = make_ensemble_epoch_end(ens, be, s, validation)
        self.n_steps = -(-self.data.n // s["batch_size"])

    def _make_step(self) -> Any:
        """The compiled step (`make_ensemble_step`), shared with the loop over data sources."""
        run = self.run
        compute = run.settings.get("compute_dtype")
        return make_ensemble_step(run.model, self.step_optimizer, run.backend, compute)

    def _member_model(self, k: int) -> Sequential:
        """The members' model with member ``k``'s L2 alpha (the sweep's, else the model's)."""
        model = self.run.model.model
        alpha = self.run.sweep.get("alpha", [model.alpha] * self.members)[k]
        if alpha == model.alpha:
            return model
        return Sequential(model.layers, model.loss_function, model.input_shape, alpha)

    def _references(self, given: Any) -> list[float]:
        """Each member's untrained loss (`_divergence.reference_loss`: ``model.init(seed +
        k)`` with its alpha, or the larger with ``given``), which its epochs are compared with."""
        run, s = self.run, self.run.settings
        if s["divergence_factor"] is None:
            return [math.inf] * self.members
        ens, be, xp = run.model, run.backend, self.xp
        init = ens.init(seed=s["seed"], backend=be, dtype=s["dtype"])
        out = []
        for k in range(self.members):
            model = self._member_model(k)
            starts = [init] if given is None else [init, given]
            out.append(
                max(
                    _divergence._epoch_loss(model, ens.member(p, k), self.data, self.n_steps, xp)
                    for p in starts
                )
            )
        return out

    # -- the run ---------------------------------------------------------------------------------
    def _result(self, t0: float, stop_reason: str | None) -> EnsembleResult:
        run = self.run
        result = EnsembleResult(
            run.model.model, run.backend, run.params, run.opt_state, run.history, run.epoch,
            run.best_epoch, stop_reason, time.perf_counter() - t0,
        )  # fmt: skip
        result.ensemble, result.member_stop = run.model, list(run.member_stop)
        result.monitor, result.restore_best = _monitor(run)
        result.summary = ensemble_summary(result, run.settings["metric"])
        if run.settings["verbose"]:
            print(result.summary)
        return result

    # -- one epoch -------------------------------------------------------------------------------
    def _epoch(self) -> None:
        run, data, xp, be = self.run, self.data, self.xp, self.run.backend
        t0, s = time.perf_counter(), run.settings
        bs, n = s["batch_size"], data.n
        host_order = _ensemble_host.orders(run.rngs, n, self.members, s["shuffle"])
        order = be.asarray(host_order, "int32")
        rates = _ensemble_host.rate_table(
            run.schedule, self.base_lrs, run.schedule_state, steps=self.n_steps, step=run.step,
            epoch=run.epoch, samples=run.samples, total_steps=self.total_steps,
        )  # fmt: skip
        lrs = _ensemble_host.device_rates(be, rates, s["dtype"])  # (S, K), or (S,) if shared
        active = run.active()
        self.mask = None if all(active) else be.asarray([float(a) for a in active], s["dtype"])
        if be.donates:
            run.params, run.opt_state = _copy(xp, run.params), _copy(xp, run.opt_state)
        full = n // bs if self.epoch_fn is not None else 0
        losses = [self._full_batches(order, full, lrs)] if full else []
        for b in range(full, self.n_steps):
            loss = self._member_step(order[..., b * bs : min((b + 1) * bs, n)], lrs[b, ...])
            losses.append(loss)
            for cb in run.callbacks:
                cb.on_batch_end(run, loss)
            if self.log_every and (b + 1) % self.log_every == 0:
                self._log(b + 1, loss, 0.0)
        run.samples += n
        self._end_members(losses, rates[-1].tolist(), t0)

    def _full_batches(self, order: Any, full: int, lrs: Any) -> Any:
        """The first ``full`` batches in one `make_ensemble_epoch` call; losses (full, K)."""
        run, xp, data = self.run, self.xp, self.data
        bs = run.settings["batch_size"]
        if order.ndim == 1:
            rows = xp.reshape(order[: full * bs], (full, bs))
        else:
            rows = xp.reshape(order[:, : full * bs], (self.members, full, bs))
            rows = xp.permute_dims(rows, (1, 0, 2))
        run.params, run.opt_state, losses = self.epoch_fn(
            run.params, run.opt_state, data.x, data.y, data.w, rows, lrs[:full, ...],
            self.alpha, self.mask,
        )  # fmt: skip
        run.step += full
        watchers = [cb for cb in run.callbacks if _watches_batches(cb)]
        for b in range(full if watchers else 0):
            for cb in watchers:
                cb.on_batch_end(run, losses[b, ...])
        return losses

    def _member_step(self, idx: Any, lr: Any, batch: tuple | None = None) -> Any:
        """One step on rows ``idx`` of ``batch`` (x, y, w on the backend; default: the whole
        training data): (B,) shared by the members or (K, B) one batch each."""
        run, data, s = self.run, self.data, self.run.settings
        x, y, w = (data.x, data.y, data.w) if batch is None else batch
        model, masks = run.model.model, None
        if any(model.dropout_rates):
            rows = idx.shape[-1]
            host = _ensemble_host.member_masks(
                run.rngs, self.members, rows, model.dropout_shapes, model.dropout_rates
            )
            masks = [None if m is None else run.backend.asarray(m, s["dtype"]) for m in host]
        run.params, run.opt_state, losses = self.step_fn(
            run.params, run.opt_state, x, y, w, idx, lr, masks, self.alpha, self.mask
        )
        run.step += 1
        return losses

    def _log(self, steps_done: int, loss: Any, lr: float) -> None:
        values = [v for v in self.run.backend.to_numpy(loss).tolist() if math.isfinite(v)]
        if values:
            self.progress.batch(steps_done, math.fsum(values) / len(values))

    def _read_out(self, losses: list) -> list[float]:
        run, data = self.run, self.data
        values = self.epoch_end(
            run.params, losses, data.x, data.y, data.x_val, data.y_val, self.alpha
        )
        return run.backend.to_numpy(values).tolist()

    # -- the epoch's end -------------------------------------------------------------------------
    def _end_members(self, losses: list, last_lrs: list[float], t0: float, sizes=None) -> None:
        """``sizes``: the batches' row counts (default: this loop's batches over the data)."""
        run, k_all = self.run, self.members
        sizes = self._batch_sizes() if sizes is None else sizes
        host, n_steps = self._read_out(losses), len(sizes)
        steps = host[: n_steps * k_all]
        cols = host[n_steps * k_all : -k_all]
        finite = host[-k_all:]
        n, elapsed = sum(sizes), time.perf_counter() - t0
        values: dict[str, list[float]] = {"loss": []}
        for k in range(k_all):
            member = steps[k::k_all]
            values["loss"].append(math.fsum(v * b for v, b in zip(member, sizes, strict=True)) / n)
        for c, name in enumerate(self.columns):
            values[name] = cols[c * k_all : (c + 1) * k_all]
        values["lr"] = last_lrs
        self._check_members(steps, finite, values["loss"], last_lrs)
        record: dict[str, float] = {"epoch": run.epoch + 1}
        for name, column in values.items():
            good = [v for v in column if math.isfinite(v)]
            record[name] = math.fsum(good) / len(good) if good else math.nan
        record.update(time=elapsed, samples_per_s=n / elapsed)
        for name, column in values.items():
            record.update({f"{name}[{k}]": v for k, v in enumerate(column)})
        run.epoch += 1
        run.history.append(record, steps)
        self._after_epoch(record)

    def _end_schedule(self, record: dict[str, float]) -> None:
        """`_Loop._end_schedule` with one schedule state per member: each member that trained
        in this epoch steps its own (`_ensemble_host.end_member_states`: its column
        ``monitor[k]``, its base rate); a member whose schedule asks to stop is frozen
        (`EnsembleRun.stop_member`), training ends when every member stopped."""
        run, schedule = self.run, self.run.schedule
        trained = [k for k, a in enumerate(run.active()) if a]
        run.schedule_state = _ensemble_host.end_member_states(
            schedule, run.schedule_state, record, self.base_lrs, trained
        )
        for k in trained:
            if schedule.should_stop(run.schedule_state["members"][k]):
                run.stop_member(
                    k, run.epoch, f"the learning-rate schedule {schedule.name!r} ended training "
                    f"(last learning rate {record[f'lr[{k}]']:g})",
                )  # fmt: skip

    def _check_members(self, steps, finite, losses, lrs) -> None:
        """Put back and freeze the members that diverged in this epoch (module docstring);
        raise `_divergence.Diverged` when every member has diverged."""
        run, k_all = self.run, self.members
        epoch, factor = run.epoch + 1, run.settings["divergence_factor"]
        bad: dict[int, str] = {}
        for k in (k for k, a in enumerate(run.active()) if a):
            value = next((v for v in steps[k::k_all] if not math.isfinite(v)), None)
            if value is not None or not finite[k]:
                what = (
                    "a parameter became NaN or infinite"
                    if value is None
                    else f"the loss became {value}"
                )
                bad[k] = f"{what} in epoch {epoch} (learning rate {lrs[k]:g})"
            elif (
                factor is not None
                and 0 < self.references[k] < math.inf
                and losses[k] > factor * self.references[k]
            ):
                bad[k] = (
                    f"the mean training loss of epoch {epoch} is {losses[k]:.4g}, more than "
                    f"{factor:g} times the untrained member's loss ({self.references[k]:.4g}), "
                    f"at learning rate {lrs[k]:g}"
                )
        if not bad:
            return
        keep = run.backend.asarray(
            [0.0 if k in bad else 1.0 for k in range(k_all)], run.settings["dtype"]
        )
        run.params = select(keep, run.params, self.snapshot.params, k_all)
        run.opt_state = select(keep, run.opt_state, self.snapshot.opt_state, k_all)
        for k, reason in bad.items():
            run.stop_member(k, epoch - 1, f"diverged: {reason}")
        if all(s is not None and s["reason"].startswith("diverged") for s in run.member_stop):
            k, reason = next(iter(bad.items()))
            raise _divergence.Diverged(f"every member diverged (member {k}: {reason})", epoch)


def _monitor(run: Any) -> tuple[str, bool]:
    """The column that picks the best member (early stopping's monitor, else val_loss with
    validation data, else loss) and whether early stopping restores each member's best."""
    for cb in run.callbacks:
        if isinstance(cb, MemberEarlyStopping):
            return cb.monitor, cb.restore_best
    return ("val_loss" if "val_loss" in run.history.columns else "loss"), False
