"""Run configurations: a TOML file -> one validated, typed `Config`.

Host-only module. A config has five sections (see ``configs/*.toml`` and docs/configs.md)::

    imports      (top level) plugin modules to import first: ["mypackage.layers", "cube.py"]
    [backend]    name, device, dtype, precision, deterministic
    [data]       name, test_fraction, standardize, standardize_targets, + the dataset's options
    [model]      hidden_sizes, hidden, output, dropout (the MLP shorthand) or [[model.layers]]
                 tables; loss, alpha
    [optimizer]  name, clip_norm, + the optimizer's hyperparameters; [optimizer.schedule]
    [training]   epochs, batch_size, seed, shuffle, validation_split, metric, class_weight,
                 ensemble, ...; [training.early_stopping], [training.checkpoint]
    [sweep]      per-member hyperparameters of an ensemble: lr = [0.01, 0.1], alpha, ...

`load_config` parses the file with ``tomllib`` (never ``eval``), applies ``--set`` overrides,
imports the plugin modules (`backprop._plugins`) and validates everything at once, before any
data is loaded or any backend touched: every problem is collected and `ConfigError` lists them
all, each naming the key, what was received and what is allowed (and, for an unknown key or
name, the closest valid one). Relative file paths in a config file (a dataset's ``path``,
``.py`` plugins) are relative to the file's directory, ``--set`` ones to the current directory;
the `Config` holds them absolute, so a run's saved config works from anywhere.
``[training] run_dir`` stays relative to the current directory (where the runs go).

To add a key: add a field with `_key(...)` to the section's dataclass; the validator, the
defaults and the resolved config written to each run directory all follow from it.
"""

# ruff: noqa: RUF009  (`_key` returns a dataclasses.field, as `field(...)` defaults do)
from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any

from ._configchecks import absolute_data_paths, cross_checks
from ._configkinds import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ConfigError,
    Kind,
    _closest,
    _key,
    at_least,
    deep_copy,
    either,
    fraction,
    one_of,
    read_section,
    shown,
    structure_problems,
)
from ._configmodel import ModelConfig
from ._configsweep import SweepConfig, ensemble_size, lists_elsewhere
from ._plugins import import_plugins, is_path
from ._toml import TOO_DEEP, dump_toml, read_toml_file

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "BackendConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "TrainingConfig",
    "config_from_dict",
    "dump_toml",
    "load_config",
    "parse_override",
]


# -- sections --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BackendConfig:
    """Where to train. ``precision``: "default" (the library's own), "float32" (no TF32 or
    reduced-precision matmuls), "float64" (double precision; sets ``dtype``), "fast" (TF32/bf16
    where the device has it). ``deterministic``: ask the library for reproducible kernels."""

    name: str = _key("numpy", STR, doc="numpy, jax, torch, cupy, array_api_strict or auto")
    device: str = _key("default", STR, doc="default, cpu, gpu or gpu:N")
    dtype: str = _key("float32", STR, one_of("float32", "float64", "bfloat16", "float16"))
    precision: str = _key("default", STR, one_of("default", "float32", "float64", "fast"))
    deterministic: bool = _key(False, BOOL)
    devices: Any = _key(
        1, either(INT, STR), doc='1, N or "all": data-parallel training over N devices (jax only)'
    )
    distributed: bool = _key(False, BOOL)
    coordinator_address: str = _key("", STR, doc="host:port of process 0; empty: detected")
    num_processes: int = _key(0, INT, at_least(0), doc="0: detected")
    process_id: int = _key(-1, INT, at_least(-1), doc="-1: detected")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The dataset (``backprop.datasets``) and its options; ``test_fraction`` of the rows is held
    out for the final evaluation (0: evaluate on the training rows); ``standardize`` z-scores
    the features (statistics of the training rows), ``standardize_targets`` the regression
    targets. Any other key is an option of the dataset's loader (``path``, ``noise``, ...)."""

    name: str = _key(dataclasses.MISSING, STR)
    test_fraction: float = _key(0.25, FLOAT, fraction())
    standardize: bool = _key(False, BOOL)
    standardize_targets: bool = _key(False, BOOL)
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """``[optimizer.schedule]``: a schedule name (``backprop.schedules``) and its options."""

    name: str = _key("constant", STR)
    options: dict = dataclasses.field(default_factory=dict)

    def build(self) -> Any:
        from ..training.schedules import get_schedule

        return get_schedule(self.name, **self.options)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optimizer name (``backprop.optimizers``) and its hyperparameters (``lr``,
    ``momentum``, ..., ``clip_norm``), and the learning-rate ``schedule``."""

    name: str = _key("sgd", STR)
    options: dict = dataclasses.field(default_factory=dict)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)

    def build(self) -> Any:
        from ..training.optimizers import get_optimizer

        return get_optimizer(self.name, **self.options)


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """``[training.early_stopping]``: present means on (``backprop.callbacks.EarlyStopping``)."""

    monitor: str = _key("val_loss", STR)
    patience: int = _key(10, INT, at_least(0))
    min_delta: float = _key(0.0, FLOAT, at_least(0))
    mode: str = _key("auto", STR, one_of("auto", "min", "max"))
    restore_best: bool = _key(True, BOOL)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """``[training.checkpoint]``: ``last.npz`` every ``every`` epochs (0: only at the end) in the
    run directory, ``best.npz`` when ``monitor`` improves (with ``keep_best``; a ``val_``
    monitor needs a validation split, without one no best.npz is written)."""

    every: int = _key(0, INT, at_least(0))
    keep_best: bool = _key(True, BOOL)
    monitor: str = _key("val_loss", STR)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The `backprop.fit` settings, and where the run directory goes (``run_dir``)."""

    epochs: int = _key(10, INT, at_least(1))
    batch_size: int = _key(32, INT, at_least(1))
    seed: int = _key(0, INT, at_least(0))
    shuffle: bool = _key(True, BOOL)
    validation_split: float = _key(0.0, FLOAT, fraction())
    metric: str = _key("auto", STR, one_of("auto", "accuracy", "r2", "none"))
    class_weight: Any = _key(
        "none", either(STR, Kind("a table of class -> weight", lambda v: isinstance(v, dict)))
    )
    diagnostics: bool = _key(False, BOOL)
    divergence_factor: float = _key(
        10.0,
        FLOAT,
        lambda v: (
            None if v == 0 or (v > 1 and math.isfinite(v)) else "0 (off) or a finite number > 1"
        ),
        doc="stop with TrainingDiverged when an epoch's loss exceeds this times the untrained "
        "model's loss; 0 turns the check off",
    )
    run_dir: str = _key(
        "runs", STR, doc="parent directory of the run directories (relative: to the current one)"
    )
    history_format: str = _key("csv", STR, one_of("csv", "json"))
    ensemble: int | None = _key(
        None, INT, ensemble_size, doc="K members trained as one program (see [sweep])"
    )
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)

    @property
    def fit_metric(self) -> str | None:
        """``metric`` as `backprop.fit` takes it ("none" -> None)."""
        return None if self.metric == "none" else self.metric

    @property
    def fit_divergence_factor(self) -> float | None:
        """``divergence_factor`` as `backprop.fit` takes it (0 -> None: no check)."""
        return self.divergence_factor or None

    @property
    def fit_class_weight(self) -> Any:
        """``class_weight`` as `backprop.fit` takes it: None, "balanced" or ``{int: float}``."""
        if isinstance(self.class_weight, dict):
            return {int(k): float(w) for k, w in self.class_weight.items()}
        return None if self.class_weight == "none" else self.class_weight


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole validated run configuration; ``source`` names where it came from."""

    backend: BackendConfig
    data: DataConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    training: TrainingConfig
    source: str = "<dict>"
    imports: tuple[str, ...] = ()
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)

    @property
    def members(self) -> int | None:
        """K for an ensemble (``[training] ensemble`` or the ``[sweep]`` lists), else None."""
        return self.training.ensemble or self.sweep.members

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (every default filled in) as TOML-ready nested dicts;
        ``config_from_dict(c.to_dict())`` gives the same config back. ``imports`` (only when
        there are plugins) lists them, .py files by absolute path."""
        return {
            **({"imports": list(self.imports)} if self.imports else {}),
            "backend": _plain(self.backend),
            "data": _plain(self.data),
            "model": self.model.to_dict(),
            "optimizer": _plain(self.optimizer),
            "training": _plain(self.training),
            **({"sweep": _plain(self.sweep)} if self.sweep.options else {}),
        }


def _plain(section: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name == "options":
            out.update(value)
        elif dataclasses.is_dataclass(value):
            out[f.name] = _plain(value)
        elif value is not None:
            out[f.name] = value
    return out


SECTIONS: dict[str, type] = {
    "backend": BackendConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
    "sweep": SweepConfig,
}
SUBTABLES: dict[tuple[str, str], type] = {
    ("optimizer", "schedule"): ScheduleConfig,
    ("training", "early_stopping"): EarlyStoppingConfig,
    ("training", "checkpoint"): CheckpointConfig,
}


# -- loading ---------------------------------------------------------------------------------
def load_config(
    path: str | pathlib.Path, overrides: list[str] = (), imports: list[str] = ()
) -> Config:
    """Read, override and validate a TOML config file.

    ``overrides`` are ``"section.key=value"`` strings (the CLI's ``--set``); the value is read as
    a TOML value (``5``, ``0.1``, ``true``, ``[64, 32]``, ``"relu"``,
    ``[{type = "dense", units = 8}]``), or as a plain string when it is not one
    (``--set backend.name=jax``). ``imports``: plugin modules (the CLI's ``--import``) imported
    after the file's own ``imports``.

    Relative paths in the file (``[data] path``, ``.py`` files in ``imports``) are relative to
    the file's directory; those given in ``overrides`` to the current directory. Raises
    `ConfigError` for a file that is not a UTF-8 TOML config, `PermissionError` (or another
    `OSError`) with a one-line message for one that cannot be read.
    """
    path = pathlib.Path(path)
    source = str(path)
    raw = read_toml_file(path, source)
    return config_from_dict(
        raw,
        source=source,
        overrides=overrides,
        imports=imports,
        base_dir=os.path.dirname(os.path.abspath(path)),
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.epochs=5"`` -> ``(["training", "epochs"], 5)``; raises ValueError."""
    key, sep, value = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        raise ValueError(
            f"--set {text!r} is not understood: expected section.key=value, "
            "e.g. --set training.epochs=5 or --set optimizer.schedule.name=cosine"
        )
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word such as jax or relu
    except RecursionError:
        raise ValueError(f"--set {key.strip()}=...: the value is {TOO_DEEP}") from None
    return parts, parsed


def _apply_overrides(
    raw: dict[str, Any], overrides: list[str], problems: list[str]
) -> set[tuple[str, ...]]:
    """Set each override's key in ``raw``; returns the keys set (their paths are relative to
    the current directory, not the config file's)."""
    done: set[tuple[str, ...]] = set()
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        table = raw
        for part in parts[:-1]:
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                whole = ".".join(parts[: parts.index(part) + 1])
                problems.append(
                    f"--set {text}: {part!r} is a value, not a table; set the whole value "
                    f"instead, e.g. --set '{whole}=[{{type = \"dense\", units = 8}}]'"
                    if isinstance(nxt, list) and nxt and isinstance(nxt[0], dict)
                    else f"--set {text}: {part!r} is a value, not a table"
                )
                break
            table = nxt
        else:
            table[parts[-1]] = value
            done.add(tuple(parts))
    return done


def config_from_dict(
    raw: dict[str, Any],
    *,
    source: str = "<dict>",
    overrides: list[str] = (),
    imports: list[str] = (),
    base_dir: str | os.PathLike | None = None,
) -> Config:
    """Validate a parsed config (nested dicts as ``tomllib`` returns) and build a `Config`.

    First imports the plugin modules in ``raw["imports"]``, then those in ``imports`` (the
    CLI's ``--import``), so what they register is known to the checks. Relative paths in
    ``raw`` are relative to ``base_dir`` (`load_config`: the file's directory; default: the
    current directory), those in ``overrides`` to the current directory; the `Config` holds
    them as absolute paths. Raises `ConfigError` listing every problem
    (`backprop._plugins.PluginError`, one line, for a failed import).
    """
    _check_structure(raw, source)
    raw = deep_copy(raw)
    problems: list[str] = []
    overridden = _apply_overrides(raw, list(overrides), problems)
    _check_structure(raw, source)
    base = os.path.abspath(base_dir if base_dir is not None else os.getcwd())
    listed = raw.pop("imports", [])
    if base_dir is not None:  # else `import_plugin` resolves them against the current directory
        listed = _against(base, listed)
    plugins = _plugins(listed, list(imports), source, problems)
    lists_elsewhere(raw, problems)
    for name in raw:
        if name not in SECTIONS:
            problems.append(
                f"[{shown(name)}]: unknown section; {_closest(str(name), list(SECTIONS))}"
                f"expected sections: {list(SECTIONS)}"
            )
    if "data" not in raw:
        problems.append("[data]: missing section; it needs at least name = '<dataset>'")
    sections: dict[str, Any] = {}
    clean: set[str] = set()  # sections without problems: only those get the deeper checks
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        before = len(problems)
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a [{name}] table, received {table!r}")
            table = {}
        sections[name] = read_section(name, cls, table, problems, SUBTABLES)
        if len(problems) == before:
            clean.add(name)
    cross_checks(raw, sections, clean, problems)
    if problems:
        raise ConfigError(source, problems)
    sections["data"] = absolute_data_paths(sections["data"], base, overridden)
    return Config(**sections, source=source, imports=tuple(plugins))


def _check_structure(raw: Any, source: str) -> None:
    """Raise `ConfigError` for a config nested too deeply (or cyclic) to check, or holding
    text that is not Unicode: the other checks recurse and the run's config.toml is UTF-8."""
    problems = structure_problems(raw)
    if problems:
        raise ConfigError(source, problems)


def _against(base: str, listed: Any) -> Any:
    """The config's ``imports``, each .py path relative to ``base`` made absolute."""
    if not isinstance(listed, list):
        return listed  # reported by _plugins
    return [
        os.path.join(base, os.path.expanduser(name.strip()))
        if isinstance(name, str) and name.strip() and is_path(name.strip())
        else name
        for name in listed
    ]


def _plugins(listed: Any, extra: list[str], source: str, problems: list[str]) -> list[str]:
    """Import the config's ``imports`` and the ``--import`` modules (raises `PluginError`)."""
    if not (isinstance(listed, list) and all(isinstance(m, str) for m in listed)):
        problems.append(
            f"imports: expected a list of module names or .py paths, e.g. imports = "
            f'["mypackage.layers", "plugins/cube.py"], received {listed!r}; put it at the top '
            "of the file, before the first [section]"
        )
        listed = []
    names = import_plugins(listed, f"imports in {source}", source)
    return [*names, *(n for n in import_plugins(extra, "--import", source) if n not in names)]
