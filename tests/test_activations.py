"""Every activation's derivative against central differences and against autodiff oracles."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, to_host
from oracles import ORACLES, activation_vjp

import backprop as bp

ACTIVATION_NAMES = bp.ACTIVATIONS.names()


def _sample(shape=(5, 4), seed=0) -> np.ndarray:
    z = np.random.default_rng(seed).uniform(-3.0, 3.0, size=shape)
    # keep finite differences (h = 1e-6) away from the kinks of relu / leaky_relu / elu at 0
    return np.where(np.abs(z) < 1e-2, 0.5, z)


def _vjp_problem(backend, act, z_host, g_host):
    """J(z) = sum(g * f(z)) and its hand-derived gradient vjp(z, a, g).

    For activations whose derivative comes from the output, z is withheld from ``vjp``: the test
    then also proves backward needs only what forward cached.
    """
    xp = backend.xp
    g = backend.asarray(g_host, "float64")

    def loss_and_grad(p):
        a = act.forward(xp, p["z"])
        z_for_backward = p["z"] if act.needs_input else None
        return xp.sum(g * a), {"z": act.vjp(xp, z_for_backward, a, g)}

    return loss_and_grad, {"z": backend.asarray(z_host, "float64")}


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_derivative_matches_finite_differences(backend, name):
    act = bp.get_activation(name)
    rng = np.random.default_rng(1)
    loss_and_grad, params = _vjp_problem(backend, act, _sample(), rng.normal(size=(5, 4)))
    result = bp.gradcheck(loss_and_grad, params)
    assert result.ok, str(result)


@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_derivative_matches_autodiff(backend, name, oracle):
    act = bp.get_activation(name)
    z, g = _sample(), np.random.default_rng(2).normal(size=(5, 4))
    loss_and_grad, params = _vjp_problem(backend, act, z, g)
    _, grads = loss_and_grad(params)
    # both sides are exact formulas in float64; only rounding separates them
    assert_close(backend, grads["z"], activation_vjp(oracle, name, z, g), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_forward_is_stable_for_huge_inputs(backend, name):
    """|z| up to 1e4 in float32: no overflow warning (warnings are errors here), no NaN or inf
    except where the function itself is unbounded (z itself)."""
    act = bp.get_activation(name)
    xp = backend.xp
    z_host = np.array([[-1e4, -88.0, -20.0, -1.0, 0.0, 1.0, 20.0, 88.0, 1e4]])
    z = backend.asarray(z_host, "float32")
    a = act.forward(xp, z)
    a_host = to_host(backend, a)
    assert a_host.dtype == np.float32
    assert np.all(np.isfinite(a_host)), a_host
    if name != "softmax":  # every activation but softmax has an elementwise derivative
        d = to_host(backend, act.derivative(xp, z if act.needs_input else None, a))
        assert np.all(np.isfinite(d)), d
    else:
        assert np.isclose(a_host.sum(), 1.0, rtol=1e-6)


def _sigmoid_derivative(backend):
    """The derivative backward uses, from the output a = s(z) alone, and z on the host."""
    xp, sig, z = backend.xp, bp.get_activation("sigmoid"), _sample()
    a = sig.forward(xp, backend.asarray(z, "float64"))
    return z, to_host(backend, sig.derivative(xp, None, a))


def test_sigmoid_derivative_matches_central_differences_of_the_forward(backend):
    """f'(z) from the output alone against (f(z+h) - f(z-h)) / 2h of the forward, h = 1e-5:
    measured within 6.6e-12 absolute (truncation h^2 f'''(z) / 6 and rounding eps / h)."""
    xp, sig = backend.xp, bp.get_activation("sigmoid")
    z, derivative = _sigmoid_derivative(backend)
    h = 1e-5

    def f(zz):
        return to_host(backend, sig.forward(xp, backend.asarray(zz, "float64")))

    np.testing.assert_allclose(derivative, (f(z + h) - f(z - h)) / (2 * h), rtol=0, atol=1e-11)
    assert 0 < derivative.min() and derivative.max() <= 0.25


def test_sigmoid_derivative_matches_autodiff(backend):
    """f'(z) against jax.grad of 1 / (1 + exp(-z)), elementwise: measured within 4.4 eps."""
    jax = pytest.importorskip("jax", reason="the autodiff oracle needs jax")
    jax.config.update("jax_enable_x64", True)
    z, derivative = _sigmoid_derivative(backend)
    grad = jax.vmap(jax.grad(lambda t: 1.0 / (1.0 + jax.numpy.exp(-t))))
    expected = np.asarray(grad(jax.numpy.asarray(z.ravel()))).reshape(z.shape)
    np.testing.assert_allclose(derivative, expected, rtol=8 * np.finfo(np.float64).eps)


def test_softmax_is_output_only():
    with pytest.raises(ValueError, match="only be used on the output layer"):
        bp.MLP([2, 3, 2], hidden="softmax")


def test_unknown_activation_names_the_allowed_ones():
    with pytest.raises(
        bp.UnknownNameError, match=r"unknown activation 'sigmod'.*did you mean 'sigmoid'"
    ):
        bp.MLP([2, 3, 1], hidden="sigmod")
