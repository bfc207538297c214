"""The package layout shows the architecture and stays that way.

- Imports run one way between the folders of backprop/ (app and sklearn over training, training
  over nn, data at the bottom) and there is no import circle, between folders or between modules
  (tools/import_graph.py reads the source with `ast`).
- Each folder imports on its own in a fresh interpreter.
- The public surface did not move: the names `import backprop as bp` gives, the scikit-learn
  estimators, `python -m backprop`, the `backprop` command's entry point, and the old module
  paths as aliases.
- No module is much over 400 lines.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import backprop as bp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import import_graph  # noqa: E402

FOLDERS = ["nn", "training", "data", "app", "sklearn"]
# What each folder may import besides itself ("(top)": _registry.py and tree.py).
ALLOWED = {
    "data": set(),
    "nn": {"data", "(top)"},
    "training": {"nn", "data", "(top)"},
    "app": {"training", "nn", "data", "(top)"},
    "sklearn": {"training", "nn", "data", "(top)"},
    "(top)": set(),
}
PUBLIC = {
    "ACTIVATIONS", "LOSSES", "METRICS", "MLP", "OPTIMIZERS", "SCHEDULES", "SGD", "Activation",
    "Adam", "AdamW", "Callback", "Checkpoint", "CheckpointError", "DataError", "Dense",
    "EarlyStopping", "Ensemble", "EnsembleResult", "FitResult", "GradcheckResult", "History",
    "LambdaCallback", "Layer", "Loss",
    "ModelCheckpoint", "Optimizer", "RMSProp", "Run", "Schedule", "Sequential", "TrainResult",
    "TrainingDiverged", "TrainingInterrupted", "UnknownNameError", "UnregisteredError",
    "activations", "build_model",
    "callbacks", "check_training_data", "evaluate", "fit", "get_activation", "get_loss",
    "get_metric", "get_optimizer", "get_schedule", "gradcheck", "gradient_flow", "layers",
    "load_checkpoint", "losses", "make_step", "metrics", "one_hot", "optimizers",
    "save_checkpoint", "schedules", "train", "tree_leaves", "tree_map",
}  # fmt: skip
OLD_PATHS = {
    "activations": "backprop.nn.activations",
    "losses": "backprop.nn.losses",
    "layers": "backprop.nn.layers",
    "model": "backprop.nn.model",
    "sequential": "backprop.nn.sequential",
    "gradcheck": "backprop.nn.gradcheck",
    "diagnostics": "backprop.nn.diagnostics",
    "fit": "backprop.training.fit",
    "callbacks": "backprop.training.callbacks",
    "schedules": "backprop.training.schedules",
    "optimizers": "backprop.training.optimizers",
    "checkpoint": "backprop.training.checkpoint",
    "history": "backprop.training.history",
    "metrics": "backprop.training.metrics",
    "evaluation": "backprop.training.evaluation",
    "datasets": "backprop.data.datasets",
    "data_preprocessing": "backprop.data.preprocessing",
    "config": "backprop.app.config",
    "experiment": "backprop.app.experiment",
    "cli": "backprop.app.cli",
}


def test_no_import_circles():
    graph = import_graph.graph()
    for facade in import_graph.ENTRY_POINTS:
        graph.pop(facade, None)
    circles = import_graph.cycles(graph)
    assert not circles, f"import circles between modules: {circles}"
    assert not import_graph.cycles(import_graph.folder_graph(graph))


def test_imports_run_one_way_between_folders():
    graph = import_graph.graph()
    for facade in import_graph.ENTRY_POINTS:
        graph.pop(facade, None)
    wrong = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if import_graph.folder(b) != import_graph.folder(a)
        and import_graph.folder(b) not in ALLOWED[import_graph.folder(a)]
    ]
    assert not wrong, f"imports against the layering (README, Layout): {wrong}"
    assert set(import_graph.folder_graph(graph)) == {*FOLDERS, "(top)"}


def test_graph_tool_sees_a_circle(tmp_path):
    """The check is not vacuous: a two-module circle is reported."""
    graph = {"backprop.a": {"backprop.b"}, "backprop.b": {"backprop.a"}, "backprop.c": set()}
    assert import_graph.cycles(graph) == [["backprop.a", "backprop.b"]]


def test_each_folder_imports_alone():
    for folder in FOLDERS:
        code = f"import importlib; importlib.import_module('backprop.{folder}')"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert done.returncode == 0, f"backprop.{folder} does not import alone:\n{done.stderr}"


def test_public_names_did_not_move():
    assert set(bp.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(bp, name) is not None
    from backprop.sklearn import MLPClassifier, MLPRegressor

    assert MLPClassifier.__module__ == MLPRegressor.__module__ == "backprop.sklearn.estimators"


@pytest.mark.parametrize(("old", "new"), OLD_PATHS.items())
def test_old_module_paths_are_aliases(old, new):
    assert importlib.import_module(f"backprop.{old}") is importlib.import_module(new)


def test_command_entry_points():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'backprop = "backprop.app.cli:main"' in text
    from backprop.app.cli import main

    assert callable(main)
    done = subprocess.run(
        [sys.executable, "-m", "backprop", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "train" in done.stdout


def test_no_module_much_over_400_lines():
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
        for p in (ROOT / "backprop").rglob("*.py")
    }
    big = {p: n for p, n in sizes.items() if n > 440}
    assert not big, f"modules over about 400 lines: {big}; split them by what they do"
