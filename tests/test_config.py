"""Config files: parsing, defaults, overrides, and one clear message per problem."""

from __future__ import annotations

import pathlib

import pytest

from backprop.app.config import (
    ConfigError,
    config_from_dict,
    dump_toml,
    load_config,
    parse_override,
    tomllib,
)

CONFIGS = sorted((pathlib.Path(__file__).parent.parent / "configs").glob("*.toml"))
MINIMAL = {"data": {"name": "xor"}}


def problems_of(raw: dict, overrides: list[str] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, overrides=overrides)
    assert str(info.value).startswith("config <dict>: ")
    return info.value.problems


def only_problem(raw: dict, overrides: list[str] = ()) -> str:
    problems = problems_of(raw, overrides)
    assert len(problems) == 1, problems
    return problems[0]


def with_(section: str, **keys) -> dict:
    raw = {"data": {"name": "xor"}}
    raw.setdefault(section, {}).update(keys)
    return raw


# -- the shipped configs ---------------------------------------------------------------------------
def test_the_shipped_configs_are_the_documented_set():
    assert {p.stem for p in CONFIGS} >= {"xor", "digits", "breast_cancer", "intents", "diabetes"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_loads_and_its_resolved_form_round_trips(path):
    cfg = load_config(path)
    resolved = cfg.to_dict()
    assert tomllib.loads(dump_toml(resolved)) == resolved
    again = config_from_dict(tomllib.loads(dump_toml(resolved)))
    assert again.to_dict() == resolved
    raw = tomllib.loads(path.read_text())
    for section, table in raw.items():  # every key written in the file survives resolution
        for key, value in table.items():
            if not isinstance(value, dict):
                assert resolved[section][key] == value, (section, key)


def test_defaults_fill_every_section():
    cfg = config_from_dict(MINIMAL)
    assert (cfg.backend.name, cfg.backend.dtype, cfg.backend.precision) == (
        "numpy",
        "float32",
        "default",
    )
    assert (cfg.training.epochs, cfg.training.batch_size, cfg.training.seed) == (10, 32, 0)
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.schedule.name == "constant"
    assert cfg.training.early_stopping is None
    model = cfg.model.build(2, 1)
    assert model.sizes == [2, 1]


def test_optimizer_schedule_and_dataset_options_reach_their_objects():
    cfg = config_from_dict(
        {
            "data": {"name": "spirals", "n_per_class": 30, "noise": 0},
            "optimizer": {
                "name": "adam",
                "lr": 0.01,
                "clip_norm": 1,
                "schedule": {"name": "cosine", "warmup_steps": 5},
            },
            "training": {"early_stopping": {"patience": 2}, "validation_split": 0.2},
        }
    )
    opt = cfg.optimizer.build()
    assert (opt.name, opt.lr, opt.clip_norm) == ("adam", 0.01, 1.0)
    assert isinstance(opt.clip_norm, float)  # TOML integer 1 read as the float it means
    assert cfg.optimizer.schedule.build().spec()["warmup_steps"] == 5
    assert cfg.data.options == {"n_per_class": 30, "noise": 0.0}
    assert cfg.training.early_stopping.patience == 2


def test_precision_float64_sets_the_dtype():
    cfg = config_from_dict({**MINIMAL, "backend": {"precision": "float64"}})
    assert cfg.backend.dtype == "float64"


# -- overrides -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("training.epochs=5", (["training", "epochs"], 5)),
        ("optimizer.lr=0.5", (["optimizer", "lr"], 0.5)),
        ("backend.name=jax", (["backend", "name"], "jax")),
        ('backend.name="jax"', (["backend", "name"], "jax")),
        ("model.hidden_sizes=[8, 4]", (["model", "hidden_sizes"], [8, 4])),
        ("training.shuffle=false", (["training", "shuffle"], False)),
        ("optimizer.schedule.name=cosine", (["optimizer", "schedule", "name"], "cosine")),
    ],
)
def test_override_values_are_read_as_toml(text, expected):
    assert parse_override(text) == expected


def test_overrides_apply_and_are_validated_like_the_file():
    cfg = config_from_dict(MINIMAL, overrides=["training.epochs=3", "model.hidden_sizes=[5]"])
    assert cfg.training.epochs == 3 and cfg.model.hidden_sizes == [5]
    assert "[training] epochs: expected an integer, received 'three'" in only_problem(
        MINIMAL, ["training.epochs=three"]
    )
    assert "did you mean 'epochs'" in only_problem(MINIMAL, ["training.epoch=3"])


@pytest.mark.parametrize("text", ["epochs=3", "training.epochs", ".epochs=3", "training..x=1"])
def test_malformed_override_says_the_expected_form(text):
    assert "expected section.key=value" in only_problem(MINIMAL, [text])


# -- one message per problem, naming the key, what was received and what is allowed -------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # unknown keys and sections: the closest valid name
        (with_("training", epoch=5), ["[training] epoch: unknown key", "did you mean 'epochs'?"]),
        (with_("backend", precison="fast"), ["did you mean 'precision'?", "valid keys: ["]),
        ({**MINIMAL, "trainin": {}}, ["[trainin]: unknown section", "did you mean 'training'?"]),
        (with_("optimizer", momentm=0.9), ["[optimizer] momentm", "did you mean 'momentum'?"]),
        (
            with_("optimizer", schedule={"name": "cosine", "warmup": 3}),
            ["[optimizer.schedule] warmup", "did you mean 'warmup_steps'?"],
        ),
        (
            {"data": {"name": "spirals", "nosie": 0.1}},
            ["(dataset 'spirals') nosie", "did you mean 'noise'?"],
        ),
        (
            with_("training", early_stopping={"patiense": 3}),
            ["[training.early_stopping] patiense", "did you mean 'patience'?"],
        ),
        # wrong types
        (with_("training", epochs="10"), ["[training] epochs: expected an integer, received '10'"]),
        (with_("training", epochs=10.0), ["expected an integer, received 10.0"]),
        (with_("training", shuffle=1), ["[training] shuffle: expected true or false, received 1"]),
        (
            with_("optimizer", lr="fast"),
            ["[optimizer] lr: expected a finite number, received 'fast'"],
        ),
        (with_("model", hidden_sizes=64), ["[model] hidden_sizes: expected a list of integers"]),
        (with_("model", alpha=float("nan")), ["[model] alpha: expected a finite number"]),
        ({"data": {"name": "spirals", "n_per_class": 1.5}}, ["expected an integer, received 1.5"]),
        ({"data": "xor"}, ["data: expected a [data] table, received 'xor'"]),
        # out of range
        (with_("training", batch_size=0), ["[training] batch_size: expected >= 1, received 0"]),
        (with_("training", validation_split=1.0), ["expected in [0, 1), received 1.0"]),
        (with_("model", hidden_sizes=[8, 0]), ["expected >= 1, received [8, 0]"]),
        (with_("model", dropout=[0.5, 1.0]), ["[model] dropout: expected in [0, 1)"]),
        (
            with_("backend", dtype="float8"),
            ["expected one of ['float32', 'float64', 'bfloat16', 'float16'], received 'float8'"],
        ),
        (with_("optimizer", lr=-0.1), ["[optimizer]", "lr", "-0.1"]),
        (with_("training", seed=-1), ["[training] seed: expected >= 0, received -1"]),
        # unknown names
        (with_("backend", name="nunpy"), ["unknown backend 'nunpy'", "did you mean 'numpy'?"]),
        ({"data": {"name": "digts"}}, ["unknown dataset 'digts'", "did you mean 'digits'?"]),
        (
            with_("model", hidden_sizes=[4], hidden="rleu"),
            ["[model] hidden: unknown activation 'rleu'", "did you mean 'relu'?"],
        ),
        (with_("model", loss="mes"), ["[model]", "'mes'", "did you mean 'mse'?"]),
        (with_("optimizer", name="adm"), ["unknown optimizer 'adm'", "did you mean 'adam'?"]),
        (
            with_("optimizer", schedule={"name": "cosin"}),
            ["unknown schedule 'cosin'", "did you mean 'cosine'?"],
        ),
        (with_("training", metric="acc"), ["[training] metric: expected one of ['auto'"]),
        (with_("backend", device="tpu"), ["[backend] device", "'tpu'", "'gpu:N'"]),
        # keys that contradict each other
        (
            with_("backend", precision="float64", dtype="float32"),
            ["precision = 'float64'", "dtype = 'float32'"],
        ),
        (
            with_("model", loss="cross_entropy"),
            ["[model] loss 'cross_entropy' needs output activation in ['softmax']"],
        ),
        (
            with_("training", early_stopping={}),
            ["monitor = 'val_loss' needs a validation set", "validation_split"],
        ),
        (with_("training", class_weight="balancd"), ["class_weight: expected 'none', 'balanced'"]),
        (with_("training", class_weight={"a": -1.0}), ["[training.class_weight] a = -1.0"]),
        ({"model": {}}, ["[data]: missing section"]),
        ({"data": {}}, ["[data] name: required key is missing"]),
        ({"data": {"name": "csv"}}, ["(dataset 'csv') path: required key is missing"]),
    ],
)
def test_each_problem_names_key_received_and_allowed(raw, expected):
    problem = "\n".join(problems_of(raw))
    for text in expected:
        assert text in problem, problem


def test_every_problem_is_reported_at_once():
    raw = {
        "backend": {"name": "nunpy"},
        "data": {"name": "xor"},
        "model": {"alpha": -1},
        "optimizer": {"name": "adm"},
        "training": {"epochs": 0, "batch_size": "32"},
    }
    problems = problems_of(raw)
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for key in ("nunpy", "alpha", "adm", "epochs", "batch_size"):
        assert key in joined


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file; shipped configs: .*digits.toml"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nepochs = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(binary)


def test_config_text_is_never_evaluated(tmp_path):
    path = tmp_path / "evil.toml"
    marker = tmp_path / "pwned"
    path.write_text(f"[data]\nname = \"__import__('pathlib').Path('{marker}').touch()\"\n")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_config(path)
    assert not marker.exists()


def test_dump_toml_quotes_what_needs_quoting():
    data = {"a": {"s": 'say "hi" \\ bye', "f": 0.1, "i": 3, "b": True, "l": [1.5, 2.0]}}
    assert tomllib.loads(dump_toml(data)) == data
    with pytest.raises(TypeError, match="cannot write"):
        dump_toml({"a": {"x": object()}})


def test_every_key_is_documented():
    import dataclasses

    from backprop.app.config import SECTIONS, SUBTABLES

    page = (pathlib.Path(__file__).parent.parent / "docs" / "configs.md").read_text()
    tables = [*SECTIONS.items(), *((".".join(k), v) for k, v in SUBTABLES.items())]
    for name, cls in tables:
        assert f"[{name}]" in page, name
        for f in dataclasses.fields(cls):
            if "kind" in f.metadata:
                assert f"`{f.name}`" in page or f"`{f.name} =" in page, (name, f.name)
