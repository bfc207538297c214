"""scikit-learn's per-epoch rules for its MLP, run by `backprop.fit` for `backprop.sklearn`.

`SklearnRules` is a `Schedule`: the learning rate of ``learning_rate="constant"``,
``"invscaling"`` and ``"adaptive"``, and the stopping rule of ``tol`` and ``n_iter_no_change``.
`Tracker` is a `Callback`: it keeps the best parameters for ``early_stopping``, prints
scikit-learn's verbose lines, and hands the schedule's last state back to the estimator.

The rules were read in scikit-learn 1.9.1 (``MLP._fit_stochastic``,
``_update_no_improvement_count``, ``SGDOptimizer.iteration_ends`` and ``trigger_stopping``) and
are written here against the fit loop. Unlike the registered schedules, this one carries where a
previous call left off (samples seen, current rate, best value, epochs without improvement),
since scikit-learn's ``partial_fit`` and ``warm_start`` continue those; so it is built by the
estimator for each call and not registered by name.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from ..training._monitor import initial_best, mode_for
from ..training.callbacks import Callback
from ..training.schedules import Schedule

__all__ = ["LEARNING_RATES", "SklearnRules", "Tracker"]

LEARNING_RATES = ("constant", "invscaling", "adaptive")


@dataclasses.dataclass(frozen=True)
class SklearnRules(Schedule):
    """scikit-learn's MLP learning rate and stopping rule, one epoch at a time.

    Learning rate of each epoch (a Python float, constant within the epoch):

    - ``"constant"``: ``base_lr``.
    - ``"invscaling"``: ``base_lr / (t + 1) ** power_t`` with ``t`` the samples seen before the
      epoch (``samples_seen`` from earlier calls plus this call's); the first epoch after a
      fresh optimizer (``restart``) runs at ``base_lr``, as scikit-learn's new optimizer does.
    - ``"adaptive"``: the current ``rate`` (``base_lr`` at first), divided by ``factor`` = 5
      whenever the monitored value has not improved for more than ``n_iter_no_change`` epochs;
      training stops instead once the rate is <= ``min_lr`` = 1e-6.

    Stopping rule, after each epoch, with ``value`` the monitored column (``"loss"``: minimized;
    ``"val_accuracy"`` / ``"val_r2"``, scikit-learn's validation score: maximized)::

        bad_epochs = 0 if value improves on best by at least tol else bad_epochs + 1
        best = value if value is strictly better than best
        if bad_epochs > n_iter_no_change: adaptive -> divide or stop (above); otherwise stop

    A NaN never improves (scikit-learn's comparisons would count it as an improvement).
    State: ``{"rate", "best", "bad_epochs", "stopped"}``, starting from the fields ``rate``,
    ``best`` and ``bad_epochs`` (None: a fresh start).
    """

    name: ClassVar[str] = "sklearn"

    learning_rate: str = "constant"
    power_t: float = 0.5
    monitor: str = "loss"
    tol: float = 1e-4
    n_iter_no_change: float = 10
    samples_seen: int = 0
    restart: bool = True
    rate: float | None = None
    best: float | None = None
    bad_epochs: int = 0
    factor: float = 5.0
    min_lr: float = 1e-6

    def __post_init__(self) -> None:
        if self.learning_rate not in LEARNING_RATES:
            raise ValueError(
                f"SklearnRules: learning_rate must be one of {list(LEARNING_RATES)}, "
                f"received {self.learning_rate!r}"
            )

    def init(self) -> dict[str, Any]:
        best = initial_best(mode_for(self.monitor)) if self.best is None else float(self.best)
        return {"rate": self.rate, "best": best, "bad_epochs": self.bad_epochs, "stopped": False}

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        if self.learning_rate == "invscaling" and (epoch > 0 or not self.restart):
            return float(base_lr) / (self.samples_seen + samples + 1) ** self.power_t
        return float(base_lr) if state["rate"] is None else float(state["rate"])

    def end_epoch(self, state, value, *, base_lr=None):
        value = math.nan if value is None else float(value)
        best, bad, rate = state["best"], state["bad_epochs"], state["rate"]
        if mode_for(self.monitor) == "min":
            improved, better = value <= best - self.tol, value < best
        else:
            improved, better = value >= best + self.tol, value > best
        bad = 0 if improved else bad + 1
        best = value if better else best
        stopped = False
        if bad > self.n_iter_no_change:
            rate = float(base_lr) if rate is None else rate
            if self.learning_rate != "adaptive" or rate <= self.min_lr:
                stopped = True
            else:
                rate, bad = rate / self.factor, 0
        return {"rate": rate, "best": best, "bad_epochs": bad, "stopped": stopped}

    def should_stop(self, state):
        return bool(state["stopped"])


class Tracker(Callback):
    """Keeps the parameters of the best validation score (``column``: ``"val_accuracy"`` or
    ``"val_r2"``; None without early stopping), prints scikit-learn's verbose lines, and records
    the run's last schedule state and samples seen (``state``, ``samples``: after each epoch, so
    a run that diverges keeps its last good epoch's). ``diverged``: set by the estimator to the
    message when a run with early stopping diverged."""

    def __init__(
        self, column: str | None, best_score: float, best_params: Any, verbose: bool
    ) -> None:
        self.column, self.best_score, self.best_params = column, best_score, best_params
        self.verbose = verbose
        self.state: dict[str, Any] = {}
        self.samples = 0
        self.diverged: str | None = None

    def on_epoch_end(self, run: Any) -> None:
        self.state, self.samples = dict(run.schedule_state), run.samples
        record = run.history.last
        if self.verbose:
            print(f"Iteration {run.epoch}, loss = {record['loss']:.8f}")
        if self.column is None:
            return
        score = record[self.column]
        if self.verbose:
            print(f"Validation score: {score:f}")
        if score > self.best_score:  # strictly better, as scikit-learn keeps its best weights
            self.best_score, self.best_params = score, run.params

    def on_train_end(self, run: Any) -> None:
        self.state, self.samples = dict(run.schedule_state), run.samples
