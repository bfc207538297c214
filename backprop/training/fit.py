"""`fit`: the training loop a researcher runs, on any backend.

One call trains a model on host data and returns a `FitResult` (final or best parameters,
optimizer state, `History`). What happens, in order:

1. The data is checked on the host, split (validation fraction, stratified for classifiers),
   weighted (class and sample weights) and moved to the backend once (`_FitData`).
2. Weights come from ``model.init(seed)`` on the host RNG, or from ``params``, or from a
   checkpoint (``resume``).
3. Each epoch draws one permutation on the host (same seed -> same batch order on every
   backend), moves it once and gathers every batch on the device; the last batch may be
   partial. Each step runs the pure step (`backprop.training.make_batch_step`: gather, loss and
   gradients, optimizer update), compiled by the backend (``jax.jit`` on JAX, with the
   parameter and optimizer-state buffers donated); the learning rate comes from the schedule as
   a Python float, dropout masks from a host RNG. On backends that compile (JAX) the epoch's
   full batches run as one compiled loop (`backprop.training.make_epoch`, ``compile_epoch``);
   compiled functions are cached, so neither a new epoch, nor the partial last batch, nor a new
   `fit` call of the same model recompiles.
4. The loss is read back only every ``log_every`` steps (for the progress bar) and once per
   epoch, together with the validation loss and metric, the finiteness check of the parameters
   and the diagnostics: one host<->device sync per epoch on GPU backends.
5. A non-finite loss or parameter, or an epoch's loss above ``divergence_factor`` times the
   untrained model's, raises `TrainingDiverged` with the last finished epoch's parameters in
   ``result``; checkpoints are never overwritten with bad values. Ctrl-C puts the run back at
   the last finished epoch, calls the callbacks' ``on_interrupt`` and raises `TrainingInterrupted`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import backends

from ..data import _host
from ..data.checks import DataError
from ..nn.model import dtype_name
from ..nn.sequential import Params, Sequential, float_dtype_name
from ..tree import tree_map
from . import _divergence, _progress
from ._epoch_end import make_epoch_end
from ._fitdata import (
    FitData,
    check_compile_epoch,
    check_devices,
    check_fit_args,
    check_monitors,
    move_opt_state,
    move_params,
    prepare_data,
)
from ._snapshot import Snapshot
from .callbacks import Callback
from .evaluation import resolve_metric
from .history import History
from .optimizers import Adam, Optimizer, get_optimizer
from .run import Run
from .schedules import Schedule, get_schedule
from .step import make_batch_step, make_epoch

__all__ = ["DataError", "FitResult", "Run", "TrainingDiverged", "TrainingInterrupted", "fit"]


class TrainingDiverged(FloatingPointError):
    """The loss or the parameters became NaN or infinite, or an epoch's loss exceeded
    ``divergence_factor`` times the untrained model's. ``result`` keeps the last good parameters;
    ``reason``: what went wrong (the message without the advice)."""

    def __init__(self, message: str, result: FitResult, reason: str | None = None) -> None:
        super().__init__(message)
        self.result, self.reason = result, reason


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during an epoch. ``result``: a `FitResult` at the end of the last finished epoch;
    ``run``: the `Run` put back there (parameters, optimizer and schedule state, position, RNG
    states, history), as callbacks saw it in ``on_interrupt`` (`ModelCheckpoint` saves it)."""

    def __init__(self, message: str, result: FitResult, run: Run) -> None:
        super().__init__(message)
        self.result, self.run = result, run


@dataclasses.dataclass
class FitResult:
    """What `fit` returns.

    ``params``: the final parameters (the best epoch's with ``EarlyStopping(restore_best=True)``);
    ``opt_state``: the optimizer state after the last step; ``history``: per-epoch records;
    ``epochs``: epochs completed; ``best_epoch``: set by early stopping; ``stop_reason``: why
    training ended before ``epochs`` (None when it ran them all); ``time``: seconds of training.
    """

    model: Sequential
    backend: Any
    params: Params
    opt_state: Any
    history: History
    epochs: int
    best_epoch: int | None
    stop_reason: str | None
    time: float
    summary: str = ""

    def predict(self, X: Any) -> Any:
        """Outputs for host inputs ``X`` (N, n_in), as a NumPy array."""
        x = self.backend.asarray(X, dtype_name(self.params))
        return self.backend.to_numpy(self.model.predict(self.params, x))


def fit(
    model: Sequential,
    X: Any,
    Y: Any,
    *,
    optimizer: str | Optimizer | None = None,
    schedule: str | Schedule | None = None,
    backend: Any = "numpy",
    dtype: str = "float32",
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    shuffle: bool = True,
    validation_split: float = 0.0,
    validation_data: tuple[Any, Any] | None = None,
    stratify: bool | None = None,
    metric: str | None = "auto",
    train_metrics: bool = True,
    class_weight: Any = None,
    sample_weight: Any = None,
    callbacks: Sequence[Callback] = (),
    params: Params | None = None,
    opt_state: Any = None,
    resume: Any = None,
    diagnostics: bool = False,
    divergence_factor: float | None = 10.0,
    log_every: int | None = None,
    compile_epoch: bool | None = None,
    verbose: int = 1,
    config: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` on ``X`` (N, n_in) and ``Y`` and return a `FitResult`.

    Parameters
    ----------
    X, Y : host arrays (NumPy or lists)
        Inputs (N, n_in); targets (N, n_out), or integer class labels (N,) for softmax models.
    optimizer : name or `Optimizer`
        Default ``Adam()``. Its ``lr`` is the base learning rate the schedule scales.
    schedule : name or `Schedule`
        Learning-rate schedule (`backprop.schedules`); default constant.
    backend, dtype : where and in which float type to train ("float32" or "float64").
    epochs, batch_size, seed, shuffle :
        ``seed`` fixes the initial weights, the batch order, the validation split and the
        dropout masks, identically on every backend. The last batch of an epoch may be smaller.
    validation_split : float in [0, 1)
        Fraction of the rows held out (stratified by class when ``stratify``; default: for
        classifiers). Or ``validation_data=(X_val, Y_val)``.
    metric : "auto" (accuracy for classifiers, r2 for regressors), a metric name, or None.
    train_metrics : also compute the metric on the training set each epoch (one forward pass).
    class_weight, sample_weight :
        ``{class: weight}`` or "balanced"; per-row weights (N,). Weights are rescaled to mean 1.
    callbacks : `Callback` objects, e.g. ``EarlyStopping``, ``ModelCheckpoint``.
    params : initial parameters instead of ``model.init(seed)``.
    opt_state : initial optimizer state instead of ``optimizer.init(params)``, e.g. the
        ``opt_state`` of a previous `FitResult` of the same optimizer and model, to continue its
        momentum or moments (host NumPy or any backend's arrays; moved to ``backend`` in
        ``dtype``). It must have the structure and shapes ``optimizer.init`` gives for these
        parameters. Not with ``resume`` (a checkpoint holds its own).
    resume : path of a checkpoint to continue from (same model, optimizer, schedule, batch size,
        seed and validation split); training continues up to ``epochs`` in total.
    diagnostics : add per-layer gradient-flow columns to the history (`backprop.diagnostics`).
    divergence_factor : an epoch whose mean training loss exceeds this many times the loss of
        the untrained ``model.init(seed)`` on the training rows diverged (`TrainingDiverged`);
        a finite number > 1, or None to turn the check off.
    log_every : read the loss for the progress bar every this many steps (default: about 20
        updates per epoch while a bar shows, else only at epoch ends).
    compile_epoch : run each epoch's full batches as one call (`backprop.training.make_epoch`:
        ``jax.lax.scan`` on JAX, one dispatch per epoch; a Python loop elsewhere) instead of one
        call per step. Same numbers either way. None (default): on backends that compile (JAX)
        unless the model has dropout (masks are drawn per step on the host) or a callback
        overrides ``on_batch_end``. With True, ``on_batch_end`` callbacks run after the epoch's
        loop, once per step with that step's loss, and the progress bar moves once per epoch.
    verbose : 0 silent; 1 a progress bar (only on a terminal) and a summary line at the end.
    config : JSON-ready dict stored in checkpoints (the CLI stores the resolved config).

    Raises `TrainingDiverged` (with ``.result``) when the loss or parameters stop being finite
    or the loss explodes, `TrainingInterrupted` (with ``.result`` and ``.run``) on Ctrl-C,
    `DataError` for unusable data, ``ValueError``/``TypeError`` for bad arguments.
    """
    be = backends.as_backend(backend)
    optimizer = get_optimizer(Adam() if optimizer is None else optimizer)
    schedule = get_schedule(schedule)
    epochs, batch_size, seed = check_fit_args(  # NumPy integers become Python ints
        epochs, batch_size, seed, validation_split, validation_data, params, resume, opt_state
    )
    dtype = float_dtype_name(dtype)  # np.float64, torch.float64, ... -> "float64"
    check_compile_epoch(compile_epoch, model)
    if stratify is None:
        stratify = model.task == "classification"
    settings = dict(
        dtype=dtype,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        shuffle=bool(shuffle),
        validation_split=float(validation_split),
        stratify=bool(stratify),
        train_metrics=train_metrics,
        diagnostics=diagnostics,
        divergence_factor=_divergence.check_factor(divergence_factor),
        verbose=verbose,
        config=config,
    )
    settings["metric"], settings["threshold"] = resolve_metric(model, metric)
    data = prepare_data(model, X, Y, be, settings, validation_data, class_weight, sample_weight)
    check_devices(be, batch_size, data.n)
    run = Run(model, be, optimizer, schedule, settings, callbacks)
    check_monitors(run, data)
    if resume is not None:
        run.restore(resume)
    elif params is None:
        run.params = model.init(seed=seed, backend=be, dtype=dtype)
    else:
        run.params = move_params(model, params, be, dtype)
    if resume is None and opt_state is None:
        run.opt_state = optimizer.init(run.params)
    elif resume is None:
        run.opt_state = move_opt_state(optimizer, run.params, opt_state, be, dtype)
    with be.quiet_float_errors():  # the NaN guard reports divergence, not NumPy warnings
        return _Loop(run, data, log_every, compile_epoch, params is not None).train()


class _Loop:
    """The epoch loop of one `fit` call."""

    def __init__(
        self, run: Run, data: FitData, log_every: Any, compile_epoch: Any, given: bool
    ) -> None:
        self.run, self.data = run, data
        be, s = run.backend, run.settings
        self.xp = be.xp
        self.step_fn = make_batch_step(run.model, run.optimizer, be)
        if compile_epoch is None:
            batch_hooks = any(_watches_batches(cb) for cb in run.callbacks)
            compile_epoch = be.compiles and not any(run.model.dropout_rates) and not batch_hooks
        self.epoch_fn = make_epoch(run.model, run.optimizer, be) if compile_epoch else None
        self.columns, self.epoch_end = make_epoch_end(run.model, be, s, data.x_val is not None)
        self.n_steps = -(-data.n // s["batch_size"])
        self.total_steps = self.n_steps * s["epochs"]
        self.progress = _progress.Progress(s["epochs"], self.n_steps, s["verbose"], run.epoch)
        self.log_every = log_every or (max(1, self.n_steps // 20) if self.progress.on else 0)
        self.base_lr = float(run.optimizer.lr)
        start = run.params if given else None  # a user's start may be worse than the init
        self.reference = _divergence.reference_loss(run.model, be, s, data, self.n_steps, start)

    def train(self) -> FitResult:
        run, t0 = self.run, time.perf_counter()
        for cb in run.callbacks:
            cb.on_train_begin(run)
        self.snapshot = Snapshot(run)
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
        masks = None
        if any(run.model.dropout_rates):
            host = _host.dropout_masks(
                run.rngs["dropout"],
                idx.shape[0],
                run.model.dropout_shapes,
                run.model.dropout_rates,
            )
            masks = [
                None if m is None else run.backend.asarray(m, run.settings["dtype"]) for m in host
            ]
        run.params, run.opt_state, loss = self.step_fn(
            run.params, run.opt_state, data.x, data.y, data.w, idx, lr, masks
        )
        run.step += 1
        return loss

    def _log(self, steps_done: int, loss: Any, lr: float) -> None:
        value = float(loss)
        if not math.isfinite(value):
            raise _divergence.nonfinite(value, self.run, lr)
        self.progress.batch(steps_done, value)

    def _end_epoch(self, losses: list, lr: float, t0: float) -> None:
        """``losses``: the epoch's step losses, 0-d arrays and (after `_full_batches`) one
        (S,) array first."""
        run, data = self.run, self.data
        values = self.epoch_end(run.params, losses, data.x, data.y, data.x_val, data.y_val)
        host = run.backend.to_numpy(values).tolist()  # the epoch's one sync
        step_losses = host[: self.n_steps]
        bad = next((v for v in step_losses if not math.isfinite(v)), None)
        if bad is not None or not host[-1]:
            raise _divergence.nonfinite(bad, run, lr)
        sizes = [
            min(run.settings["batch_size"], data.n - i * run.settings["batch_size"])
            for i in range(self.n_steps)
        ]
        elapsed = time.perf_counter() - t0
        loss = math.fsum(v * s for v, s in zip(step_losses, sizes, strict=True)) / data.n
        _divergence.check_loss(loss, self.reference, run, lr)
        record = {"epoch": run.epoch + 1, "loss": loss}
        record.update(zip(self.columns, host[self.n_steps : -1], strict=True))
        record.update(lr=lr, time=elapsed, samples_per_s=data.n / elapsed)
        run.epoch += 1
        run.history.append(record, step_losses)
        self._after_epoch(record)

    def _after_epoch(self, record: dict[str, float]) -> None:
        run = self.run
        monitor = run.schedule.monitor
        run.schedule_state = run.schedule.end_epoch(
            run.schedule_state, record.get(monitor) if monitor else None, base_lr=self.base_lr
        )
        if run.schedule.should_stop(run.schedule_state):
            run.stop_training = True
            run.stop_reason = f"the learning-rate schedule {run.schedule.name!r} ended training"
        for cb in run.callbacks:
            cb.on_epoch_end(run)
        for cb in run.callbacks:
            cb.after_epoch(run)
        self.progress.epoch(record, run.settings["metric"])
        self.snapshot = Snapshot(run)  # what an interrupt during the next epoch returns to


def _watches_batches(cb: Callback) -> bool:
    """Whether a callback does something in ``on_batch_end`` (a subclass override, or a
    `LambdaCallback` given one)."""
    return type(cb).on_batch_end is not Callback.on_batch_end or "on_batch_end" in vars(cb)


def _copy(xp: Any, tree: Any) -> Any:
    """A copy of every array in ``tree`` (other leaves, e.g. Python numbers, as they are)."""
    return tree_map(lambda a: xp.asarray(a, copy=True) if hasattr(a, "shape") else a, tree)
