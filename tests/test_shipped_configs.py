"""Every shipped config trains on every installed backend, and agrees with the NumPy run.

Few epochs each (the full runs and their results are in the README); the same seed gives the
same initial weights, batch order and split everywhere, so the per-epoch losses of a backend
must match NumPy's to within the dtype's rounding.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

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
