"""Learning-rate schedules: host-side rules, in Python floats, for the rate of each step.

The fit loop calls ``lr(base_lr, state, step=..., epoch=..., samples=..., total_steps=...)``
once per optimizer step and hands the float to the optimizer, and
``end_epoch(state, value, base_lr=...)`` once at the end of every epoch with the value of the
history column the schedule watches (``monitor``). Like the optimizers, a schedule is a frozen
dataclass of hyperparameters with explicit state: ``init()`` builds a JSON-serialisable dict
(floats, ints and bools only, saved in checkpoints), ``end_epoch`` returns a new dict and never
modifies its input, ``lr`` reads the state and changes nothing. Nothing here touches an array,
so a schedule never syncs the device.

>>> s = get_schedule("cosine", warmup_steps=2)
>>> [round(s.lr(1.0, s.init(), step=k, epoch=0, samples=0, total_steps=6), 3) for k in range(6)]
[0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
>>> schedule_from_spec(s.spec()) == s
True

To add a schedule: a frozen-dataclass `Schedule` subclass decorated ``@register("name")``.
Configs, checkpoints (`Schedule.spec`, `schedule_from_spec`) and the test table read the
registry.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from .._registry import Registry
from ._monitor import check_monitor_mode, initial_best, is_improvement, mode_for
from .optimizers._base import check_nonnegative, check_positive

__all__ = [
    "SCHEDULES",
    "Constant",
    "ExponentialDecay",
    "InverseScaling",
    "ReduceOnPlateau",
    "Schedule",
    "StepDecay",
    "WarmupCosine",
    "get_schedule",
    "register",
    "schedule_from_spec",
]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base class. Subclasses are frozen dataclasses whose fields are the hyperparameters.

    ``monitor`` names the history column (``"loss"``, ``"val_loss"``, ``"val_accuracy"``, ...)
    the fit loop passes to `end_epoch` as ``value``; None for schedules that watch nothing.
    """

    name: ClassVar[str] = ""
    monitor: ClassVar[str | None] = None

    def init(self) -> dict[str, Any]:
        """The starting state: a JSON-serialisable dict of floats, ints and bools."""
        return {}

    def lr(
        self,
        base_lr: float,
        state: dict[str, Any],
        *,
        step: int,
        epoch: int,
        samples: int,
        total_steps: int,
    ) -> float:
        """The learning rate for optimizer step ``step``.

        Parameters
        ----------
        base_lr : the optimizer's configured rate.
        state : the schedule's state, as `init` / `end_epoch` returned it (read, never changed).
        step : 0-based global index of the optimizer step about to run.
        epoch : 0-based index of the epoch that step belongs to.
        samples : training samples processed before this epoch started.
        total_steps : the planned number of optimizer steps of the whole run.
        """
        raise NotImplementedError

    def end_epoch(
        self, state: dict[str, Any], value: float | None, *, base_lr: float | None = None
    ) -> dict[str, Any]:
        """The state after an epoch that ended with ``value`` in the monitored column.

        Pure: returns a new dict (or ``state`` itself when nothing changes), never modifies
        ``state``. ``base_lr`` is the optimizer's configured rate; the fit loop always passes it.
        """
        return state

    def should_stop(self, state: dict[str, Any]) -> bool:
        """Whether the schedule asks the fit loop to stop training (after this epoch)."""
        return False

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **hyperparameters}``, for configs and checkpoints."""
        return {"name": self.name, **dataclasses.asdict(self)}


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


register = SCHEDULES.register_class  # class decorator: @register("name")


def get_schedule(name_or_schedule: str | Schedule | None = None, **kwargs: Any) -> Schedule:
    """The schedule registered as ``name_or_schedule``, built with ``kwargs``.

    None gives `Constant`; a `Schedule` instance passes through (then ``kwargs`` must be empty).
    """
    if name_or_schedule is None:
        name_or_schedule = "constant"
    return SCHEDULES.build(name_or_schedule, Schedule, **kwargs)


def schedule_from_spec(spec: dict[str, Any]) -> Schedule:
    """The schedule that `Schedule.spec` described: ``schedule_from_spec(s.spec()) == s``."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(
            f"schedule spec must be a dict with a 'name' key such as {{'name': 'cosine', "
            f"'warmup_steps': 100}}, received {spec!r}"
        )
    hyperparameters = {key: value for key, value in spec.items() if key != "name"}
    return get_schedule(spec["name"], **hyperparameters)


def _check_int(owner: str, minimum: int, **values: Any) -> None:
    """Raise a clear error unless every value is an int (not a bool) >= ``minimum``."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{owner}: {key} must be an integer >= {minimum}, received {value!r}")


def _check_unit(owner: str, *, closed: bool, **values: Any) -> None:
    """Raise a clear error unless every value is a real in (0, 1] (``closed``) or (0, 1)."""
    for key, value in values.items():
        number = not isinstance(value, bool) and isinstance(value, (int, float))
        if not (number and 0 < value and (value <= 1 if closed else value < 1)):
            interval = "(0, 1]" if closed else "(0, 1)"
            raise ValueError(f"{owner}: {key} must be a number in {interval}, received {value!r}")


@register("constant")
@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    """lr = base_lr at every step."""

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return float(base_lr)


@register("step")
@dataclasses.dataclass(frozen=True)
class StepDecay(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size): times ``gamma`` every ``step_size`` epochs.

    ``step_size`` counts epochs (an integer >= 1), ``gamma`` is in (0, 1]; torch's ``StepLR``.
    """

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_int("StepDecay", 1, step_size=self.step_size)
        _check_unit("StepDecay", closed=True, gamma=self.gamma)

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return float(base_lr) * self.gamma ** (epoch // self.step_size)


@register("exponential")
@dataclasses.dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """lr = base_lr * gamma ** epoch, ``gamma`` in (0, 1]: per epoch, like torch's
    ``ExponentialLR``."""

    gamma: float = 0.95

    def __post_init__(self) -> None:
        _check_unit("ExponentialDecay", closed=True, gamma=self.gamma)

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return float(base_lr) * self.gamma**epoch


@register("cosine")
@dataclasses.dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup over ``warmup_steps`` steps, then cosine decay to ``min_lr``.

    With W = ``warmup_steps`` and D = ``decay_steps`` (None: ``max(1, total_steps - W)``)::

        step < W:   lr = base_lr * (step + 1) / W                    (reaches base_lr at W - 1)
        step >= W:  p = min(1, (step - W) / D)
                    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2

    so lr = base_lr at step W and min_lr from step W + D on (with the default D that is
    ``total_steps``, just after the last step: the last update still moves, by a rate
    ``(base_lr - min_lr) * (1 - cos(pi / D)) / 2`` above ``min_lr``, as with torch's
    ``CosineAnnealingLR`` and optax's ``warmup_cosine_decay_schedule``). The decay is computed
    as ``base_lr * c + min_lr * (1 - c)`` with ``c = (1 + cos(pi * p)) / 2``, the same value,
    exact at both ends. A ``min_lr`` above ``base_lr`` makes the decay a rise; that is allowed.
    """

    warmup_steps: int = 0
    decay_steps: int | None = None
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _check_int("WarmupCosine", 0, warmup_steps=self.warmup_steps)
        if self.decay_steps is not None:
            _check_int("WarmupCosine", 1, decay_steps=self.decay_steps)
        check_nonnegative("WarmupCosine", min_lr=self.min_lr)

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        warmup = self.warmup_steps
        if step < warmup:
            return base_lr * ((step + 1) / warmup)
        decay = self.decay_steps if self.decay_steps is not None else max(1, total_steps - warmup)
        c = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / decay)))
        return base_lr * c + self.min_lr * (1.0 - c)


@register("invscaling")
@dataclasses.dataclass(frozen=True)
class InverseScaling(Schedule):
    """lr = base_lr / (samples + 1) ** power_t, ``samples`` seen before this epoch started.

    Exactly scikit-learn's ``learning_rate="invscaling"`` (``solver="sgd"``), checked against
    scikit-learn 1.9.1: ``MLP._fit_stochastic`` adds the epoch's ``n_samples`` to ``t_`` (0 at
    the start of a fit) at the end of each epoch and then calls
    ``SGDOptimizer.iteration_ends(t_)``, which sets
    ``learning_rate = learning_rate_init / (t_ + 1) ** power_t``. So the rate is constant
    within an epoch and uses the samples seen before it: epoch 0 runs at ``base_lr``. The same
    expression in the same order, so the floats agree bit for bit.
    """

    power_t: float = 0.5

    def __post_init__(self) -> None:
        check_nonnegative("InverseScaling", power_t=self.power_t)

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return float(base_lr) / (samples + 1) ** self.power_t


@register("reduce_on_plateau")
@dataclasses.dataclass(frozen=True)
class ReduceOnPlateau(Schedule):
    """lr = base_lr * scale; ``scale`` is multiplied by ``factor`` when ``monitor`` plateaus.

    scikit-learn's ``learning_rate="adaptive"`` (``solver="sgd"``) generalised: the defaults
    ``factor=0.2``, ``min_lr=1e-6`` are its "divide by 5" and "stop at 1e-6", ``patience`` is its
    ``n_iter_no_change`` and ``min_delta`` its ``tol``; ``monitor="loss"`` is its rule without
    ``early_stopping``, ``monitor="val_accuracy"`` (maximized) its rule with it. At the end of
    each epoch, with ``value`` the epoch's ``monitor`` column (as ``MLP._fit_stochastic``,
    ``_update_no_improvement_count`` and ``SGDOptimizer.trigger_stopping`` do, scikit-learn
    1.9.1)::

        bad_epochs = 0 if value improves on best by more than min_delta else bad_epochs + 1
        best = value if value is strictly better than best
        if bad_epochs > patience:                    # patience + 1 epochs in a row
            bad_epochs = 0
            if base_lr * scale <= min_lr: exhausted  # `should_stop` is now True
            else: scale *= factor                    # from the next epoch on

    ``min_lr`` is where training stops, not a floor: the last reduction may go below it, as in
    scikit-learn (Keras instead clamps and trains on). "Better" is `backprop._monitor`'s, shared
    with early stopping and best checkpoints: ``mode="auto"`` maximizes columns named like
    accuracy or r2 and minimizes the rest. Two edge cases differ from scikit-learn on purpose:
    a value exactly ``min_delta`` better than best is not an improvement here (scikit-learn
    counts it), and a NaN never improves (scikit-learn's comparisons count it as one).
    ``value`` is None when the monitored column is missing from an epoch's history; it counts
    as no improvement (the fit loop refuses, before training, a monitor naming a column that
    will never exist). State: ``{"scale", "best", "bad_epochs", "exhausted"}``.
    """

    monitor: str = "loss"
    factor: float = 0.2
    patience: int = 10
    min_delta: float = 1e-4
    min_lr: float = 1e-6
    mode: str = "auto"

    def __post_init__(self) -> None:
        check_monitor_mode("ReduceOnPlateau", self.monitor, self.mode)
        _check_unit("ReduceOnPlateau", closed=False, factor=self.factor)
        _check_int("ReduceOnPlateau", 0, patience=self.patience)
        check_nonnegative("ReduceOnPlateau", min_delta=self.min_delta, min_lr=self.min_lr)

    def init(self) -> dict[str, Any]:
        best = initial_best(mode_for(self.monitor, self.mode))
        return {"scale": 1.0, "best": best, "bad_epochs": 0, "exhausted": False}

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return float(base_lr) * state["scale"]

    def end_epoch(self, state, value, *, base_lr=None):
        if base_lr is None:
            raise TypeError(
                "ReduceOnPlateau.end_epoch: base_lr is required (the optimizer's configured "
                "rate, to compare base_lr * scale with min_lr), received None"
            )
        check_positive("ReduceOnPlateau.end_epoch", base_lr=base_lr)
        mode = mode_for(self.monitor, self.mode)
        value = math.nan if value is None else float(value)
        best, scale, exhausted = state["best"], state["scale"], state["exhausted"]
        improved = is_improvement(value, best, self.min_delta, mode)
        bad_epochs = 0 if improved else state["bad_epochs"] + 1
        if is_improvement(value, best, 0.0, mode):
            best = value
        if bad_epochs > self.patience:
            bad_epochs = 0
            if base_lr * scale <= self.min_lr:
                exhausted = True
            else:
                scale *= self.factor
        return {"scale": scale, "best": best, "bad_epochs": bad_epochs, "exhausted": exhausted}

    def should_stop(self, state):
        return bool(state["exhausted"])
