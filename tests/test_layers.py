"""Every registered layer, activation and loss: hand-written backward against finite differences
and against jax.grad of its own forward, float64, on every backend.

Proven here, parametrized from the registries (a newly registered component is checked without
editing this file):

- every layer in `backprop.nn.layers.LAYERS` gives `examples()`; for each example ``init``,
  ``output_shape`` and ``forward`` agree on the output shape, ``init`` depends on its generator
  only, and ``spec()`` survives JSON and `build_layer` unchanged;
- for each example, at inputs (N, *input_shape) and (2, N, *input_shape) (parameters shared over
  the leading axis), ``backward(dy=R)`` equals central finite differences of
  J(params, x) = sum(forward(x) * R) for every parameter and for x (integer-input layers: token
  ids in [-1, vocab) with -1 padding, parameter gradients only), ``backward(need_dx=False)``
  gives the same parameter gradients, and everything equals jax.grad of the same J written with
  the layer's forward on jax.numpy (1e-12 relative). Layers holding dropout run with fixed host
  masks (`Train`), the same in forward, finite differences and jax.grad;
- every activation in `backprop.ACTIVATIONS`, hidden or output-only, plus hyperparameter
  variants, inside a small `Sequential` (a Dense layer's activation, its signal coming back
  through the next layer, and an `Activation` layer at the output), and every loss in
  `backprop.LOSSES` (huber also with delta 0.3) as the head of a small network, at inputs
  (2, N, ...) with the L2 penalty on: gradients equal finite differences and jax.grad of the
  model's own loss (fused deltas included);
- every loss's ``grad`` is the gradient of its ``value`` (finite differences and jax.grad) on
  (N, K) and (2, N, K) arrays, with and without (N, 1) sample weights; huber with delta 0.3 hits
  both of its branches.

tests/test_activations.py already checks each activation's derivative alone (default
hyperparameters) against independent oracles, and tests/test_gradients.py every hidden
activation x head in an MLP without a leading axis; this module adds the layers, the
hyperparameter variants, output-only activations in hidden positions, huber, sample weights
and the leading axis. Parameters are init's plus noise, so a
scale of ones or a bias of zeros cannot hide a missing factor or term.

Cost (the module runs in well under a minute on 2 cores): each case is one `Check`; its
hand-written code is compiled once per backend (``backend.compile``; on JAX together with the
jax.grad reference, one XLA compile per case, see `oracles.jax_with_autodiff`) and shared by the
finite-difference and the autodiff test; the reference is computed once and shared by every
backend; finite differences perturb host copies and evaluate J on the backend under test.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import backend_or_skip
from oracles import jax_with_autodiff

import backprop as bp
from backprop.nn import layers as L
from backprop.nn.layers import LAYERS, Train, build_layer
from backprop.tree import tree_map

N = 3  # batch rows of the layer checks
LEADS = {"N": (), "2xN": (2,)}  # no leading axis, and a stack of 2 sharing the parameters
MAX_PER_ARRAY = 10  # finite-difference entries per array (a seeded sample, the same everywhere)
AUTODIFF_RTOL = 1e-12  # two exact gradients in float64: only rounding separates them


# -- cases from the registries ---------------------------------------------------------------


def _label(obj: Any) -> str:
    text = re.sub(r"\s+", "", repr(obj))
    return text if len(text) <= 60 else text[:57] + "..."


def _layer_cases() -> list:
    """``(name, index, layer, input_shape)`` for every example of every registered layer. A layer
    whose ``examples()`` fails gives no case here; `test_every_layer_gives_examples` names it."""
    cases = []
    for name in LAYERS.names():
        try:
            examples = list(LAYERS.get(name).examples())
        except Exception:
            continue
        for i, (layer, shape) in enumerate(examples):
            shape = tuple(shape)
            label = f"{name}#{i}:{_label(layer)}-in{'x'.join(map(str, shape))}"
            cases.append(pytest.param(name, i, layer, shape, id=label))
    return cases


LAYER_CASES = _layer_cases()


def _spec_id(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    rest = ",".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']}({rest})"


# Non-default hyperparameters; `test_variants_cover_every_hyperparameter` asks for one per field.
ACTIVATION_VARIANTS = [{"name": "leaky_relu", "slope": 0.2}, {"name": "elu", "alpha": 0.5}]
LOSS_VARIANTS = [{"name": "huber", "delta": 0.3}]
ACTIVATION_SPECS = [*bp.ACTIVATIONS.names(), *ACTIVATION_VARIANTS]
LOSS_SPECS = [*bp.LOSSES.names(), *LOSS_VARIANTS]


@dataclasses.dataclass
class Check:
    """One gradient check: ``hand(xp, tree, *args) -> (J, dJ/dtree, ...)`` is the code under
    test, ``objective(xp, tree, *args) -> J`` the same J through its forward only (what
    jax.grad differentiates). ``tree`` (host float64) is what J is differentiated with respect
    to; ``args`` (host arrays, lists of them or None: ids, R, masks, Y, weights) are not."""

    key: tuple
    tree: Any
    args: tuple
    hand: Callable
    objective: Callable


_COMPILED: dict[tuple, Callable] = {}  # (backend, check key) -> compiled hand, shared by tests
_PROGRAMS: dict[tuple, Callable] = {}  # check key -> jax program (hand and jax.grad)
_REFERENCES: dict[tuple, tuple[float, Any]] = {}  # check key -> host (J, jax.grad)


def _move(backend, v: Any) -> Any:
    """Host arrays (in lists, tuples, dicts) to ``backend``: floats as float64, ints as int32."""
    if v is None:
        return None
    if isinstance(v, dict):
        return {k: _move(backend, u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_move(backend, u) for u in v)
    v = np.asarray(v)
    return backend.asarray(v, "int32" if np.issubdtype(v.dtype, np.integer) else "float64")


def _program(check: Check) -> Callable:
    if check.key not in _PROGRAMS:
        backend_or_skip("jax")
        _PROGRAMS[check.key] = jax_with_autodiff(check.hand, check.objective)
    return _PROGRAMS[check.key]


def _hand_on(backend, check: Check) -> Callable:
    """``fn(tree) -> hand(xp, tree, *args)`` on ``backend`` (args moved there), compiled once per
    check and backend; on JAX the program that also computes the reference."""
    args = _move(backend, check.args)
    if backend.name == "jax":
        program = _program(check)
        return lambda tree: program(tree, *args)[0]
    key = (backend, *check.key)
    if key not in _COMPILED:
        _COMPILED[key] = backend.compile(functools.partial(check.hand, backend.xp))
    fn = _COMPILED[key]
    return lambda tree: fn(tree, *args)


def _reference(check: Check) -> tuple[float, Any]:
    """``(J, dJ/dtree)`` by jax.grad of ``check.objective`` on the jax backend, host, once."""
    if check.key not in _REFERENCES:
        be = backend_or_skip("jax")
        _, (value, grads) = _program(check)(_move(be, check.tree), *_move(be, check.args))
        _REFERENCES[check.key] = float(value), _host(be, grads)
    return _REFERENCES[check.key]


def _assert_matches_autodiff(backend, check: Check, what: str) -> None:
    ref_value, ref_grads = _reference(check)
    value, grads = _hand_on(backend, check)(_move(backend, check.tree))
    np.testing.assert_allclose(float(value), ref_value, rtol=AUTODIFF_RTOL, err_msg=f"{what}: J")
    _assert_grads_close(_host(backend, grads), ref_grads, what)


def _host(backend, tree: Any) -> Any:
    return tree_map(lambda v: np.asarray(backend.to_numpy(v)), tree)


def _shapes(tree: Any) -> Any:
    """The tree of shapes of a (nested dict/list) tree of arrays."""
    if isinstance(tree, dict):
        return {k: _shapes(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_shapes(v) for v in tree]
    return tuple(np.shape(tree)) if isinstance(tree, np.ndarray) else tuple(tree.shape)


def _gradcheck(backend, fn: Callable, host_tree: Any, **kwargs: Any) -> bp.GradcheckResult:
    """`backprop.nn.gradcheck` of ``fn(tree) -> (J, dJ/dtree)`` evaluated on ``backend``, at most
    `MAX_PER_ARRAY` entries per array (autodiff checks every entry).

    The perturbed copies are made on the host and moved to the backend for every evaluation
    (the untouched arrays once), so J goes through the backend's own forward while no eager op
    per perturbation runs there (on JAX each would compile once per shape)."""
    moved = {id(v): (v, backend.asarray(v, "float64")) for v in bp.tree_leaves(host_tree)}

    def to_backend(tree):
        def move(v):
            hit = moved.get(id(v))
            return hit[1] if hit is not None and hit[0] is v else backend.asarray(v, "float64")

        return tree_map(move, tree)

    def loss_and_grad(t):
        value, grads = fn(to_backend(t))
        return float(value), _host(backend, grads)

    kwargs.setdefault("max_per_array", MAX_PER_ARRAY)
    return bp.gradcheck(
        loss_and_grad, host_tree, loss=lambda t: float(fn(to_backend(t))[0]), **kwargs
    )


def _assert_grads_close(actual: Any, expected: Any, what: str, rtol: float = AUTODIFF_RTOL):
    """Host gradient trees equal to ``rtol``, with atol scaled to the array (entries near 0)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), (
            f"{what}: keys {list(actual)} != {list(expected)}"
        )
        for key, ref in expected.items():
            _assert_grads_close(actual[key], ref, f"{what}.{key}", rtol)
        return
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), what
        for i, (got, ref) in enumerate(zip(actual, expected, strict=True)):
            _assert_grads_close(got, ref, f"{what}[{i}]", rtol)
        return
    got, ref = np.asarray(actual), np.asarray(expected)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    scale = max(float(np.abs(ref).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale, err_msg=what)


# -- layers ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Problem:
    """Host data of one layer check: params (init plus noise), x, R = dJ/dy, dropout masks."""

    params: dict[str, Any]
    x: np.ndarray
    r: np.ndarray
    masks: list[np.ndarray]
    out_shape: tuple[int, ...]
    int_input: bool

    @property
    def tree(self) -> dict[str, Any]:
        """What J is differentiated with respect to: the params, and x for float inputs."""
        return {"params": self.params} if self.int_input else {"params": self.params, "x": self.x}


def _problem(layer: Any, shape: tuple[int, ...], lead: tuple[int, ...], seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    params, out_shape = layer.init(shape, np.random.default_rng(seed + 1))
    params = tree_map(lambda v: v + 0.3 * rng.normal(size=np.shape(v)), params)
    batch = (*lead, N, *shape)
    int_input = layer.input_kind == "int"
    if int_input:
        vocab = getattr(layer, "vocab_size", None)
        assert isinstance(vocab, int), f"{layer!r}: an int-input layer needs vocab_size"
        x = rng.integers(0, vocab, size=batch)
        rows = x.reshape(-1, batch[-1])
        rows[:, -1] = -1  # every row ends in padding ...
        rows[0, :] = -1  # ... and one row is all padding
        x = rows.reshape(batch)
    else:
        x = rng.normal(size=batch)
    r = rng.normal(size=(*lead, N, *out_shape))
    masks = [
        (rng.random((*lead, N, *s)) >= d.rate) * (1.0 / (1.0 - d.rate))
        for d, s in layer.dropout_layers(shape)
    ]
    return Problem(params, x, r, masks, tuple(out_shape), int_input)


def _train(masks: list) -> Any:
    """A fresh `Train` (it hands masks out once) when the layer takes masks, else inference."""
    return Train(list(masks)) if masks else False


def _layer_check(name: str, index: int, layer: Any, shape: tuple, lead: str) -> Check:
    """J = sum(forward(x) * R); hand: ``(J, grads)``, the gradient by ``backward``, structured
    like the tree."""
    prob = _problem(layer, shape, LEADS[lead])
    int_input = prob.int_input

    def objective(xp, tree, x, r, masks):
        y, _ = layer.forward(xp, tree["params"], tree.get("x", x), train=_train(masks))
        return xp.sum(y * r)

    def hand(xp, tree, x, r, masks):
        y, cache = layer.forward(xp, tree["params"], tree.get("x", x), train=_train(masks))
        # ids have no gradient, and a first layer is asked for none (need_dx=False)
        grads, dx = layer.backward(xp, tree["params"], cache, r, need_dx=not int_input)
        return xp.sum(y * r), {"params": grads} if int_input else {"params": grads, "x": dx}

    args = (prob.x, prob.r, prob.masks)
    return Check(("layer", name, index, lead), prob.tree, args, hand, objective)


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_layer_gives_examples(name):
    cls = LAYERS.get(name)
    try:
        examples = cls.examples()
    except NotImplementedError as exc:
        pytest.fail(f"registered layer {name!r} ({cls.__qualname__}) gives no examples(): {exc}")
    examples = list(examples)
    assert examples, f"layer {name!r}: examples() is empty; give at least one (layer, shape)"
    for layer, shape in examples:
        assert isinstance(layer, cls), f"layer {name!r}: example {layer!r} is not a {cls.__name__}"
        assert isinstance(shape, tuple) and shape, f"layer {name!r}: input shape {shape!r}"
        assert all(isinstance(d, int) and d >= 1 for d in shape), f"layer {name!r}: {shape!r}"


@pytest.mark.parametrize(("name", "index", "layer", "shape"), LAYER_CASES)
def test_layer_shapes_and_spec(name, index, layer, shape):
    """init, output_shape and forward agree; spec() is JSON and builds the same layer back."""
    params, out_shape = layer.init(shape, np.random.default_rng(0))
    again, _ = layer.init(shape, np.random.default_rng(0))
    assert tuple(layer.output_shape(shape)) == tuple(out_shape), "output_shape != init's shape"
    for value, same in zip(bp.tree_leaves(params), bp.tree_leaves(again), strict=True):
        assert isinstance(value, np.ndarray) and value.dtype == np.float64, (
            f"init's parameters must be host float64 NumPy arrays, got {type(value)}"
        )
        np.testing.assert_array_equal(value, same, err_msg="init must depend on rng only")
    be = backend_or_skip("numpy")
    for lead in LEADS.values():
        prob = _problem(layer, shape, lead)
        p, x, r, masks = _move(be, (prob.params, prob.x, prob.r, prob.masks))
        for train in (_train(masks), False):  # training and inference
            y, _ = layer.forward(be.xp, p, x, train=train)
            assert tuple(y.shape) == (*lead, N, *out_shape), (
                f"forward on {tuple(x.shape)} gave {tuple(y.shape)}; init and output_shape "
                f"say {out_shape}"
            )
        # backward(need_dx=False), a first layer's: the same parameter gradients
        _, cache = layer.forward(be.xp, p, x, train=_train(masks))
        first, _ = layer.backward(be.xp, p, cache, r, need_dx=False)
        _, cache = layer.forward(be.xp, p, x, train=_train(masks))
        grads, _ = layer.backward(be.xp, p, cache, r, need_dx=not prob.int_input)
        _assert_grads_close(first, grads, "parameter gradients of backward(need_dx=False)")
    spec = layer.spec()
    assert spec["type"] == name, f"spec type {spec['type']!r} != registered name {name!r}"
    assert build_layer(spec) == layer, f"build_layer({spec}) != {layer!r}"
    rebuilt = build_layer(json.loads(json.dumps(spec)))
    assert rebuilt == layer, f"the JSON round trip of {spec} gave {rebuilt!r}, not {layer!r}"
    assert rebuilt.spec() == spec


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize(("name", "index", "layer", "shape"), LAYER_CASES)
def test_layer_backward_matches_finite_differences(backend, name, index, layer, shape, lead):
    check = _layer_check(name, index, layer, shape, lead)
    fn = _hand_on(backend, check)
    _, grads = fn(_move(backend, check.tree))
    assert _shapes(grads) == _shapes(check.tree), (
        f"gradients {_shapes(grads)} must match what they differentiate {_shapes(check.tree)}"
    )
    result = _gradcheck(backend, fn, check.tree)
    assert result.ok, f"{layer!r} at x {_shapes(check.args[0])}:\n{result}"


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize(("name", "index", "layer", "shape"), LAYER_CASES)
def test_layer_backward_matches_autodiff(backend, name, index, layer, shape, lead):
    check = _layer_check(name, index, layer, shape, lead)
    _assert_matches_autodiff(backend, check, f"{layer!r} at x {_shapes(check.args[0])}")


# -- activations and losses inside networks ---------------------------------------------------


def _network(kind: str, spec: Any) -> bp.Sequential:
    """A small Sequential around an activation (``kind="activation"``: a Dense layer's, its
    signal coming back through the next layer, and an Activation layer's at the output) or with
    a loss (``kind="loss"``) as its head, on the output activation that loss takes (the fused
    one where there is one)."""
    if kind == "activation":
        layers = [L.Dense(3, spec), L.Activation(spec)]
        return bp.Sequential(layers, loss="mse", input_shape=(3,), alpha=0.1)
    loss = bp.get_loss(spec)
    output = loss.fused_output or (loss.outputs[0] if loss.outputs else "identity")
    layers = [L.Dense(4, "tanh"), L.Dense(3, output)]
    return bp.Sequential(layers, loss=loss, input_shape=(3,), alpha=0.1)


def _network_host(model: bp.Sequential, lead: tuple[int, ...], seed: int = 4):
    """Host params (init plus noise), X (..., 5, 3) normal and Y (..., 5, 3) one-hot rows:
    targets every head accepts."""
    rng = np.random.default_rng(seed)
    params = [tree_map(lambda v: v + 0.3 * rng.normal(size=v.shape), p) for p in model.init_host(2)]
    X = rng.normal(size=(*lead, 5, 3))
    Y = np.eye(3)[rng.integers(0, 3, size=(*lead, 5))]
    return params, X, Y


# Every network at (2, N, ...): the leading axis through whole models, the fused deltas and
# the L2 penalty (tests/test_gradients.py covers MLPs without one).
NETWORK_CASES = [
    *(pytest.param("activation", s, id=f"activation-{_spec_id(s)}") for s in ACTIVATION_SPECS),
    *(pytest.param("loss", s, id=f"loss-{_spec_id(s)}") for s in LOSS_SPECS),
]
NETWORK_LEAD = (2,)


def _network_check(kind: str, spec: Any) -> Check:
    """J = the model's loss over its params; hand: its ``loss_and_grad``."""
    model = _network(kind, spec)
    host, X, Y = _network_host(model, NETWORK_LEAD)
    return Check(
        ("network", kind, json.dumps(spec)),
        host,
        (X, Y),
        lambda xp, p, x, y: model.loss_and_grad(p, x, y),
        lambda xp, p, x, y: model.loss(p, x, y),
    )


@pytest.mark.parametrize(("kind", "spec"), NETWORK_CASES)
def test_network_gradient_matches_finite_differences(backend, kind, spec):
    check = _network_check(kind, spec)
    result = _gradcheck(backend, _hand_on(backend, check), check.tree)
    assert result.ok, f"{_network(kind, spec)!r}:\n{result}"


@pytest.mark.parametrize(("kind", "spec"), NETWORK_CASES)
def test_network_gradient_matches_autodiff(backend, kind, spec):
    check = _network_check(kind, spec)
    _assert_matches_autodiff(backend, check, f"{_network(kind, spec)!r}")


# -- losses on their own ----------------------------------------------------------------------

WEIGHTS = {"unweighted": False, "weighted": True}


def _loss_data(spec: Any, lead: tuple[int, ...], weighted: bool, seed: int = 6):
    """a in (0.05, 0.95) (valid for every loss), y one-hot (K = 3), optional (N, 1) weights.
    Entries where |a - y| is within 0.01 of a huber delta are moved off the kink."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.05, 0.95, size=(*lead, 4, 3))
    y = np.eye(3)[rng.integers(0, 3, size=(*lead, 4))]
    delta = getattr(bp.get_loss(spec), "delta", None)
    if delta is not None:
        a = np.where(np.abs(np.abs(a - y) - delta) < 0.01, a + 0.02, a)
    w = rng.uniform(0.5, 2.0, size=(4, 1)) if weighted else None
    return a, y, w


def _loss_check(spec: Any, lead: str, weights: str) -> Check:
    """J = loss.value(a, y, w) over a; hand: ``(value, {"a": grad})``."""
    loss = bp.get_loss(spec)
    a, y, w = _loss_data(spec, LEADS[lead], WEIGHTS[weights])
    return Check(
        ("loss", json.dumps(spec), lead, weights),
        {"a": a},
        (y, w),
        lambda xp, t, y, w: (loss.value(xp, t["a"], y, w), {"a": loss.grad(xp, t["a"], y, w)}),
        lambda xp, t, y, w: loss.value(xp, t["a"], y, w),
    )


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("spec", LOSS_SPECS, ids=_spec_id)
def test_loss_grad_matches_finite_differences(backend, spec, lead, weights):
    loss, check = bp.get_loss(spec), _loss_check(spec, lead, weights)
    a, y = check.tree["a"], check.args[0]
    if getattr(loss, "delta", None) == 0.3:  # positive control: both huber branches are hit
        r = np.abs(a - y)
        assert (r < 0.3).any() and (r > 0.3).any(), "the data must reach both huber branches"
    fn = _hand_on(backend, check)
    value, grad = fn(_move(backend, check.tree))
    assert tuple(value.shape) == (), f"{loss!r}.value must be 0-d, got shape {value.shape}"
    assert tuple(grad["a"].shape) == a.shape, f"{loss!r}.grad must have a's shape"
    result = _gradcheck(backend, fn, check.tree)
    assert result.ok, f"{loss!r} on a {a.shape}:\n{result}"


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("spec", LOSS_SPECS, ids=_spec_id)
def test_loss_grad_matches_autodiff(backend, spec, lead, weights):
    check = _loss_check(spec, lead, weights)
    _assert_matches_autodiff(backend, check, f"{bp.get_loss(spec)!r}.grad ({lead}, {weights})")


def test_variants_cover_every_hyperparameter():
    """Each hyperparameter of a registered activation or loss is checked above at a
    non-default value (a new hyperparameter needs a variant in this module)."""
    for registry, variants in (
        (bp.ACTIVATIONS, ACTIVATION_VARIANTS),
        (bp.LOSSES, LOSS_VARIANTS),
    ):
        for name in registry.names():
            cls = registry.get(name)
            if not dataclasses.is_dataclass(cls):
                continue
            for field in dataclasses.fields(cls):
                default = field.default  # dataclasses.MISSING when it has none
                covered = any(
                    v["name"] == name and field.name in v and v[field.name] != default
                    for v in variants
                )
                assert covered, (
                    f"{registry.kind} {name!r}: add a variant with a non-default {field.name!r}"
                )
