"""SGD's update rules, checked by hand, and convergence to a known minimum on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import backprop as bp

VARIANTS = {
    "plain": {"momentum": 0.0},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
}


def _reference(w, grads, lr, momentum=0.0, nesterov=False):
    """The update written out with NumPy, step by step."""
    v = np.zeros_like(w)
    for g in grads:
        v = momentum * v - lr * g
        w = w + (momentum * v - lr * g if nesterov else v)
    return w


@pytest.mark.parametrize("variant", VARIANTS)
def test_sgd_update_rule(backend, variant):
    kwargs = VARIANTS[variant]
    opt = bp.SGD(lr=0.05, **kwargs)
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=(3, 2)), [rng.normal(size=(3, 2)) for _ in range(3)]
    params = [{"W": backend.asarray(w0, "float64")}]
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, [{"W": backend.asarray(g, "float64")}], state)
    assert_close(backend, params[0]["W"], _reference(w0, grads, 0.05, **kwargs), rtol=1e-14)


@pytest.mark.parametrize("variant", VARIANTS)
def test_sgd_reaches_quadratic_minimum(backend, dtype, variant):
    """f(w) = 0.5 * sum(c * (w - w*)**2), minimum at w*."""
    target, curvature = np.array([1.0, -2.0, 3.0]), np.array([1.0, 2.0, 0.5])
    opt = bp.SGD(lr=0.1, **VARIANTS[variant])
    params = {"w": backend.asarray(np.zeros(3), dtype)}
    c, t = backend.asarray(curvature, dtype), backend.asarray(target, dtype)
    state = opt.init(params)
    for _ in range(300):
        params, state = opt.update(params, {"w": c * (params["w"] - t)}, state)
    np.testing.assert_allclose(backend.to_numpy(params["w"]), target, atol=1e-4)


def test_registry_builds_by_name():
    opt = bp.get_optimizer("sgd", lr=0.3, momentum=0.5)
    assert opt == bp.SGD(lr=0.3, momentum=0.5)
    assert "sgd" in bp.OPTIMIZERS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "lr must be a finite number > 0, received -1.0"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"lr": 0.1, "momentum": 1.5}, r"momentum must be a number in \[0, 1\), received 1.5"),
        ({"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0"),
    ],
)
def test_sgd_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.SGD(**kwargs)


def test_unknown_optimizer_and_bad_keyword():
    with pytest.raises(bp.UnknownNameError, match=r"unknown optimizer 'sdg'.*did you mean 'sgd'"):
        bp.get_optimizer("sdg")
    with pytest.raises(TypeError, match="optimizer 'sgd'.*momentun"):
        bp.get_optimizer("sgd", momentun=0.9)
