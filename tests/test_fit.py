"""`bp.fit`, the training loop: optimizers, schedules, early stopping, class and sample weights,
the NaN guard and integer labels, through the public API on every backend.

Reference runs are loops written out in plain NumPy float64 (forward, backward and the optimizers'
update rules, in this file; only the initial params come from ``model.init``), so "fit does what
it says" is checked against code that shares nothing with the code under test, to tolerances
measured and noted beside each check.
Checkpoints and resuming are tested in test_fit_checkpoints.py; dropout, loss weights,
history, callbacks, diagnostics and output in test_fit_features.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import eps
from fit_helpers import (
    assert_params_close,
    assert_params_equal,
    blobs,
    classifier,
    float64_or_skip,
    host_params,
    params_log,
)

import backprop as bp

# fit's params against `_full_batch_sgd` (gradients written out in NumPy) over the 8 full-batch
# steps of the schedule tests, float64: measured <= 106 eps relative on entries above 1e-3 (91 on
# numpy and array_api_strict, 78 on jax, 106 on torch) and <= 4.2e-17 absolute on entries near 0.
SCHEDULE_RTOL_64, SCHEDULE_ATOL_64 = 128 * eps("float64"), 1e-16


# -- 1. optimizers ---------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": bp.SGD(lr=0.3),
    "momentum": bp.SGD(lr=0.05, momentum=0.9),
    "nesterov": bp.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": bp.Adam(lr=0.03),
    "adamw": bp.AdamW(lr=0.03, weight_decay=0.01),
    "rmsprop": bp.RMSProp(lr=0.01),
}


# -- the reference: an MLP and the optimizers written out in plain NumPy --------------------------

# f(z) and f'(z) of the hidden activations; f' from the textbook formulas, not backprop's code
_NP_HIDDEN = {
    "tanh": (np.tanh, lambda z, a: 1.0 - a * a),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda z, a: a * (1.0 - a)),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(z.dtype)),
}


def numpy_softmax_mlp(params, X, Y, hidden):
    """Forward and backward of a dense MLP with ``hidden`` activations (one name per hidden layer)
    and a softmax / mean cross-entropy output, in plain NumPy float64, independent of backprop.

    Returns ``(loss, grads, deltas, activations)``: ``deltas[l]`` is dJ/dz_l of layer l,
    ``activations[l]`` its output (``activations[-1]`` the softmax probabilities)."""
    n_layers = len(params)
    zs, outs = [], []
    x = X
    for i, p in enumerate(params):
        z = x @ p["W"] + p["b"]
        if i < n_layers - 1:
            x = _NP_HIDDEN[hidden[i]][0](z)
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
        zs.append(z)
        outs.append(x)
    n = X.shape[0]
    loss = -np.sum(Y * np.log(outs[-1])) / n
    delta = (outs[-1] - Y) / n  # softmax + cross-entropy: dJ/dz = (a - y) / N
    grads, deltas = [None] * n_layers, [None] * n_layers
    for i in reversed(range(n_layers)):
        below = X if i == 0 else outs[i - 1]
        deltas[i] = delta
        grads[i] = {"W": below.T @ delta, "b": delta.sum(axis=0)}
        if i:
            delta = (delta @ params[i]["W"].T) * _NP_HIDDEN[hidden[i - 1]][1](zs[i - 1], below)
    return float(loss), grads, deltas, outs


def _numpy_optimizer(name, h):
    """The update rule of optimizer table entry ``name`` with hyperparameters ``h``, written out
    from its textbook definition: ``step(w, g, state, t) -> w``, ``state`` a dict per leaf."""
    lr = h["lr"]

    def sgd(w, g, s, t):
        return w - lr * g

    def momentum(w, g, s, t):
        s["v"] = h["momentum"] * s.get("v", 0.0) - lr * g
        if h["nesterov"]:
            return w + h["momentum"] * s["v"] - lr * g
        return w + s["v"]

    def adam(w, g, s, t, decay=0.0):
        b1, b2 = h["beta_1"], h["beta_2"]
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        mhat, vhat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
        return (1 - lr * decay) * w - lr * mhat / (np.sqrt(vhat) + h["epsilon"])

    def rmsprop(w, g, s, t):
        s["sq"] = h["rho"] * s.get("sq", 0.0) + (1 - h["rho"]) * g * g
        return w - lr * g / (np.sqrt(s["sq"]) + h["epsilon"])

    if name == "adamw":
        return lambda w, g, s, t: adam(w, g, s, t, decay=h["weight_decay"])
    return {"sgd": sgd, "momentum": momentum, "nesterov": momentum, "adam": adam}.get(name, rmsprop)


def _manual_fit(model, name, X, Y, *, epochs, batch_size, seed=0):
    """Minibatch training written out in NumPy float64: the batch order is one host generator
    seeded with ``seed + 1`` drawing a permutation per epoch (fit.py's ``rngs["order"]``), the
    gradients `numpy_softmax_mlp`'s, the updates `_numpy_optimizer`'s. Only the initial params
    come from backprop (``model.init``)."""
    params = model.init(seed=seed, backend="numpy", dtype="float64")
    step = _numpy_optimizer(name, dataclasses.asdict(OPTIMIZERS[name]))
    states = [{k: {} for k in p} for p in params]
    order_rng = np.random.default_rng(seed + 1)
    losses, t = [], 0
    for _ in range(epochs):
        order = order_rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            loss, grads, _, _ = numpy_softmax_mlp(params, X[idx], Y[idx], ["tanh"])
            t += 1
            params = [
                {k: step(p[k], g[k], s[k], t) for k in p}
                for p, g, s in zip(params, grads, states, strict=True)
            ]
            losses.append(loss)
    return params, losses


def _full_batch_sgd(model, X, Y, rates, seed=0):
    """Plain gradient descent ``w <- w - lr_e * dJ/dw``, one full batch per epoch, gradients by
    `numpy_softmax_mlp`; the params after every epoch (NumPy float64)."""
    params = model.init(seed=seed, backend="numpy", dtype="float64")
    after_each = []
    for lr in rates:
        _, grads, _, _ = numpy_softmax_mlp(params, X, Y, ["tanh"])
        params = [{k: p[k] - lr * g[k] for k in p} for p, g in zip(params, grads, strict=True)]
        after_each.append(params)
    return after_each


def test_optimizer_table_covers_every_registered_optimizer():
    assert {type(opt).name for opt in OPTIMIZERS.values()} == set(bp.OPTIMIZERS.names())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_a_classifier(backend, name):
    X, y = blobs()  # 60 rows, 3 well-separated classes
    result = bp.fit(
        classifier(),
        X,
        y,
        optimizer=OPTIMIZERS[name],
        backend=backend,
        epochs=20,
        batch_size=20,  # divides N: one compiled step shape on JAX
        verbose=0,
    )
    losses = result.history["loss"]
    # chance level is log(3) = 1.10; measured final losses 0.024 (adam) .. 0.073 (sgd, rmsprop)
    assert losses[-1] < 0.15, losses
    assert losses[-1] < losses[0] / 5, losses
    assert result.history["accuracy"][-1] >= 0.95
    assert (result.predict(X).argmax(axis=1) == y).mean() >= 0.95


# fit against `_manual_fit` (NumPy forward, backward and update rules written out in this file),
# float64, 9 minibatch steps: the step losses measured within 1.9 eps (relative), the params
# within 107 eps relative (nesterov; 8.7-37 eps for the others) and 4.4e-16 absolute. The sums
# run in another order than backprop's, so not bitwise; allow 4 eps on the losses, 128 eps on the
# params.
HAND_LOOP_LOSS_RTOL, HAND_LOOP_PARAM_RTOL = 4 * eps("float64"), 128 * eps("float64")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fit_equals_a_hand_written_loop(name):
    """Same batches (last one partial: 60 = 3 * 16 + 12), same updates as a loop written out
    in plain NumPy: backprop's loss_and_grad and optimizer updates are not used by the reference."""
    X, y = blobs()
    model = classifier()
    result = bp.fit(
        model, X, y, optimizer=OPTIMIZERS[name], dtype="float64", epochs=3, batch_size=16, verbose=0
    )
    params, losses = _manual_fit(model, name, X, bp.one_hot(y), epochs=3, batch_size=16)
    assert len(result.history.step_losses) == len(losses) == 12
    np.testing.assert_allclose(result.history.step_losses, losses, rtol=HAND_LOOP_LOSS_RTOL)
    assert_params_close(
        host_params(result.backend, result.params), params, rtol=HAND_LOOP_PARAM_RTOL
    )


# -- 2. learning-rate schedules ------------------------------------------------------------------

BASE_LR, EPOCHS, N_ROWS = 0.5, 8, 60  # one full batch per epoch: step == epoch


def _cosine_rates(losses):
    warmup, decay = 2, EPOCHS - 2  # decay_steps defaults to total_steps - warmup_steps
    return [
        BASE_LR * (e + 1) / warmup
        if e < warmup
        else BASE_LR * (1 + math.cos(math.pi * (e - warmup) / decay)) / 2
        for e in range(EPOCHS)
    ]


def _plateau_rates(losses, factor=0.5, patience=0, min_delta=0.1):
    """scikit-learn's "adaptive" rule replayed on the epoch losses: after more than
    ``patience`` epochs without an improvement larger than ``min_delta``, lr *= factor."""
    scale, best, bad, rates = 1.0, math.inf, 0, []
    for loss in losses:
        rates.append(BASE_LR * scale)
        bad = 0 if loss < best - min_delta else bad + 1
        best = min(best, loss)
        if bad > patience:
            bad, scale = 0, scale * factor
    return rates


SCHEDULES = {  # name: (schedule, expected rate of each epoch from the epoch losses)
    "constant": (bp.get_schedule("constant"), lambda losses: [BASE_LR] * EPOCHS),
    "step": (
        bp.get_schedule("step", step_size=3, gamma=0.5),
        lambda losses: [BASE_LR * 0.5 ** (e // 3) for e in range(EPOCHS)],
    ),
    "exponential": (
        bp.get_schedule("exponential", gamma=0.7),
        lambda losses: [BASE_LR * 0.7**e for e in range(EPOCHS)],
    ),
    "cosine": (bp.get_schedule("cosine", warmup_steps=2), _cosine_rates),
    "invscaling": (  # samples seen before the epoch: e * N
        bp.get_schedule("invscaling", power_t=0.5),
        lambda losses: [BASE_LR / math.sqrt(e * N_ROWS + 1) for e in range(EPOCHS)],
    ),
    "reduce_on_plateau": (
        bp.get_schedule("reduce_on_plateau", factor=0.5, patience=0, min_delta=0.1),
        _plateau_rates,
    ),
}


def test_schedule_table_covers_every_registered_schedule():
    assert set(SCHEDULES) == set(bp.SCHEDULES.names())


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_rate_is_logged_and_reaches_the_optimizer(backend, name):
    dtype = float64_or_skip(backend)
    X, y = blobs()
    model, (schedule, rates_for) = classifier(), SCHEDULES[name]
    log, snapshots = params_log()
    result = bp.fit(
        model,
        X,
        y,
        optimizer=bp.SGD(lr=BASE_LR),
        schedule=schedule,
        backend=backend,
        dtype=dtype,
        epochs=EPOCHS,
        batch_size=N_ROWS,
        shuffle=False,
        callbacks=[log],
        verbose=0,
    )
    rates = result.history["lr"]
    expected = rates_for(result.history["loss"])
    np.testing.assert_allclose(rates, expected, rtol=4 * eps("float64"))
    if name != "constant":
        assert len(set(expected)) > 1, f"{name} never changed the rate: {expected}"
    # The logged rates drive a descent written out in NumPy: the same params after every epoch.
    reference = _full_batch_sgd(model, X, bp.one_hot(y), rates)
    for ours, ref in zip(snapshots, reference, strict=True):
        assert_params_close(ours, ref, rtol=SCHEDULE_RTOL_64, atol=SCHEDULE_ATOL_64)


def test_reduce_on_plateau_divides_by_five_then_stops_training():
    """SGD at 1e-3 moves the loss by far less than min_delta = 1, so every epoch after the first
    is a plateau epoch. With patience 1 the rate is cut after every second plateau epoch:
    epochs 1-3 run at 1e-3, 4-5 at 2e-4, 6-7 at 4e-5, 8-9 at 8e-6; after epoch 9 the rate
    8e-6 <= min_lr = 1e-5 and the schedule ends training (scikit-learn's "adaptive" stop)."""
    X, y = blobs()
    schedule = bp.get_schedule(
        "reduce_on_plateau", monitor="loss", factor=0.2, patience=1, min_delta=1.0, min_lr=1e-5
    )
    result = bp.fit(
        classifier(),
        X,
        y,
        optimizer=bp.SGD(lr=1e-3),
        schedule=schedule,
        dtype="float64",
        epochs=50,
        batch_size=N_ROWS,
        shuffle=False,
        verbose=0,
    )
    losses = result.history["loss"]
    assert max(losses) - min(losses) < 1.0  # really a plateau for min_delta = 1
    expected = [1e-3] * 3 + [2e-4] * 2 + [4e-5] * 2 + [8e-6] * 2
    np.testing.assert_allclose(result.history["lr"], expected, rtol=1e-12)
    assert result.epochs == len(result.history) == 9
    assert "reduce_on_plateau" in result.stop_reason
    assert "reduce_on_plateau" in result.summary  # the summary says why it stopped


# -- 3. early stopping ---------------------------------------------------------------------------


def _overfitting_run(backend, stopper, epochs=40):
    """Overlapping blobs (60 rows to train on, 60 to validate) and a large Adam step: val_loss
    bottoms out early (measured: at epoch 7; val_accuracy first peaks at epoch 3)."""
    X, y = blobs(n_per_class=40, spread=2.0, seed=3)
    log, snapshots = params_log()
    result = bp.fit(
        classifier(),
        X[::2],
        y[::2],
        optimizer=bp.Adam(lr=0.1),
        backend=backend,
        epochs=epochs,
        batch_size=20,
        validation_data=(X[1::2], y[1::2]),
        callbacks=[stopper, log],
        verbose=0,
    )
    return result, snapshots


def test_early_stopping_restores_the_best_epoch(backend):
    patience = 3
    result, snapshots = _overfitting_run(backend, bp.EarlyStopping("val_loss", patience=patience))
    val_loss = result.history["val_loss"]
    assert result.epochs < 40, "val_loss should stop improving well before 40 epochs"
    assert result.best_epoch == int(np.argmin(val_loss)) + 1
    assert result.epochs == len(result.history) == result.best_epoch + patience
    assert result.stop_reason.startswith("early stopping")
    assert_params_equal(host_params(backend, result.params), snapshots[result.best_epoch - 1])


def test_early_stopping_without_restore_keeps_the_last_params():
    result, snapshots = _overfitting_run("numpy", bp.EarlyStopping(patience=3, restore_best=False))
    assert result.epochs == result.best_epoch + 3 < 40
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1
    assert_params_equal(host_params(result.backend, result.params), snapshots[-1])


def test_early_stopping_on_accuracy_maximizes():
    result, snapshots = _overfitting_run("numpy", bp.EarlyStopping("val_accuracy", patience=2))
    accuracy = result.history["val_accuracy"]
    assert result.best_epoch == int(np.argmax(accuracy)) + 1  # first epoch of the highest value
    assert result.best_epoch != int(np.argmin(accuracy)) + 1  # so "min" would have differed
    assert result.epochs == result.best_epoch + 2
    assert_params_equal(
        host_params(result.backend, result.params), snapshots[result.best_epoch - 1]
    )


MISSING_COLUMNS = {  # (callbacks, fit options) of a run, and the column they watch
    "val_loss without validation": (lambda: ([bp.EarlyStopping("val_loss")], {}), "val_loss"),
    "val_accuracy without metric": (
        lambda: ([bp.EarlyStopping("val_accuracy")], {"metric": None, "validation_split": 0.25}),
        "val_accuracy",
    ),
    "accuracy without train metrics": (
        lambda: ([bp.EarlyStopping("accuracy")], {"train_metrics": False}),
        "accuracy",
    ),
    "schedule on val_loss": (
        lambda: ([], {"schedule": bp.get_schedule("reduce_on_plateau", monitor="val_loss")}),
        "val_loss",
    ),
}


@pytest.mark.parametrize("case", MISSING_COLUMNS)
def test_monitoring_a_missing_column_fails_before_training(case):
    make, column = MISSING_COLUMNS[case]
    watchers, kwargs = make()
    started = []
    callbacks = [bp.LambdaCallback(on_train_begin=started.append), *watchers]
    X, y = blobs()
    # the message lists the columns the run will have, e.g. ['accuracy', 'loss', 'lr', ...]
    with pytest.raises(ValueError, match=rf"monitors '{column}'.*'loss'.*'lr'") as info:
        bp.fit(classifier(), X, y, callbacks=callbacks, verbose=0, **kwargs)
    if column.startswith("val_") and "validation_split" not in kwargs:
        assert "validation_split or validation_data" in str(info.value)
    assert started == [], "the error must come before training starts"


# -- 4. class and sample weights -------------------------------------------------------------------


def _full_batch_fit(X, y, backend="numpy", **kwargs):
    return bp.fit(
        classifier(),
        X,
        y,
        optimizer=bp.SGD(lr=0.5),
        backend=backend,
        dtype="float64",
        epochs=10,
        batch_size=len(X),
        shuffle=False,
        verbose=0,
        **kwargs,
    )


def test_class_weight_equals_duplicating_the_rows(backend):
    """With n_c rows of class c, ``class_weight={2: 2}`` gives raw weights 1, 1, 2, rescaled to
    mean 1: w_n = r_n * N / N' with N' = n_0 + n_1 + 2 n_2. The weighted loss is then
    (1/N) sum_n w_n l_n = (sum_{0,1} l_n + 2 sum_2 l_n) / N', which is exactly the mean loss
    over the N' rows of the data with every class-2 row duplicated. The same function of the
    params (and alpha = 0), so the same full-batch SGD path, up to summation order (the rows sit
    in another order): agreement to ~1e-12 in float64."""
    float64_or_skip(backend)
    X, y = blobs()
    twos = y == 2
    weighted = _full_batch_fit(X, y, backend, class_weight={2: 2.0})
    duplicated = _full_batch_fit(np.concatenate([X, X[twos]]), np.r_[y, y[twos]], backend)
    np.testing.assert_allclose(weighted.history["loss"], duplicated.history["loss"], rtol=1e-12)
    assert_params_close(
        host_params(backend, weighted.params),
        host_params(backend, duplicated.params),
        rtol=1e-12,
        atol=1e-15,
    )


def test_sample_weight_of_ones_is_the_unweighted_run(backend):
    float64_or_skip(backend)
    X, y = blobs()
    weighted = _full_batch_fit(X, y, backend, sample_weight=np.ones(len(X)))
    plain = _full_batch_fit(X, y, backend)
    assert weighted.history["loss"] == plain.history["loss"]
    assert_params_equal(host_params(backend, weighted.params), host_params(backend, plain.params))


def test_sample_weight_and_class_weight_give_the_same_weights():
    X, y = blobs()
    by_class = _full_batch_fit(X, y, class_weight={2: 2.0})
    by_row = _full_batch_fit(X, y, sample_weight=np.where(y == 2, 2.0, 1.0))
    assert_params_equal(by_class.params, by_row.params)


def test_balanced_class_weight():
    X, y = blobs()  # 20 rows per class: "balanced" weighs every row 60 / (3 * 20) = 1
    assert_params_equal(
        _full_batch_fit(X, y, class_weight="balanced").params, _full_batch_fit(X, y).params
    )
    X, y = X[:50], y[:50]  # 20, 20 and 10 rows: class 2 rows weigh twice the others
    balanced = _full_batch_fit(X, y, class_weight="balanced")
    assert all(math.isfinite(v) for v in balanced.history["loss"])
    assert_params_close(
        balanced.params,
        _full_batch_fit(X, y, class_weight={2: 2.0}).params,
        rtol=1e-14,
        atol=1e-15,
    )


BAD_WEIGHTS = {
    "class out of range": ({"class_weight": {3: 1.0}}, "class_weight has key 3"),
    "negative class weight": ({"class_weight": {1: -1.0}}, r"class_weight\[1\] must be a finite"),
    "unknown mode": ({"class_weight": "balance"}, "'balanced' or a dict"),
    "every class weighs 0": ({"class_weight": {0: 0, 1: 0.0, 2: 0}}, "every row has weight 0"),
    "wrong length": ({"sample_weight": np.ones(3)}, r"shape \(60,\)"),
    "negative": ({"sample_weight": np.r_[-1.0, np.ones(59)]}, "1 negative value"),
    "nan": ({"sample_weight": np.r_[np.ones(59), np.nan]}, "NaN or infinite"),
    "all zero": ({"sample_weight": np.zeros(60)}, "0 for every row"),
    "not numeric": ({"sample_weight": ["a"] * 60}, "numeric array"),
}


@pytest.mark.parametrize("case", BAD_WEIGHTS)
def test_bad_weights_raise_data_error(case):
    kwargs, message = BAD_WEIGHTS[case]
    with pytest.raises(bp.DataError, match=message):
        _full_batch_fit(*blobs(), **kwargs)


# -- 5. the NaN guard ------------------------------------------------------------------------------

ABSURD_LR = 1e8


@dataclasses.dataclass(frozen=True)
class _BlowUpAfter(bp.Schedule):
    """The base rate for ``good`` epochs, then an absurd one (a test-only schedule)."""

    good: int = 2

    def lr(self, base_lr, state, *, step, epoch, samples, total_steps):
        return base_lr if epoch < self.good else ABSURD_LR


def _diverging_fit(backend, *, schedule=None, optimizer=None, log_every=None, callbacks=()):
    X, y = blobs()
    return bp.fit(
        classifier(hidden="relu"),  # unbounded units: a huge step overflows within an epoch
        X,
        y,
        optimizer=optimizer or bp.SGD(lr=0.05),
        schedule=schedule,
        backend=backend,
        epochs=10,
        batch_size=4,
        log_every=log_every,
        callbacks=callbacks,
        verbose=0,
    )


@pytest.mark.parametrize("log_every", [None, 1], ids=["epoch-check", "step-check"])
def test_divergence_keeps_the_last_good_epoch(backend, log_every):
    log, snapshots = params_log()
    with pytest.raises(bp.TrainingDiverged) as info:
        _diverging_fit(backend, schedule=_BlowUpAfter(good=2), log_every=log_every, callbacks=[log])
    good = len(snapshots)  # epochs that ended with finite values
    assert good >= 2, "the first two epochs run at a sane rate"
    message = str(info.value)
    assert "diverged" in message
    assert f"in epoch {good + 1} " in message
    assert f"learning rate {ABSURD_LR:g}" in message
    result = info.value.result
    assert result.epochs == len(result.history) == good
    params = host_params(backend, result.params)
    assert all(np.isfinite(p[k]).all() for p in params for k in ("W", "b"))
    assert_params_equal(params, snapshots[-1])


def test_divergence_in_the_first_epoch_keeps_the_initial_params(backend):
    with pytest.raises(bp.TrainingDiverged, match=r"diverged.* in epoch 1 .*1e\+08") as info:
        _diverging_fit(backend, optimizer=bp.SGD(lr=ABSURD_LR))
    result = info.value.result
    assert result.epochs == 0 and len(result.history) == 0
    initial = classifier(hidden="relu").init(seed=0, backend=backend, dtype="float32")
    assert_params_equal(host_params(backend, result.params), host_params(backend, initial))


def test_divergence_is_reported_under_warnings_as_errors(backend):
    """The guard's contract holds under ``-W error`` (this suite's setting): the overflow on the
    way to a NaN is fit's to report as TrainingDiverged (with the last good params), not a NumPy
    RuntimeWarning escaping from the step's math (fit trains under quiet_float_errors)."""
    with pytest.raises(bp.TrainingDiverged):
        _diverging_fit(backend, optimizer=bp.SGD(lr=ABSURD_LR))


# -- 12. integer labels ----------------------------------------------------------------------------


def test_integer_labels_equal_one_hot_targets():
    X, y = blobs()
    runs = [
        bp.fit(classifier(), X, Y, dtype="float64", epochs=3, batch_size=16, verbose=0)
        for Y in (y, bp.one_hot(y))
    ]
    assert_params_equal(runs[0].params, runs[1].params)
    assert runs[0].history.step_losses == runs[1].history.step_losses
    assert runs[0].history["accuracy"] == runs[1].history["accuracy"]


BAD_LABELS = {
    "too large": (
        lambda y: np.where(y == 2, 3, y),
        r"outside the allowed range \[0, 3\).*: 3 \(first in row 40\)",
    ),
    "negative": (lambda y: y - 1, r"outside the allowed range \[0, 3\).*: -1 \(first in row 0\)"),
    "float labels": (lambda y: y.astype(np.float64), "expected integer class labels"),
    "wrong length": (lambda y: y[:-1], "60 rows but Y has 59"),
    "one column of labels": (lambda y: y[:, None], "Y has 1 columns but the model expects 3"),
}


@pytest.mark.parametrize("case", BAD_LABELS)
def test_bad_labels_raise_data_error(case):
    make, message = BAD_LABELS[case]
    X, y = blobs()
    with pytest.raises(bp.DataError, match=message):
        bp.fit(classifier(), X, make(y), epochs=1, verbose=0)
