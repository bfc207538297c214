"""From a `Config` to a finished run: data, backend, model, `fit`, and the run directory.

Host-only module; the CLI's ``train`` (``--resume``), ``evaluate`` and ``gradcheck`` are thin
wrappers over `train_config` (`resume_run`), `evaluate_run` and `gradcheck_config`; the run
itself (claiming the directory, writing it as epochs finish, Ctrl-C) is `backprop.app._trainrun`.

A run directory holds::

    config.toml    the resolved config (absolute paths, every default filled in), written first;
                   ``backprop train`` runs it again
    manifest.json  status (running, finished, stopped early, diverged, interrupted), epochs done,
                   backend, device, precision, library versions, command(s), data shapes,
                   results; written first and kept current as epochs finish
    history.csv    one row per epoch (or history.json), kept current as epochs finish
    last.npz       a complete checkpoint of the last epoch (``backprop train --resume RUN_DIR``,
                   ``fit(..., resume=...)``): every ``checkpoint.every`` epochs, at the end and
                   on Ctrl-C
    best.npz       the same at the best ``monitor`` value (with a validation set)
    model.npz      the final parameters (the best epoch's with early stopping; the last finished
                   epoch's when interrupted or diverged), the model spec and the preprocessing,
                   loadable by `load_run` / ``backprop evaluate``
    curves.png     loss and metric per epoch (needs matplotlib: ``pip install 'backprop-xp[plot]'``)
    .lock          present while a process trains in the directory (see `backprop.app.rundir`)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import backends

from ..data import datasets
from ..data.checks import DataError, as_column, output_size
from ..data.labels import encode_labels, encode_targets
from ..data.npyfiles import fit_standardizer, standardized
from ..data.preprocessing import Standardizer
from ..nn.ensemble import Ensemble
from ..nn.gradcheck import gradcheck, offset_biases
from ..nn.sequential import Sequential
from ..training._fitdata import host_xy, move_x
from ..training.checkpoint import CheckpointError, load_checkpoint
from ..training.scoring import evaluate
from ._ensemblerun import Scores, model_of, score_members
from ._trainrun import RunInterrupted, RunResult, format_metric, run_training
from .config import Config, ConfigError, config_from_dict, load_config

__all__ = [
    "RESUMABLE_KEYS",
    "PreparedData",
    "RunInterrupted",
    "RunResult",
    "evaluate_run",
    "format_metric",
    "gradcheck_config",
    "load_run",
    "prepare_dataset",
    "resume_run",
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


# -- data ----------------------------------------------------------------------------------------
def prepare_dataset(cfg: Config) -> PreparedData:
    """Load the configured dataset, hold out ``test_fraction`` of it (seeded by the training
    seed) and fit the standardizers on the training rows only.

    ``standardize`` z-scores float features per column, or per channel (the last axis) for
    sequences (N, ..., C); integer inputs (token ids) are never standardized: they name rows of
    an embedding table, they do not measure anything. Memory-mapped features (the ``npy``
    dataset) stay on disk: split and standardized as rows are read (`MappedRows`), their
    statistics accumulated over chunks of rows.
    """
    X, Y = datasets.load_dataset(cfg.data.name, **cfg.data.options)
    # class labels (1.0, {0, 1000}, "cat") -> indices 0..K-1; classes[k]: class k's label
    Y, classes = encode_targets(Y, cfg.model.output, cfg.model.loss)
    n_out = output_size(Y, cfg.model.output)
    if cfg.data.test_fraction > 0:
        x_train, y_train, x_test, y_test = datasets.train_test_split(
            X, Y, cfg.data.test_fraction, seed=cfg.training.seed
        )
    else:
        x_train, y_train = X, Y
        x_test, y_test = x_train, y_train
    preprocessing: dict[str, Any] = {} if classes is None else {"classes": classes}
    if cfg.data.standardize and X.dtype.kind not in "iu":
        scaler = fit_standardizer(x_train)
        preprocessing["features"] = scaler.to_dict()
        same = x_test is x_train
        x_train = standardized(scaler, x_train)
        x_test = x_train if same else standardized(scaler, x_test)
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


def apply_preprocessing(
    preprocessing: dict[str, Any], X: Any, Y: Any, output: Any = None
) -> tuple[Any, Any]:
    """The run's feature (and target) standardization applied to new data, and its class labels
    (``preprocessing["classes"]``: text, {0, 1000}, 1.0 ...) turned into the model's class
    indices; ``output``: the model's output activation (``cfg.model.output``)."""
    if "features" in preprocessing:
        X = Standardizer.from_dict(preprocessing["features"]).transform(X)
    if "targets" in preprocessing:
        Y = Standardizer.from_dict(preprocessing["targets"]).transform(as_column(Y))
    if "classes" in preprocessing or output == "softmax":
        Y = encode_labels(Y, preprocessing.get("classes"), output)
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


def train_config(
    cfg: Config,
    *,
    backend: str | None = None,
    device: str | None = None,
    run_dir: str | os.PathLike | None = None,
    save: bool = True,
    verbose: int = 1,
    command: list[str] | None = None,
    resume: bool = False,
) -> RunResult:
    """Run a config end to end: returns a `RunResult`; with ``save`` writes a run directory.

    ``backend``/``device`` override ``[backend] name``/``device``. With ``resume`` the run
    continues from ``run_dir/last.npz`` in that directory (see `resume_run`). Raises
    `DataError`, `backends.BackendError`, `FileExistsError` before training for unusable data,
    backends or run directories, `backprop.fit.TrainingDiverged` when training diverges, and
    `RunInterrupted` (a KeyboardInterrupt) on Ctrl-C, after writing the last finished epoch.
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
    with configured_backend(cfg) as (be, switches):
        return run_training(
            cfg,
            data,
            model,
            be,
            switches,
            run_dir=run_dir,
            save=save,
            resume=resume,
            verbose=verbose,
            command=command,
        )


# keys a resumed run may change; anything else would make it a different run
RESUMABLE_KEYS = ("training.epochs", "backend.name", "backend.device")


def resume_run(
    run_dir: str | os.PathLike,
    overrides: list[str] = (),
    imports: list[str] = (),
    *,
    verbose: int = 1,
    command: list[str] | None = None,
) -> RunResult:
    """Continue the run in ``run_dir`` (interrupted, killed or finished) from its ``last.npz``
    up to its configured ``training.epochs``, or a larger one given as an override
    (``"training.epochs=200"``): the same numbers as an uninterrupted run on CPU backends.

    Only `RESUMABLE_KEYS` may be overridden; the run's own ``config.toml`` supplies the rest.
    """
    path = pathlib.Path(run_dir)
    if path.is_file() or not (path / "config.toml").is_file():
        what = "a file" if path.is_file() else f"not a run directory (no {path / 'config.toml'})"
        raise FileNotFoundError(
            f"cannot resume {path}: it is {what}; pass the directory `backprop train` wrote "
            "(it holds config.toml, manifest.json and last.npz)"
        )
    saved = load_config(path / "config.toml", imports=imports)
    cfg = load_config(path / "config.toml", overrides, imports=imports)
    before, after = _flat(saved.to_dict()), _flat(cfg.to_dict())
    changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    refused = [k for k in changed if k not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            str(path / "config.toml"),
            [
                f"{k} cannot change when resuming (it would be another run); only "
                f"{', '.join(RESUMABLE_KEYS)} can; start a new run with --set {k}=... instead"
                for k in refused
            ],
        )
    if cfg.training.epochs < saved.training.epochs:
        raise ConfigError(
            str(path / "config.toml"),
            [
                f"training.epochs={cfg.training.epochs} is below the run's "
                f"{saved.training.epochs}; resuming continues a run, pass a larger value"
            ],
        )
    return train_config(cfg, run_dir=path, resume=True, verbose=verbose, command=command)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# -- loading a finished run ------------------------------------------------------------------
@dataclasses.dataclass
class LoadedRun:
    """A trained model read back from a run directory or checkpoint."""

    model: Sequential
    params: Any
    config: Config
    preprocessing: dict[str, Any]
    path: pathlib.Path
    members: int | None = None  # an ensemble's K (``params`` stacked); None: one model

    def predict(self, x: Any) -> Any:
        """Outputs for ``x`` on the parameters' backend; an ensemble's mean prediction."""
        if self.members is None:
            return self.model.predict(self.params, x)
        return Ensemble(self.model, self.members).predict_mean(self.params, x)


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
    model, members = model_of(meta["model"])
    return LoadedRun(
        model, ckpt.trees["params"], cfg, stored.get("preprocessing", {}), path, members
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

    Returns ``(run, {"loss": ..., metric: ...}, description of the data)``; for an ensemble
    run the scores of its mean prediction, a `Scores` whose ``members`` holds each member's.
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
        X, Y = apply_preprocessing(run.preprocessing, X, Y, cfg.model.output)
        what = f"{data}, {len(X)} rows"
    metric = cfg.training.fit_metric
    if run.members is not None:
        alpha = cfg.sweep.options.get("alpha")
        return run, score_members(run.model, run.params, run.members, X, Y, metric, alpha), what
    return run, Scores(evaluate(run.model, run.params, X, Y, metric=metric)), what


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
    ``rows`` training rows (fewer if the data has fewer: ``result.rows``), on the configured
    (or given) backend, at ``max_per_array`` sampled elements of each weight and bias array
    (None: all; see `backprop.gradcheck`). The biases are offset by seeded N(0, 0.1**2) noise
    (`offset_biases`) and elements within h of a kink are left out (``result.kinks``).

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
    # seeded non-zero biases: zero biases put ReLU units fed all-zero rows on their kink
    params = offset_biases(model.init(seed=seed, backend=be, dtype="float64"), seed=seed)
    X, Y = move_x(be, x, "float64", model), be.asarray(y, "float64")
    loss = be.compile(model.loss)  # the 2 * elements loss evaluations: compiled on JAX
    result = gradcheck(
        model.loss_and_grad, params, X, Y, loss=loss, max_per_array=max_per_array, seed=seed
    )
    result = dataclasses.replace(result, rows=len(x))  # rows actually used: min(rows, N)
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
