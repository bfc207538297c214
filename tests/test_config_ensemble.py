"""Ensembles and sweeps from configs and the command line (issue 18): ``[training] ensemble``,
the ``[sweep]`` table, their checks, the run directory of an ensemble, resume, evaluate."""

from __future__ import annotations

import csv
import inspect
import json
import pathlib

import numpy as np
import pytest

import backprop as bp
from backprop.app import cli
from backprop.app._configsweep import MAX_MEMBERS
from backprop.app.config import ConfigError, config_from_dict, dump_toml, load_config, tomllib
from backprop.training.checkpoint import load_checkpoint

ROOT = pathlib.Path(__file__).parent.parent
DIGITS = ROOT / "configs" / "digits.toml"
XOR = ROOT / "configs" / "xor.toml"
FIT_HAS_ENSEMBLE = "ensemble" in inspect.signature(bp.fit).parameters
needs_ensemble_fit = pytest.mark.skipif(
    not FIT_HAS_ENSEMBLE, reason="backprop.fit has no ensemble= yet (issue 18, fit part)"
)
BASE = {
    "data": {"name": "spirals", "n_per_class": 10},
    "model": {"hidden_sizes": [4], "output": "softmax", "loss": "cross_entropy"},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "training": {"epochs": 2},
}


def load(*overrides: str, raw: dict | None = None):
    return config_from_dict(BASE if raw is None else raw, overrides=list(overrides))


def problems(*overrides: str, raw: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(*overrides, raw=raw)
    return info.value.problems


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- the keys ------------------------------------------------------------------------------------
def test_ensemble_and_sweep_keys_are_read():
    plain = load()
    assert plain.members is None and plain.sweep.fit_sweep is None
    assert load("training.ensemble=3").members == 3
    cfg = load("sweep.lr=[0.01, 1]", "sweep.alpha=[0, 1e-3]")
    assert cfg.members == 2 and cfg.training.ensemble is None
    assert cfg.sweep.fit_sweep == {"lr": [0.01, 1.0], "alpha": [0.0, 1e-3]}
    assert load("sweep.lr=[0.1, 0.2]", "training.ensemble=2").members == 2
    adamw = load("optimizer.name=adamw", "sweep.weight_decay=[0.0, 0.1, 0.2]")
    assert adamw.sweep.fit_sweep == {"weight_decay": [0.0, 0.1, 0.2]}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["training.ensemble=0"], "[training] ensemble: expected the number of members, from 1"),
        ([f"training.ensemble={MAX_MEMBERS + 1}"], f"from 1 to {MAX_MEMBERS}, received"),
        (["training.ensemble=2.5"], "[training] ensemble: expected an integer, received 2.5"),
        (["training.ensemble=true"], "[training] ensemble: expected an integer, received True"),
        (["sweep.lr=0.1"], "[sweep] lr: expected a non-empty list of finite numbers"),
        (["sweep.lr=[]"], "[sweep] lr: expected a non-empty list of finite numbers"),
        (["sweep.lr=[0.1, inf]"], "[sweep] lr: expected a non-empty list of finite numbers"),
        (["sweep.lr=[0.1, true]"], "[sweep] lr: expected a non-empty list of finite numbers"),
        (["sweep.lr=[0.1, 'x']"], "[sweep] lr: expected a non-empty list of finite numbers"),
        (["sweep.lr=[0.1, -1]"], "[sweep] lr = [0.1, -1]: SGD: lr[1] must be a finite number > 0"),
        (["sweep.alpha=[0, -1]"], "[sweep] alpha: expected numbers >= 0, received [0, -1]"),
        (["sweep.momentum=[0.1, 0.9]"], "[sweep] momentum: not a per-member hyperparameter"),
        (["sweep.lrr=[0.1]"], "[sweep] lrr: not a per-member hyperparameter; did you mean 'lr'?"),
        (
            ["sweep.weight_decay=[0.1, 0.2]"],
            "[sweep] weight_decay: optimizer 'sgd' has no per-member weight_decay (it is a "
            "hyperparameter of ['adamw']); set [optimizer] name to one of those",
        ),
        (
            ["sweep.lr=[0.1, 0.2]", "sweep.alpha=[0.0]"],
            "[sweep]: the lists have different lengths (lr: 2, alpha: 1)",
        ),
        (
            ["sweep.lr=[0.1, 0.2]", "training.ensemble=3"],
            "[training] ensemble = 3 but the [sweep] lists hold 2 value(s) (lr: 2)",
        ),
        (
            [f"sweep.lr=[{', '.join(['0.1'] * (MAX_MEMBERS + 1))}]"],
            f"[sweep] lr: {MAX_MEMBERS + 1} values, but an ensemble holds at most {MAX_MEMBERS}",
        ),
        (
            ["optimizer.lr=[0.01, 0.1]"],
            "[optimizer] lr = [0.01, 0.1]: one number, shared by every member; to give each "
            "ensemble member its own lr, put the list in the [sweep] table (sweep.lr = "
            "[0.01, 0.1], or --set sweep.lr=[0.01,0.1])",
        ),
        (["model.alpha=[0, 0.1]"], "[model] alpha = [0, 0.1]: one number, shared by every"),
        (
            ["optimizer.name=adamw", "optimizer.weight_decay=[0.1]"],
            "put the list in the [sweep] table (sweep.weight_decay = [0.1]",
        ),
    ],
)
def test_each_wrong_ensemble_or_sweep_key_is_one_clear_problem(overrides, expected):
    found = problems(*overrides)
    assert len(found) == 1 and expected in found[0], found


def test_a_sweep_on_an_optimizer_that_is_already_wrong_is_reported_once():
    raw = {**BASE, "optimizer": {"name": "adamw", "momentum": 0.9}}
    found = problems("sweep.weight_decay=[0.1, -1]", raw=raw)
    assert len(found) == 1 and "[optimizer] momentum: unknown key" in found[0], found


def test_sweep_must_be_a_table():
    found = problems(raw={**BASE, "sweep": [0.1, 0.2]})
    assert found == ["sweep: expected a [sweep] table, received [0.1, 0.2]"]


def test_a_wrong_sweep_on_the_command_line_exits_2_with_one_message(capsys):
    code, out, err = run_cli(capsys, "train", DIGITS, "--set", "sweep.lr=[0.1,-1]", "--no-save")
    assert code == 2 and not out
    lines = err.splitlines()
    assert lines[0] == f"error: config {DIGITS}: 1 problem:", err
    assert lines[1:] == ["  - [sweep] lr = [0.1, -1]: SGD: lr[1] must be a finite number > 0, "
                         "received -1"]  # fmt: skip


# -- round trip ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["training.ensemble=4"],
        ["sweep.lr=[0.01, 0.03, 0.1]"],
        ["training.ensemble=2", "sweep.lr=[1, 2]", "sweep.alpha=[0.0, 1e-4]"],
        ["optimizer.name=adamw", "sweep.weight_decay=[0.0, 0.01]"],
    ],
)
def test_ensemble_configs_round_trip_through_toml(tmp_path, overrides):
    cfg = load(*overrides)
    resolved = cfg.to_dict()
    assert ("sweep" in resolved) == any(o.startswith("sweep.") for o in overrides)
    assert ("ensemble" in resolved["training"]) == any("ensemble" in o for o in overrides)
    path = tmp_path / "config.toml"
    path.write_text(dump_toml(resolved), encoding="utf-8")
    assert tomllib.loads(path.read_text()) == resolved
    again = load_config(path)
    assert again.to_dict() == resolved and again.members == cfg.members
    assert again.sweep == cfg.sweep and again.training == cfg.training


def test_config_level_refusals_before_any_data_is_loaded():
    found = problems("training.ensemble=2", "training.diagnostics=true")
    assert len(found) == 1 and "diagnostics" in found[0], found
    found = problems("sweep.lr=[0.1, 0.2]", "training.diagnostics=true")
    assert len(found) == 1 and "diagnostics" in found[0], found
    # a schedule that watches a column trains (one state per member): no problem to report
    assert load("sweep.lr=[0.1, 0.2]", "optimizer.schedule.name=reduce_on_plateau").members == 2


# -- end to end through the command line -----------------------------------------------------------
SPIRALS_TOML = """\
[data]
name = "spirals"
n_per_class = 30

[model]
hidden_sizes = [8]
output = "softmax"
loss = "cross_entropy"

[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9

[training]
epochs = 4
batch_size = 16
validation_split = 0.2

[training.checkpoint]
every = 2
"""


@pytest.fixture
def spirals(tmp_path) -> pathlib.Path:
    path = tmp_path / "spirals.toml"
    path.write_text(SPIRALS_TOML)
    return path


def history_rows(run: pathlib.Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


@needs_ensemble_fit
def test_a_sweep_run_writes_its_members_and_prints_them(capsys, tmp_path, spirals):
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "train", spirals, "--set", "sweep.lr=[0.01,0.1,0.3]",
        "--set", "sweep.alpha=[0,0,0.001]", "--run-dir", run,
    )  # fmt: skip
    assert code == 0, err
    assert (
        "ensemble of 3 members trained as one program (seeds 0..2; sweep: lr [0.01, 0.1, 0.3]; "
        "alpha [0, 0, 0.001])" in out
    )
    lines = out.splitlines()
    for k, lr in enumerate(["0.01", "0.1", "0.3"]):
        line = next(x for x in lines if x.startswith(f"member {k} "))
        assert f"(seed {k}, lr {lr}, alpha " in line and "val_loss " in line, line
        assert "; test loss " in line and "accuracy " in line, line
    assert any(x.startswith("best member: ") and "(by val_loss)" in x for x in lines), out
    mean = next(x for x in lines if x.startswith("test, ensemble mean of 3 members: loss "))
    # the directory: config with the sweep, stacked parameters, per-member history columns
    saved = load_config(run / "config.toml")
    assert saved.sweep.fit_sweep == {"lr": [0.01, 0.1, 0.3], "alpha": [0.0, 0.0, 0.001]}
    model = load_checkpoint(run / "model.npz")
    assert model.meta["model"]["type"] == "ensemble" and model.meta["model"]["members"] == 3
    assert model.trees["params"][0]["W"].shape == (3, 2, 8)
    assert {"loss[0]", "loss[2]", "val_accuracy[1]", "lr[2]"} <= set(history_rows(run)[0])
    record = json.loads((run / "manifest.json").read_text())
    assert record["status"] == "finished" and len(record["result"]["members"]) == 3
    assert record["result"]["members"][2]["lr"] == 0.3
    assert record["result"]["best_member"] in (0, 1, 2)
    # evaluate: the mean by default, each member with --members; the same numbers as training
    code, out, err = run_cli(capsys, "evaluate", run, "--members")
    assert code == 0, err
    assert "ensemble of 3 members" in out and "the members' mean prediction" in out
    test = record["result"]["test"]
    assert f"accuracy   {test['accuracy']:.2%}" in out and f"{test['accuracy']:.2%}" in mean
    assert [x for x in out.splitlines() if x.startswith("  member ")] == [
        f"  member {k}: loss {m['test']['loss']:.4g}, accuracy {m['test']['accuracy']:.2%}"
        for k, m in enumerate(record["result"]["members"])
    ]
    # predict: the mean probabilities
    x = np.random.default_rng(0).normal(size=(5, 2))
    np.savez(tmp_path / "x.npz", X=x)
    code, out, err = run_cli(capsys, "predict", run, "--data", tmp_path / "x.npz")
    assert code == 0, err
    rows = list(csv.reader(out.splitlines()))
    assert rows[0][0] == "class" and len(rows) == 6
    np.testing.assert_allclose([sum(map(float, r[1:])) for r in rows[1:]], 1.0, rtol=1e-5)


@needs_ensemble_fit
def test_member_k_of_a_config_ensemble_is_the_config_trained_with_seed_k(capsys, tmp_path):
    """xor in float64: member k of ``ensemble = 2`` ends where the plain config with
    ``seed = k`` (the same batches: full-batch, no shuffle) ends, to rounding."""
    args = ["train", XOR, "--set", "training.epochs=50", "--quiet"]
    assert (
        run_cli(capsys, *args, "--set", "training.ensemble=2", "--run-dir", tmp_path / "e")[0] == 0
    )
    ens = load_checkpoint(tmp_path / "e" / "model.npz").trees["params"]
    for k in range(2):
        alone = tmp_path / f"seed{k}"
        assert run_cli(capsys, *args, "--set", f"training.seed={k}", "--run-dir", alone)[0] == 0
        single = load_checkpoint(alone / "model.npz").trees["params"]
        for layer_e, layer_s in zip(ens, single, strict=True):
            for name in layer_s:
                np.testing.assert_allclose(
                    layer_e[name][k].reshape(layer_s[name].shape), layer_s[name], rtol=1e-12,
                    atol=1e-12,
                )  # fmt: skip


@needs_ensemble_fit
def test_an_ensemble_run_resumes_to_the_uninterrupted_result(capsys, tmp_path, spirals):
    full, short = tmp_path / "full", tmp_path / "short"
    args = ["train", spirals, "--set", "training.ensemble=3", "--quiet"]
    assert run_cli(capsys, *args, "--run-dir", full)[0] == 0
    assert run_cli(capsys, *args, "--set", "training.epochs=2", "--run-dir", short)[0] == 0
    code, _, err = run_cli(capsys, "train", "--resume", short, "--set", "training.epochs=4")
    assert code == 0, err
    a, b = load_checkpoint(full / "model.npz"), load_checkpoint(short / "model.npz")
    for la, lb in zip(a.trees["params"], b.trees["params"], strict=True):
        for name in la:
            np.testing.assert_array_equal(la[name], lb[name])
    timing = {"time", "samples_per_s"}
    rows_a, rows_b = history_rows(full), history_rows(short)
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in timing} for r in rows_b
    ]
    # the ensemble cannot change on resume: that would be another run
    code, _, err = run_cli(capsys, "train", "--resume", short, "--set", "training.ensemble=4")
    assert code == 2 and "training.ensemble cannot change when resuming" in err, err


def test_members_on_a_single_model_run_is_refused(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", XOR, "--set", "training.epochs=2", "--run-dir", run)[0] == 0
    code, _, err = run_cli(capsys, "evaluate", run, "--members")
    assert code == 2 and err.startswith("error: --members: ") and "not an ensemble" in err, err
