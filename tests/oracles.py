"""Autodiff oracles, written independently of backprop's own formulas.

jax.grad and torch autograd differentiate straightforward forward definitions of the same
activations and losses; backprop's hand-derived gradients must match them in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

ORACLES = ["jax", "torch"]


def _jax():
    jax = pytest.importorskip("jax", reason="the jax oracle needs jax (pip install '.[jax]')")
    jax.config.update("jax_enable_x64", True)
    return jax


def _torch():
    return pytest.importorskip(
        "torch", reason="the torch oracle needs torch (pip install '.[torch]')"
    )


def jax_activations():
    jax = _jax()
    jnp, nn = jax.numpy, jax.nn
    return {
        "identity": lambda z: z,
        "sigmoid": nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": nn.relu,
        "leaky_relu": lambda z: nn.leaky_relu(z, negative_slope=0.01),
        "elu": nn.elu,
        "softplus": nn.softplus,
        "gelu": lambda z: nn.gelu(z, approximate=True),
        "exp": jnp.exp,
        "softmax": lambda z: nn.softmax(z, axis=-1),
    }


def torch_activations():
    torch = _torch()
    F = torch.nn.functional
    return {
        "identity": lambda z: z,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
        "elu": F.elu,
        "softplus": F.softplus,
        "gelu": lambda z: F.gelu(z, approximate="tanh"),
        "exp": torch.exp,
        "softmax": lambda z: torch.softmax(z, dim=-1),
    }


def activation_vjp(oracle: str, name: str, z: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dJ/dz for J = sum(g * f(z)), by the oracle's autodiff, float64."""
    if oracle == "jax":
        jax = _jax()
        f = jax_activations()[name]
        return np.asarray(jax.grad(lambda zz: (g * f(zz)).sum())(jax.numpy.asarray(z)))
    torch = _torch()
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    (torch.tensor(g) * torch_activations()[name](zt)).sum().backward()
    return zt.grad.numpy()


def _jax_loss(jnp, name: str, a, y):
    n = y.shape[0]
    if name == "mse":
        return 0.5 * jnp.mean((a - y) ** 2)
    if name == "binary_cross_entropy":
        return -jnp.sum(y * jnp.log(a) + (1 - y) * jnp.log(1 - a)) / n
    if name == "cross_entropy":
        return -jnp.sum(y * jnp.log(a)) / n
    if name == "poisson":  # half the deviance, with 0 log 0 = 0
        ylogy = jnp.where(y > 0, y * jnp.log(jnp.where(y > 0, y, 1.0)), 0.0)
        return jnp.sum(ylogy - y * jnp.log(a) - y + a) / n
    raise KeyError(name)


def network_grads(params, X, Y, hidden, output, loss, alpha=0.0):
    """(loss, grads) of the MLP by jax.grad; params: list of {"W","b"} NumPy float64 arrays."""
    jax = _jax()
    jnp = jax.numpy
    acts = jax_activations()

    def objective(ps):
        x = jnp.asarray(X)
        for i, p in enumerate(ps):
            f = acts[output] if i == len(ps) - 1 else acts[hidden[i]]
            x = f(x @ p["W"] + p["b"])
        penalty = sum(jnp.sum(p["W"] ** 2) for p in ps) * alpha / (2 * X.shape[0])
        return _jax_loss(jnp, loss, x, jnp.asarray(Y)) + penalty

    ps = [{k: jnp.asarray(v) for k, v in p.items()} for p in params]
    value, grads = jax.value_and_grad(objective)(ps)
    return float(value), [{k: np.asarray(v) for k, v in g.items()} for g in grads]


def jax_with_autodiff(hand, objective):
    """``jax.jit`` of ``(tree, *args) -> (hand(xp, tree, *args), (J, dJ/dtree))``, float64.

    ``hand`` is the code under test (a hand-derived backward), ``objective(xp, tree, *args)``
    the scalar J written with the same code's forward; both run on jax.numpy (``xp``) and are
    compiled together, one XLA compile for the code under test on the jax backend and for the
    jax.grad reference every other backend is compared with. This checks a backward against
    autodiff of the very function it claims to differentiate (the oracle for components the
    tables above do not know). Pass arrays moved with the jax backend (which turns on x64).
    """
    jax = _jax()
    import backends

    xp = backends.get_backend("jax").xp

    def program(tree, *args):
        reference = jax.value_and_grad(lambda t: objective(xp, t, *args))(tree)
        return hand(xp, tree, *args), reference

    # Little LLVM optimisation: these run a few times each, and compiling dominates the checks'
    # time (IEEE arithmetic either way, only the generated code's speed changes).
    try:
        return jax.jit(program, compiler_options={"xla_backend_optimization_level": 0})
    except TypeError:  # a jax without compiler_options
        return jax.jit(program)
