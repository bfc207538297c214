"""From a `Config` to a finished run: data, backend, model, `fit`, and the run directory.

Host-only module; the CLI's ``train``, ``evaluate`` and ``gradcheck`` are thin wrappers over
`train_config`, `evaluate_run` and `gradcheck_config`.

A run directory holds::

    model.npz      the final parameters (the best epoch's with early stopping), the model spec
                   and the preprocessing, loadable by `load_run` / ``backprop evaluate``
    last.npz       a complete checkpoint of the last epoch (``fit(..., resume=...)``)
    best.npz       the same at the best ``monitor`` value (with a validation set)
    history.csv    one row per epoch (or history.json)
    config.toml    the resolved config: every default filled in; ``backprop train`` runs it again
    manifest.json  backend, device, precision, library versions, command, data shapes, results
    curves.png     loss and metric per epoch (needs matplotlib: ``pip install 'backprop-xp[plot]'``)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import backends

from ..data import datasets
from ..data.checks import DataError, as_column, output_size
from ..data.preprocessing import Standardizer
from ..nn.gradcheck import gradcheck
from ..nn.model import build_model
from ..nn.sequential import Sequential
from ..training._fitdata import host_xy, move_x
from ..training.callbacks import EarlyStopping, ModelCheckpoint
from ..training.checkpoint import CheckpointError, load_checkpoint
from ..training.evaluation import evaluate
from ..training.fit import FitResult, TrainingDiverged, fit
from . import rundir
from .config import Config, config_from_dict

__all__ = [
    "PreparedData",
    "RunResult",
    "evaluate_run",
    "gradcheck_config",
    "load_run",
    "prepare_dataset",
    "train_config",
]


@dataclasses.dataclass
class PreparedData:
    """A config's dataset on the host: split, standardized, with the model's sizes.

    ``n_in``: the model's input shape without the batch axis: an int (the number of features, or
    of token ids per row) for 2-D X, the tuple ``X.shape[1:]`` otherwise (``(length,
    channels)`` for signals)."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    n_in: int | tuple[int, ...]
    n_out: int
    preprocessing: dict[str, Any]

    @property
    def held_out(self) -> bool:
        return self.x_test is not self.x_train


@dataclasses.dataclass
class RunResult:
    """What `train_config` returns: the fit result, held-out metrics and the run directory."""

    fit: FitResult
    test: dict[str, float]
    run_dir: pathlib.Path | None
    manifest: dict[str, Any]


# -- data ----------------------------------------------------------------------------------------
def prepare_dataset(cfg: Config) -> PreparedData:
    """Load the configured dataset, hold out ``test_fraction`` of it (seeded by the training
    seed) and fit the standardizers on the training rows only.

    ``standardize`` z-scores float features per column, or per channel (the last axis) for
    sequences (N, ..., C); integer inputs (token ids) are never standardized: they name rows of
    an embedding table, they do not measure anything.
    """
    X, Y = datasets.load_dataset(cfg.data.name, **cfg.data.options)
    n_out = output_size(Y, cfg.model.output)
    if cfg.data.test_fraction > 0:
        x_train, y_train, x_test, y_test = datasets.train_test_split(
            X, Y, cfg.data.test_fraction, seed=cfg.training.seed
        )
    else:
        x_train, y_train = X, Y
        x_test, y_test = x_train, y_train
    preprocessing: dict[str, Any] = {}
    if cfg.data.standardize and X.dtype.kind not in "iu":
        scaler = Standardizer().fit(x_train)
        preprocessing["features"] = scaler.to_dict()
        same = x_test is x_train
        x_train = scaler.transform(x_train)
        x_test = x_train if same else scaler.transform(x_test)
    if cfg.data.standardize_targets:
        scaler = Standardizer().fit(as_column(y_train))
        preprocessing["targets"] = scaler.to_dict()
        same = y_test is y_train
        y_train = scaler.transform(as_column(y_train))
        y_test = y_train if same else scaler.transform(as_column(y_test))
    return PreparedData(x_train, y_train, x_test, y_test, _input_shape(X), n_out, preprocessing)


def _input_shape(X: Any) -> int | tuple[int, ...]:
    """The model's input size: an int for 2-D X (N, d), else the tuple ``X.shape[1:]``."""
    return int(X.shape[1]) if X.ndim == 2 else tuple(int(d) for d in X.shape[1:])


def apply_preprocessing(preprocessing: dict[str, Any], X: Any, Y: Any) -> tuple[Any, Any]:
    """The run's feature (and target) standardization applied to new data."""
    if "features" in preprocessing:
        X = Standardizer.from_dict(preprocessing["features"]).transform(X)
    if "targets" in preprocessing:
        Y = Standardizer.from_dict(preprocessing["targets"]).transform(as_column(Y))
    return X, Y


# -- training --------------------------------------------------------------------------------
@contextlib.contextmanager
def configured_backend(
    cfg: Config, name: str | None = None, device: str | None = None
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The configured backend (or ``name``/``device``) with its precision and determinism
    switches applied for the ``with`` block (they are process-global in JAX, PyTorch and
    CuPy, so they are put back on exit). Yields ``(backend, what the switches set)``."""
    b = cfg.backend
    if b.distributed:  # before the backend starts XLA
        backends.initialize_distributed(
            b.coordinator_address or None,
            b.num_processes or None,
            None if b.process_id < 0 else b.process_id,
        )
    be = backends.get_backend(
        name or b.name,
        device=_device(device or b.device),
        devices=None if b.devices == 1 else b.devices,
    )
    with contextlib.ExitStack() as stack:
        record = {"precision": stack.enter_context(be.precision(b.precision))}
        if b.deterministic:
            record["deterministic"] = stack.enter_context(be.determinism(True))
        yield be, record


def _device(device: str | None) -> str | None:
    return None if device in (None, "default") else device


def _callbacks(cfg: Config, run_dir: pathlib.Path | None) -> list[Any]:
    t = cfg.training
    out: list[Any] = []
    if t.early_stopping is not None:
        out.append(EarlyStopping(**dataclasses.asdict(t.early_stopping)))
    if run_dir is not None:
        ck = t.checkpoint
        keep_best = ck.keep_best and (t.validation_split > 0 or not ck.monitor.startswith("val_"))
        every = ck.every or t.epochs  # 0: only at the end (ModelCheckpoint writes the last epoch)
        out.append(ModelCheckpoint(run_dir, every=every, keep_best=keep_best, monitor=ck.monitor))
    return out


def train_config(
    cfg: Config,
    *,
    backend: str | None = None,
    device: str | None = None,
    run_dir: str | os.PathLike | None = None,
    save: bool = True,
    verbose: int = 1,
    command: list[str] | None = None,
) -> RunResult:
    """Run a config end to end: returns a `RunResult`; with ``save`` writes a run directory.

    ``backend``/``device`` override ``[backend] name``/``device``. Raises `DataError`,
    `backends.BackendError`, `FileExistsError` before training for unusable data, backends or
    run directories, and `backprop.fit.TrainingDiverged` when training diverges.
    """
    if backend or device:
        cfg = dataclasses.replace(
            cfg,
            backend=dataclasses.replace(
                cfg.backend, name=backend or cfg.backend.name, device=device or cfg.backend.device
            ),
        )
    data = prepare_dataset(cfg)
    model = cfg.model.build(data.n_in, data.n_out, source=cfg.source)
    optimizer, schedule = cfg.optimizer.build(), cfg.optimizer.schedule.build()
    with configured_backend(cfg) as (be, switches):
        return _train(
            cfg, data, model, optimizer, schedule, be, switches, run_dir, save, verbose, command
        )


def _train(cfg, data, model, optimizer, schedule, be, switches, run_dir, save, verbose, command):
    say = print if verbose else (lambda *a, **k: None)
    t = cfg.training
    if save and be.process_index:  # a multi-process run: process 0 writes the run directory
        save = False
        say(f"process {be.process_index}: the run directory is written by process 0")
    folder = rundir.new_run_dir(cfg, run_dir) if save else None
    stored = {"resolved": cfg.to_dict(), "preprocessing": data.preprocessing}
    manifest = rundir.manifest(cfg, be, switches, data, model, command)
    # fit holds out ceil(fraction * N) rows (backprop.data.weights.validation_split): say the same
    n_val = math.ceil(t.validation_split * len(data.x_train))
    say(
        f"{cfg.data.name}: {len(data.x_train) - n_val} train"
        + (f" + {n_val} validation" if n_val else "")
        + (f" / {len(data.x_test)} test rows" if data.held_out else " rows (no test split)")
        + (
            f", {data.n_in} features -> {data.n_out} outputs"
            if isinstance(data.n_in, int)
            else f", inputs of shape {tuple(data.n_in)} -> {data.n_out} outputs"
        )
    )
    say(f"model {model}")
    say(f"optimizer {optimizer.spec()}, schedule {schedule.spec()}")
    say(
        f"backend {be.name} {manifest['backend'].get('library_version', '')} on "
        f"{be.device_name}, {cfg.backend.dtype}, precision {cfg.backend.precision}"
    )
    start = time.perf_counter()
    diverged = None
    try:
        result = _fit(cfg, data, model, optimizer, schedule, be, folder, stored, verbose)
    except TrainingDiverged as exc:  # keep the last finite parameters and the history
        diverged, result = exc, exc.result
    metric = t.fit_metric
    with be.quiet_float_errors():  # diverged runs: report inf, not a NumPy warning
        test = evaluate(model, result.params, data.x_test, data.y_test, metric=metric)
    label = "test" if data.held_out else "training rows"
    say(f"{label}: " + ", ".join(f"{k} {format_metric(k, v)}" for k, v in test.items()))
    manifest["result"] = {
        "epochs": result.epochs,
        "fit_seconds": round(result.time, 4),
        "wall_seconds": round(time.perf_counter() - start, 4),
        "stop_reason": result.stop_reason,
        "best_epoch": result.best_epoch,
        "final": result.history.last if len(result.history) else {},
        "evaluated_on": label,
        "test": test,
    }
    if folder is not None:
        rundir.write_run(folder, cfg, result, stored, manifest, verbose)
        say(f"run directory: {folder}")
    if diverged is not None:
        where = f"; the last finite parameters are in {folder / 'model.npz'}" if folder else ""
        raise TrainingDiverged(f"{diverged}{where}", result) from None
    return RunResult(result, test, folder, manifest)


def _fit(cfg, data, model, optimizer, schedule, be, folder, stored, verbose) -> FitResult:
    t = cfg.training
    return fit(
        model,
        data.x_train,
        data.y_train,
        optimizer=optimizer,
        schedule=schedule,
        backend=be,
        dtype=cfg.backend.dtype,
        epochs=t.epochs,
        batch_size=t.batch_size,
        seed=t.seed,
        shuffle=t.shuffle,
        validation_split=t.validation_split,
        metric=t.fit_metric,
        class_weight=t.fit_class_weight,
        callbacks=_callbacks(cfg, folder),
        diagnostics=t.diagnostics,
        verbose=verbose,
        config=stored,
    )


def format_metric(key: str, value: float) -> str:
    return f"{value:.2%}" if key == "accuracy" else f"{value:.4g}"


# -- loading a finished run ------------------------------------------------------------------
@dataclasses.dataclass
class LoadedRun:
    """A trained model read back from a run directory or checkpoint."""

    model: Sequential
    params: Any
    config: Config
    preprocessing: dict[str, Any]
    path: pathlib.Path


def load_run(path: str | os.PathLike, backend: Any = "numpy") -> LoadedRun:
    """Read ``RUN_DIR/model.npz`` (or a checkpoint file written by a run: model.npz, last.npz,
    best.npz) onto ``backend``."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "model.npz"
    header = load_checkpoint(path)  # host arrays: check the file before touching the backend
    meta = header.meta
    stored = meta.get("config")
    if not isinstance(stored, dict) or "resolved" not in stored or "model" not in meta:
        raise CheckpointError(
            f"{path} was not written by `backprop train` (no resolved config in it); "
            "load it with backprop.checkpoint.load_checkpoint instead"
        )
    cfg = config_from_dict(stored["resolved"], source=f"{path} (saved config)")
    be = backends.as_backend(backend)
    ckpt = load_checkpoint(path, be, meta.get("dtype"))
    return LoadedRun(
        build_model(meta["model"]), ckpt.trees["params"], cfg, stored.get("preprocessing", {}), path
    )


def evaluate_run(
    path: str | os.PathLike,
    *,
    data: str | None = None,
    target: str | None = None,
    backend: str = "numpy",
    device: str | None = None,
) -> tuple[LoadedRun, dict[str, float], str]:
    """Evaluate a finished run on ``data``: None (the run's own held-out rows), a dataset name,
    or a ``.npz``/``.csv`` file (``target``: the CSV target column, default the run's).

    Returns ``(run, {"loss": ..., metric: ...}, description of the data)``.
    """
    be = backends.get_backend(backend, device=_device(device))
    run = load_run(path, be)
    cfg = run.config
    if data is None:
        prepared = prepare_dataset(cfg)
        X, Y = prepared.x_test, prepared.y_test
        what = f"{cfg.data.name}, " + (
            f"its {len(X)} held-out test rows" if prepared.held_out else f"all {len(X)} rows"
        )
    else:
        X, Y = _load_named(data, target, cfg)
        X, Y = apply_preprocessing(run.preprocessing, X, Y)
        what = f"{data}, {len(X)} rows"
    metric = cfg.training.fit_metric
    values = evaluate(run.model, run.params, X, Y, metric=metric)
    return run, values, what


def _load_named(data: str, target: str | None, cfg: Config) -> tuple[Any, Any]:
    suffix = pathlib.Path(data).suffix.lower()
    options = cfg.data.options
    if suffix == ".npz":
        keys = {k: options[k] for k in ("x", "y") if k in options and cfg.data.name == "npz"}
        return datasets.load_npz(data, **keys)
    if suffix == ".csv":
        target = target or (options.get("target") if cfg.data.name == "csv" else None)
        if target is None:
            raise DataError(
                f"{data}: which column is the target? pass --target COLUMN "
                "(the run was not trained on a CSV, so it has no target column to reuse)"
            )
        keys = {k: options[k] for k in ("features", "delimiter") if k in options}
        return datasets.load_csv(data, target=target, **keys)
    if data in datasets.DATASETS:
        return datasets.load_dataset(data)
    raise DataError(
        f"--data {data!r} is neither a .npz or .csv file nor a dataset name; "
        f"expected a path ending in .npz or .csv, or one of {list(datasets.DATASETS)}"
    )


# -- gradient check --------------------------------------------------------------------------
def gradcheck_config(
    cfg: Config,
    *,
    backend: str | None = None,
    device: str | None = None,
    rows: int = 8,
    max_per_array: int | None = 50,
) -> tuple[Any, list[dict[str, Any]], Any]:
    """Finite-difference check of the configured model's ``loss_and_grad`` in float64 on
    ``rows`` training rows, on the configured (or given) backend, at ``max_per_array``
    sampled elements of each weight and bias array (None: all; see `backprop.gradcheck`).

    Returns ``(backend, per-layer rows, GradcheckResult)``; each row has the layer index, its
    shape and activation and the worst relative error of its W and b.
    """
    data = prepare_dataset(cfg)
    model = cfg.model.build(data.n_in, data.n_out, source=cfg.source)
    cfg64 = dataclasses.replace(cfg, backend=dataclasses.replace(cfg.backend, precision="float64"))
    with configured_backend(cfg64, backend, device) as (be, _):
        return _gradcheck(model, data, be, cfg.training.seed, rows, max_per_array)


def _gradcheck(model, data, be, seed, rows, max_per_array):
    if rows < 1:
        raise ValueError(f"rows must be >= 1, received {rows!r}")
    x, y = host_xy(model, data.x_train[:rows], data.y_train[:rows])
    params = model.init(seed=seed, backend=be, dtype="float64")
    X, Y = move_x(be, x, "float64", model), be.asarray(y, "float64")
    loss = be.compile(model.loss)  # the 2 * elements loss evaluations: compiled on JAX
    result = gradcheck(
        model.loss_and_grad, params, X, Y, loss=loss, max_per_array=max_per_array, seed=seed
    )
    layers = []
    for i, layer in enumerate(model.layers):
        errs = [e for k, e in result.errors.items() if k.startswith(f"[{i}].") or k == f"[{i}]"]
        if not errs:  # no parameters (activation, dropout, pooling): nothing to check
            continue
        act = getattr(layer, "activation", None)
        layers.append(
            {
                "layer": i,
                "shape": f"{_dims(model.shapes[i])} -> {_dims(model.shapes[i + 1])}",
                "activation": layer.name if act is None else act.name,
                "max_rel_error": max(errs),
            }
        )
    return be, layers, result


def _dims(shape: tuple[int, ...]) -> str:
    return str(shape[0]) if len(shape) == 1 else "x".join(str(d) for d in shape)
