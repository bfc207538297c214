"""The same seeded training on every backend: same loss curve, and the network really learns."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import backend_or_skip, eps

import backprop as bp
from backprop.data import datasets

EPOCHS, BATCH = 50, 20  # 200 samples -> 10 steps per epoch, 500 SGD steps
TARGET_LOSS = 0.1  # mean cross-entropy over the last epoch; chance level is log(2) = 0.69


def _run(backend, dtype):
    X, Y = datasets.make_spirals(100, seed=0)
    model = bp.MLP([2, 32, 32, 2], hidden="relu", output="softmax", loss="cross_entropy")
    result = bp.train(
        model,
        bp.SGD(lr=0.1, momentum=0.9),
        X,
        Y,
        backend=backend,
        dtype=dtype,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=0,
    )
    return model, result, X, Y


@functools.cache
def _numpy_curve(dtype):
    return np.array(_run(backend_or_skip("numpy"), dtype)[1].losses)


def test_same_training_on_every_backend(backend, dtype):
    model, result, X, Y = _run(backend, dtype)
    losses = np.array(result.losses)
    assert losses.shape == (EPOCHS * 10,)
    # Matmul summation order differs between BLAS builds and XLA; over 500 steps those rounding
    # differences compound to ~100 eps (measured 1.4e-5 in float32, 9e-14 in float64), so allow
    # 2000 eps relative.
    np.testing.assert_allclose(losses, _numpy_curve(dtype), rtol=2000 * eps(dtype))
    assert losses[-10:].mean() < TARGET_LOSS, losses[-10:]
    assert losses[-10:].mean() < losses[:10].mean() / 5
    predicted = backend.to_numpy(model.predict(result.params, backend.asarray(X, dtype)))
    accuracy = (predicted.argmax(axis=1) == Y.argmax(axis=1)).mean()
    assert accuracy >= 0.95


def test_same_initial_weights_on_every_backend(backend, dtype):
    model = bp.MLP([3, 4, 2])
    ours = model.init(seed=7, backend=backend, dtype=dtype)
    ref = model.init(seed=7, backend="numpy", dtype=dtype)
    for p, r in zip(ours, ref, strict=True):
        for key in ("W", "b"):
            host = backend.to_numpy(p[key])
            assert host.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(host, r[key])  # bitwise: drawn on the host, then cast


def test_glorot_limits():
    params = bp.MLP([100, 300, 1]).init(seed=0, backend="numpy", dtype="float64")
    assert np.abs(params[0]["W"]).max() <= np.sqrt(6 / 400)
    assert np.abs(params[0]["W"]).max() > 0.9 * np.sqrt(6 / 400)
    assert not params[0]["b"].any()


def test_step_is_compiled_on_jax():
    be = backend_or_skip("jax")
    model = bp.MLP([2, 3, 1])
    step = bp.make_step(model, bp.SGD(lr=0.1), be)
    assert hasattr(step, "lower"), "the jax step should be a jax.jit-wrapped function"
    params = model.init(seed=0, backend=be)
    x, y = be.asarray(np.ones((4, 2))), be.asarray(np.ones((4, 1)))
    _, _, loss = step(params, {}, x, y)
    assert np.isfinite(float(loss))


@pytest.mark.parametrize(
    ("output", "loss"), [("identity", "mse"), ("sigmoid", "binary_cross_entropy")]
)
def test_xor_learns(output, loss):
    """The textbook 2-2-1 network (sigmoid hidden) on XOR, full batch."""
    X, Y = datasets.make_xor()
    model = bp.MLP([2, 4, 1], hidden="tanh", output=output, loss=loss)
    result = bp.train(
        model, bp.SGD(lr=0.5, momentum=0.9), X, Y, dtype="float64", epochs=300, batch_size=4, seed=1
    )
    predicted = model.predict(result.params, X.astype(np.float64))
    np.testing.assert_array_equal(predicted > 0.5, Y > 0.5)
