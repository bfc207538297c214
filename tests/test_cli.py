"""The command line: train, evaluate, gradcheck, backends; run directories; exit codes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import backends
from backprop.app import cli
from backprop.app.config import tomllib
from backprop.nn import activations
from backprop.nn.layers import LAYERS
from backprop.training.checkpoint import load_checkpoint

ROOT = pathlib.Path(__file__).parent.parent
CONFIGS = ROOT / "configs"
PLUGIN = pathlib.Path(__file__).parent / "plugins" / "cube_activation.py"
CUBE_CONFIG = """\
[data]
name = "xor"
test_fraction = 0.0

[model]
loss = "mse"

[[model.layers]]
type = "dense"
units = 4
activation = {name = "cube", scale = 0.5}

[[model.layers]]
type = "scale"
factor = 0.5

[[model.layers]]
type = "dense"
units = 1
activation = "sigmoid"

[training]
epochs = 3
batch_size = 4
"""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def needs_sklearn():
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn")


# -- train ---------------------------------------------------------------------------------------
def test_train_writes_a_complete_run_directory(capsys, tmp_path):
    needs_sklearn()
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "train", CONFIGS / "digits.toml", "--run-dir", run, "--set", "training.epochs=3"
    )
    assert code == 0, err
    assert "digits: 1213 train + 135 validation / 449 test rows" in out
    assert "backend numpy" in out and "trained 3 epoch(s)" in out
    assert f"run directory: {run}" in out
    files = {p.name for p in run.iterdir()}
    assert {"model.npz", "last.npz", "history.csv", "config.toml", "manifest.json"} <= files
    # the resolved config runs again and holds the override
    resolved = tomllib.loads((run / "config.toml").read_text())
    assert resolved["training"]["epochs"] == 3 and resolved["model"]["hidden_sizes"] == [64]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["backend"]["backend"] == "numpy"
    assert manifest["backend"]["numpy"] == np.__version__
    assert manifest["backend"]["precision"]["mode"] == "default"
    assert manifest["result"]["epochs"] == 3
    assert set(manifest["files"]) == files
    test_accuracy = manifest["result"]["test"]["accuracy"]
    assert f"test: loss {manifest['result']['test']['loss']:.4g}, accuracy" in out
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy") and len(history) == 4
    # the model file carries the spec, the params and the resolved config
    ckpt = load_checkpoint(run / "model.npz")
    assert ckpt.meta["model"]["sizes"] == [64, 64, 10]
    assert ckpt.meta["config"]["resolved"] == resolved
    # evaluate on the run directory gives the same held-out accuracy
    code, out, err = run_cli(capsys, "evaluate", run)
    assert code == 0, err
    assert "its 449 held-out test rows" in out
    assert f"{test_accuracy:.2%}" in out


def test_run_directories_are_never_overwritten(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    code, _, err = run_cli(capsys, "train", CONFIGS / "xor.toml", "--run-dir", run)
    assert code == 2
    assert "already exists and is not empty" in err and "Traceback" not in err
    assert (run / "keep.txt").read_text() == "precious"


def test_default_run_directory_is_new_each_time(capsys, tmp_path):
    args = ["train", CONFIGS / "xor.toml", "--set", "training.epochs=2"]
    args += ["--set", f"training.run_dir='{tmp_path}'"]
    assert run_cli(capsys, *args)[0] == 0
    assert run_cli(capsys, *args)[0] == 0
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert len(runs) == 2 and all(r.startswith("xor-") for r in runs)


def test_full_digits_run_reaches_97_percent(capsys):
    needs_sklearn()
    code, out, err = run_cli(capsys, "train", CONFIGS / "digits.toml", "--no-save")
    assert code == 0, err
    accuracy = float(out.split("test: loss ")[1].split("accuracy ")[1].split("%")[0])
    assert accuracy >= 97.0


# -- plugins and layer tables --------------------------------------------------------------------
def _forget_plugin() -> None:
    """As in a new process: the plugin's registrations and module gone."""
    activations.ACTIVATIONS._items.pop("cube", None)
    LAYERS._items.pop("scale", None)
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) and pathlib.Path(module.__file__) == PLUGIN:
            del sys.modules[name]


@pytest.fixture
def cube_config(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # --import tests/plugins/cube_activation.py, relative to here
    path = tmp_path / "cube.toml"
    path.write_text(CUBE_CONFIG)
    yield path
    _forget_plugin()


def test_train_gradcheck_and_evaluate_with_a_plugin_module(capsys, tmp_path, cube_config):
    plugin = "tests/plugins/cube_activation.py"
    code, _, err = run_cli(capsys, "train", cube_config, "--no-save")
    assert code == 2 and "unknown activation 'cube'" in err and "Traceback" not in err
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "train", cube_config, "--import", plugin, "--run-dir", run, "--quiet"
    )
    assert code == 0, err
    resolved = tomllib.loads((run / "config.toml").read_text())
    assert resolved["imports"] == [str(PLUGIN.resolve())]  # absolute: evaluate from anywhere
    assert resolved["model"]["layers"][0]["activation"] == {"name": "cube", "scale": 0.5}
    spec = load_checkpoint(run / "model.npz").meta["model"]
    assert [layer["type"] for layer in spec["layers"]] == ["dense", "scale", "dense"]
    code, out, err = run_cli(capsys, "gradcheck", cube_config, "--import", plugin)
    assert code == 0, out + err
    assert out.count(" -> ") == 2  # the two dense layers; scale has no parameters
    _forget_plugin()
    code, out, err = run_cli(capsys, "evaluate", run)  # imports the run's plugin again
    assert code == 0, err
    assert "evaluated on xor, all 4 rows" in out and "accuracy" in out


@pytest.mark.parametrize("command", ["train", "gradcheck", "evaluate"])
def test_a_plugin_that_fails_to_import_exits_2_with_one_line(capsys, tmp_path, command):
    target = tmp_path if command == "evaluate" else CONFIGS / "xor.toml"
    code, _, err = run_cli(capsys, command, target, "--import", "no_such_plugin_module")
    assert code == 2
    assert err.startswith(
        "error: cannot import plugin module 'no_such_plugin_module' (--import): "
        "ModuleNotFoundError: No module named 'no_such_plugin_module'; expected a module"
    )
    assert err.count("\n") == 1 and "Traceback" not in err


def test_layer_tables_that_do_not_fit_the_data_exit_2(capsys, tmp_path):
    path = tmp_path / "wide.toml"
    path.write_text(
        '[data]\nname = "xor"\n\n[[model.layers]]\ntype = "dense"\nunits = 3\n'
        'activation = "sigmoid"\n'
    )
    code, _, err = run_cli(capsys, "train", path, "--no-save")
    assert code == 2 and "Traceback" not in err
    assert "outputs 3 values per example, but the data has 1 output" in err
    assert "set units = 1 in layers[0]" in err
    code, _, err = run_cli(
        capsys,
        "train",
        CONFIGS / "xor.toml",
        "--no-save",
        "--set",
        "model.layers=[{type='dense', units=1}]",
    )
    assert code == 2 and "[model] layers and hidden_sizes, hidden, output: " in err


# -- evaluate ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("xor") / "run"
    assert cli.main(["train", str(CONFIGS / "xor.toml"), "--run-dir", str(run), "--quiet"]) == 0
    return run


def test_evaluate_on_user_files_and_other_backends(capsys, tmp_path, xor_run, backend):
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    np.savez(tmp_path / "xor.npz", X=X, y=y.astype(float))
    (tmp_path / "xor.csv").write_text(
        "a,b,label\n" + "".join(f"{a},{b},{t}\n" for (a, b), t in zip(X, y, strict=True))
    )
    for data in ("xor.npz", "xor.csv"):
        extra = ["--target", "label"] if data.endswith(".csv") else []
        code, out, err = run_cli(
            capsys,
            "evaluate",
            xor_run,
            "--data",
            tmp_path / data,
            "--backend",
            backend.name,
            *extra,
        )
        assert code == 0, err
        assert "accuracy   100.00%" in out
    for name in ("last.npz", "model.npz"):
        assert run_cli(capsys, "evaluate", xor_run / name, "--backend", backend.name)[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "nothing.npz"], "does not exist"),
        (["--data", "x.txt"], "neither a .npz or .csv file nor a dataset name"),
        (["--data", "{tmp}/xor.csv"], "pass --target COLUMN"),
    ],
)
def test_evaluate_errors_exit_2(capsys, tmp_path, xor_run, argv, message):
    (tmp_path / "xor.csv").write_text("a,b,label\n0,0,0\n0,1,1\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_cli(capsys, "evaluate", xor_run, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_evaluate_refuses_foreign_or_missing_files(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", tmp_path)
    assert code == 2 and "does not exist" in err
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "junk.npz")
    assert code == 2 and "junk.npz" in err


# -- gradcheck -----------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["xor", "intents"])
def test_gradcheck_passes_on_every_backend(capsys, backend, config):
    code, out, err = run_cli(
        capsys, "gradcheck", CONFIGS / f"{config}.toml", "--backend", backend.name
    )
    assert code == 0, out + err
    assert f"vs backprop on {backend.name}" in out
    assert "max relative error" in out and ": ok" in out
    assert out.count(" -> ") == 2  # one row per layer (both configs have two)


def test_gradcheck_catches_a_wrong_derivative(capsys, monkeypatch):
    sigmoid = activations.get_activation("sigmoid")
    right = type(sigmoid).derivative
    monkeypatch.setattr(
        type(sigmoid), "derivative", lambda self, xp, z, a: 1.1 * right(self, xp, z, a)
    )
    code, out, _ = run_cli(capsys, "gradcheck", CONFIGS / "xor.toml")
    assert code == 1
    assert "FAILED" in out


# -- backends ------------------------------------------------------------------------------------
def test_backends_table_explains_every_backend(capsys):
    code, out, _ = run_cli(capsys, "backends")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["backend", "usable", "version", "devices"]
    for name, availability in backends.available_backends().items():
        (row,) = [line for line in lines if line.startswith(name + " ")]
        assert ("yes" if availability.ok else "no") in row.split()[1]
        if not availability.ok:
            assert availability.reason in row
    if not backends.available_backends()["cupy"].ok:  # this machine: no GPU
        assert "cupy" in out and ("CUDA" in out or "not installed" in out)


# -- exit codes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nothing.toml"], "no such file; shipped configs:"),
        (["train", "{xor}", "--set", "training.epoch=3"], "did you mean 'epochs'?"),
        (["train", "{xor}", "--set", "nonsense"], "expected section.key=value"),
        (["train", "{xor}", "--backend", "nunpy"], "unknown backend 'nunpy'"),
        (["train", "{xor}", "--device", "gpu:7"], "gpu:7"),
        (["gradcheck", "{xor}", "--set", "model.hidden=rleu"], "did you mean 'relu'?"),
        (
            [
                "train",
                "{xor}",
                "--set",
                "data.name=csv",
                "--set",
                "data.path=none.csv",
                "--set",
                "data.target=y",
            ],
            "does not exist",
        ),
    ],
)
def test_usage_config_and_data_errors_exit_2_without_traceback(capsys, argv, message):
    argv = [a.replace("{xor}", str(CONFIGS / "xor.toml")) for a in argv]
    code, _, err = (
        run_cli(capsys, *argv, "--no-save") if argv[0] == "train" else run_cli(capsys, *argv)
    )
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_unusable_backend_exits_2_with_the_reason(capsys):
    availability = backends.available_backends()["cupy"]
    if availability.ok:
        pytest.skip("cupy is usable here")
    code, _, err = run_cli(capsys, "train", CONFIGS / "xor.toml", "--backend", "cupy", "--no-save")
    assert code == 2 and availability.reason in err


def test_divergence_exits_1(capsys):
    code, _, err = run_cli(
        capsys,
        "train",
        CONFIGS / "xor.toml",
        "--no-save",
        "--set",
        "model.output=identity",  # sigmoid outputs saturate instead of overflowing
        "--set",
        "optimizer.lr=1e300",
        "--set",
        "training.epochs=5",
    )
    assert code == 1
    assert "TrainingDiverged" in err and "Traceback" not in err


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def test_console_script_and_module_are_the_same():
    out = subprocess.run(
        [sys.executable, "-m", "backprop", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0
    for command in ("train", "evaluate", "gradcheck", "backends"):
        assert command in out.stdout


def test_a_run_directory_that_cannot_be_written_exits_1_with_one_line(capsys, tmp_path):
    """An OSError (here: the run directory's parent is a regular file, which stops root too,
    unlike chmod) is a runtime error: exit 1 and one ``error:`` line, no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = ["train", CONFIGS / "xor.toml", "--run-dir", blocker / "run"]
    code, _, err = run_cli(capsys, *args, "--set", "training.epochs=1", "--quiet")
    assert code == 1, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Error" in err and str(blocker) in err and "Traceback" not in err
    assert blocker.read_text() == "not a directory"
