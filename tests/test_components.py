"""Components (activations, losses, layers) as registered, frozen descriptions: what their
identity means for compiled-step caches, registration, saving, and MLP = Sequential.

Proven here:

- compiled steps are cached by the model's full structure, never by names: two unregistered
  activations (Cube, Sin) and two leaky_relu slopes train to their own losses on every backend
  (before the structural key, JAX's cache, keyed by names, handed Sin the step compiled for
  Cube); equal models share one compiled step, different structures (activation, slope, an
  extra layer, alpha, loss hyperparameters, distinct unregistered instances) get their own;
  layer keys are equal exactly when the layers are;
- registering a name again from the same class (a re-run notebook cell) replaces it quietly;
  a different class under a taken name is a ValueError naming both, and the entry is unchanged;
- a model with an unregistered component cannot be saved: ``spec()`` and a `ModelCheckpoint`
  raise `UnregisteredError` saying how to register it; registered custom components round-trip
  through ``spec()`` / `build_model` (JSON included) to a model with an equal key;
- `MLP` is bitwise the `Sequential` of its Dense (and Dropout) layers: the same initial
  parameters, loss and gradients (==), with the same dropout masks too, on every backend;
- ``get_activation`` / ``get_loss`` take names, ``{"name": ..., **hyperparameters}`` dicts and
  instances; bad hyperparameters raise ValueError/TypeError naming the component and the value;
  ``spec()`` is the bare name at default hyperparameters and the dict otherwise.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from conftest import backend_or_skip

import backprop as bp
from backprop.nn import layers as L
from backprop.nn._component import structural_key
from backprop.nn.activations import LeakyRelu, Tanh
from backprop.nn.layers import LAYERS


class Cube(bp.Activation):
    """Unregistered: a = z**3 / 3, f' = z**2 (from z)."""

    needs_input = True

    def forward(self, xp, z):
        return z * z * z / 3.0

    def derivative(self, xp, z, a):
        return z * z


class Sin(bp.Activation):
    """Unregistered: a = sin z, f' = cos z (from z)."""

    needs_input = True

    def forward(self, xp, z):
        return xp.sin(z)

    def derivative(self, xp, z, a):
        return xp.cos(z)


def _scaled_tanh_class(k: float) -> type:
    """An unregistered activation tanh(k z) whose k lives in the class, not in a field: every
    call gives a new class with the same module and __qualname__ (a re-run notebook cell)."""

    class ScaledTanh(bp.Activation):
        def forward(self, xp, z):
            return xp.tanh(k * z)

        def derivative(self, xp, z, a):
            return k * (1.0 - a * a)

    return ScaledTanh


@pytest.fixture
def scratch_registries():
    """Registries restored after the test: names a test registers do not leak into others."""
    registries = [bp.ACTIVATIONS, bp.LOSSES, LAYERS]
    saved = [dict(r._items) for r in registries]
    yield
    for registry, items in zip(registries, saved, strict=True):
        registry._items.clear()
        registry._items.update(items)


# -- compiled steps follow the structure, not names -------------------------------------------

_RNG = np.random.default_rng(0)
X3 = _RNG.normal(size=(24, 3))
Y1 = np.sin(X3.sum(axis=1, keepdims=True))


def _final_loss(backend, hidden: Any) -> float:
    """The last epoch's loss of a 3-8-1 MLP with ``hidden``, 3 epochs of SGD, float64."""
    model = bp.MLP([3, 8, 1], hidden=[hidden])
    result = bp.fit(
        model,
        X3,
        Y1,
        optimizer=bp.SGD(0.05),
        backend=backend,
        dtype="float64",
        epochs=3,
        batch_size=8,
        seed=0,
        metric=None,
        verbose=0,
    )
    return result.history.last["loss"]


_NUMPY_LOSSES: dict[str, float] = {}


def _numpy_loss(label: str, hidden: Any) -> float:
    if label not in _NUMPY_LOSSES:
        _NUMPY_LOSSES[label] = _final_loss(backend_or_skip("numpy"), hidden)
    return _NUMPY_LOSSES[label]


def test_unregistered_activations_train_to_their_own_losses(backend):
    """The reproducer: Cube then Sin, same sizes, data and optimizer, in one process. With a
    compile cache keyed by names (both are unregistered, so both nameless), JAX gave Sin the
    step compiled for Cube, and so Cube's loss. Classes with the same __qualname__ but other
    code (ScaledTanh from two cells) must not share a step either."""
    cases = {
        "cube": Cube(),
        "sin": Sin(),
        "tanh(1z)": _scaled_tanh_class(1.0)(),
        "tanh(3z)": _scaled_tanh_class(3.0)(),
    }
    losses = {label: _final_loss(backend, act) for label, act in cases.items()}
    for label, act in cases.items():
        expected = _numpy_loss(label, type(act)())
        np.testing.assert_allclose(
            losses[label], expected, rtol=1e-10, err_msg=f"{label} on {backend.name}"
        )
    assert not np.isclose(losses["cube"], losses["sin"], rtol=1e-6), losses
    assert not np.isclose(losses["tanh(1z)"], losses["tanh(3z)"], rtol=1e-6), losses


def test_leaky_relu_slopes_train_to_their_own_losses(backend):
    slopes = (0.01, 0.3)
    losses = [_final_loss(backend, {"name": "leaky_relu", "slope": s}) for s in slopes]
    for slope, loss in zip(slopes, losses, strict=True):
        spec = {"name": "leaky_relu", "slope": slope}
        np.testing.assert_allclose(loss, _numpy_loss(f"leaky{slope}", spec), rtol=1e-10)
    assert not np.isclose(*losses, rtol=1e-6), f"slopes {slopes} gave the same loss {losses}"


def _models_that_differ() -> dict[str, tuple[bp.Sequential, bp.Sequential]]:
    """Pairs of models with the same sizes that compute different functions."""
    dense = [L.Dense(4, "tanh"), L.Dense(1)]
    return {
        "tanh-vs-relu": (bp.MLP([2, 4, 1], "tanh"), bp.MLP([2, 4, 1], "relu")),
        "leaky_relu-slopes": (
            bp.MLP([2, 4, 1], {"name": "leaky_relu", "slope": 0.01}),
            bp.MLP([2, 4, 1], {"name": "leaky_relu", "slope": 0.3}),
        ),
        "Dense-vs-Dense+LayerNorm": (
            bp.Sequential(dense, input_shape=(2,)),
            bp.Sequential([dense[0], L.LayerNorm(), dense[1]], input_shape=(2,)),
        ),
        "Dense-vs-Dense+Activation": (
            bp.Sequential(dense, input_shape=(2,)),
            bp.Sequential([dense[0], L.Activation("tanh"), dense[1]], input_shape=(2,)),
        ),
        "alpha": (bp.MLP([2, 4, 1], alpha=0.0), bp.MLP([2, 4, 1], alpha=0.1)),
        "huber-deltas": (
            bp.MLP([2, 4, 1], loss={"name": "huber", "delta": 1.0}),
            bp.MLP([2, 4, 1], loss={"name": "huber", "delta": 0.3}),
        ),
        "dropout-rates": (
            bp.MLP([2, 4, 1], dropout=0.25),
            bp.MLP([2, 4, 1], dropout=0.5),
        ),
        "two-unregistered-instances": (
            bp.MLP([2, 4, 1], hidden=[Cube()]),
            bp.MLP([2, 4, 1], hidden=[Cube()]),
        ),
    }


@pytest.mark.parametrize("pair", list(_models_that_differ()))
def test_different_structures_have_different_keys(pair):
    first, second = _models_that_differ()[pair]
    assert first.key() != second.key(), f"{pair}: {first!r} and {second!r} share a key"


def test_equal_structures_have_equal_keys():
    assert bp.MLP([2, 4, 1], "tanh").key() == bp.MLP([2, 4, 1], "tanh").key()
    assert (
        bp.MLP([2, 4, 1], {"name": "leaky_relu", "slope": 0.3}).key()
        == bp.MLP([2, 4, 1], LeakyRelu(0.3)).key()
    )

    def seq():
        return bp.Sequential([L.Dense(4, "tanh"), L.LayerNorm(), L.Dense(1)], input_shape=2)

    assert seq().key() == seq().key()
    model = bp.MLP([2, 4, 1], hidden=[Cube()])
    assert model.key() == model.key(), "an unregistered component is keyed by its identity"


def test_compile_cache_follows_the_structure():
    """On a compiling backend `make_step` hands equal models one compiled step and different
    structures their own."""
    be = backend_or_skip("jax")
    assert be.compiles
    opt = bp.SGD(0.1)
    first, again = bp.MLP([2, 4, 1], "tanh"), bp.MLP([2, 4, 1], "tanh")
    assert bp.make_step(first, opt, be) is bp.make_step(again, opt, be), "equal models"
    model = bp.MLP([2, 4, 1], hidden=[Cube()])
    assert bp.make_step(model, opt, be) is bp.make_step(model, opt, be), "the same model"
    for label, (a, b) in _models_that_differ().items():
        assert bp.make_step(a, opt, be) is not bp.make_step(b, opt, be), label


def _layer_examples() -> list[tuple[str, Any]]:
    out = []
    for name in LAYERS.names():
        try:
            examples = LAYERS.get(name).examples()
        except Exception:  # reported by tests/test_layers.py
            continue
        out += [(f"{name}#{i}", layer) for i, (layer, _) in enumerate(examples)]
    return out


def test_layer_keys_are_equal_exactly_when_layers_are():
    """Every registered layer's examples: the structural key of two examples agrees with ==, and
    a layer rebuilt from its spec has the same key."""
    examples = _layer_examples()
    assert examples
    for label, layer in examples:
        rebuilt = L.build_layer(json.loads(json.dumps(layer.spec())))
        assert structural_key(rebuilt) == structural_key(layer), label
        for other_label, other in examples:
            same_key = structural_key(layer) == structural_key(other)
            assert same_key == (layer == other), f"{label} vs {other_label}"


# -- registration ------------------------------------------------------------------------------


def _notebook_cell(name: str, scale: float) -> type:
    """What a notebook cell defining and registering an activation does; running it twice
    defines two classes with the same module and __qualname__."""

    @bp.activations.register(name)
    class Scaled(bp.Activation):
        def forward(self, xp, z):
            return scale * z

        def derivative(self, xp, z, a):
            return scale * xp.ones_like(a)

    return Scaled


def test_registering_again_from_the_same_class_replaces_quietly(scratch_registries):
    first = _notebook_cell("test_scaled", 1.0)
    second = _notebook_cell("test_scaled", 2.0)  # the cell runs again, edited
    assert first is not second and first.__qualname__ == second.__qualname__
    assert bp.ACTIVATIONS.get("test_scaled") is second
    assert bp.get_activation("test_scaled").spec() == "test_scaled"
    # an instance of the replaced class is not the registered one: keyed by identity, unsaveable
    stale = first()
    assert not stale.is_registered()
    with pytest.raises(bp.UnregisteredError):
        stale.spec()
    assert bp.MLP([2, 3, 1], hidden=[stale]).key() != bp.MLP([2, 3, 1], "test_scaled").key()


@pytest.mark.parametrize(
    ("registry", "register", "taken", "owner"),
    [
        (bp.ACTIVATIONS, bp.activations.register, "tanh", "backprop.nn.activations.Tanh"),
        (bp.LOSSES, bp.losses.register, "huber", "backprop.nn.losses.Huber"),
        (LAYERS, L.register, "dense", "backprop.nn.layers.dense.Dense"),
    ],
    ids=["activation", "loss", "layer"],
)
def test_a_different_class_under_a_taken_name_is_an_error(
    scratch_registries, registry, register, taken, owner
):
    before = registry.get(taken)

    class Impostor:
        pass

    with pytest.raises(ValueError, match="already registered") as info:
        register(taken)(Impostor)
    message = str(info.value)
    assert owner in message, message
    assert f"{__name__}.{Impostor.__qualname__}" in message, message
    assert registry.get(taken) is before, "a refused registration must leave the entry alone"


# -- saving needs registered components ---------------------------------------------------------

_HOW_TO_REGISTER = r"not registered.*register it with @backprop\.{}\.register\('my_name'\)"


@pytest.mark.parametrize(
    ("build", "module"),
    [
        pytest.param(lambda: bp.MLP([3, 8, 1], hidden=[Cube()]), "activations", id="activation"),
        pytest.param(
            lambda: bp.Sequential([L.Dense(4, Sin()), L.Dense(1)], input_shape=3),
            "activations",
            id="activation-in-Sequential",
        ),
        pytest.param(
            lambda: bp.Sequential([type("MyDense", (L.Dense,), {})(4), L.Dense(1)], input_shape=3),
            "layers",
            id="layer",
        ),
        pytest.param(
            lambda: bp.Sequential([L.Residual([L.Dense(3, Cube())]), L.Dense(1)], input_shape=3),
            "activations",
            id="activation-in-Residual",
        ),
        pytest.param(
            lambda: bp.MLP([3, 8, 1], loss=type("MyMSE", (bp.losses.MeanSquaredError,), {})()),
            "losses",
            id="loss",
        ),
    ],
)
def test_spec_of_an_unregistered_component_says_how_to_register(build, module):
    model = build()
    with pytest.raises(bp.UnregisteredError, match=_HOW_TO_REGISTER.format(module)):
        model.spec()


def test_checkpoint_of_an_unregistered_component_fails_by_the_first_save(tmp_path):
    """The error comes from the first checkpoint write (after epoch 1 with every=1); it names
    the class and says how to register it."""
    epochs: list[int] = []
    with pytest.raises(bp.UnregisteredError, match=_HOW_TO_REGISTER.format("activations")) as info:
        bp.fit(
            bp.MLP([3, 8, 1], hidden=[Cube()]),
            X3,
            Y1,
            optimizer=bp.SGD(0.05),
            dtype="float64",
            epochs=3,
            batch_size=8,
            metric=None,
            verbose=0,
            callbacks=[
                bp.LambdaCallback(on_epoch_end=lambda run: epochs.append(run.epoch)),
                bp.ModelCheckpoint(tmp_path, monitor="loss"),
            ],
        )
    assert "Cube" in str(info.value)
    assert len(epochs) <= 1, f"training went on for epochs {epochs} before the save failed"
    assert not (tmp_path / "last.npz").exists()


@dataclasses.dataclass(frozen=True, repr=False)
class _ScaledTanh(bp.Activation):
    """tanh(k z), k a hyperparameter; registered by the test that uses it."""

    k: float = 1.0

    def forward(self, xp, z):
        return xp.tanh(self.k * z)

    def derivative(self, xp, z, a):
        return self.k * (1.0 - a * a)


def test_registered_custom_components_round_trip(scratch_registries, tmp_path):
    bp.activations.register("test_scaled_tanh")(_ScaledTanh)
    models = [
        bp.MLP([3, 8, 1], hidden="test_scaled_tanh"),
        bp.MLP([3, 8, 1], hidden=_ScaledTanh(2.0)),
        bp.MLP([3, 8, 1], hidden={"name": "test_scaled_tanh", "k": 0.5}),
        bp.Sequential([L.Dense(4, _ScaledTanh(2.0)), L.Dense(1)], input_shape=3),
    ]
    assert models[1].spec()["hidden"] == [{"name": "test_scaled_tanh", "k": 2.0}]
    assert models[0].spec()["hidden"] == ["test_scaled_tanh"]
    for model in models:
        spec = json.loads(json.dumps(model.spec()))
        rebuilt = bp.build_model(spec)
        assert type(rebuilt) is type(model)
        assert rebuilt.key() == model.key(), f"{model!r} came back as {rebuilt!r}"
    assert models[0].key() != models[1].key() != models[2].key()
    # and through a checkpoint of a real run
    result = bp.fit(
        models[1],
        X3,
        Y1,
        optimizer=bp.SGD(0.05),
        dtype="float64",
        epochs=1,
        batch_size=8,
        metric=None,
        verbose=0,
        callbacks=[bp.ModelCheckpoint(tmp_path, monitor="loss")],
    )
    meta = bp.load_checkpoint(tmp_path / "last.npz").meta
    assert bp.build_model(meta["model"]).key() == result.model.key()


@dataclasses.dataclass(frozen=True, repr=False)
class _Scale(bp.Activation):
    """a = k z with a required hyperparameter k (no default)."""

    k: float

    def forward(self, xp, z):
        return self.k * z

    def derivative(self, xp, z, a):
        return self.k * xp.ones_like(a)


@dataclasses.dataclass(frozen=True, repr=False)
class _ScaledMSE(bp.Loss):
    """scale * mse, with a required hyperparameter (no default)."""

    scale: float

    def value(self, xp, a, y, w=None):
        d = a - y
        return self.scale * 0.5 * xp.mean(d * d)

    def grad(self, xp, a, y, w=None):
        return self.scale * (a - y) / (a.shape[-2] * a.shape[-1])


@pytest.mark.parametrize(
    ("registry", "cls", "build"),
    [
        pytest.param(
            bp.ACTIVATIONS,
            _Scale,
            lambda: bp.MLP([3, 8, 1], hidden=_Scale(2.0)),
            id="activation",
        ),
        pytest.param(
            bp.LOSSES,
            _ScaledMSE,
            lambda: bp.MLP([3, 8, 1], loss=_ScaledMSE(2.0)),
            id="loss",
        ),
    ],
)
def test_registered_component_with_a_required_hyperparameter_round_trips(
    scratch_registries, registry, cls, build
):
    """A hyperparameter needs no default: the spec of a registered component holds every value
    that differs from a default, and every value that has none."""
    registry.register_class(f"test_required_{registry.kind}")(cls)
    model = build()
    spec = json.loads(json.dumps(model.spec()))
    assert bp.build_model(spec).key() == model.key()


# -- MLP is a Sequential ----------------------------------------------------------------------


def _mlp_and_sequential(dropout: bool) -> tuple[bp.MLP, bp.Sequential]:
    rate = 0.5 if dropout else 0.0
    mlp = bp.MLP(
        [4, 6, 5, 3],
        hidden=["tanh", "relu"],
        output="softmax",
        loss="cross_entropy",
        alpha=0.1,
        dropout=rate,
    )
    layers = [L.Dense(6, "tanh"), L.Dense(5, "relu"), L.Dense(3, "softmax")]
    if dropout:
        layers = [layers[0], L.Dropout(rate), layers[1], L.Dropout(rate), layers[2]]
    seq = bp.Sequential(layers, loss="cross_entropy", input_shape=(4,), alpha=0.1)
    return mlp, seq


def _exactly_equal(backend, actual, expected, what: str) -> None:
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.keys() == e.keys(), what
        for key in a:
            np.testing.assert_array_equal(
                backend.to_numpy(a[key]), backend.to_numpy(e[key]), err_msg=f"{what}[{i}].{key}"
            )


@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout"])
def test_mlp_is_bitwise_the_sequential_of_its_layers(backend, dtype, dropout):
    mlp, seq = _mlp_and_sequential(dropout)
    assert mlp.layers == seq.layers
    assert mlp.dropout_shapes == seq.dropout_shapes and mlp.dropout_rates == seq.dropout_rates
    params = mlp.init(seed=0, backend=backend, dtype=dtype)
    _exactly_equal(backend, params, seq.init(seed=0, backend=backend, dtype=dtype), "init")
    rng = np.random.default_rng(3)
    X = backend.asarray(rng.normal(size=(7, 4)), dtype)
    Y = backend.asarray(bp.one_hot(rng.integers(0, 3, 7), 3), dtype)
    masks = None
    if dropout:
        host = [(rng.random((7, *s)) >= 0.5) * 2.0 for s in mlp.dropout_shapes]
        masks = [backend.asarray(m, dtype) for m in host]
    loss_mlp, grads_mlp = mlp.loss_and_grad(params, X, Y, masks=masks)
    loss_seq, grads_seq = seq.loss_and_grad(params, X, Y, masks=masks)
    assert float(loss_mlp) == float(loss_seq), (float(loss_mlp), float(loss_seq))
    _exactly_equal(backend, grads_mlp, grads_seq, "grads")
    assert float(mlp.loss(params, X, Y)) == float(seq.loss(params, X, Y))
    if dropout:  # positive control: the masks were used
        assert float(loss_mlp) != float(mlp.loss_and_grad(params, X, Y)[0])


# -- building components from names, specs and instances ---------------------------------------


@pytest.mark.parametrize("name", bp.ACTIVATIONS.names())
def test_every_activation_builds_from_name_dict_and_instance(name):
    by_name = bp.get_activation(name)
    assert type(by_name) is bp.ACTIVATIONS.get(name)
    assert bp.get_activation({"name": name}) == by_name
    assert bp.get_activation(by_name) is by_name
    assert by_name.spec() == name, "default hyperparameters: the spec is the bare name"
    assert bp.get_activation(json.loads(json.dumps(by_name.spec()))) == by_name


@pytest.mark.parametrize("name", bp.LOSSES.names())
def test_every_loss_builds_from_name_dict_and_instance(name):
    by_name = bp.get_loss(name)
    assert type(by_name) is bp.LOSSES.get(name)
    assert bp.get_loss({"name": name}) == by_name
    assert bp.get_loss(by_name) is by_name
    assert by_name.spec() == name, "default hyperparameters: the spec is the bare name"


@pytest.mark.parametrize(
    ("get", "given", "spec", "instance"),
    [
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": 0.2},
            {"name": "leaky_relu", "slope": 0.2},
            LeakyRelu(0.2),
            id="leaky_relu-0.2",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": 0.01},
            "leaky_relu",
            LeakyRelu(),
            id="leaky_relu-default",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": 1},
            {"name": "leaky_relu", "slope": 1.0},
            LeakyRelu(1.0),
            id="leaky_relu-int",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "elu", "alpha": 0.5},
            {"name": "elu", "alpha": 0.5},
            bp.activations.Elu(0.5),
            id="elu-0.5",
        ),
        pytest.param(
            bp.get_loss,
            {"name": "huber", "delta": 0.3},
            {"name": "huber", "delta": 0.3},
            bp.losses.Huber(0.3),
            id="huber-0.3",
        ),
        pytest.param(
            bp.get_loss, {"name": "huber", "delta": 1}, "huber", bp.losses.Huber(), id="huber-1"
        ),
    ],
)
def test_hyperparameters_and_specs(get, given, spec, instance):
    """The dict builds the instance; its spec is the bare name at default hyperparameters and
    the dict (floats) otherwise, and builds the same component back, through JSON too."""
    built = get(given)
    assert built == instance
    assert built.spec() == spec, f"{given} -> spec {built.spec()!r}, expected {spec!r}"
    assert get(json.loads(json.dumps(built.spec()))) == built
    assert structural_key(get(built.spec())) == structural_key(built)


@pytest.mark.parametrize(
    ("get", "spec", "error", "words"),
    [
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": -1},
            ValueError,
            ["activation 'leaky_relu'", "slope", "-1"],
            id="slope-negative",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": True},
            ValueError,
            ["leaky_relu", "True"],
            id="slope-bool",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": float("nan")},
            ValueError,
            ["leaky_relu", "nan"],
            id="slope-nan",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slope": "0.1"},
            ValueError,
            ["leaky_relu", "'0.1'"],
            id="slope-str",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "elu", "alpha": 0},
            ValueError,
            ["activation 'elu'", "alpha", "0"],
            id="alpha-zero",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "leaky_relu", "slop": 0.1},
            TypeError,
            ["activation 'leaky_relu'", "slop"],
            id="unknown-keyword",
        ),
        pytest.param(
            bp.get_activation,
            {"name": "tanh", "beta": 1},
            TypeError,
            ["activation 'tanh'", "beta"],
            id="keyword-of-no-hyperparameters",
        ),
        pytest.param(bp.get_activation, {"slope": 0.1}, ValueError, ["no 'name'"], id="no-name"),
        pytest.param(
            bp.get_activation,
            {"name": "tanhh"},
            bp.UnknownNameError,
            ["activation 'tanhh'", "did you mean 'tanh'"],
            id="unknown-name",
        ),
        pytest.param(bp.get_activation, Tanh, TypeError, ["class Tanh", "instance"], id="class"),
        pytest.param(
            bp.get_loss,
            {"name": "huber", "delta": 0},
            ValueError,
            ["loss 'huber'", "delta", "0"],
            id="delta-zero",
        ),
        pytest.param(
            bp.get_loss,
            {"name": "huber", "delta": -0.5},
            ValueError,
            ["huber", "-0.5"],
            id="delta-negative",
        ),
        pytest.param(
            bp.get_loss,
            {"name": "huber", "detla": 1.0},
            TypeError,
            ["loss 'huber'", "detla"],
            id="loss-unknown-keyword",
        ),
        pytest.param(
            bp.get_loss,
            {"name": "mse", "delta": 1.0},
            TypeError,
            ["loss 'mse'", "delta"],
            id="loss-keyword-of-no-hyperparameters",
        ),
        pytest.param(
            L.build_layer,
            {"type": "dense", "units": 0},
            ValueError,
            ["layer 'dense'", "units", "0"],
            id="layer-units",
        ),
        pytest.param(
            L.build_layer,
            {"type": "dense", "unit": 3},
            TypeError,
            ["layer 'dense'", "unit"],
            id="layer-unknown-keyword",
        ),
        pytest.param(
            L.build_layer,
            {"type": "dense", "units": 3, "activation": {"name": "elu", "alpha": -2}},
            ValueError,
            ["elu", "-2"],
            id="layer-activation",
        ),
    ],
)
def test_bad_hyperparameters_name_the_component_and_value(get, spec, error, words):
    with pytest.raises(error) as info:
        get(spec)
    message = str(info.value)
    for word in words:
        assert word in message, f"{spec!r}: {word!r} missing from {message!r}"
