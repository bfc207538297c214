"""`bp.Ensemble`: K models stacked on a leading axis, one batched program, member k == alone.

Proven here:

- on every backend and dtype, member k's loss and gradient from a compiled (``backend.compile``:
  jax.jit on JAX) `Ensemble.loss_and_grad` equal `model.loss_and_grad` of member k alone (its
  own init seed, dropout masks and rows): float64 to 1e-12 relative, float32 within 16 ulps of
  each array's scale (or, where the single float32 model is itself further from float64, 4x
  its own rounding error), for softmax + cross-entropy, sigmoid + BCE, an MSE regressor, a
  huber head over Conv1D/GlobalAveragePool1D, an EmbeddingBag network and one network holding
  every other shipped layer kind (Conv1D, Residual, LayerNorm, Dropout with per-member masks,
  Flatten, Dense), and two user losses (one with only ``value``/``grad``, one subclassing
  mse and overriding ``value``); about half with X shared (N, ...), half with per-member rows
  (K, N, ...);
- X shared equals X per member holding the same rows; predictions per member and their mean;
- per-member L2 alpha, and per-member learning rates, weight decay and clip_norm in SGD
  (momentum, Nesterov), Adam (both epsilon forms), AdamW and RMSProp: a few steps of the
  ensemble equal each member's steps alone with its own values (NumPy: every optimizer, lr as
  a field list and as a (K,) array; every backend: one compiled sweep step of each kind);
- central differences (`bp.gradcheck`, float64) on the stacked parameters;
- the member==alone check is not vacuous: a planted `sum_to` that sums a weight gradient over
  the member axis fails it;
- spec/key carry K and the model's full structure; the errors name what is wrong.

The single-model reference is computed once, on NumPy, and shared by every backend: the rest
of the suite (test_layers, test_gradients) already proves `model.loss_and_grad` agrees across
backends, and this keeps the module fast (JAX compiles every new op shape).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import assert_close, backend_or_skip, eps, to_host

import backprop as bp
from backprop.nn import layers as L

K, N = 3, 5
SEED = 11
# Measured against the NumPy reference (each array's largest entry as the scale): float32 up
# to 9 ulps (torch/JAX; 0 to 3 on NumPy), float64 up to 19 eps (4e-15): batched and single
# matmuls differ only in summation order.
ULPS32 = 16.0
TOL64 = 1e-12


# -- the cases ------------------------------------------------------------------------------------


class HalfSSE(bp.Loss):
    """A user's loss with its own ``value`` and ``grad`` only (no batched ``_value``):
    `Loss.values` evaluates it member by member."""

    def value(self, xp, a, y, w=None):
        d = a - y
        return 0.25 * xp.sum(d * d) / a.shape[-2]

    def grad(self, xp, a, y, w=None):
        return 0.5 * (a - y) / a.shape[-2]


class DoubledMSE(bp.losses.MeanSquaredError):
    """A subclass of a shipped loss overriding ``value`` (and ``grad``): the ensemble must use
    its ``value``, not the parent's batched ``_values`` (off by 2x)."""

    def value(self, xp, a, y, w=None):
        return 2.0 * super().value(xp, a, y, w)

    def grad(self, xp, a, y, w=None):
        return 2.0 * super().grad(xp, a, y, w)


def _every_layer():
    return bp.Sequential(
        [
            L.Conv1D(3, 3, padding="same", activation="tanh"),
            L.Residual([L.LayerNorm(), L.Conv1D(3, 2, padding="same"), L.Dropout(0.5)]),
            L.Flatten(),
            L.Dense(4, "relu"),
            L.Residual([L.LayerNorm(), L.Dense(4, "tanh"), L.Dropout(0.25)]),
            L.Dense(3, "softmax"),
        ],
        loss="cross_entropy",
        input_shape=(6, 2),
        alpha=0.05,
    )


MODELS = {
    "softmax_ce": lambda: bp.MLP(
        [4, 6, 3], hidden="tanh", output="softmax", loss="cross_entropy", alpha=0.1
    ),
    "sigmoid_bce": lambda: bp.MLP(
        [4, 6, 2], hidden="relu", output="sigmoid", loss="binary_cross_entropy"
    ),
    "mse": lambda: bp.MLP([4, 6, 2], hidden="sigmoid", output="identity", loss="mse", alpha=0.01),
    "conv_pool_huber": lambda: bp.Sequential(
        [L.Conv1D(2, 2), L.GlobalAveragePool1D(), L.Activation("tanh"), L.Dense(2)],
        loss={"name": "huber", "delta": 0.3},
        input_shape=(6, 2),
    ),
    "embedding": lambda: bp.Sequential(
        [L.EmbeddingBag(7, 3), L.LayerNorm(), L.Dense(3, "softmax")],
        loss="cross_entropy",
        input_shape=(4,),
    ),
    "every_layer": _every_layer,
    "custom_loss": lambda: bp.MLP([4, 6, 2], hidden="tanh", output="identity", loss=HalfSSE()),
    "loss_subclass": lambda: bp.MLP([4, 6, 2], output="identity", loss=DoubledMSE()),
}
PER_MEMBER_ROWS = {"sigmoid_bce", "mse", "embedding", "every_layer"}  # X (K, N, ...), Y (K, N, .)


def _data(name, rows=()):
    """Host X, Y (rows (*rows, N)) and dropout masks (K, N, *shape) for the model."""
    model, rng = MODELS[name](), np.random.default_rng(0)
    shape = (*rows, N, *model.input_shape)
    if model.input_kind == "int":
        X = rng.integers(-1, 7, size=shape).astype(np.int32)
    else:
        X = rng.normal(size=shape)
    n_out = model.output_shape[0]
    if name == "sigmoid_bce":
        Y = rng.integers(0, 2, (*rows, N, n_out)).astype(float)
    elif model.task == "classification":
        Y = np.eye(n_out)[rng.integers(0, n_out, (*rows, N))]
    else:
        Y = rng.normal(size=(*rows, N, n_out))
    masks = [
        (rng.random((K, N, *s)) >= rate) / (1.0 - rate)
        for rate, s in zip(model.dropout_rates, model.dropout_shapes, strict=True)
    ]
    return X, Y, masks


def _put(backend, x, dtype):
    return backend.asarray(x, "int32" if x.dtype.kind == "i" else dtype)


def _leaves(backend, tree):
    """The leaves as host float64, dict keys sorted (``jax.jit`` returns dicts sorted)."""
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(backend, tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in _leaves(backend, t)]
    return [np.asarray(to_host(backend, tree), dtype=np.float64)]


def _errors(got, expected):
    """Per leaf: max |got - expected| relative to the largest |expected| entry."""
    out = []
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape, (g.shape, e.shape)
        out.append(float(np.max(np.abs(g - e))) / max(float(np.max(np.abs(e))), 1e-300))
    return np.array(out)


@functools.cache
def _reference(name, dtype, rows, alpha=None):
    """Each member alone on NumPy: ``[(loss, grad leaves)]`` for k = 0..K-1 (its seed
    SEED + k, its masks, its rows when ``rows``)."""
    be = backend_or_skip("numpy")
    model = MODELS[name]() if alpha is None else _with_alpha(name, alpha)
    X, Y, masks = _data(name, (K,) if rows else ())
    out = []
    for k in range(K):
        p = model.init(seed=SEED + k, backend=be, dtype=dtype)
        xk, yk = (X[k], Y[k]) if rows else (X, Y)
        mk = [be.asarray(m[k], dtype) for m in masks] or None
        loss, grads = model.loss_and_grad(p, _put(be, xk, dtype), be.asarray(yk, dtype), masks=mk)
        out.append((float(loss), _leaves(be, grads)))
    return out


def _with_alpha(name, alpha):
    model = MODELS[name]()
    return bp.Sequential(model.layers, model.loss_function, model.input_shape, alpha)


def _tolerances(name, dtype, rows, alpha=None):
    """Per member, per leaf: the accepted relative difference (module docstring)."""
    if dtype == "float64":
        return [np.full(len(g), TOL64) for _, g in _reference(name, dtype, rows, alpha)]
    exact = _reference(name, "float64", rows, alpha)
    single = _reference(name, "float32", rows, alpha)
    floor = ULPS32 * eps("float32")
    return [
        np.maximum(floor, 4.0 * _errors(g32, g64))
        for (_, g32), (_, g64) in zip(single, exact, strict=True)
    ]


def _check_members(backend, dtype, name, losses, grads, ens, rows, alpha=None):
    """Every member's loss and gradient against `_reference`; returns the worst ratio of the
    difference to its tolerance (<= 1 passes)."""
    assert tuple(losses.shape) == (K,)
    host_losses = to_host(backend, losses)
    tols = _tolerances(name, dtype, rows, alpha)
    worst = 0.0
    for k, (loss, g) in enumerate(_reference(name, dtype, rows, alpha)):
        got = _leaves(backend, ens.member(grads, k))
        worst = max(worst, float(np.max(_errors(got, g) / tols[k])))
        floor = TOL64 if dtype == "float64" else ULPS32 * eps(dtype)
        worst = max(worst, abs(float(host_losses[k]) - loss) / abs(loss) / floor)
    return worst


def _ensemble_grads(backend, dtype, name, rows, alpha=None):
    model = MODELS[name]()
    X, Y, masks = _data(name, (K,) if rows else ())
    ens = bp.Ensemble(model, K)
    params = ens.init(seed=SEED, backend=backend, dtype=dtype)
    dev_masks = [backend.asarray(m, dtype) for m in masks] or None
    fn = backend.compile(lambda p, x, y, m: ens.loss_and_grad(p, x, y, masks=m, alpha=alpha))
    losses, grads = fn(params, _put(backend, X, dtype), backend.asarray(Y, dtype), dev_masks)
    return ens, losses, grads


# -- member k == alone ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_member_equals_alone(backend, dtype, name):
    rows = name in PER_MEMBER_ROWS
    ens, losses, grads = _ensemble_grads(backend, dtype, name, rows)
    assert _check_members(backend, dtype, name, losses, grads, ens, rows) <= 1.0


def test_per_member_alpha_equals_each_alpha_alone(backend, dtype):
    alphas = (0.0, 0.1, 0.7)
    ens, losses, grads = _ensemble_grads(backend, dtype, "softmax_ce", False, list(alphas))
    worst = 0.0
    for k, a in enumerate(alphas):  # member k alone with alpha_k: the reference's member k
        ref = _reference("softmax_ce", dtype, False, a)[k]
        tol = _tolerances("softmax_ce", dtype, False, a)[k]
        worst = max(
            worst, float(np.max(_errors(_leaves(backend, ens.member(grads, k)), ref[1]) / tol))
        )
        floor = TOL64 if dtype == "float64" else ULPS32 * eps(dtype)
        worst = max(worst, abs(float(to_host(backend, losses)[k]) - ref[0]) / ref[0] / floor)
    assert worst <= 1.0


@pytest.mark.parametrize("name", ["softmax_ce", "embedding", "conv_pool_huber"])
def test_shared_x_equals_repeated_per_member_x(backend, name):
    """Also: predictions per member equal each member's own, and their mean."""
    model = MODELS[name]()
    X, Y, _ = _data(name)
    ens = bp.Ensemble(model, K)
    params = ens.init(seed=3, backend=backend, dtype="float64")
    xs, ys = _put(backend, X, "float64"), backend.asarray(Y, "float64")
    xk = _put(backend, np.stack([X] * K), "float64")
    yk = backend.asarray(np.stack([Y] * K), "float64")

    def run(p, x1, y1, x2, y2):
        return ens.loss_and_grad(p, x1, y1), ens.loss_and_grad(p, x2, y2), ens.predict(p, x1)

    shared, per_member, a = backend.compile(run)(params, xs, ys, xk, yk)
    assert np.max(_errors(_leaves(backend, per_member), _leaves(backend, shared))) <= 1e-14
    assert tuple(a.shape) == (K, N, model.output_shape[0])
    if backend.name == "numpy":  # the same code on every backend; eager JAX would compile a lot
        host = _reference_predictions(name)
        np.testing.assert_allclose(to_host(backend, a), host, rtol=1e-13, atol=1e-15)
        assert_close(backend, ens.predict_mean(params, xs), host.mean(axis=0), rtol=1e-14)


def _reference_predictions(name):
    be = backend_or_skip("numpy")
    model, (X, _, _) = MODELS[name](), _data(name)
    x = _put(be, X, "float64")
    return np.stack(
        [model.predict(model.init(seed=3 + k, backend=be, dtype="float64"), x) for k in range(K)]
    )


# -- optimizers: per-member hyperparameters -------------------------------------------------------

LRS = (0.05, 0.1, 0.3)
DECAYS = (0.0, 0.05, 0.2)
OPTIMIZERS = {
    "sgd": lambda lr, wd: bp.SGD(lr=lr),
    "sgd_nesterov_clip": lambda lr, wd: bp.SGD(lr=lr, momentum=0.9, nesterov=True, clip_norm=0.5),
    "adam": lambda lr, wd: bp.Adam(lr=lr),
    "adam_v_clip": lambda lr, wd: bp.Adam(lr=lr, epsilon_on="v", clip_norm=0.3),
    "adamw_decay": lambda lr, wd: bp.AdamW(lr=lr, weight_decay=wd),
    "rmsprop": lambda lr, wd: bp.RMSProp(lr=lr),
}
STEPS = 3


def _optimizer_data(backend, dtype):
    X, Y, _ = _data("softmax_ce")
    return backend.asarray(X, dtype), backend.asarray(Y, dtype)


@functools.cache
def _trained_alone(opt_name, dtype, steps=STEPS):
    """Member k trained alone on NumPy, ``steps`` steps with lr_k (and weight decay_k)."""
    be = backend_or_skip("numpy")
    model, (xs, ys) = MODELS["softmax_ce"](), _optimizer_data(be, dtype)
    out = []
    for k in range(K):
        opt = OPTIMIZERS[opt_name](LRS[k], DECAYS[k])
        p = model.init(seed=SEED + k, backend=be, dtype=dtype)
        state = opt.init(p)
        for _ in range(steps):
            _, grads = model.loss_and_grad(p, xs, ys)
            p, state = opt.update(p, grads, state)
        out.append(_leaves(be, p))
    return out


def _sweep(backend, dtype, opt_names, lr_as, steps=STEPS):
    """The ensemble trained ``steps`` steps with each optimizer, per-member values given as field
    lists (``lr_as="field"``) or lr as a (K,) array passed to update; one compiled function."""
    ens = bp.Ensemble(MODELS["softmax_ce"](), K)
    opts = [OPTIMIZERS[n](LRS if lr_as == "field" else 1.0, DECAYS) for n in opt_names]
    lrs = None if lr_as == "field" else backend.asarray(np.array(LRS), dtype)

    def train(params, x, y, lrs):
        out = []
        for opt in opts:
            p, state = params, opt.init(params)
            for _ in range(steps):
                _, grads = ens.loss_and_grad(p, x, y)
                p, state = opt.update(p, grads, state, lrs, members=K)
            out.append(p)
        return out

    params = ens.init(seed=SEED, backend=backend, dtype=dtype)
    trained = backend.compile(train)(params, *_optimizer_data(backend, dtype), lrs)
    worst = {}
    for name, p in zip(opt_names, trained, strict=True):
        diffs = [
            float(np.max(_errors(_leaves(backend, ens.member(p, k)), ref)))
            for k, ref in enumerate(_trained_alone(name, dtype, steps))
        ]
        worst[name] = max(diffs)
    return worst


def _step_tolerance(dtype):
    # float32: three steps compound the gradient's rounding, and Adam's m/sqrt(v) amplifies it
    # where an entry is tiny (measured: up to 29 ulps of the scale on JAX, 0 on NumPy).
    return TOL64 if dtype == "float64" else 64 * eps(dtype)


@pytest.mark.parametrize("lr_as", ["field", "array"])
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_per_member_hyperparameters_equal_each_member_alone(dt, lr_as):
    """A sweep in one program: member k after STEPS steps equals member k trained alone with
    lr_k (and AdamW's weight_decay_k); clip_norm clips each member on its own. Every
    optimizer on NumPy; the other backends run `test_sweep_step_compiled_on_every_backend`."""
    worst = _sweep(backend_or_skip("numpy"), dt, list(OPTIMIZERS), lr_as)
    assert max(worst.values()) <= _step_tolerance(dt), worst


def test_sweep_step_compiled_on_every_backend(backend, dtype):
    """Two compiled steps (one jit program on JAX: its compile time grows with the steps)."""
    names = ["sgd_nesterov_clip", "adam_v_clip", "adamw_decay"]
    worst = _sweep(backend, dtype, names, "array", steps=2)
    assert max(worst.values()) <= _step_tolerance(dtype), worst


def test_clip_norm_per_member_differs_from_one_global_norm():
    """Clipping per member is not clipping the stack as one vector (the planted mistake)."""
    be = backend_or_skip("numpy")
    g = [{"W": be.asarray(np.array([[[3.0, 4.0]], [[0.3, 0.4]]]), "float64")}]
    per = bp.optimizers.clip_by_global_norm(g, 1.0, members=2)[0]["W"]
    np.testing.assert_allclose(per, [[[0.6, 0.8]], [[0.3, 0.4]]], rtol=1e-15)
    one = bp.optimizers.clip_by_global_norm(g, 1.0)[0]["W"]
    assert not np.allclose(one, per)


# -- gradient check and the planted bug ----------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax_ce", "every_layer", "embedding"])
def test_gradcheck_on_stacked_params(name):
    be = backend_or_skip("numpy")
    model = MODELS[name]()
    X, Y, masks = _data(name)
    ens = bp.Ensemble(model, K)
    params = bp.nn.gradcheck.offset_biases(ens.init(seed=SEED, backend=be, dtype="float64"))
    dev_masks = [be.asarray(m, "float64") for m in masks] or None

    def total(p, x, y):  # J = sum_k J_k: its gradient is every member's own gradient
        losses, grads = ens.loss_and_grad(p, x, y, masks=dev_masks)
        return float(np.sum(losses)), grads

    result = bp.gradcheck(total, params, _put(be, X, "float64"), be.asarray(Y, "float64"))
    assert result.ok, str(result)


def test_a_gradient_summed_over_members_fails_member_equals_alone(monkeypatch):
    """Not vacuous: a `sum_to` that also sums a weight's gradient over the member axis (and
    broadcasts it back, so every shape still fits) makes member k's gradient the sum of all
    members' gradients, which the member==alone check catches by O(1)."""
    be = backend_or_skip("numpy")
    from backprop.nn.layers import _base, dense

    def summed_over_members(xp, g, shape):
        g = _base.sum_to(xp, g, shape)
        if len(shape) == 3:  # stacked W (K, n_in, units)
            g = xp.broadcast_to(xp.sum(g, axis=0, keepdims=True), shape)
        return g

    def worst():
        ens, losses, grads = _ensemble_grads(be, "float64", "softmax_ce", False)
        return _check_members(be, "float64", "softmax_ce", losses, grads, ens, False)

    assert worst() <= 1.0
    monkeypatch.setattr(dense, "sum_to", summed_over_members)
    assert worst() > 1e10


# -- stacking, description, errors ---------------------------------------------------------------


def test_init_stack_member_unstack(backend):
    model = _every_layer()
    ens = bp.Ensemble(model, K)
    params = ens.init(seed=5, backend=backend, dtype="float64", seeds=[9, 2, 4])
    assert params[0]["W"].shape == (K, 3, 2, 3) and params[0]["b"].shape == (K, 1, 1, 3)
    assert params[1]["block"][0]["gamma"].shape == (K, 1, 1, 3)
    assert params[3]["W"].shape == (K, 18, 4) and params[3]["b"].shape == (K, 1, 4)
    members = [model.init(seed=s, backend=backend, dtype="float64") for s in (9, 2, 4)]

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    for k, (got, want) in enumerate(zip(ens.unstack(params), members, strict=True)):
        assert same(_leaves(backend, got), _leaves(backend, want)), k
        assert same(_leaves(backend, ens.member(params, k)), _leaves(backend, want)), k
    assert same(_leaves(backend, ens.stack(members)), _leaves(backend, params))
    emb = bp.Ensemble(MODELS["embedding"](), 2).init(backend=backend)
    assert emb[0]["E"].shape == (2, 7, 3)


def test_spec_and_key_carry_k_and_the_whole_model():
    ens = bp.Ensemble(MODELS["mse"](), 4)
    assert ens.spec() == {"type": "ensemble", "members": 4, "model": ens.model.spec()}
    assert ens.key() == bp.Ensemble(MODELS["mse"](), 4).key()
    assert ens.key() != bp.Ensemble(MODELS["mse"](), 3).key()
    other = bp.MLP([4, 6, 2], hidden="sigmoid", output="identity", loss="mse", alpha=0.02)
    assert ens.key() != bp.Ensemble(other, 4).key()  # same names, another alpha
    assert hash(ens.key())


def test_errors_name_the_problem():
    be = backend_or_skip("numpy")
    model = MODELS["softmax_ce"]()
    ens = bp.Ensemble(model, K)
    params = ens.init(backend=be, dtype="float64")
    X, Y, _ = _data("softmax_ce")
    with pytest.raises(ValueError, match=r"X must have shape \(N, 4\), shared .* or \(3, N, 4\)"):
        ens.loss_and_grad(params, np.stack([X] * 2), Y)
    with pytest.raises(ValueError, match="expects W \\(3, 4, 6\\), b \\(3, 1, 6\\).*Ensemble.init"):
        ens.loss_and_grad(model.init(backend=be, dtype="float64"), X, Y)
    with pytest.raises(ValueError, match="params\\[0\\] has W .*pass the params Ensemble.init"):
        bp.Ensemble(model, 2).predict(params, X)
    with pytest.raises(ValueError, match="alpha must be a number >= 0 or a list of 3"):
        ens.loss(params, X, Y, alpha=[0.1, 0.2])
    with pytest.raises(ValueError, match="k, the number of members, an int >= 1"):
        bp.Ensemble(model, 0)
    with pytest.raises(ValueError, match="no parameters"):
        bp.Ensemble(bp.Sequential([L.Activation("tanh")], input_shape=(2,)), 2)


def test_optimizer_errors_name_the_problem():
    be = backend_or_skip("numpy")
    model = MODELS["softmax_ce"]()
    ens = bp.Ensemble(model, K)
    params = ens.init(backend=be, dtype="float64")
    grads = bp.tree_map(np.zeros_like, params)
    one = model.init(backend=be, dtype="float64")
    with pytest.raises(ValueError, match=r"lr holds 3 values.*update\(\.\.\., members=3\)"):
        bp.SGD(lr=[0.1, 0.2, 0.3]).update(one, bp.tree_map(np.zeros_like, one), {})
    with pytest.raises(ValueError, match="lr holds 2 values but the ensemble has 3 members"):
        bp.SGD(lr=[0.1, 0.2]).update(params, grads, {}, members=K)
    with pytest.raises(ValueError, match="needs every parameter stacked on a leading axis of 3"):
        bp.SGD().update(one, bp.tree_map(np.zeros_like, one), {}, members=K)
    with pytest.raises(ValueError, match="momentum must be one number.*only for lr"):
        bp.SGD(momentum=[0.9, 0.5])
    with pytest.raises(ValueError, match=r"lr\[1\] must be a finite number > 0"):
        bp.Adam(lr=[0.1, -1.0])
    with pytest.raises(ValueError, match="RMSProp: rho must be one number"):
        bp.RMSProp(rho=[0.9, 0.8, 0.7])


def test_a_layer_that_does_not_stack_is_refused_by_name():
    import dataclasses

    @dataclasses.dataclass(frozen=True, repr=False)
    class Scale(L.Layer):
        def init(self, input_shape, rng):
            return {"s": np.ones(input_shape)}, tuple(input_shape)

    model = bp.Sequential([L.Dense(3), Scale()], input_shape=(2,))
    with pytest.raises(TypeError, match=r"layer 1: layer .*Scale .*stackable = True"):
        bp.Ensemble(model, 2)
