"""Configs that describe any `Sequential` with ``[[model.layers]]`` tables, activation and loss
inline tables, and the resolved config's round trips (plugins: tests/test_plugins.py)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from config_helpers import layered, problems_of

from backprop import MLP, Sequential
from backprop.app import experiment
from backprop.app.config import ConfigError, config_from_dict, dump_toml, load_config, tomllib
from backprop.data import datasets

XOR_LAYERS = """\
[backend]
dtype = "float64"

[data]
name = "xor"
test_fraction = 0.0

[model]
loss = "binary_cross_entropy"
alpha = 0.0

[[model.layers]]
type = "dense"
units = 8
activation = {name = "leaky_relu", slope = 0.1}

[[model.layers]]
type = "dense"
units = 1
activation = "sigmoid"

[optimizer]
name = "adam"
lr = 0.05

[training]
epochs = 200
batch_size = 4
shuffle = false
"""


# -- layered configs train -------------------------------------------------------------------------
def test_layered_config_trains_xor_on_numpy(tmp_path):
    path = tmp_path / "xor_layers.toml"
    path.write_text(XOR_LAYERS)
    cfg = load_config(path)
    assert cfg.model.output == "sigmoid"  # the last layer's activation, for the data's targets
    result = experiment.train_config(cfg, save=False, verbose=0)
    model = result.fit.model
    assert type(model) is Sequential and model.input_shape == (2,)
    assert [layer.name for layer in model.layers] == ["dense", "dense"]
    assert model.layers[0].activation.slope == 0.1
    assert result.test["accuracy"] == 1.0 and result.test["loss"] < 0.05


def test_layered_config_with_residual_layer_norm_and_dropout_trains_on_digits():
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn")
    raw = {
        "data": {"name": "digits"},
        "model": {
            "loss": "cross_entropy",
            "alpha": 1e-4,
            "layers": [
                {"type": "dense", "units": 16, "activation": "relu"},
                {
                    "type": "residual",
                    "layers": [
                        {"type": "layer_norm"},
                        {"type": "dense", "units": 16, "activation": "tanh"},
                    ],
                },
                {"type": "dropout", "rate": 0.1},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
        },
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 64},
    }
    result = experiment.train_config(config_from_dict(raw), save=False, verbose=0)
    assert result.fit.model.output_shape == (10,)  # 10 classes from integer labels + softmax
    assert result.test["accuracy"] > 0.5


@pytest.mark.parametrize(
    ("dataset", "layers", "input_shape"),
    [
        (
            {"name": "waveforms", "n_samples": 80},
            [
                {"type": "conv1d", "filters": 3, "kernel_size": 5, "activation": "relu"},
                {"type": "global_average_pool1d"},
                {"type": "dense", "units": 4, "activation": "softmax"},
            ],
            "tuple",
        ),
        (
            {"name": "intents_tokens"},
            [
                {"type": "embedding_bag", "vocab_size": 400, "dim": 4},
                {"type": "dense", "units": 8, "activation": "softmax"},
            ],
            "tokens",
        ),
    ],
    ids=["signals", "token-ids"],
)
def test_layers_take_the_data_shape_signals_and_token_ids(dataset, layers, input_shape):
    if dataset["name"] not in datasets.DATASETS:
        pytest.skip(f"dataset {dataset['name']!r} is not there")
    raw = {
        "data": dataset,
        "model": {"loss": "cross_entropy", "layers": layers},
        "training": {"epochs": 1},
    }
    cfg = config_from_dict(raw)
    data = experiment.prepare_dataset(cfg)
    model = cfg.model.build(data.n_in, data.n_out)
    assert model.input_shape == np.asarray(data.x_train).shape[1:]
    if input_shape == "tokens":
        assert model.input_kind == "int"


def test_the_mlp_shorthand_takes_inline_tables_and_builds_an_mlp():
    raw = {
        "data": {"name": "xor"},
        "model": {
            "hidden_sizes": [4, 3],
            "hidden": [{"name": "leaky_relu", "slope": 0.2}, "tanh"],
            "output": {"name": "sigmoid"},
            "loss": {"name": "huber", "delta": 0.5},
        },
    }
    model = config_from_dict(raw).model.build(2, 1)
    assert type(model) is MLP and model.sizes == [2, 4, 3, 1]
    assert model.dense_layers[0].activation.slope == 0.2
    assert model.loss_function.delta == 0.5
    with pytest.raises(ConfigError, match=r"MLP shorthand takes 1-D features.*\(64, 1\)"):
        config_from_dict(raw).model.build((64, 1), 1)


def test_standardize_targets_takes_any_regression_loss():
    raw = {"data": {"name": "xor", "standardize_targets": True}, "model": {"loss": "huber"}}
    config_from_dict(raw)  # huber is a regression loss: no problem
    raw["model"] = {"loss": "binary_cross_entropy", "output": "sigmoid"}
    assert "standardize_targets = true is for mse/huber regression" in problems_of(raw)[0]
    assert "takes class targets" in problems_of(raw)[0]
    raw["model"] = {"loss": "poisson", "output": "exp"}  # counts >= 0: z-scores are not
    assert "in their own units (>= 0 for poisson)" in problems_of(raw)[0]


# -- one problem per mistake, with the location and the fix ----------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            layered({"type": "dense", "units": 4}, {"type": "dens", "units": 1}),
            ["[model] layers[1] type: unknown layer type 'dens'", "did you mean 'dense'?"],
        ),
        (
            layered({"type": "dense", "units": 0}),
            ["[model] layers[0]: layer 'dense': units must be an int >= 1, received 0"],
        ),
        (
            layered({"type": "dropout", "rate": 1.5}),
            ["[model] layers[0]: layer 'dropout': rate must be a number in [0, 1)"],
        ),
        (
            layered({"type": "dense", "unit": 1}),
            ["[model] layers[0]: layer 'dense' has no key 'unit'", "did you mean 'units'?"],
        ),
        (layered({"type": "dense"}), ["[model] layers[0]: layer 'dense' needs units"]),
        (layered({"units": 3}), ["[model] layers[0]: the layer table has no type", "'dense'"]),
        (layered(7), ["[model] layers[0]: expected a layer table such as {type = "]),
        (
            layered({"type": "dense", "units": 1, "activation": "rleu"}),
            ["[model] layers[0] activation: unknown activation 'rleu'", "did you mean 'relu'?"],
        ),
        (
            layered({"type": "dense", "units": 1, "activation": {"name": "elu", "alpha": -1}}),
            ["[model] layers[0] activation: activation 'elu': alpha must be a number in (0, "],
        ),
        (
            layered({"type": "residual", "layers": [{"type": "layer_nrm"}]}),
            ["[model] layers[0].layers[0] type: unknown layer type 'layer_nrm'", "'layer_norm'"],
        ),
        (
            layered({"type": "dense", "units": 1}, loss={"name": "huber", "delta": -1}),
            ["[model] loss: loss 'huber': delta must be a number > 0, received -1"],
        ),
        (
            layered({"type": "dense", "units": 1}, loss={"name": "huber", "delt": 1}),
            ["[model] loss: loss 'huber' has no key 'delt'", "did you mean 'delta'?"],
        ),
        (
            layered({"type": "dense", "units": 3}, loss="cross_entropy"),
            ["[model] loss 'cross_entropy' needs the last layer's activation in ['softmax']"],
        ),
        (
            layered({"type": "dense", "units": 1}, hidden_sizes=[4], dropout=0.1),
            ["[model] layers and hidden_sizes, dropout: ", "not both", "remove hidden_sizes"],
        ),
        (layered(), ["[model] layers: expected a non-empty list of layer tables"]),
        (
            {"data": {"name": "xor"}, "model": {"hidden": {"name": "leaky_relu", "slop": 1}}},
            ["[model] hidden: activation 'leaky_relu' has no key 'slop'", "'slope'"],
        ),
        (
            {"data": {"name": "xor"}, "model": {"output": {"slope": 1}}},
            ["[model] output: the inline table {slope = 1} has no name"],
        ),
        ({"data": {"name": "xor"}, "imports": "cube"}, ["imports: expected a list of module"]),
    ],
)
def test_each_layer_problem_names_where_what_and_the_fix(raw, expected):
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    for text in expected:
        assert text in problems[0], problems[0]


def test_every_bad_layer_is_reported_at_once():
    raw = layered({"type": "dens"}, {"type": "dense", "units": -1}, {"type": "dropout", "p": 1})
    assert [p.split(":")[0] for p in problems_of(raw)] == [
        "[model] layers[0] type",
        "[model] layers[1]",
        "[model] layers[2]",
    ]


def test_last_layer_width_must_match_the_data():
    cfg = config_from_dict(
        {
            "data": {"name": "xor", "test_fraction": 0.0},
            "model": {"layers": [{"type": "dense", "units": 4}, {"type": "dense", "units": 3}]},
        },
        source="xor3.toml",
    )
    with pytest.raises(ConfigError) as info:
        experiment.train_config(cfg, save=False, verbose=0)
    (problem,) = info.value.problems
    assert "config xor3.toml" in str(info.value)
    assert "the last layer (layers[1]) outputs 3 values per example" in problem
    assert "the data has 1 output per example" in problem
    assert "set units = 1 in layers[1]" in problem


def test_layers_that_do_not_fit_the_input_shape_are_a_config_error():
    cfg = config_from_dict(layered({"type": "dense", "units": 1}))
    with pytest.raises(ConfigError, match=r"\[model\] layers, on the data's input shape \(8, 2\)"):
        cfg.model.build((8, 2), 1)


# -- round trips -----------------------------------------------------------------------------------
def test_layered_config_round_trips_through_to_dict_and_toml(tmp_path):
    path = tmp_path / "xor_layers.toml"
    path.write_text(XOR_LAYERS)
    cfg = load_config(path)
    resolved = cfg.to_dict()
    assert "hidden_sizes" not in resolved["model"] and "output" not in resolved["model"]
    assert resolved["model"]["layers"] == tomllib.loads(XOR_LAYERS)["model"]["layers"]
    assert config_from_dict(resolved).to_dict() == resolved
    text = dump_toml(resolved)
    assert 'activation = { name = "leaky_relu", slope = 0.1 }' in text  # short: inline tables
    assert tomllib.loads(text) == resolved
    again = tmp_path / "again.toml"
    again.write_text(text)
    assert load_config(again).to_dict() == resolved
    assert load_config(again).model == cfg.model


def test_nested_layers_and_inline_loss_round_trip():
    raw = layered(
        {"type": "dense", "units": 4, "activation": {"name": "elu", "alpha": 0.5}},
        {"type": "residual", "layers": [{"type": "layer_norm"}, {"type": "dense", "units": 4}]},
        {"type": "dense", "units": 1},
        loss={"name": "huber", "delta": 0.5},
        alpha=0.01,
    )
    resolved = config_from_dict(raw).to_dict()
    assert tomllib.loads(dump_toml(resolved)) == resolved
    assert config_from_dict(tomllib.loads(dump_toml(resolved))).to_dict() == resolved


def test_dump_toml_round_trips_random_nested_tables():
    """Seeded random configs: tables, arrays of tables, inline tables in lists, odd keys and
    strings; ``tomllib.loads(dump_toml(d)) == d`` for each."""
    rng = np.random.default_rng(0)
    keys = ["a", "units", "b-c", "with space", "é", "", "1"]
    scalars = [0, -3, 2.5, 1e-300, float("inf"), True, "relu", 'q"uo\\te\n\t\x7f', "ü"]

    def value(depth: int):
        pick = rng.integers(0, 4 if depth < 3 else 1)
        if pick == 0:
            return scalars[rng.integers(len(scalars))]
        if pick == 1:
            return [value(depth + 1) for _ in range(rng.integers(0, 3))]
        if pick == 2:
            return [table(depth + 1) for _ in range(rng.integers(1, 3))]
        return table(depth + 1)

    def table(depth: int) -> dict:
        return {keys[rng.integers(len(keys))]: value(depth) for _ in range(rng.integers(0, 4))}

    for _ in range(300):
        data = table(0)
        assert tomllib.loads(dump_toml(data)) == data, data


def test_set_model_layers_replaces_the_whole_list():
    layers = '[{type = "dense", units = 3, activation = "tanh"}, {type = "dense", units = 1}]'
    cfg = config_from_dict({"data": {"name": "xor"}}, overrides=[f"model.layers={layers}"])
    assert [t["units"] for t in cfg.model.layers] == [3, 1]
    raw = layered({"type": "dense", "units": 1})
    (problem,) = problems_of(raw, overrides=["model.layers.0.units=4"])
    assert "'layers' is a value, not a table" in problem and "--set 'model.layers=[{" in problem


def test_the_documented_layer_tables_are_valid():
    page = (pathlib.Path(__file__).parent.parent / "docs" / "configs.md").read_text()
    blocks = [b.split("```")[0] for b in page.split("```toml\n")[1:]]
    blocks = [b for b in blocks if "[[model.layers]]" in b]
    assert len(blocks) == 2
    dense = config_from_dict({"data": {"name": "digits"}, **tomllib.loads(blocks[0])})
    assert [t["type"] for t in dense.model.layers] == [
        "dense", "residual", "layer_norm", "dropout", "activation", "dense"
    ]  # fmt: skip
    assert dense.model.build(64, 10).output_shape == (10,)
    signal = tomllib.loads(blocks[1])
    signal["model"]["layers"].append({"type": "dense", "units": 4, "activation": "softmax"})
    cfg = config_from_dict({"data": {"name": "xor"}, **signal})
    assert cfg.model.build((64, 1), 4).output_shape == (4,)
