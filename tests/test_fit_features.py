"""`bp.fit` features: dropout, sample weights in the losses, the history, callbacks, gradient-flow
diagnostics and what fit prints; through the public API on every backend.

Dropout masks are drawn on the host (`backprop.data._host.dropout_masks`), so a seeded run drops the
same units on every backend and its loss curve must agree with NumPy's to a dtype tolerance.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import sys

import numpy as np
import pytest
from conftest import assert_close, backend_or_skip, eps
from fit_helpers import assert_params_equal, blobs, classifier, host_params
from oracles import jax_activations
from test_fit import numpy_softmax_mlp

import backprop as bp
from backprop.data._host import dropout_masks

BASE_COLUMNS = ["epoch", "loss", "lr", "time", "samples_per_s"]  # in every history


def _fit(backend="numpy", model=None, X=None, Y=None, **kwargs):
    """A short, silent fit of a small classifier on the 60-row blobs unless told otherwise."""
    if X is None:
        X, Y = blobs()
    options = {"optimizer": bp.Adam(lr=0.01), "epochs": 3, "batch_size": 20, "verbose": 0}
    return bp.fit(model or classifier(), X, Y, backend=backend, **{**options, **kwargs})


def _weights_problem(backend, output, loss, dropout=0.0, n=6, seed=0):
    """A [3, 5, 2] tanh network in float64 with targets suited to the loss, on ``backend``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    if loss == "cross_entropy":
        Y = bp.one_hot(rng.integers(0, 2, n), 2)
    elif output == "sigmoid":
        Y = rng.integers(0, 2, (n, 2)).astype(np.float64)
    else:
        Y = rng.normal(size=(n, 2))
    model = bp.MLP([3, 5, 2], hidden="tanh", output=output, loss=loss, dropout=dropout)
    params = model.init(seed=3, backend=backend, dtype="float64")
    return model, params, backend.asarray(X, "float64"), backend.asarray(Y, "float64")


# -- 6. dropout ------------------------------------------------------------------------------------


def _dropout_fit(backend, dtype, dropout=0.3):
    return _fit(backend, classifier((4, 16, 16, 3), dropout=dropout), dtype=dtype, epochs=5)


@functools.cache
def _numpy_dropout_curve(dtype):
    return np.array(_dropout_fit("numpy", dtype).history.step_losses)


def test_dropout_gives_the_same_curve_on_every_backend(backend, dtype):
    losses = np.array(_dropout_fit(backend, dtype).history.step_losses)
    assert losses.shape == (15,)
    # Same masks from the host; only summation order differs (BLAS vs XLA vs torch): over these
    # 15 Adam steps measured <= 3 eps on CPU; 100 eps leaves room for GPU reductions.
    np.testing.assert_allclose(losses, _numpy_dropout_curve(dtype), rtol=100 * eps(dtype))


def test_dropout_changes_training_but_not_evaluation():
    X, y = blobs()
    dropped = _dropout_fit("numpy", "float64", dropout=0.5)
    plain = _dropout_fit("numpy", "float64", dropout=0.0)
    assert dropped.history.step_losses != plain.history.step_losses
    # Validation and evaluation run the whole network, unscaled.
    model = classifier((4, 16, 16, 3), dropout=0.5)
    result = _fit(model=model, validation_data=(X, y))
    assert result.history["val_loss"][-1] == bp.evaluate(model, result.params, X, y)["loss"]


def test_dropout_zero_is_bitwise_no_dropout(backend):
    plain = _fit(backend, classifier())
    zero = _fit(backend, classifier(dropout=0.0))
    assert plain.history.step_losses == zero.history.step_losses
    assert_params_equal(host_params(backend, zero.params), host_params(backend, plain.params))


def _masked_problem(backend):
    """A [3, 5, 2] tanh network, 6 rows, and fixed masks for its hidden layer (rate 0.5)."""
    model, params, X, Y = _weights_problem(backend, "softmax", "cross_entropy", dropout=0.5)
    host = dropout_masks(np.random.default_rng(1), 6, [5], [0.5])
    assert (host[0] == 0).any() and (host[0] == 2).any()
    return model, params, X, Y, host


def test_masked_gradient_matches_finite_differences(backend):
    model, params, X, Y, host = _masked_problem(backend)
    masks = [backend.asarray(host[0], "float64")]
    masked = functools.partial(model.loss_and_grad, masks=masks)
    result = bp.gradcheck(masked, params, X, Y)
    assert result.ok, str(result)
    assert float(masked(params, X, Y)[0]) != float(model.loss(params, X, Y))


def test_masked_gradient_matches_autodiff(backend):
    """jax.grad of an independent masked forward: hidden = tanh(X W0 + b0) * mask."""
    tanh = jax_activations()["tanh"]  # skips without jax; turns on float64
    jax = pytest.importorskip("jax", reason="the jax oracle needs jax (pip install '.[jax]')")
    model, params, X, Y, host = _masked_problem(backend)
    ref_params = host_params(backend, model.dense_params(params))
    x, y, mask = backend.to_numpy(X), backend.to_numpy(Y), host[0]

    def objective(ps):
        hidden = tanh(x @ ps[0]["W"] + ps[0]["b"]) * mask
        z = hidden @ ps[1]["W"] + ps[1]["b"]
        return -jax.numpy.sum(y * jax.nn.log_softmax(z, axis=-1)) / x.shape[0]

    ref_value, ref_grads = jax.value_and_grad(objective)(ref_params)
    value, grads = model.loss_and_grad(params, X, Y, masks=[backend.asarray(mask, "float64")])
    assert_close(backend, value, float(ref_value), rtol=1e-12)
    assert grads[1] == {}  # the Dropout layer has no parameters
    for ours, ref in zip(model.dense_params(grads), ref_grads, strict=True):
        for key in ("W", "b"):
            scale = float(np.abs(ref[key]).max())
            assert_close(backend, ours[key], np.asarray(ref[key]), rtol=1e-9, atol=1e-12 * scale)


def test_dropout_masks_are_scaled_bernoulli_draws():
    rates = [0.3, 0.0, 0.75]
    masks = dropout_masks(np.random.default_rng(0), 1000, [50, 40, 30], rates)
    assert masks[1] is None  # rate 0: no draw, no product
    for mask, units, rate in ((masks[0], 50, 0.3), (masks[2], 30, 0.75)):
        assert mask.shape == (1000, units)
        assert set(np.unique(mask)) <= {0.0, 1.0 / (1.0 - rate)}
        # keep rate over >= 30000 draws: standard deviation <= 0.003, so 0.02 is > 6 sigma
        assert abs((mask != 0).mean() - (1.0 - rate)) < 0.02
        assert abs(mask.mean() - 1.0) < 0.05  # inverted dropout keeps the expected output
    again = dropout_masks(np.random.default_rng(0), 1000, [50, 40, 30], rates)
    np.testing.assert_array_equal(again[0], masks[0])


# -- 7. sample weights in the losses -------------------------------------------------------------

HEADS = [
    ("identity", "mse"),
    ("sigmoid", "mse"),
    ("sigmoid", "binary_cross_entropy"),
    ("softmax", "cross_entropy"),
]


def _row_weights(n=6, seed=0):
    return np.random.default_rng(seed + 10).uniform(0.5, 2.0, n)


@pytest.mark.parametrize(("output", "loss"), HEADS)
def test_weighted_gradient_matches_finite_differences(backend, output, loss):
    model, params, X, Y = _weights_problem(backend, output, loss)
    weighted = functools.partial(model.loss_and_grad, weights=backend.asarray(_row_weights()))
    result = bp.gradcheck(weighted, params, X, Y)
    assert result.ok, str(result)


@pytest.mark.parametrize(("output", "loss"), HEADS)
def test_weights_scale_loss_and_gradients(backend, output, loss):
    """Weights of 2 double every row's term: loss and gradients exactly double (scaling by a
    power of two is exact in floating point); weights of 1 change nothing. alpha = 0: the L2
    penalty is not weighted."""
    model, params, X, Y = _weights_problem(backend, output, loss)
    loss1, grads1 = model.loss_and_grad(params, X, Y)
    for w, factor in ((2.0, 2.0), (1.0, 1.0)):
        weights = backend.asarray(np.full(6, w), "float64")
        loss_w, grads_w = model.loss_and_grad(params, X, Y, weights=weights)
        assert float(loss_w) == factor * float(loss1)
        for ours, ref in zip(
            host_params(backend, grads_w), host_params(backend, grads1), strict=True
        ):
            for key in ("W", "b"):
                np.testing.assert_array_equal(ours[key], factor * ref[key])


@pytest.mark.parametrize(("output", "loss"), HEADS)
def test_weighted_loss_is_the_weighted_mean_of_row_losses(output, loss):
    """J_w = (1/N) sum_i w_i l_i, with l_i the loss of row i alone."""
    model, params, X, Y = _weights_problem(backend_or_skip("numpy"), output, loss)
    w = _row_weights()
    rows = [float(model.loss(params, X[i : i + 1], Y[i : i + 1])) for i in range(6)]
    loss_w, _ = model.loss_and_grad(params, X, Y, weights=w)
    assert float(loss_w) == pytest.approx(float(np.dot(w, rows)) / 6, rel=1e-13)


# -- 8. the history --------------------------------------------------------------------------------


def test_history_columns_of_a_classifier():
    result = _fit(validation_data=blobs(), epochs=2)
    history = result.history
    assert set(history.columns) == {*BASE_COLUMNS, "accuracy", "val_loss", "val_accuracy"}
    assert history["epoch"] == [1, 2] and len(history) == result.epochs == 2
    assert all(0 <= a <= 1 for a in history["accuracy"] + history["val_accuracy"])
    assert all(math.isfinite(v) and v > 0 for r in history.records for v in r.values())


def test_history_columns_of_a_regressor():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = np.stack([X[:, 0] - X[:, 1], X[:, 2] ** 2], axis=1)
    result = _fit(model=bp.MLP([3, 8, 2]), X=X, Y=Y, validation_split=0.25)
    assert set(result.history.columns) == {*BASE_COLUMNS, "r2", "val_loss", "val_r2"}


COLUMN_OPTIONS = {  # fit options, columns that must appear, columns that must not
    "train_metrics=False": ({"train_metrics": False}, {"val_accuracy"}, {"accuracy"}),
    "metric=None": ({"metric": None}, {"val_loss"}, {"accuracy", "val_accuracy"}),
}


@pytest.mark.parametrize("case", COLUMN_OPTIONS)
def test_metric_options_choose_the_columns(case):
    kwargs, present, absent = COLUMN_OPTIONS[case]
    columns = set(_fit(validation_data=blobs(), **kwargs).history.columns)
    assert present <= columns and not absent & columns, columns


def test_step_losses_and_the_batch_weighted_epoch_loss(backend):
    """60 rows in batches of 25: 25, 25, 10. The epoch loss weights each step by its size."""
    result = _fit(backend, batch_size=25)
    steps = result.history.step_losses
    assert len(steps) == 3 * math.ceil(60 / 25) == 9
    for epoch, loss in enumerate(result.history["loss"]):
        batch = steps[3 * epoch : 3 * epoch + 3]
        expected = math.fsum(s * n for s, n in zip(batch, (25, 25, 10), strict=True)) / 60
        assert loss == pytest.approx(expected, rel=1e-15)
        assert loss != pytest.approx(sum(batch) / 3, rel=1e-6)  # the plain mean would differ


def test_history_round_trips_through_json_and_csv(tmp_path):
    history = _fit(validation_data=blobs()).history
    loaded = bp.History.from_dict(json.loads(history.to_json(tmp_path / "h.json").read_text()))
    assert loaded.records == history.records
    assert loaded.step_losses == history.step_losses
    with history.to_csv(tmp_path / "h.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [{k: float(v) for k, v in row.items()} for row in rows] == history.records


def test_validation_split_is_stratified():
    """Classes of 31, 19 and 10 rows; 30% held out: ceil(18) rows, exact shares 9.3, 5.7, 3.
    The documented allocation (largest remainder) gives floor 9, 5, 3 = 17 and the last row to
    the largest remainder, 0.7 (class 1): exactly 9, 6 and 3 rows.

    A model that predicts class c for every row (W = 0, bias towards c; the 1e-12 learning rate
    cannot change that) has val_accuracy = (class-c rows held out) / 18, which exposes how many
    rows of each class the split held out."""
    X, y = blobs(n_per_class=31)
    keep = np.r_[0:31, 31:50, 62:72]
    X, y = X[keep], y[keep]
    held_out = []
    for c in range(3):
        params = [{"W": np.zeros((4, 3)), "b": 10.0 * np.eye(3)[c]}]
        result = _fit(
            model=classifier((4, 3)),
            X=X,
            Y=y,
            params=params,
            optimizer=bp.SGD(lr=1e-12),
            dtype="float64",
            epochs=1,
            validation_split=0.3,
        )
        held_out.append(result.history["val_accuracy"][0] * 18)
        assert result.history["accuracy"][0] * 42 == pytest.approx(np.sum(y == c) - held_out[-1])
    np.testing.assert_allclose(held_out, np.round(held_out), atol=1e-9)
    assert sum(held_out) == pytest.approx(18)
    assert np.round(held_out).tolist() == [9, 6, 3], held_out


# -- 9. callbacks ----------------------------------------------------------------------------------


class _Recorder(bp.Callback):
    """Records every hook call with what the run says at that moment."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_begin(self, run) -> None:
        self.events.append(("begin", run.epoch, run.step))

    def on_batch_end(self, run, loss) -> None:
        self.events.append(("batch", run.step, float(loss)))

    def on_epoch_end(self, run) -> None:
        self.events.append(("epoch", run.epoch, len(run.history)))

    def on_train_end(self, run) -> None:
        self.events.append(("end", run.epoch))


def test_callback_hooks_run_once_each_in_order(backend):
    recorder = _Recorder()
    result = _fit(backend, callbacks=[recorder])  # 60 rows / 20 = 3 steps, 3 epochs
    losses = iter(result.history.step_losses)
    expected = [("begin", 0, 0)]
    for epoch in range(3):
        expected += [("batch", 3 * epoch + b + 1, next(losses)) for b in range(3)]
        expected.append(("epoch", epoch + 1, epoch + 1))
    expected.append(("end", 3))
    assert recorder.events == expected


def test_a_callback_can_stop_training():
    recorder = _Recorder()
    stop = bp.LambdaCallback(on_epoch_end=lambda run: setattr(run, "stop_training", run.epoch == 2))
    result = _fit(callbacks=[stop, recorder], epochs=10)
    assert result.epochs == len(result.history) == 2
    assert [e[0] for e in recorder.events].count("epoch") == 2
    assert recorder.events[-1] == ("end", 2)
    assert result.stop_reason is None


# -- 10. gradient-flow diagnostics -----------------------------------------------------------------


def test_diagnostics_columns(backend):
    """Every layer gets delta_norm_l and grad_norm_l; only sigmoid/tanh layers get saturation_l
    (here hidden layers 0 and 1; not the relu layer 2 nor the softmax output 3). The values are
    checked against a forward/backward written out in NumPy float64 (test_fit's
    `numpy_softmax_mlp`) on the final params and the training rows: measured within 1.85 eps of
    the run's dtype (norms; jax float32), saturation within 0.4 eps (the float32 mean)."""
    hidden = ["sigmoid", "tanh", "relu"]
    model = classifier((4, 16, 16, 16, 3), hidden=hidden)
    # weights x4: some units saturate (measured 30% of layer 0's, 55% of layer 1's), so the
    # saturation columns are not trivially 0
    params = [{k: 4.0 * v for k, v in p.items()} for p in model.init(seed=0, dtype="float64")]
    result = _fit(backend, model, diagnostics=True, epochs=2, params=params)
    record = result.history.last
    added = set(record) - {*BASE_COLUMNS, "accuracy"}
    norms = {f"{kind}_{i}" for kind in ("delta_norm", "grad_norm") for i in range(4)}
    assert added == norms | {"saturation_0", "saturation_1"}

    final = host_params(result.backend, result.params)
    rtol = 4 * np.finfo(final[0]["W"].dtype).eps
    final = [{k: v.astype(np.float64) for k, v in p.items()} for p in final]
    X, y = blobs()
    _, grads, deltas, outs = numpy_softmax_mlp(final, X, bp.one_hot(y), hidden)
    expected = {f"delta_norm_{i}": np.linalg.norm(d) for i, d in enumerate(deltas)}
    expected |= {f"grad_norm_{i}": np.linalg.norm(g["W"]) for i, g in enumerate(grads)}
    # saturated: f' below a tenth of its peak (sigmoid: s(1-s) < 0.025; tanh: 1 - a^2 < 0.1)
    expected["saturation_0"] = np.mean(outs[0] * (1 - outs[0]) < 0.1 * 0.25)
    expected["saturation_1"] = np.mean(1 - outs[1] ** 2 < 0.1)
    assert 0.1 < expected["saturation_0"] < 0.9 and 0.1 < expected["saturation_1"] < 0.9
    for key in sorted(added):
        np.testing.assert_allclose(record[key], expected[key], rtol=rtol, err_msg=key)


def _deep_delta_norms(hidden):
    model = classifier((4, *[16] * 8, 3), hidden=hidden)
    record = _fit(model=model, diagnostics=True, optimizer=bp.SGD(lr=1e-9), epochs=1).history.last
    return np.array([record[f"delta_norm_{i}"] for i in range(9)])


def test_deep_sigmoid_network_shows_vanishing_gradients():
    """Each sigmoid layer multiplies the error signal by f' <= 1/4: through 8 of them it shrinks
    by orders of magnitude (measured ||delta_0|| / ||delta_8|| = 9e-6); relu passes it on with
    f' = 1 where active (measured 0.04 with Glorot init, which halves it per layer)."""
    sigmoid, relu = _deep_delta_norms("sigmoid"), _deep_delta_norms("relu")
    assert sigmoid[0] < 1e-3 * sigmoid[-1], sigmoid
    assert np.all(np.diff(sigmoid[:-1]) > 0), sigmoid  # shrinking layer after layer
    assert relu[0] > 1e-2 * relu[-1], relu
    assert relu[0] / relu[-1] > 100 * sigmoid[0] / sigmoid[-1]


def test_saturation_grows_with_the_weight_scale():
    """Large weights push sigmoid/tanh units into their flat tails (measured saturation: 0 at
    Glorot scale, 0.66-0.83 at x10, 0.96-0.99 at x100)."""
    model = classifier((4, 16, 16, 3), hidden=["sigmoid", "tanh"])
    init = model.init(seed=0, dtype="float64")
    saturation = []
    for scale in (1.0, 10.0, 100.0):
        params = [{k: scale * v for k, v in layer.items()} for layer in init]
        record = _fit(
            model=model,
            params=params,
            optimizer=bp.SGD(lr=1e-12),
            dtype="float64",
            epochs=1,
            diagnostics=True,
        ).history.last
        saturation.append([record["saturation_0"], record["saturation_1"]])
    saturation = np.array(saturation)
    assert np.all((saturation >= 0) & (saturation <= 1))
    assert np.all(saturation[0] < 0.1) and np.all(saturation[2] > 0.9), saturation
    assert np.all(np.diff(saturation, axis=0) > 0), saturation


# -- 11. output ------------------------------------------------------------------------------------


def test_verbose_prints_one_summary_line(backend, capsys):
    result = _fit(backend, validation_data=blobs(), epochs=2, verbose=1)
    out, err = capsys.readouterr()
    assert out.splitlines() == [result.summary]
    assert "trained 2 epoch(s)" in out
    assert f"on {backend.name} ({backend.device_name})" in out
    assert "val_accuracy" in out
    assert err == ""  # no progress bar: stderr is not a terminal under capsys


def test_verbose_zero_prints_nothing(capsys):
    _fit(validation_data=blobs(), verbose=0)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_shows_on_a_terminal(capsys, monkeypatch):
    """The counterpart of the test above: with a terminal on stderr, tqdm draws its bar there."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _fit(verbose=1)
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1
    assert "9/9" in err  # 3 epochs x 3 steps
