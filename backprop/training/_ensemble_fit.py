"""``fit(model, X, Y, ensemble=K, sweep=..., member_order=..., seed=s)``: K members of
``model`` trained as one program (`backprop.Ensemble`: parameters stacked on a leading axis,
one batched step per batch for all members, on every backend).

What member k is: it starts from ``model.init(seed=s + k)``; its dropout masks are those
``fit(..., seed=s + k)`` draws; its hyperparameters are the sweep's k-th values. Batch order:
``member_order="shared"`` (default): every member trains on the batches of ``fit(...,
seed=s)``, so member k equals ``fit(model_k, X, Y, seed=s, params=model.init(seed=s + k),
optimizer=<its lr, weight decay>)`` (``model_k``: the model with its alpha; without dropout);
``member_order="member"``: member k draws its own order, the order of ``fit(..., seed=s + k)``,
so without a validation split (the split is shared, from ``seed``) member k equals
``fit(model_k, X, Y, seed=s + k, ...)``, dropout included. Equal to rounding: batched and
single matmuls sum in other orders (float64 about 1e-15, float32 a few ulps per step).

``sweep``: per-member hyperparameter lists, each of K values: "lr" (the optimizer's base
rate, which the schedule scales as usual), "alpha" (the model's L2 alpha), "weight_decay"
(AdamW). The lr and alpha values are traced arrays (a new sweep reuses the compiled step);
AdamW's weight decay is part of the optimizer (a new weight-decay sweep compiles again on JAX).
Data sources (memory-mapped arrays, RowSources, Datasets, iterables of batches) train as for
one model, one read of the rows for all members (`_ensemble_stream.EnsembleSourceLoop`).
A schedule keeps one state per member (`_ensemble_host.member_states`); one that watches a
column (ReduceOnPlateau) watches member k's own (``"val_loss[k]"``) with member k's base rate,
so member k's rates are those of its single fit; when it asks to stop, only member k stops.
Not with ensembles: ``diagnostics`` (refused with the reason).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import backends

from ..nn.ensemble import Ensemble
from ..nn.sequential import Sequential, float_dtype_name
from . import _divergence, _mixed
from ._ensemble_loop import EnsembleLoop
from ._ensemble_run import EnsembleRun, RunEnsemble
from ._ensemble_stream import EnsembleSourceLoop
from ._fitdata import (
    check_compile_epoch,
    check_devices,
    check_fit_args,
    check_monitors,
    move_opt_state,
    prepare_data,
)
from ._sourcedata import is_source, prepare_source
from .evaluation import resolve_metric
from .optimizers import Adam, get_optimizer
from .schedules import get_schedule

__all__ = ["MEMBER_ORDERS", "SWEEP_KEYS", "fit_ensemble", "wants_ensemble"]

SWEEP_KEYS = {
    "lr": "the optimizer's base learning rate",
    "alpha": "the model's L2 alpha",
    "weight_decay": "AdamW's weight decay",
}
MEMBER_ORDERS = ("shared", "member")


def wants_ensemble(model: Any, ensemble: Any, sweep: Any, member_order: Any) -> bool:
    """Whether `fit` was asked for an ensemble (or given a `bp.Ensemble`)."""
    return (
        ensemble is not None
        or sweep is not None
        or member_order != "shared"
        or isinstance(model, Ensemble)
    )


def check_ensemble_args(model, ensemble, sweep, member_order) -> tuple[Sequential, int, dict]:
    """``(members' model, K, sweep as {key: tuple of K floats})``; clear errors otherwise."""
    if isinstance(model, Ensemble):
        if ensemble is not None and ensemble != model.members:
            raise ValueError(
                f"fit: ensemble={ensemble!r} but the model is a bp.Ensemble of {model.members} "
                "members; give one of them (or the same number)"
            )
        ensemble, model = model.members, model.model
    if member_order not in MEMBER_ORDERS:
        raise ValueError(
            f"fit: member_order must be one of {list(MEMBER_ORDERS)}, received {member_order!r}: "
            "'shared' (every member trains on the same batches) or 'member' (each its own order)"
        )
    if ensemble is not None and (
        isinstance(ensemble, bool) or not isinstance(ensemble, numbers.Integral) or ensemble < 1
    ):
        raise ValueError(
            f"fit: ensemble must be the number of members, an int >= 1 (or None for one model), "
            f"received {ensemble!r}"
        )
    if ensemble is None and sweep is None:
        raise ValueError(
            f"fit: member_order={member_order!r} applies to ensembles; pass ensemble=K (the "
            "number of members) or a sweep, or leave member_order out"
        )
    sweep = _check_sweep(sweep, None if ensemble is None else int(ensemble))
    k = int(ensemble) if ensemble is not None else len(next(iter(sweep.values())))
    return model, k, sweep


def _check_sweep(sweep: Any, k: int | None) -> dict[str, tuple[float, ...]]:
    if sweep is None:
        return {}
    if not isinstance(sweep, dict) or not sweep:
        raise ValueError(
            f"fit: sweep must be a dict of per-member value lists, e.g. {{'lr': [0.01, 0.1]}}, "
            f"received {sweep!r}"
        )
    unknown = sorted(str(key) for key in sweep if key not in SWEEP_KEYS)
    if unknown:
        known = ", ".join(f"{key!r} ({what})" for key, what in SWEEP_KEYS.items())
        raise ValueError(f"fit: sweep has unknown key(s) {unknown}; a sweep may give {known}")
    out = {}
    for key, values in sweep.items():
        values = values.tolist() if hasattr(values, "tolist") else values
        low = "> 0" if key == "lr" else ">= 0"
        ok = isinstance(values, (list, tuple)) and len(values) > 0
        ok = ok and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            and (v > 0 if key == "lr" else v >= 0)
            for v in values
        )  # fmt: skip
        if not ok:
            raise ValueError(
                f"fit: sweep[{key!r}] must be a list of finite numbers {low}, one per member, "
                f"received {values!r}"
            )
        out[key] = tuple(float(v) for v in values)
    lengths = {key: len(v) for key, v in out.items()}
    expected = k if k is not None else next(iter(lengths.values()))
    wrong = {key: n for key, n in lengths.items() if n != expected}
    if wrong:
        given = f"ensemble={k}" if k is not None else f"sweep[{next(iter(lengths))!r}]"
        raise ValueError(
            f"fit: every sweep list needs one value per member ({expected}, from {given}), but "
            f"{', '.join(f'sweep[{key!r}] has {n}' for key, n in wrong.items())}; give "
            f"{expected} values each"
        )
    return out


def sweep_optimizer(optimizer: Any, sweep: dict, k: int) -> tuple[Any, list[float], Any]:
    """``(the run's optimizer with the swept values, the K base rates, the step's optimizer)``.

    The step's optimizer has ``lr`` 1.0 (the rate is passed to every update), so the compiled
    step does not depend on the rates."""
    changes = {}
    for key in ("lr", "weight_decay"):
        if key not in sweep:
            continue
        if key not in optimizer.member_fields:
            raise ValueError(
                f"fit: sweep[{key!r}] needs an optimizer with {SWEEP_KEYS[key]} per member; "
                f"{type(optimizer).__name__} has none: use AdamW (optimizer='adamw')"
            )
        if isinstance(getattr(optimizer, key), tuple):
            raise ValueError(
                f"fit: {key} is given twice, as sweep[{key!r}] and as the optimizer's list "
                f"{list(getattr(optimizer, key))}; give it once"
            )
        changes[key] = sweep[key]
    optimizer = dataclasses.replace(optimizer, **changes) if changes else optimizer
    for field in optimizer.member_fields:
        value = getattr(optimizer, field)
        if isinstance(value, tuple) and len(value) != k:
            raise ValueError(
                f"fit: {type(optimizer).__name__}'s {field} holds {len(value)} values but the "
                f"ensemble has {k} members; give {k} values, one per member"
            )
    lr = optimizer.lr
    rates = [float(v) for v in lr] if isinstance(lr, tuple) else [float(lr)] * k
    return optimizer, rates, dataclasses.replace(optimizer, lr=1.0)


def _refuse_unsupported(X: Any, Y: Any, diagnostics: bool) -> None:
    if Y is None and not is_source(X, Y):
        raise ValueError(
            "fit: Y (the targets) is missing; pass fit(model, X, Y, ensemble=K), or a data "
            "source as X (a Dataset, or an iterable of (x, y) batches) with Y None"
        )
    if diagnostics:
        raise ValueError(
            "fit: diagnostics=True is not supported with ensemble=/sweep=; fit one member "
            "alone (params=bp.Ensemble(model, K).init(seed)[...]) to see its gradient flow"
        )


def fit_ensemble(model: Any, X: Any, Y: Any, **kw: Any) -> Any:
    """`fit`'s ensemble path; ``kw``: `fit`'s keyword arguments (module docstring)."""
    model, k, sweep = check_ensemble_args(model, kw["ensemble"], kw["sweep"], kw["member_order"])
    be = backends.as_backend(kw["backend"])
    optimizer = get_optimizer(Adam() if kw["optimizer"] is None else kw["optimizer"])
    optimizer, base_lrs, step_optimizer = sweep_optimizer(optimizer, sweep, k)
    schedule = get_schedule(kw["schedule"])
    _refuse_unsupported(X, Y, kw["diagnostics"])
    epochs, batch_size, seed = check_fit_args(
        kw["epochs"], kw["batch_size"], kw["seed"], kw["validation_split"],
        kw["validation_data"], kw["params"], kw["resume"], kw["opt_state"],
    )  # fmt: skip
    dtype = float_dtype_name(kw["dtype"])  # bfloat16/float16: float32 master weights
    compute, dtype, (optimizer, step_optimizer) = _mixed.ensemble_precision(
        dtype, k, optimizer, step_optimizer
    )
    check_compile_epoch(kw["compile_epoch"], model)
    stratify = kw["stratify"]
    settings = dict(
        dtype=dtype, compute_dtype=compute, epochs=epochs, batch_size=batch_size, seed=seed,
        shuffle=bool(kw["shuffle"]), validation_split=float(kw["validation_split"]),
        stratify=bool(model.task == "classification" if stratify is None else stratify),
        train_metrics=kw["train_metrics"], diagnostics=False,
        divergence_factor=_divergence.check_factor(kw["divergence_factor"]),
        verbose=kw["verbose"], config=kw["config"],
    )  # fmt: skip
    settings["metric"], settings["threshold"] = resolve_metric(model, kw["metric"])
    weighting = (kw["validation_data"], kw["class_weight"], kw["sample_weight"])
    loop_type: type[EnsembleLoop] = EnsembleLoop
    if is_source(X, Y):
        data: Any = prepare_source(model, X, Y, be, settings, *weighting)
        settings["train_metrics"] = settings["train_metrics"] and data.indexable  # one pass
        loop_type = EnsembleSourceLoop
    else:
        data = prepare_data(model, X, Y, be, settings, *weighting)
    if data.n is not None:
        check_devices(be, batch_size, data.n)
    ens = RunEnsemble(model, k)
    run = EnsembleRun(
        ens, be, optimizer, schedule, settings, kw["callbacks"], sweep, kw["member_order"]
    )
    check_monitors(run, data)
    given = kw["params"]
    if kw["resume"] is not None:
        run.restore(kw["resume"])
    elif given is None:
        run.params = ens.init(seed=seed, backend=be, dtype=dtype)
    else:
        run.params = _move_stacked(ens, given, be, dtype)
    if kw["resume"] is None:
        state = kw["opt_state"]
        run.opt_state = (
            optimizer.init(run.params)
            if state is None
            else move_opt_state(optimizer, run.params, state, be, dtype)
        )
    loop = loop_type(
        run, data, kw["log_every"], kw["compile_epoch"], given is not None, base_lrs,
        step_optimizer,
    )  # fmt: skip
    with be.quiet_float_errors():
        return loop.train()


def _move_stacked(ens: Ensemble, params: Any, be: Any, dtype: str) -> Any:
    """Stacked parameters given by the user (any backend's arrays) on ``be`` in ``dtype``;
    a list of K members' parameters is stacked first."""
    from ..tree import tree_map

    if isinstance(params, (list, tuple)) and len(params) == ens.members and ens.members > 1:
        try:
            ens.model._check_params(params[0])
            params = ens.stack([tree_map(lambda p: _host(p), m) for m in params])
        except (ValueError, TypeError):
            pass
    ens._check_params(params)
    return tree_map(lambda p: be.asarray(_host(p), dtype), params)


def _host(p: Any) -> Any:
    return backends.backend_of(p).to_numpy(p)
