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

from collections.abc import Sequence
from typing import Any

import backends

from ..data.checks import DataError
from ..nn.sequential import Params, Sequential, float_dtype_name
from . import _divergence, _mixed
from ._ensemble_fit import fit_ensemble, wants_ensemble
from ._fitdata import (
    check_compile_epoch,
    check_devices,
    check_fit_args,
    check_monitors,
    move_opt_state,
    move_params,
    prepare_data,
)
from ._loop import _Loop
from ._result import FitResult, TrainingDiverged, TrainingInterrupted
from ._sourcedata import is_source, prepare_source
from ._stream import SourceLoop
from .callbacks import Callback
from .evaluation import resolve_metric
from .optimizers import Adam, Optimizer, get_optimizer
from .run import Run
from .schedules import Schedule, get_schedule

__all__ = ["DataError", "FitResult", "Run", "TrainingDiverged", "TrainingInterrupted", "fit"]


def fit(
    model: Sequential,
    X: Any,
    Y: Any = None,
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
    ensemble: int | None = None,
    sweep: dict[str, Sequence[float]] | None = None,
    member_order: str = "shared",
) -> FitResult:
    """Train ``model`` on ``X`` (N, n_in) and ``Y`` and return a `FitResult`.

    Parameters
    ----------
    X, Y : host arrays (NumPy or lists), or a data source
        Inputs (N, n_in); targets (N, n_out), or integer class labels (N,) for softmax models.
        Data that does not fit in memory (docs/data.md): memory-mapped arrays
        (``np.load(path, mmap_mode="r")``) or any `backprop.data.RowSource` for X and Y, or a
        `backprop.data.Dataset` X (``rows(idx) -> (x, y)``) with Y None: read batch by batch
        in the same order as arrays, same results, exact resume. Or an iterable of ``(x, y)``
        / ``(x, y, w)`` host batches with Y None (a generator, a PyTorch DataLoader, a function
        ``epoch -> iterable``): its own batches and order (``batch_size``, ``shuffle``,
        ``validation_split`` and weights are the loader's business), no training metric.
        Batches are read and moved to the backend in a background thread, two steps ahead.
    optimizer : name or `Optimizer`
        Default ``Adam()``. Its ``lr`` is the base learning rate the schedule scales.
    schedule : name or `Schedule`
        Learning-rate schedule (`backprop.schedules`); default constant.
    backend, dtype : where and in which float type to train ("float32" or "float64"), or
        mixed precision: "bfloat16" or "float16" (JAX, torch; CuPy float16 only): float32
        master weights, optimizer state and loss, forward and backward passes in ``dtype``,
        float16 with dynamic loss scaling (`backprop.training._mixed`, docs/training.md).
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
    ensemble, sweep, member_order : train K members of ``model`` as one program and return an
        `EnsembleResult` (params stacked, K leading): member k starts from
        ``model.init(seed + k)``; ``sweep`` gives per-member lists of "lr", "alpha",
        "weight_decay" (K = their length without ``ensemble``); ``member_order`` "shared"
        (the batches of ``seed``) or "member" (member k's of ``seed + k``). `EarlyStopping`
        then stops each member on its own. See `backprop.training._ensemble_fit`.

    Raises `TrainingDiverged` (with ``.result``) when the loss or parameters stop being finite
    or the loss explodes, `TrainingInterrupted` (with ``.result`` and ``.run``) on Ctrl-C,
    `DataError` for unusable data, ``ValueError``/``TypeError`` for bad arguments.
    """
    if wants_ensemble(model, ensemble, sweep, member_order):
        if isinstance(dtype, str) and dtype in _mixed.COMPUTE_DTYPES:
            _mixed.check_compute_dtype(backends.as_backend(backend), dtype)
        kwargs = {k: v for k, v in locals().items() if k not in ("model", "X", "Y")}
        return fit_ensemble(model, X, Y, **kwargs)
    be = backends.as_backend(backend)
    optimizer = get_optimizer(Adam() if optimizer is None else optimizer)
    schedule = get_schedule(schedule)
    epochs, batch_size, seed = check_fit_args(  # NumPy integers become Python ints
        epochs, batch_size, seed, validation_split, validation_data, params, resume, opt_state
    )
    dtype = float_dtype_name(dtype)  # np.float64, torch.float64, ... -> "float64"
    compute = None
    if dtype in _mixed.COMPUTE_DTYPES:  # mixed precision: float32 master weights
        _mixed.check_compute_dtype(be, dtype)
        compute, dtype = dtype, _mixed.MASTER_DTYPE
        if compute == "float16":
            optimizer = _mixed.LossScale(optimizer)
    check_compile_epoch(compile_epoch, model)
    if stratify is None:
        stratify = model.task == "classification"
    settings = dict(
        dtype=dtype,
        compute_dtype=compute,
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
    weighting = (validation_data, class_weight, sample_weight)
    loop: type[_Loop] = _Loop
    if is_source(X, Y):
        data: Any = prepare_source(model, X, Y, be, settings, *weighting)
        settings["train_metrics"] = train_metrics and data.indexable  # a stream: one pass
        loop = SourceLoop
    elif Y is None:
        raise ValueError(
            "fit: Y (the targets) is missing; pass fit(model, X, Y), or a data source as X "
            "(a Dataset, or an iterable of (x, y) batches) with Y None"
        )
    else:
        data = prepare_data(model, X, Y, be, settings, *weighting)
    if data.n is not None:
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
        return loop(run, data, log_every, compile_epoch, params is not None).train()
