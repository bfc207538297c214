"""Optimizers: update rules checked by hand, one table of optimizers crossed with problems that
must reach a known minimum on every backend, gradient clipping, purity and hyperparameter errors."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import assert_close, backend_or_skip, eps, to_host

import backprop as bp
from backprop.training.optimizers import clip_by_global_norm

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


# -- Adam, AdamW, RMSProp against NumPy references ---------------------------------------------


def _adam_reference(w, grads, lr, beta_1, beta_2, epsilon, weight_decay=0.0):
    """Adam (AdamW when weight_decay > 0) written out with NumPy, step by step."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat, v_hat = m / (1 - beta_1**t), v / (1 - beta_2**t)
        w = w - lr * (m_hat / (np.sqrt(v_hat) + epsilon) + weight_decay * w)
    return w


def _rmsprop_reference(w, grads, lr, rho, epsilon):
    s = np.zeros_like(w)
    for g in grads:
        s = rho * s + (1 - rho) * g * g
        w = w - lr * g / (np.sqrt(s) + epsilon)
    return w


# Hyperparameters away from the defaults and from each other, so a swapped pair shows.
RULES = {
    "adam": (bp.Adam, _adam_reference, {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3}),
    "adamw": (
        bp.AdamW,
        _adam_reference,
        {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3, "weight_decay": 0.3},
    ),
    "rmsprop": (bp.RMSProp, _rmsprop_reference, {"rho": 0.7, "epsilon": 1e-3}),
}


@pytest.mark.parametrize("rule", RULES)
def test_update_rule_matches_numpy_reference(backend, rule):
    cls, reference, kwargs = RULES[rule]
    opt = cls(lr=0.05, **kwargs)
    rng = np.random.default_rng(1)
    w0 = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    grads = [{k: rng.normal(size=a.shape) for k, a in w0.items()} for _ in range(3)]
    params = {k: backend.asarray(a, "float64") for k, a in w0.items()}
    state = opt.init(params)
    for g in grads:
        g = {k: backend.asarray(a, "float64") for k, a in g.items()}
        params, state = opt.update(params, g, state)
    for k in w0:
        expected = reference(w0[k], [g[k] for g in grads], 0.05, **kwargs)
        assert_close(backend, params[k], expected, rtol=1e-12)


def test_adam_step_count_is_a_scalar_array_of_the_params_dtype(backend, dtype):
    opt = bp.Adam()
    params = {"w": backend.asarray(np.ones(3), dtype)}
    state = opt.init(params)
    params, state = opt.update(params, {"w": backend.asarray(np.ones(3), dtype)}, state)
    assert state["t"].shape == ()
    assert state["t"].dtype == params["w"].dtype
    assert to_host(backend, state["t"]) == 1


def test_adamw_decays_weights_by_exactly_one_minus_lr_wd(backend, dtype):
    """With zero gradients Adam's step is 0, so each step only multiplies by (1 - lr*wd)."""
    lr, wd, steps = 0.1, 0.5, 4
    opt = bp.AdamW(lr=lr, weight_decay=wd)
    w0 = np.array([1.0, -2.0, 3.5])
    params, zeros = {"w": backend.asarray(w0, dtype)}, {"w": backend.asarray(np.zeros(3), dtype)}
    state = opt.init(params)
    expected = w0.astype(dtype)
    for _ in range(steps):
        params, state = opt.update(params, zeros, state)
        expected = expected * (1 - lr * wd)
        assert_close(backend, params["w"], expected, rtol=0)  # same roundings as NumPy


# -- convergence: one table of optimizers crossed with problems ----------------------------------


@dataclasses.dataclass(frozen=True)
class Problem:
    """``gradient(backend, dtype)`` returns ``w -> dJ/dw``, computed with the backend's ops."""

    gradient: Callable
    start: tuple[float, ...]
    minimum: tuple[float, ...]
    atol: float


_W_STAR = (1.0, -1.0, 0.5)


def _quadratic(backend, dtype):
    """J = 0.5 * sum(c * (w - w*)**2): dJ/dw = c * (w - w*). Curvatures span 25x."""
    c = backend.asarray([20.0, 100.0, 500.0], dtype)
    w_star = backend.asarray(_W_STAR, dtype)
    return lambda w: c * (w - w_star)


def _rosenbrock(backend, dtype):
    """J = (1 - x)**2 + 100 * (y - x**2)**2, minimum at (1, 1) at the end of a curved valley.

    dJ/dx = -2 * (1 - x) - 400 * x * (y - x**2);  dJ/dy = 200 * (y - x**2).
    """

    def gradient(w):
        x, y = w[0:1], w[1:2]
        r = y - x * x
        return array_namespace(w).concat([-2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r])

    return gradient


# The tolerances are far above float32 rounding: they measure convergence, not precision.
# Rosenbrock's is optax's (alias_test.py): plain SGD and fixed-lr RMSProp only get that close
# in a few thousand steps, and this file has to stay fast on array_api_strict.
PROBLEMS = {
    "quadratic": Problem(_quadratic, start=(0.0, 0.0, 0.0), minimum=_W_STAR, atol=1e-3),
    "rosenbrock": Problem(_rosenbrock, start=(0.0, 0.0), minimum=(1.0, 1.0), atol=3e-2),
}

# name: (optimizer, steps allowed on each problem). One set of hyperparameters per optimizer for
# both problems; each budget is about 1.2x what float64 NumPy needs. Rosenbrock's Hessian at the
# minimum has eigenvalues 1001.6 and 0.4: plain SGD needs lr < 2/1001.6 and then crawls along the
# valley; fixed-lr RMSProp hovers at a distance that grows like lr**2 (6e-3 at lr=0.005).
CONVERGENCE = {
    "sgd": (bp.SGD(lr=0.0019), {"quadratic": 220, "rosenbrock": 4800}),
    "momentum": (bp.SGD(lr=0.0015, momentum=0.9), {"quadratic": 160, "rosenbrock": 560}),
    "nesterov": (
        bp.SGD(lr=0.001, momentum=0.9, nesterov=True),
        {"quadratic": 130, "rosenbrock": 870},
    ),
    "adam": (bp.Adam(lr=0.02), {"quadratic": 170, "rosenbrock": 280}),
    "adamw": (bp.AdamW(lr=0.02, weight_decay=0.0), {"quadratic": 170, "rosenbrock": 280}),
    "rmsprop": (bp.RMSProp(lr=0.005), {"quadratic": 290, "rosenbrock": 3500}),
}


def test_convergence_table_covers_every_registered_optimizer():
    assert {opt.name for opt, _ in CONVERGENCE.values()} == set(bp.OPTIMIZERS)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name", CONVERGENCE)
def test_reaches_known_minimum(backend, dtype, name, problem):
    opt, budget = CONVERGENCE[name]
    target = PROBLEMS[problem]
    gradient = target.gradient(backend, dtype)

    def step(params, state):
        return opt.update(params, {"w": gradient(params["w"])}, state)

    step = backend.compile(step)  # jax.jit: eager JAX would take seconds per case
    params = {"w": backend.asarray(np.array(target.start), dtype)}
    state = opt.init(params)
    for _ in range(budget[problem]):
        params, state = step(params, state)
    np.testing.assert_allclose(to_host(backend, params["w"]), target.minimum, atol=target.atol)


# -- gradient clipping ---------------------------------------------------------------------------


def _global_norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a)) for a in bp.tree_leaves(tree))))


def _assert_trees_equal(backend, actual, expected) -> None:
    """Bit for bit, leaf by leaf, matched by key (``tree_map`` fails on a structure mismatch)."""

    def equal(a, b):
        np.testing.assert_array_equal(to_host(backend, a), to_host(backend, b))

    bp.tree_map(equal, actual, expected)


def _sample_grads(backend, dtype, scale=1.0):
    rng = np.random.default_rng(2)
    host = {"W": scale * rng.normal(size=(3, 2)), "b": [scale * rng.normal(size=4)]}
    return host, bp.tree_map(lambda a: backend.asarray(a, dtype), host)


def test_clip_by_global_norm_scales_down_to_max_norm(backend, dtype):
    host, grads = _sample_grads(backend, dtype, scale=10.0)
    norm = _global_norm(host)
    clipped = clip_by_global_norm(grads, 1.5)
    assert _global_norm(bp.tree_map(lambda a: to_host(backend, a), clipped)) == pytest.approx(
        1.5, rel=16 * eps(dtype)
    )
    expected = bp.tree_map(lambda a: a * (1.5 / norm), host)
    bp.tree_map(lambda a, b: assert_close(backend, a, b, rtol=16 * eps(dtype)), clipped, expected)


def test_clip_by_global_norm_leaves_small_gradients_unchanged(backend, dtype):
    host, grads = _sample_grads(backend, dtype)
    clipped = clip_by_global_norm(grads, 2.0 * _global_norm(host))
    _assert_trees_equal(backend, clipped, grads)


def test_clip_by_global_norm_keeps_zero_gradients_finite(backend):
    zeros = {"w": backend.asarray(np.zeros(3), "float64")}
    assert_close(backend, clip_by_global_norm(zeros, 1.0)["w"], np.zeros(3), rtol=0)


@pytest.mark.parametrize("name", CONVERGENCE)
@pytest.mark.parametrize("scale", [10.0, 0.01], ids=["above", "below"])
def test_every_optimizer_clips_before_its_rule(backend, name, scale):
    """``clip_norm=c`` gives what the unclipped optimizer does on ``clip_by_global_norm(g, c)``."""
    opt = CONVERGENCE[name][0]
    clipping = dataclasses.replace(opt, clip_norm=1.0)
    _, grads = _sample_grads(backend, "float64", scale=scale)
    params = bp.tree_map(lambda g: 0.5 * g + 1.0, grads)
    got, got_state = clipping.update(params, grads, clipping.init(params))
    want, want_state = opt.update(params, clip_by_global_norm(grads, 1.0), opt.init(params))
    _assert_trees_equal(backend, (got, got_state), (want, want_state))


@pytest.mark.parametrize("name", CONVERGENCE)
def test_update_with_clipping_is_traced_once_by_jax_jit(name):
    """Step count, moments and clipping all stay on the device: three steps, one trace."""
    backend = backend_or_skip("jax")
    opt = dataclasses.replace(CONVERGENCE[name][0], clip_norm=1.0)
    traces = []

    def update(params, grads, state):
        traces.append(1)
        return opt.update(params, grads, state)

    jitted = backend.compile(update)
    _, grads = _sample_grads(backend, "float32", scale=10.0)
    params = bp.tree_map(lambda g: 0.5 * g, grads)
    eager_params, eager_state = params, opt.init(params)
    state = opt.init(params)
    for _ in range(3):
        params, state = jitted(params, grads, state)
        eager_params, eager_state = opt.update(eager_params, grads, eager_state)
    assert len(traces) == 1
    # Matched by key, not by leaf order: jax.jit hands dicts back with their keys sorted.
    bp.tree_map(
        lambda a, b: assert_close(backend, a, to_host(backend, b), rtol=64 * eps("float32")),
        (params, state),
        (eager_params, eager_state),
    )


# -- purity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip_norm", [None, 0.5])
@pytest.mark.parametrize("name", CONVERGENCE)
def test_update_leaves_its_inputs_unchanged(backend, name, clip_norm):
    opt = dataclasses.replace(CONVERGENCE[name][0], clip_norm=clip_norm)
    _, grads = _sample_grads(backend, "float64", scale=3.0)
    params = bp.tree_map(lambda g: 0.5 * g + 1.0, grads)
    state = opt.init(params)
    state = opt.update(params, grads, state)[1]  # a state that is not all zeros

    def snapshot(tree):  # copies: to_numpy may share memory with the array
        return [np.array(to_host(backend, a), copy=True) for a in bp.tree_leaves(tree)]

    before = snapshot((params, grads, state))
    opt.update(params, grads, state)
    for a, b in zip(before, snapshot((params, grads, state)), strict=True):
        np.testing.assert_array_equal(a, b)


# -- construction and errors ---------------------------------------------------------------------


def test_registry_builds_by_name():
    opt = bp.get_optimizer("sgd", lr=0.3, momentum=0.5)
    assert opt == bp.SGD(lr=0.3, momentum=0.5)
    assert bp.get_optimizer("adam", lr=0.01, clip_norm=1.0) == bp.Adam(0.01, clip_norm=1.0)
    assert bp.get_optimizer("adamw", weight_decay=0.1) == bp.AdamW(weight_decay=0.1)
    assert bp.get_optimizer("rmsprop", rho=0.5) == bp.RMSProp(rho=0.5)
    assert {"sgd", "adam", "adamw", "rmsprop"} <= set(bp.OPTIMIZERS)


def test_clip_norm_is_keyword_only_so_positional_hyperparameters_keep_their_meaning():
    assert bp.SGD(0.3, 0.5) == bp.SGD(lr=0.3, momentum=0.5)
    with pytest.raises(TypeError):
        bp.SGD(0.3, 0.5, False, 1.0)


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


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (bp.Adam, {"beta_1": 1.5}, "beta_1 must be a number in [0, 1), received 1.5"),
        (bp.Adam, {"beta_2": 1.0}, "beta_2 must be a number in [0, 1), received 1.0"),
        (bp.Adam, {"lr": 0}, "lr must be a finite number > 0, received 0"),
        (bp.Adam, {"epsilon": -1e-8}, "epsilon must be a finite number > 0, received -1e-08"),
        (bp.AdamW, {"beta_1": -0.1}, "beta_1 must be a number in [0, 1), received -0.1"),
        (
            bp.AdamW,
            {"weight_decay": -1.0},
            "weight_decay must be a finite number >= 0, received -1.0",
        ),
        (bp.RMSProp, {"rho": 1.0}, "rho must be a number in [0, 1), received 1.0"),
        (bp.RMSProp, {"lr": float("inf")}, "lr must be a finite number > 0, received inf"),
        (bp.SGD, {"clip_norm": 0.0}, "clip_norm must be a finite number > 0, received 0.0"),
        (bp.Adam, {"clip_norm": -1.0}, "clip_norm must be a finite number > 0, received -1.0"),
        (bp.RMSProp, {"clip_norm": "1"}, "clip_norm must be a finite number > 0, received '1'"),
    ],
)
def test_rejects_bad_hyperparameters(cls, kwargs, message):
    """The message starts with the class: "Adam: beta_1 must be ...", "AdamW: ..."."""
    with pytest.raises(ValueError, match=f"^{re.escape(f'{cls.__name__}: {message}')}$"):
        cls(**kwargs)


def test_unknown_optimizer_and_bad_keyword():
    with pytest.raises(bp.UnknownNameError, match=r"unknown optimizer 'sdg'.*did you mean 'sgd'"):
        bp.get_optimizer("sdg")
    with pytest.raises(TypeError, match="optimizer 'sgd'.*momentun"):
        bp.get_optimizer("sgd", momentun=0.9)


# -- Adam's two forms: where eps is added (epsilon_on) -------------------------------------------


def _adam_folded_reference(w, grads, lr, beta_1, beta_2, epsilon, weight_decay=0.0):
    """Adam with the bias corrections folded into the step size (Kingma & Ba section 2,
    scikit-learn's ``AdamOptimizer``), written out with NumPy, in scikit-learn's order."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        lr_t = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w = (1 - lr * weight_decay) * w - lr_t * m / (np.sqrt(v) + epsilon)
    return w


@pytest.mark.parametrize("cls", [bp.Adam, bp.AdamW])
@pytest.mark.parametrize("epsilon_on", ["vhat", "v"])
def test_adam_forms_match_their_numpy_references(backend, cls, epsilon_on):
    """eps = 1e-3 is large enough that the two forms differ in the third digit; each matches
    its own float64 reference (the default form: the same reference as the table above)."""
    kwargs = {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3}
    kwargs_w = {**kwargs, "weight_decay": 0.3} if cls is bp.AdamW else kwargs
    opt = cls(lr=0.05, **kwargs_w, epsilon_on=epsilon_on)
    rng = np.random.default_rng(2)
    w0, grads = rng.normal(size=(3, 2)), [1e-3 * rng.normal(size=(3, 2)) for _ in range(4)]
    params = {"W": backend.asarray(w0, "float64")}
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, {"W": backend.asarray(g, "float64")}, state)
    reference = _adam_folded_reference if epsilon_on == "v" else _adam_reference
    other = _adam_reference if epsilon_on == "v" else _adam_folded_reference
    assert_close(backend, params["W"], reference(w0, grads, 0.05, **kwargs_w), rtol=1e-12)
    gap = np.abs(to_host(backend, params["W"]) - other(w0, grads, 0.05, **kwargs_w)).max()
    assert gap > 1e-6  # the forms really differ here


def test_adam_folded_form_is_the_default_form_with_eps_over_sqrt_of_the_b2_correction():
    """One step from zero moments: folded eps == default eps / sqrt(1 - b2)."""
    import backends

    be = backends.get_backend("numpy")
    g = {"w": be.asarray(np.array([1e-6, -3e-5, 2e-3]), "float64")}
    w = {"w": be.asarray(np.zeros(3), "float64")}
    b2, eps = 0.999, 1e-6
    folded = bp.Adam(lr=0.1, beta_2=b2, epsilon=eps, epsilon_on="v")
    textbook = bp.Adam(lr=0.1, beta_2=b2, epsilon=eps / np.sqrt(1 - b2))
    a, _ = folded.update(w, g, folded.init(w))
    b, _ = textbook.update(w, g, textbook.init(w))
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-12)


def test_adam_folded_form_reproduces_sklearns_adam_optimizer():
    """The oracle: scikit-learn's own ``AdamOptimizer``, step for step, in float64."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    import backends

    be = backends.get_backend("numpy")
    rng = np.random.default_rng(3)
    w0 = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    theirs = [w.copy() for w in w0]
    oracle = optimizers.AdamOptimizer(theirs, 0.01, 0.8, 0.95, 1e-4)
    opt = bp.Adam(0.01, 0.8, 0.95, 1e-4, epsilon_on="v")
    ours = [be.asarray(w, "float64") for w in w0]
    state = opt.init(ours)
    for _ in range(5):
        grads = [rng.normal(size=w.shape) * 1e-3 for w in w0]
        oracle.update_params(theirs, grads)
        ours, state = opt.update(ours, [be.asarray(g, "float64") for g in grads], state)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)


def test_adam_epsilon_on_is_keyword_only_and_checked():
    assert bp.Adam().epsilon_on == "vhat"
    assert bp.AdamW(0.1, 0.9, 0.99, 1e-7, 0.5).weight_decay == 0.5  # positions unchanged
    assert bp.get_optimizer(**bp.Adam(epsilon_on="v").spec()) == bp.Adam(epsilon_on="v")
    with pytest.raises(ValueError, match=r"^Adam: epsilon_on must be one of \['vhat', 'v'\], "):
        bp.Adam(epsilon_on="sqrt")


# -- fit(opt_state=...): continuing an optimizer's state ------------------------------------------


@pytest.mark.parametrize(
    "optimizer",
    [bp.SGD(lr=0.05, momentum=0.9), bp.Adam(lr=0.01), bp.RMSProp(lr=0.01)],
    ids=["momentum", "adam", "rmsprop"],
)
def test_fit_continues_from_opt_state(backend, optimizer):
    """Two one-epoch fits handing on params and opt_state take exactly the steps of one
    two-epoch fit (no shuffling, so the batches are the same)."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(24, 3)), rng.integers(0, 2, 24)
    model = bp.MLP([3, 5, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    common = dict(
        optimizer=optimizer,
        backend=backend,
        dtype="float64",
        batch_size=8,
        shuffle=False,
        metric=None,
        verbose=0,
    )
    both = bp.fit(model, X, y, epochs=2, **common)
    first = bp.fit(model, X, y, epochs=1, **common)
    host_state = bp.tree_map(backend.to_numpy, first.opt_state)  # host arrays are moved back
    second = bp.fit(model, X, y, epochs=1, params=first.params, opt_state=host_state, **common)
    for a, b in zip(bp.tree_leaves(second.params), bp.tree_leaves(both.params), strict=True):
        assert_close(backend, a, to_host(backend, b), rtol=1e-13)


def test_fit_rejects_an_opt_state_that_does_not_fit():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)
    model = bp.MLP([3, 4, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    other = bp.MLP([3, 5, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    state = bp.Adam().init(other.init(seed=0, dtype="float64"))
    common = dict(epochs=1, metric=None, verbose=0)
    with pytest.raises(
        ValueError,
        match=r"opt_state\['m'\]\[0\]\['W'\] should be an array of "
        r"shape \(3, 4\), received shape \(3, 5\)",
    ):
        bp.fit(model, X, y, opt_state=state, **common)
    with pytest.raises(ValueError, match=r"opt_state should be a dict with keys \['velocity'\]"):
        bp.fit(model, X, y, optimizer=bp.SGD(momentum=0.9), opt_state={}, **common)
    with pytest.raises(ValueError, match="give opt_state or resume, not both"):
        bp.fit(model, X, y, opt_state=state, resume="last.npz", **common)
