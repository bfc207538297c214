"""Learning-rate schedules: one table of rate sequences computed by hand, cosine endpoints,
scikit-learn's invscaling and adaptive rules reproduced, purity, spec and JSON round trips, and
hyperparameter errors."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re

import pytest

from backprop._registry import UnknownNameError
from backprop.training.schedules import (
    SCHEDULES,
    Constant,
    ReduceOnPlateau,
    Schedule,
    WarmupCosine,
    get_schedule,
    schedule_from_spec,
)

BASE_LR = 0.1
STEPS_PER_EPOCH = 2
SAMPLES_PER_EPOCH = 10
EPS = 2.0**-52
SQRT2 = math.sqrt(2.0)


def _run(schedule: Schedule, values: list, base_lr: float = BASE_LR, json_state: bool = False):
    """Drive a schedule the way the fit loop does: ``lr`` per step, ``end_epoch`` per epoch.

    Returns the rate of every step and the epoch at which ``should_stop`` turned True (None if
    it never did). With ``json_state`` the state goes through JSON after every change, as a
    checkpoint would.
    """
    through = (lambda s: json.loads(json.dumps(s))) if json_state else (lambda s: s)
    state, lrs, total = through(schedule.init()), [], len(values) * STEPS_PER_EPOCH
    for epoch, value in enumerate(values):
        for k in range(STEPS_PER_EPOCH):
            step = epoch * STEPS_PER_EPOCH + k
            samples = epoch * SAMPLES_PER_EPOCH
            lrs.append(
                schedule.lr(
                    base_lr, state, step=step, epoch=epoch, samples=samples, total_steps=total
                )
            )
        state = through(schedule.end_epoch(state, value, base_lr=base_lr))
        if schedule.should_stop(state):
            return lrs, epoch
    return lrs, None


def _per_epoch(*rates: float) -> list[float]:
    return [r for r in rates for _ in range(STEPS_PER_EPOCH)]


# (name, hyperparameters, monitored value per epoch, expected rate per step), base_lr = 0.1,
# 2 steps and 10 samples per epoch; the expectations are the closed forms written out by hand.
CASES = [
    ("constant", {}, [None] * 3, _per_epoch(0.1, 0.1, 0.1)),
    ("step", {"step_size": 2, "gamma": 0.5}, [None] * 3, _per_epoch(0.1, 0.1, 0.05)),
    ("step", {"step_size": 1, "gamma": 1}, [None] * 3, _per_epoch(0.1, 0.1, 0.1)),
    ("exponential", {"gamma": 0.5}, [None] * 3, _per_epoch(0.1, 0.05, 0.025)),
    (
        "cosine",  # W = 2, D = 6 - 2 = 4: p = 0, 1/4, 2/4, 3/4 after the warmup
        {"warmup_steps": 2, "min_lr": 0.01},
        [None] * 3,
        [0.05, 0.1, 0.1, 0.01 + 0.09 * (2 + SQRT2) / 4, 0.055, 0.01 + 0.09 * (2 - SQRT2) / 4],
    ),
    ("cosine", {"decay_steps": 3}, [None] * 3, [0.1, 0.075, 0.025, 0.0, 0.0, 0.0]),
    ("cosine", {"warmup_steps": 4}, [None] * 3, [0.025, 0.05, 0.075, 0.1, 0.1, 0.05]),
    (
        "invscaling",
        {},
        [None] * 3,
        _per_epoch(0.1, 0.1 / math.sqrt(11), 0.1 / math.sqrt(21)),
    ),
    ("invscaling", {"power_t": 1.0}, [None] * 3, _per_epoch(0.1, 0.1 / 11, 0.1 / 21)),
    (
        "reduce_on_plateau",  # epoch 1 does not improve on 1.0: more than patience=0 bad epochs
        {"factor": 0.5, "patience": 0, "min_delta": 0.0},
        [1.0, 1.0, 0.5],
        _per_epoch(0.1, 0.1, 0.05),
    ),
    (
        # maximized: epochs 1, 2 miss best + 0.01 = 0.51 (halve), 3 improves, 4, 5 miss 0.91
        "reduce_on_plateau",
        {"monitor": "val_accuracy", "factor": 0.5, "patience": 1, "min_delta": 0.01},
        [0.5, 0.4, 0.505, 0.9, 0.9, 0.905, 0.9],
        _per_epoch(0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025),
    ),
]
CASE_IDS = [f"{name}-{kwargs}" for name, kwargs, *_ in CASES]


@pytest.mark.parametrize(("name", "kwargs", "values", "expected"), CASES, ids=CASE_IDS)
def test_rate_sequence(name, kwargs, values, expected):
    schedule = get_schedule(name, **kwargs)
    lrs, stopped = _run(schedule, values)
    assert lrs == pytest.approx(expected, rel=4 * EPS, abs=0)
    assert all(type(lr) is float for lr in lrs + _run(schedule, values, base_lr=1)[0])
    assert stopped is None


def test_table_covers_every_schedule():
    assert {name for name, *_ in CASES} == set(SCHEDULES.names())


@pytest.mark.parametrize(
    ("warmup", "decay", "total", "base_lr", "min_lr"),
    [(3, 7, 10, 0.1, 0.001), (1, 5, 20, 0.3, 0.0), (10, 90, 100, 0.01, 1e-4), (0, 4, 4, 0.1, 0.02)],
)
def test_warmup_cosine_endpoints(warmup, decay, total, base_lr, min_lr):
    schedule = WarmupCosine(warmup_steps=warmup, decay_steps=decay, min_lr=min_lr)

    def lr(step):
        return schedule.lr(base_lr, {}, step=step, epoch=0, samples=0, total_steps=total)

    warm = [lr(k) for k in range(warmup)]
    assert warm == pytest.approx([base_lr * (k + 1) / warmup for k in range(warmup)], rel=EPS)
    if warmup:
        assert warm[-1] == base_lr  # the last warmup step reaches base_lr exactly
    assert lr(warmup) == base_lr  # the decay starts at base_lr, exactly
    decaying = [lr(k) for k in range(warmup, warmup + decay + 1)]
    assert all(a > b for a, b in itertools.pairwise(decaying))
    assert lr(warmup + decay) == min_lr  # and ends at min_lr, exactly
    assert lr(warmup + decay + 5) == min_lr
    assert lr(warmup + decay // 2) == pytest.approx(
        min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * (decay // 2) / decay)),
        rel=4 * EPS,
    )


def test_warmup_cosine_default_decay_ends_after_the_last_step():
    """decay_steps=None decays over total_steps - warmup_steps: min_lr is reached at step
    total_steps, so the last update (step total_steps - 1) still moves, by one cosine notch."""
    schedule = WarmupCosine(warmup_steps=2, min_lr=0.01)

    def lr(step, total):
        return schedule.lr(1.0, {}, step=step, epoch=0, samples=0, total_steps=total)

    assert lr(10, total=10) == 0.01
    assert lr(9, total=10) == pytest.approx(0.01 + 0.99 * 0.5 * (1 - math.cos(math.pi / 8)))
    assert lr(2, total=2) == 1.0  # decay over at least one step: no division by zero
    assert lr(3, total=2) == 0.01


@pytest.mark.parametrize("power_t", [0.5, 0.25, 1.0])
def test_invscaling_matches_sklearn(power_t):
    pytest.importorskip("sklearn", reason="scikit-learn is the reference for invscaling")
    import numpy as np
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    reference = SGDOptimizer(
        params=[np.zeros(1)],
        learning_rate_init=0.1,
        lr_schedule="invscaling",
        momentum=0,
        power_t=power_t,
    )
    schedule, state, n_samples = get_schedule("invscaling", power_t=power_t), {}, 37
    for epoch in range(12):
        ours = schedule.lr(
            0.1, state, step=epoch, epoch=epoch, samples=epoch * n_samples, total_steps=12
        )
        assert math.isclose(ours, reference.learning_rate, rel_tol=1e-15, abs_tol=0)
        reference.iteration_ends((epoch + 1) * n_samples)  # samples seen after this epoch


def _sklearn_adaptive(values, lr_init, tol, n_iter_no_change, maximize=False):
    """scikit-learn's adaptive rule transcribed: ``MLP._update_no_improvement_count`` (loss, or
    validation score with early stopping), then ``SGDOptimizer.trigger_stopping``.

    Returns the rate of every epoch and the epoch after which it stops (None if it does not).
    """
    lr, best, count, lrs = lr_init, -math.inf if maximize else math.inf, 0, []
    for epoch, value in enumerate(values):
        lrs.append(lr)
        if maximize:
            count = count + 1 if value < best + tol else 0
            best = value if value > best else best
        else:
            count = count + 1 if value > best - tol else 0
            best = value if value < best else best
        if count > n_iter_no_change:
            if lr <= 1e-6:
                return lrs, epoch
            lr /= 5.0
            count = 0
    return lrs, None


PLATEAUS = {
    "loss-long-plateau": ([1.0, 0.9] + [0.9] * 30, 0.1, 1e-4, 1, "loss"),
    "loss-slow-progress": (
        [1.0, 0.8, 0.79995, 0.8, 0.7, 0.69992, 0.69985, 0.7, 0.71, 0.5] + [0.5] * 8,
        1e-5,
        1e-4,
        2,
        "loss",
    ),
    # 5e-6 / 5 rounds to 1.0000000000000002e-06, just above the 1e-6 threshold: one more cut
    "loss-at-the-threshold": ([1.0] * 12, 5e-6, 1e-4, 0, "loss"),
    "accuracy": (
        [0.5, 0.6, 0.6, 0.55, 0.61, 0.7, 0.7] + [0.69] * 12,
        1e-4,
        1e-3,
        1,
        "val_accuracy",
    ),
}


@pytest.mark.parametrize("case", PLATEAUS)
def test_reduce_on_plateau_matches_sklearn_adaptive(case):
    values, lr_init, tol, n_iter_no_change, monitor = PLATEAUS[case]
    expected, expected_stop = _sklearn_adaptive(
        values, lr_init, tol, n_iter_no_change, maximize=monitor == "val_accuracy"
    )
    schedule = ReduceOnPlateau(monitor=monitor, patience=n_iter_no_change, min_delta=tol)
    lrs, stopped = _run(schedule, values, base_lr=lr_init)
    assert expected_stop is not None  # every case plateaus until scikit-learn gives up
    assert stopped == expected_stop
    # sklearn divides its rate by 5 at each trigger, we multiply a scale by 0.2: one rounding
    # each, so allow one eps per reduction (at most 8 here).
    assert lrs[::STEPS_PER_EPOCH] == pytest.approx(expected, rel=8 * EPS, abs=0)


def test_reduce_on_plateau_matches_a_real_sklearn_fit(monkeypatch):
    """Record the rate of every epoch of a real MLPClassifier fit (the rate `iteration_ends`
    sees is the one the epoch used: "adaptive" changes it only at a trigger, after that call),
    then replay its loss curve through ReduceOnPlateau."""
    pytest.importorskip("sklearn", reason="scikit-learn is the reference for adaptive")
    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    seen = []
    original = SGDOptimizer.iteration_ends

    def recording(self, time_step):
        seen.append(self.learning_rate)
        return original(self, time_step)

    monkeypatch.setattr(SGDOptimizer, "iteration_ends", recording)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    clf = MLPClassifier(
        hidden_layer_sizes=(4,),
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=0.05,
        n_iter_no_change=2,
        tol=1e-3,
        batch_size=10,
        max_iter=500,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ < 500  # stopped by the schedule, not by max_iter

    schedule = ReduceOnPlateau(patience=2, min_delta=1e-3)
    lrs, stopped = _run(schedule, clf.loss_curve_, base_lr=0.05)
    assert stopped == clf.n_iter_ - 1
    assert lrs[::STEPS_PER_EPOCH] == pytest.approx(seen, rel=16 * EPS, abs=0)
    assert len(set(seen)) > 3  # the rate really was reduced several times


def test_reduce_on_plateau_value_none_or_nan_is_no_improvement():
    schedule = ReduceOnPlateau(patience=5)
    state = schedule.end_epoch(schedule.init(), 1.0, base_lr=0.1)
    for value in (None, math.nan):
        after = schedule.end_epoch(state, value, base_lr=0.1)
        assert after == {**state, "bad_epochs": 1}


def test_reduce_on_plateau_exact_tie_is_no_improvement():
    """Deliberately unlike scikit-learn, which counts a loss exactly tol below best as better:
    `backprop.training._monitor.is_improvement` (shared with early stopping) needs strictly more."""
    schedule = ReduceOnPlateau(patience=0, min_delta=0.0, factor=0.5)
    state = schedule.end_epoch(schedule.init(), 1.0, base_lr=0.1)
    state = schedule.end_epoch(state, 1.0, base_lr=0.1)
    assert state["scale"] == 0.5


def test_reduce_on_plateau_monitor_and_mode():
    assert ReduceOnPlateau().monitor == "loss"
    assert ReduceOnPlateau(monitor="val_accuracy").init()["best"] == -math.inf
    assert ReduceOnPlateau(monitor="val_loss").init()["best"] == math.inf
    assert ReduceOnPlateau(monitor="val_accuracy", mode="min").init()["best"] == math.inf
    assert Constant().monitor is None


def test_reduce_on_plateau_needs_base_lr():
    schedule = ReduceOnPlateau()
    with pytest.raises(TypeError, match="ReduceOnPlateau.end_epoch: base_lr is required"):
        schedule.end_epoch(schedule.init(), 1.0)


@pytest.mark.parametrize(("name", "kwargs", "values", "expected"), CASES, ids=CASE_IDS)
def test_end_epoch_is_pure(name, kwargs, values, expected):
    schedule = get_schedule(name, **kwargs)
    state = schedule.init()
    for value in values:
        before = copy.deepcopy(state)
        after = schedule.end_epoch(state, value, base_lr=BASE_LR)
        assert state == before
        state = after


@pytest.mark.parametrize(("name", "kwargs", "values", "expected"), CASES, ids=CASE_IDS)
def test_state_survives_json(name, kwargs, values, expected):
    schedule = get_schedule(name, **kwargs)
    state = schedule.init()
    for value in values:
        assert all(type(v) in (float, int, bool) for v in state.values())
        state = schedule.end_epoch(state, value, base_lr=BASE_LR)
    assert _run(schedule, values, json_state=True) == _run(schedule, values)


def test_state_survives_json_until_stop():
    schedule = ReduceOnPlateau(patience=1)
    values = [1.0, 0.5] + [0.5] * 30
    assert _run(schedule, values, base_lr=1e-5, json_state=True) == _run(
        schedule, values, base_lr=1e-5
    )


SPEC_SCHEDULES = [get_schedule(name, **kwargs) for name, kwargs, *_ in CASES] + [
    cls() for cls in (SCHEDULES.get(name) for name in SCHEDULES)
]


@pytest.mark.parametrize("schedule", SPEC_SCHEDULES, ids=repr)
def test_spec_round_trip(schedule):
    spec = schedule.spec()
    assert spec["name"] == schedule.name
    assert schedule_from_spec(spec) == schedule
    assert schedule_from_spec(json.loads(json.dumps(spec))) == schedule
    assert spec == schedule.spec()  # spec() hands out a fresh dict each time


def test_get_schedule():
    assert get_schedule() == Constant()
    assert get_schedule(None) == Constant()
    instance = ReduceOnPlateau(patience=3)
    assert get_schedule(instance) is instance
    assert get_schedule("step", gamma=0.5).gamma == 0.5
    assert SCHEDULES.get("cosine") is WarmupCosine
    assert WarmupCosine.name == "cosine"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: get_schedule("cosin"), UnknownNameError, "did you mean 'cosine'"),
        (lambda: get_schedule("linear"), UnknownNameError, r"unknown schedule 'linear'"),
        (
            lambda: get_schedule(Constant(), gamma=0.5),
            TypeError,
            r"received the schedule .* and hyperparameters \['gamma'\]",
        ),
        (lambda: get_schedule("step", lr=0.1), TypeError, "schedule 'step': .*'lr'"),
        (lambda: schedule_from_spec({"gamma": 0.5}), ValueError, "with a 'name' key"),
        (lambda: schedule_from_spec({"name": "stepp"}), UnknownNameError, "did you mean 'step'"),
    ],
    ids=["unknown-hint", "unknown", "kwargs-with-instance", "bad-kwarg", "spec-no-name", "spec"],
)
def test_lookup_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


BAD_HYPERPARAMETERS = [
    ("step", {"gamma": 0}, "StepDecay: gamma must be a number in (0, 1], received 0"),
    ("step", {"gamma": 1.5}, "StepDecay: gamma must be a number in (0, 1], received 1.5"),
    ("step", {"gamma": math.nan}, "StepDecay: gamma must be a number in (0, 1], received nan"),
    ("step", {"step_size": 0}, "StepDecay: step_size must be an integer >= 1, received 0"),
    ("step", {"step_size": True}, "StepDecay: step_size must be an integer >= 1, received True"),
    ("step", {"step_size": 2.0}, "StepDecay: step_size must be an integer >= 1, received 2.0"),
    ("exponential", {"gamma": -0.1}, "ExponentialDecay: gamma must be a number in (0, 1]"),
    ("exponential", {"gamma": True}, "ExponentialDecay: gamma must be a number in (0, 1]"),
    ("cosine", {"warmup_steps": -1}, "WarmupCosine: warmup_steps must be an integer >= 0"),
    ("cosine", {"warmup_steps": 1.5}, "WarmupCosine: warmup_steps must be an integer >= 0"),
    ("cosine", {"decay_steps": 0}, "WarmupCosine: decay_steps must be an integer >= 1"),
    ("cosine", {"min_lr": -1e-3}, "WarmupCosine: min_lr must be a finite number >= 0"),
    ("cosine", {"min_lr": math.inf}, "WarmupCosine: min_lr must be a finite number >= 0"),
    ("invscaling", {"power_t": -0.5}, "InverseScaling: power_t must be a finite number >= 0"),
    ("invscaling", {"power_t": "0.5"}, "InverseScaling: power_t must be a finite number >= 0"),
    ("reduce_on_plateau", {"factor": 1.0}, "ReduceOnPlateau: factor must be a number in (0, 1)"),
    ("reduce_on_plateau", {"factor": 0}, "ReduceOnPlateau: factor must be a number in (0, 1)"),
    ("reduce_on_plateau", {"patience": -1}, "ReduceOnPlateau: patience must be an integer >= 0"),
    ("reduce_on_plateau", {"patience": False}, "ReduceOnPlateau: patience must be an integer"),
    ("reduce_on_plateau", {"min_delta": -1.0}, "ReduceOnPlateau: min_delta must be a finite"),
    ("reduce_on_plateau", {"min_lr": -1.0}, "ReduceOnPlateau: min_lr must be a finite number"),
    ("reduce_on_plateau", {"mode": "minimum"}, "ReduceOnPlateau: mode must be one of"),
    ("reduce_on_plateau", {"monitor": ""}, "ReduceOnPlateau: monitor must name a history"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    BAD_HYPERPARAMETERS,
    ids=[repr(b[:2]) for b in BAD_HYPERPARAMETERS],
)
def test_bad_hyperparameters(name, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_schedule(name, **kwargs)
