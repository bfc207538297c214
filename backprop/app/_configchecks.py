"""Checks of a parsed config across keys and against the registries (names of backends,
datasets, optimizers, schedules and their options; the model's layers, activations and losses
are checked in `backprop._configmodel`).

Host-only helpers of `backprop.config`; each appends one message per problem to ``problems``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from typing import Any

from ._configkinds import _closest, _is_number, _kind_of, shown
from ._configmodel import check_model
from ._configsweep import check_members

# The sections arrive as `backprop.app.config`'s dataclasses (BackendConfig, DataConfig,
# TrainingConfig); they are read by attribute only, so this module does not import config
# (config imports this one).
BackendConfig = DataConfig = TrainingConfig = Any


# -- checks across keys and against the registries ---------------------------------------------
def cross_checks(
    raw: dict[str, Any], s: dict[str, Any], clean: set[str], problems: list[str]
) -> None:
    """Names against the registries and keys against each other, for the sections whose
    keys passed the type and range checks (so every problem is reported once)."""
    if "backend" in clean:
        _check_backend(raw.get("backend", {}), s, problems)
    if "data" in clean:
        _check_dataset(s["data"], problems)
    if "model" in clean:
        check_model(raw.get("model", {}), s["model"], problems)
    if "optimizer" in clean:
        _check_component("optimizer", s["optimizer"], problems)
        _check_component("optimizer.schedule", s["optimizer"].schedule, problems)
    if "training" in clean:
        _check_training(s["training"], problems)
    check_members(s, clean, problems)
    if {"data", "model"} <= clean and s["data"].standardize_targets:
        why = _unstandardizable(s["model"])
        if why:
            problems.append(
                f"[data] standardize_targets = true is for mse/huber regression targets, but "
                f"[model] loss = {s['model'].loss!r} {why}; remove standardize_targets"
            )


def _unstandardizable(model: Any) -> str | None:
    """Why the model's loss cannot take z-scored targets, or None: class targets (sigmoid or
    softmax losses) are labels; a Poisson loss needs counts >= 0, which z-scores are not."""
    from ..nn.losses import get_loss

    try:
        loss = get_loss(model.loss)
    except (ValueError, TypeError):  # an unknown loss: reported by the model's checks
        return None
    if loss.task == "classification":
        return "takes class targets"
    if loss.outputs is not None:
        return f"needs targets in their own units (>= 0 for {loss.name}), which z-scores are not"
    return None


def _check_backend(raw: dict[str, Any], s: dict[str, Any], problems: list[str]) -> None:
    import backends
    from backends._base import parse_device

    be: BackendConfig = s["backend"]
    allowed = [*backends.known_backends(), "auto"]
    if be.name not in allowed:
        problems.append(
            f"[backend] name: unknown backend {be.name!r}; {_closest(be.name, allowed)}"
            f"expected one of {allowed}"
        )
    if be.device != "default":
        try:
            parse_device(be.device)
        except backends.BackendError as exc:
            problems.append(f"[backend] device: {exc}")
    if be.devices != "all" and not (isinstance(be.devices, int) and be.devices >= 1):
        problems.append(
            f'[backend] devices: expected an int >= 1 or "all", received {be.devices!r}'
        )
    elif be.devices != 1 and be.name not in ("jax", "auto"):
        problems.append(
            f"[backend] devices = {be.devices!r}: data-parallel training over several devices "
            f"needs name = 'jax' (JAX's sharding), received name = {be.name!r}"
        )
    if be.distributed and be.name != "jax":
        problems.append(
            f"[backend] distributed = true joins a multi-process JAX run; it needs name = 'jax', "
            f"received name = {be.name!r}"
        )
    if be.precision == "float64":
        if "dtype" in raw and be.dtype != "float64":
            problems.append(
                f"[backend] precision = 'float64' computes in float64 but dtype = {be.dtype!r}; "
                "remove dtype or set it to 'float64'"
            )
        s["backend"] = dataclasses.replace(be, dtype="float64")


def _check_dataset(data: DataConfig, problems: list[str]) -> None:
    from ..data.datasets import DATASETS, dataset_parameters

    if data.name not in DATASETS:
        problems.append(
            f"[data] name: unknown dataset {data.name!r}; {_closest(data.name, list(DATASETS))}"
            f"expected one of {list(DATASETS)}"
        )
        return
    _check_options(
        f"[data] (dataset {data.name!r})",
        data.options,
        dataset_parameters(data.name),
        problems,
        fixed=[f.name for f in dataclasses.fields(data) if f.name != "options"],
    )


def absolute_data_paths(
    data: DataConfig, base: str, overridden: set[tuple[str, ...]]
) -> DataConfig:
    """``data`` with its file options (a loader parameter annotated ``Path``: the ``npz`` and
    ``csv`` ``path``) made absolute: a relative one is joined to ``base`` (the config file's
    directory), or to the current directory when a ``--set`` (in ``overridden``) gave it."""
    from ..data.datasets import dataset_parameters

    options = dict(data.options)
    parameters = dataset_parameters(data.name)
    for key, value in data.options.items():
        if isinstance(value, str) and value and _names_a_file(parameters.get(key)):
            root = os.getcwd() if ("data", key) in overridden else base
            options[key] = os.path.abspath(os.path.join(root, os.path.expanduser(value)))
    return dataclasses.replace(data, options=options)


def _names_a_file(parameter: inspect.Parameter | None) -> bool:
    annotation = "" if parameter is None else str(parameter.annotation)
    return "Path" in re.findall(r"\w+", annotation)


def _check_options(
    where: str,
    options: dict[str, Any],
    parameters: dict[str, inspect.Parameter],
    problems: list[str],
    fixed: list[str] = (),
) -> None:
    """Option names against a callable's keyword parameters; types against their defaults."""
    valid = [*fixed, *parameters]
    for key, value in options.items():
        if key not in parameters:
            problems.append(
                f"{where} {shown(key)}: unknown key; {_closest(key, valid)}valid keys: {valid}"
            )
            continue
        kind = _kind_of(parameters[key])
        if kind.test(value):
            options[key] = kind.convert(value)
        else:
            problems.append(f"{where} {key}: expected {kind.described}, received {value!r}")
    for name, p in parameters.items():
        if p.default is inspect.Parameter.empty and name not in options:
            problems.append(f"{where} {name}: required key is missing")


def _check_component(where: str, section: Any, problems: list[str]) -> None:
    """An optimizer or schedule: known name, known options, values its constructor accepts."""
    from ..training.optimizers import OPTIMIZERS
    from ..training.schedules import SCHEDULES

    registry = OPTIMIZERS if where == "optimizer" else SCHEDULES
    if section.name not in registry:
        problems.append(
            f"[{where}] name: unknown {registry.kind} {section.name!r}; "
            f"{_closest(section.name, registry.names())}expected one of {registry.names()}"
        )
        return
    cls = registry.get(section.name)
    params = {
        f.name: inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
        )
        for f in dataclasses.fields(cls)
        if f.init
    }
    before = len(problems)
    fixed = ["name", "schedule"] if where == "optimizer" else ["name"]
    _check_options(f"[{where}]", section.options, params, problems, fixed=fixed)
    if len(problems) == before:
        try:
            section.build()
        except (ValueError, TypeError) as exc:
            problems.append(f"[{where}] {exc}")


def _check_training(t: TrainingConfig, problems: list[str]) -> None:
    if isinstance(t.class_weight, str) and t.class_weight not in ("none", "balanced"):
        problems.append(
            f"[training] class_weight: expected 'none', 'balanced' or a table of class -> weight, "
            f"received {t.class_weight!r}"
        )
    if isinstance(t.class_weight, dict):
        for k, w in t.class_weight.items():
            if not k or not _is_number(w) or w < 0:  # labels are checked against the data
                problems.append(
                    f"[training.class_weight] {k} = {w!r}: expected a class label (as in the "
                    "data: 0, 1000, cat) = a number >= 0, e.g. class_weight = { 0 = 1.0, 1 = 3.0 }"
                )
    stopping = t.early_stopping
    if stopping is not None and stopping.monitor.startswith("val_") and t.validation_split == 0:
        problems.append(
            f"[training.early_stopping] monitor = {stopping.monitor!r} needs a validation set but "
            "[training] validation_split is 0; set validation_split (e.g. 0.1) or monitor 'loss'"
        )
