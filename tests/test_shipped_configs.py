"""Every shipped config trains on every installed backend, and agrees with the NumPy run.

Few epochs each (the full runs and their results are in the README); the same seed gives the
same initial weights, batch order and split everywhere, so the per-epoch losses of a backend
must match NumPy's to within the dtype's rounding. Also what a run prints and writes: the
header's train/validation row counts, and curves.png or the note that replaces it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import sys

import pytest

from backprop.app import experiment
from backprop.app.config import load_config

CONFIGS = sorted((pathlib.Path(__file__).parent.parent / "configs").glob("*.toml"))
EPOCHS = {"xor": 20}  # the others: 3 epochs
NEEDS_SKLEARN = {"digits", "breast_cancer", "diabetes"}  # dataset names
RTOL = {"float32": 2e-4, "float64": 1e-9}

_numpy_runs: dict[str, experiment.RunResult] = {}


def short(path: pathlib.Path):
    cfg = load_config(path)
    if cfg.data.name in NEEDS_SKLEARN:
        pytest.importorskip("sklearn", reason=f"the {cfg.data.name} data ships with scikit-learn")
    epochs = EPOCHS.get(path.stem, 3)
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=epochs))


def numpy_run(path: pathlib.Path) -> experiment.RunResult:
    if path.stem not in _numpy_runs:
        _numpy_runs[path.stem] = experiment.train_config(
            short(path), backend="numpy", save=False, verbose=0
        )
    return _numpy_runs[path.stem]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_trains_on_every_backend_like_numpy(path, backend, tmp_path):
    cfg = short(path)
    run = experiment.train_config(
        cfg, backend=backend.name, run_dir=tmp_path / "run", verbose=0, command=["test"]
    )
    history = run.fit.history
    assert run.fit.epochs == len(history) >= 1
    assert all(math.isfinite(v) for v in history["loss"])
    files = {p.name for p in run.run_dir.iterdir()}
    assert {"model.npz", "last.npz", "config.toml", "manifest.json"} <= files
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["backend"]["backend"] == backend.name
    assert manifest["dtype"] == cfg.backend.dtype
    reference = numpy_run(path)
    rtol = RTOL[cfg.backend.dtype]
    assert history["loss"] == pytest.approx(reference.fit.history["loss"], rel=rtol, abs=1e-7)
    for key, value in reference.test.items():
        assert run.test[key] == pytest.approx(value, rel=rtol * 10, abs=1e-6), key
    # the saved model evaluates to the same numbers on this backend
    _, values, _ = experiment.evaluate_run(run.run_dir, backend=backend.name)
    for key, value in run.test.items():
        assert values[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("mode", ["float32", "fast", "float64"])
def test_precision_switch_is_recorded_and_restored(mode, backend):
    cfg = short(CONFIGS[[p.stem for p in CONFIGS].index("xor")])
    cfg = dataclasses.replace(
        cfg,
        backend=dataclasses.replace(cfg.backend, precision=mode),
        training=dataclasses.replace(cfg.training, epochs=2),
    )
    before = backend.info()["precision"]
    run = experiment.train_config(cfg, backend=backend.name, save=False, verbose=0)
    assert run.manifest["backend"]["precision"]["mode"] == mode
    assert backend.info()["precision"] == before  # process-global settings put back


# -- what `backprop train` prints and writes -------------------------------------------------

SPLIT_CONFIGS = [p for p in CONFIGS if load_config(p).training.validation_split]


@pytest.mark.parametrize("path", SPLIT_CONFIGS, ids=lambda p: p.stem)
def test_header_counts_the_rows_fit_holds_out(path, capsys, monkeypatch):
    """The header's "N train + M validation" are the sizes of the split fit makes: recorded
    here by wrapping the split function fit calls (breast_cancer: 427 rows, 15% held out,
    ceil(64.05) = 65, not round's 64)."""
    from backprop.training import _fitdata

    made = []

    def recording(*args, **kwargs):
        made.append(_split(*args, **kwargs))
        return made[-1]

    _split = _fitdata.validation_split
    monkeypatch.setattr(_fitdata, "validation_split", recording)
    cfg = short(path)
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=1))
    experiment.train_config(cfg, backend="numpy", save=False, verbose=1)
    header = re.search(r"(\d+) train \+ (\d+) validation", capsys.readouterr().out)
    assert header, "the header does not give the split"
    assert len(made) == 1
    train, val = made[0]
    assert (int(header[1]), int(header[2])) == (len(train), len(val))
    if path.stem == "breast_cancer":
        assert (len(train), len(val)) == (362, 65)


def _train_xor(capsys, run_dir):
    from backprop.app import cli

    xor = CONFIGS[[p.stem for p in CONFIGS].index("xor")]
    code = cli.main(["train", str(xor), "--run-dir", str(run_dir), "--set", "training.epochs=3"])
    assert code == 0
    return capsys.readouterr().out


def test_curves_are_plotted_with_matplotlib(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    out = _train_xor(capsys, tmp_path / "run")
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "matplotlib is not installed" not in out
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["plot"] == "curves.png"


def test_a_note_replaces_the_plot_without_matplotlib(capsys, tmp_path, monkeypatch):
    """Runs whether or not matplotlib is installed: the import is made to fail."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = _train_xor(capsys, tmp_path / "run")
    assert "note: matplotlib is not installed, so curves.png was skipped" in out
    assert not (tmp_path / "run" / "curves.png").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "pip install 'backprop-xp[plot]'" in manifest["plot"]
