"""Whole-network loss_and_grad: every hidden activation x every output/loss pair, against central
finite differences and the jax.grad oracle, in float64, on every backend."""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from conftest import assert_close
from oracles import network_grads

import backprop as bp

HIDDEN = [n for n in bp.ACTIVATIONS.names() if bp.get_activation(n).hidden]
# Every (output activation, loss) pair the model accepts, from the registries: a loss's
# ``outputs`` names the output activations it takes (None: any); every registered activation
# can be the last layer's (softmax only there). 23 pairs: mse and huber with each of the 10
# activations, and the fused sigmoid / binary_cross_entropy, softmax / cross_entropy and
# exp / poisson.
HEADS = [
    (output, loss)
    for loss in bp.LOSSES.names()
    for output in bp.ACTIVATIONS.names()
    if bp.get_loss(loss).outputs is None or output in bp.get_loss(loss).outputs
]
# Every hidden activation is also crossed with these heads (one per output kind and both fused
# pairs); the other heads run with tanh hidden layers, which keeps the table's run time down.
CROSSED_HEADS = [
    ("identity", "mse"),
    ("tanh", "mse"),
    ("sigmoid", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "binary_cross_entropy"),
    ("softmax", "cross_entropy"),
]
CASES = [(h, o, loss) for h in HIDDEN for o, loss in CROSSED_HEADS] + [
    ("tanh", o, loss) for o, loss in HEADS if (o, loss) not in CROSSED_HEADS
]
SIZES = [3, 5, 4, 2]


def _data(loss: str, output: str, n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, SIZES[0]))
    if loss == "cross_entropy":
        Y = bp.one_hot(rng.integers(0, SIZES[-1], n), SIZES[-1])
    elif loss == "poisson":  # counts, zeros included (0 log 0)
        Y = rng.poisson(1.5, (n, SIZES[-1])).astype(float)
    elif loss == "binary_cross_entropy" or output in ("sigmoid", "softmax"):
        Y = rng.integers(0, 2, (n, SIZES[-1])).astype(float)
    else:
        Y = rng.normal(size=(n, SIZES[-1]))
    return X, Y


def _problem(backend, hidden, output, loss, alpha=0.0):
    model = bp.MLP(SIZES, hidden=hidden, output=output, loss=loss, alpha=alpha)
    params = model.init(seed=3, backend=backend, dtype="float64")
    X, Y = _data(loss, output)
    return model, params, X, Y


def test_the_cases_cover_every_accepted_output_loss_pair():
    accepted = set()
    for loss in bp.LOSSES.names():
        for output in bp.ACTIVATIONS.names():
            try:
                bp.MLP(SIZES, hidden="tanh", output=output, loss=loss)
            except ValueError:
                continue
            accepted.add((output, loss))
    assert accepted == set(HEADS) == {(o, loss) for _, o, loss in CASES}
    assert len(HEADS) == 23


@pytest.mark.parametrize(("hidden", "output", "loss"), CASES)
def test_network_gradient_matches_finite_differences(backend, hidden, output, loss):
    model, params, X, Y = _problem(backend, hidden, output, loss)
    args = backend.asarray(X, "float64"), backend.asarray(Y, "float64")
    result = bp.gradcheck(model.loss_and_grad, params, *args, loss=backend.compile(model.loss))
    assert result.ok, str(result)


def _jax_loss_with_huber(jnp, name, a, y):
    """The oracle's losses, and huber with its default delta = 1 written out: r^2/2 for
    |r| <= 1, |r| - 1/2 beyond, the mean over the N*K entries."""
    if name == "huber":
        r = jnp.abs(a - y)
        return jnp.mean(jnp.where(r <= 1.0, 0.5 * r**2, r - 0.5))
    return _ORACLE_LOSS(jnp, name, a, y)


_ORACLE_LOSS = oracles._jax_loss


@pytest.mark.parametrize(("hidden", "output", "loss"), CASES)
def test_network_gradient_matches_autodiff(backend, monkeypatch, hidden, output, loss):
    monkeypatch.setattr(oracles, "_jax_loss", _jax_loss_with_huber)
    model, params, X, Y = _problem(backend, hidden, output, loss, alpha=0.3)
    value, grads = model.loss_and_grad(
        params, backend.asarray(X, "float64"), backend.asarray(Y, "float64")
    )
    host_params = [{k: backend.to_numpy(v) for k, v in p.items()} for p in params]
    ref_value, ref_grads = network_grads(host_params, X, Y, [hidden] * 2, output, loss, 0.3)
    assert_close(backend, value, ref_value, rtol=1e-12)
    for ours, ref in zip(grads, ref_grads, strict=True):
        for key in ("W", "b"):
            # relative to the array's scale: entries near 0 would make elementwise rtol fragile
            scale = np.abs(ref[key]).max()
            assert_close(backend, ours[key], ref[key], rtol=1e-9, atol=1e-12 * max(scale, 1.0))


def test_mixed_hidden_activations_and_l2(backend):
    """One activation per hidden layer, and the L2 penalty alpha/(2N) * sum(W**2)."""
    model = bp.MLP(
        [4, 6, 5, 3, 3],
        hidden=["gelu", "elu", "sigmoid"],
        output="softmax",
        loss="cross_entropy",
        alpha=0.5,
    )
    params = model.init(seed=1, backend=backend, dtype="float64")
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(7, 4)), bp.one_hot(rng.integers(0, 3, 7), 3)
    args = backend.asarray(X, "float64"), backend.asarray(Y, "float64")
    result = bp.gradcheck(model.loss_and_grad, params, *args, loss=backend.compile(model.loss))
    assert result.ok, str(result)
    host = [{k: backend.to_numpy(v) for k, v in p.items()} for p in params]
    ref_value, _ = network_grads(
        host, X, Y, ["gelu", "elu", "sigmoid"], "softmax", "cross_entropy", 0.5
    )
    assert_close(backend, model.loss(params, *args), ref_value, rtol=1e-12)


def test_gradcheck_catches_a_wrong_gradient(backend):
    """The checker itself can fail: a gradient off by 1% is reported."""
    model, params, X, Y = _problem(backend, "tanh", "identity", "mse")

    def wrong(p, x, y):
        value, grads = model.loss_and_grad(p, x, y)
        grads[0]["W"] = grads[0]["W"] * 1.01
        return value, grads

    args = backend.asarray(X, "float64"), backend.asarray(Y, "float64")
    result = bp.gradcheck(wrong, params, *args)
    assert not result.ok
    assert result.errors["[0].W"] > 1e-3 and result.errors["[1].W"] < 1e-7


def test_gradcheck_refuses_float32(backend):
    model, _, X, Y = _problem(backend, "tanh", "identity", "mse")
    params = model.init(seed=0, backend=backend, dtype="float32")
    with pytest.raises(TypeError, match="float64"):
        bp.gradcheck(model.loss_and_grad, params, backend.asarray(X), backend.asarray(Y))


@pytest.mark.parametrize(
    ("output", "loss"),
    [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"), ("exp", "poisson")],
)
def test_fused_delta_equals_chain_rule(backend, output, loss):
    """(a - y)/N is exactly f'(z) * dJ/da for the fused pairs: the derivative cancels."""
    xp = backend.xp
    act, lossf = bp.get_activation(output), bp.get_loss(loss)
    rng = np.random.default_rng(0)
    z = backend.asarray(rng.normal(size=(4, 3)), "float64")
    y_host = {
        "cross_entropy": bp.one_hot(rng.integers(0, 3, 4), 3),
        "poisson": rng.poisson(1.5, (4, 3)).astype(float),
    }.get(loss, rng.integers(0, 2, (4, 3)).astype(float))
    y = backend.asarray(y_host, "float64")
    a = act.forward(xp, z)
    chain = act.vjp(xp, z, a, lossf.grad(xp, a, y))
    assert_close(
        backend, lossf.fused_delta(xp, a, y), backend.to_numpy(chain), rtol=1e-12, atol=1e-15
    )
    assert_close(
        backend,
        lossf.value_from_logits(xp, z, y),
        backend.to_numpy(lossf.value(xp, a, y)),
        rtol=1e-12,
    )


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "cross_entropy"])
def test_fused_loss_is_stable_for_saturated_outputs(backend, loss):
    """Logits of +-1e4 in float32: finite loss and delta, no warning (warnings are errors)."""
    output = "sigmoid" if loss == "binary_cross_entropy" else "softmax"
    model = bp.MLP([2, 2], output=output, loss=loss)
    params = [{"W": backend.asarray([[1e4, -1e4], [-1e4, 1e4]]), "b": backend.asarray([0.0, 0.0])}]
    X = backend.asarray([[1.0, 0.0], [0.0, 1.0]])
    Y = backend.asarray([[0.0, 1.0], [0.0, 1.0]])  # row 0 confidently wrong, row 1 right
    value, grads = model.loss_and_grad(params, X, Y)
    v = float(value)
    assert np.isfinite(v) and v > 1e3  # log(1 + e^1e4) ~ 1e4 for the wrong row
    for g in grads:
        assert np.all(np.isfinite(backend.to_numpy(g["W"])))


def test_poisson_value_is_scikit_learns_half_deviance(backend):
    """J = mean over rows of sum(y log(y/a) - y + a), scikit-learn's poisson_loss (constant
    y log y - y included, 0 log 0 = 0), so loss_curve_ agrees with scikit-learn's."""
    xp, loss = backend.xp, bp.get_loss("poisson")
    y_host = np.array([[0.0, 2.0], [3.0, 1.0], [1.0, 0.0]])
    a_host = np.array([[0.5, 1.5], [2.0, 1.0], [4.0, 0.25]])
    terms = np.where(y_host > 0, y_host * np.log(np.where(y_host > 0, y_host / a_host, 1.0)), 0.0)
    expected = (terms - y_host + a_host).sum() / 3
    y, a = backend.asarray(y_host, "float64"), backend.asarray(a_host, "float64")
    assert_close(backend, loss.value(xp, a, y), expected, rtol=1e-14)
    z = backend.asarray(np.log(a_host), "float64")
    assert_close(backend, loss.value_from_logits(xp, z, y), expected, rtol=1e-14)


def test_poisson_from_logits_is_finite_where_the_output_underflows(backend):
    """z = -800 in float64: exp(z) underflows to 0, where log(a) would give -inf and J inf;
    from the logits J = (800*y + ...)/N, finite, and the fused delta (a - y)/N finite."""
    model = bp.MLP([1, 1], output="exp", loss="poisson")
    params = [{"W": backend.asarray([[1.0]], "float64"), "b": backend.asarray([0.0], "float64")}]
    X = backend.asarray([[-800.0], [2.0]], "float64")
    Y = backend.asarray([[1.0], [0.0]], "float64")
    value, grads = model.loss_and_grad(params, X, Y)
    assert np.isfinite(float(value)) and float(value) > 400  # 800 / 2 from the first row
    assert np.all(np.isfinite(backend.to_numpy(grads[0]["b"])))
