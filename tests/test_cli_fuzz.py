"""Fuzzed configs through the loader and the command line (hypothesis, bounded to seconds).

Random mutations of the shipped configs (wrong types, unknown keys, out-of-range and
non-finite values, random unicode strings and keys, tables nested into values, edits of the TOML
text itself). The contract: `load_config` returns a `Config` or raises `ConfigError`; ``backprop
train`` exits 0, or 2 with one message on standard error (``error: ...``; a config error lists
its problems as ``  - `` lines), or 1 only for a documented runtime failure (the training
diverged). A traceback or any other exception fails the test.
"""

from __future__ import annotations

import copy
import math
import pathlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop.app import cli
from backprop.app.config import ConfigError, config_from_dict, dump_toml, load_config, tomllib

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"
SHIPPED = {p.stem: tomllib.loads(p.read_text("utf-8")) for p in sorted(CONFIGS.glob("*.toml"))}

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a user (or a script) might put anywhere. No integer between a few and ~1e18: as a size
# (units, n_per_class) such a value is a legitimate request for gigabytes, not a bad input.
EDGES = [
    -(2**63), -1, 0, 1, 2, 3, 2**64, 10**30,
    0.0, -0.0, 0.5, 1.5, -2.5, 5e-324, 1e-300, 1e300, math.inf, -math.inf, math.nan,
    True, False, "", " ", "relu", "softmax", "cross_entropy", "adam", "cosine", "csv", "npz", "npy",
    "xor", "spirals", "dense", "val_loss", "balanced", "float64", "none", "1", "..", "/",
]  # fmt: skip
KEYS = [
    "name", "epochs", "batch_size", "seed", "lr", "momentum", "noise", "n_per_class",
    "hidden_sizes", "hidden", "output", "dropout", "alpha", "loss", "layers", "units", "type",
    "activation", "validation_split", "test_fraction", "class_weight", "standardize", "dtype",
    "precision", "schedule", "early_stopping", "checkpoint", "path", "target", "monitor",
    "backend", "data", "model", "optimizer", "training", "imports", "ensemble", "sweep",
    "weight_decay",
]  # fmt: skip
TRICKY = "\"'\\\n\t\x00\x7fé٣𝟘 .=[]{}#"  # what a TOML writer must quote or escape
text = st.text(st.sampled_from(TRICKY) | st.characters(codec="utf-8"), max_size=8)
keys = st.sampled_from(KEYS) | text
values = st.recursive(
    st.sampled_from(EDGES) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=2),
    max_leaves=5,
)


def _slots(tree) -> list[tuple[object, object]]:
    """Every (container, key or index) in ``tree``, in a fixed order."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            out.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return out


SMALL_INTS = st.sampled_from([-1, 0, 1, 2, 3, 5, 2**64])


def _same_kind(value):
    """A value of the same TOML type as ``value``: what passes the type check and meets the
    range checks, the data and the training."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return SMALL_INTS
    if isinstance(value, float):
        return st.floats(-2, 2) | st.sampled_from(EDGES[8:19])
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return st.lists(SMALL_INTS, max_size=3)
    return values


def _is_number(value) -> bool:
    """A number, a flag or a list of integers (``hidden_sizes``)."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, int) for v in value)
    return isinstance(value, int | float)


@st.composite
def mutated(draw, bases: dict[str, dict], wild: bool = True):
    """A shipped config with one to three random edits; not ``wild``: only values of the same
    type (most pass the config's checks and reach the data and the training)."""
    raw = copy.deepcopy(bases[draw(st.sampled_from(sorted(bases)))])
    edits = (
        ["same-kind", "same-kind", "replace", "delete", "add", "nest"] if wild else ["same-kind"]
    )
    for _ in range(draw(st.integers(1, 3))):
        slots = [(node, key) for node, key in _slots(raw) if wild or _is_number(node[key])]
        if not slots:
            break
        node, key = draw(st.sampled_from(slots))
        edit = draw(st.sampled_from(edits))
        if edit == "same-kind":
            node[key] = draw(_same_kind(node[key]))
        elif edit == "replace":
            node[key] = draw(values)
        elif edit == "delete":
            del node[key]
        elif edit == "add":
            target = node[key] if isinstance(node[key], dict) else raw
            target[draw(keys)] = draw(values)
        else:
            node[key] = {draw(keys): node[key]}
    return raw


@st.composite
def config_texts(draw, bases: dict[str, dict], wild: bool = True) -> str:
    """TOML text of a mutated config; ``wild``: sometimes with characters inserted or cut."""
    written = dump_toml(draw(mutated(bases, wild)))
    if wild and draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(written)))
        cut = draw(st.integers(0, 3))
        written = written[:at] + draw(text) + written[at + cut :]
    return written


# -- the loader ----------------------------------------------------------------------------------
@settings(SETTINGS, max_examples=200)
@given(config_texts(SHIPPED))
def test_the_loader_returns_a_config_or_a_config_error(tmp_path, written):
    path = tmp_path / "fuzzed.toml"
    path.write_text(written, encoding="utf-8")
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems), exc.problems
        return
    resolved = cfg.to_dict()  # what a run saves reads back as the same config
    assert config_from_dict(tomllib.loads(dump_toml(resolved))).to_dict() == resolved


# -- the command line ----------------------------------------------------------------------------
def _tiny(data: dict) -> dict:
    xor = copy.deepcopy(SHIPPED["xor"])
    return {**xor, "data": data}


XOR_LAYERS = {
    "loss": "binary_cross_entropy",
    "layers": [
        {"type": "dense", "units": 3, "activation": "tanh"},
        {"type": "residual", "layers": [{"type": "layer_norm"}, {"type": "dense", "units": 3}]},
        {"type": "dense", "units": 1, "activation": "sigmoid"},
    ],
}
TINY = {  # shipped model sections on data small enough that one epoch takes milliseconds
    "xor": SHIPPED["xor"],
    "spirals": _tiny({"name": "spirals", "n_per_class": 8, "test_fraction": 0.25}),
    "moons": _tiny({"name": "moons", "n_samples": 16, "noise": 0.1}),
    "xor_layers": {**_tiny({"name": "xor", "test_fraction": 0.0}), "model": XOR_LAYERS},
}


def assert_documented_outcome(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if code == 0:
        return
    lines = err.splitlines()
    assert lines and lines[0].startswith("error: "), err
    if code == 2:  # one message: a line, or a config error's header and its "  - " problems
        assert all(line.startswith("  - ") for line in lines[1:]), err
        return
    assert code == 1 and len(lines) == 1 and "TrainingDiverged" in lines[0], (code, err)


def test_the_tiny_bases_train():
    """The fuzz starts from configs that work, so a mutation is what fails."""
    for name, raw in TINY.items():
        cfg = config_from_dict(raw, overrides=["training.epochs=1"])
        assert cfg.training.epochs == 1, name


@settings(SETTINGS, max_examples=150)
@given(config_texts(TINY) | config_texts(TINY, wild=False))
def test_train_exits_0_or_with_one_documented_message(tmp_path, capsys, written):
    path = tmp_path / "fuzzed.toml"
    path.write_text(written, encoding="utf-8")
    code = cli.main(["train", str(path), "--no-save", "--quiet", "--set", "training.epochs=1"])
    assert_documented_outcome(code, capsys.readouterr().err)
