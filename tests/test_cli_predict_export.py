"""After training, from the command line: ``backprop predict`` and ``backprop export`` on tiny
runs (an MLP classifier, an MLP regressor with standardized targets, a layered residual model,
all trained on CSV files), ``--version``, quiet broken pipes, and the progress bar's redraw cap.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import eps

import backprop as bp
from backprop.app import cli, experiment
from backprop.app.config import config_from_dict
from backprop.app.export import named_arrays
from backprop.data.preprocessing import Standardizer
from backprop.training import _progress

ROOT = Path(__file__).resolve().parents[1]
RESIDUAL = [
    {"type": "dense", "units": 6, "activation": "relu"},
    {"type": "residual", "layers": [{"type": "layer_norm"}, {"type": "dense", "units": 6}]},
    {"type": "dense", "units": 3, "activation": "softmax"},
]
MODELS = {  # run name -> (target columns, model section)
    "clf": ("label", {"hidden_sizes": [8], "hidden": "tanh", "output": "softmax",
                      "loss": "cross_entropy", "dropout": 0.1}),
    "reg": (["y1", "y2"], {"hidden_sizes": [8], "hidden": "relu", "output": "identity"}),
    "res": ("label", {"layers": RESIDUAL, "loss": "cross_entropy"}),
}  # fmt: skip


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows.tolist())
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three runs trained for 3 epochs on 60 rows with standardized features (and targets):
    a.csv (features a, b, c on scales 1 to 1000; int label) for the classifiers, reading the
    features from ``data.features``; r.csv (a, b, c; float targets y1, y2) for the regressor,
    whose features are every column but the targets."""
    folder = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)) * [1.0, 10.0, 1000.0]
    label = np.argmax(x / [1.0, 10.0, 1000.0], axis=1)
    y = np.stack([x[:, 0] * 5 + 100, x[:, 1] - x[:, 2] / 1000], axis=1)
    rows = np.concatenate([x, label[:, None]], axis=1).astype(object)
    rows[:, 3] = label  # written as integers: class labels
    out = {
        "data": _write_csv(folder / "a.csv", ["a", "b", "c", "label"], rows),
        "r.csv": _write_csv(folder / "r.csv", ["a", "b", "c", "y1", "y2"], np.hstack([x, y])),
    }
    for name, (target, model) in MODELS.items():
        data = (
            {"path": str(out["r.csv"])}
            if name == "reg"
            else {"path": str(out["data"]), "features": ["a", "b", "c"]}
        )
        raw = {
            "data": {"name": "csv", "target": target, **data, "standardize": True,
                     "standardize_targets": name == "reg", "test_fraction": 0.0},
            "model": model,
            "training": {"epochs": 3, "batch_size": 16, "validation_split": 0.0},
        }  # fmt: skip
        experiment.train_config(config_from_dict(raw), run_dir=folder / name, verbose=0)
        out[name] = folder / name
    return out


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _expected(run_dir: Path, x: np.ndarray) -> np.ndarray:
    """The model's own outputs for raw rows x: the run's standardizer, then model.predict."""
    run = experiment.load_run(run_dir)
    x = Standardizer.from_dict(run.preprocessing["features"]).transform(x)
    return np.asarray(run.model.predict(run.params, np.asarray(x, np.float32)))


def _raw_x(runs) -> np.ndarray:
    return np.loadtxt(runs["data"], delimiter=",", skiprows=1, usecols=(0, 1, 2))


# -- predict -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["clf", "res"])
def test_predict_writes_the_models_class_and_probabilities(runs, name, capsys):
    code, out, err = _main(capsys, "predict", runs[name], "--data", runs["data"])
    assert (code, err) == (0, "")
    table = list(csv.reader(out.splitlines()))
    assert table[0] == ["class", "prob_0", "prob_1", "prob_2"]
    probs = np.array(table[1:], float)[:, 1:]
    expected = _expected(runs[name], _raw_x(runs))
    np.testing.assert_array_equal(probs.astype(np.float32), expected)  # written at full precision
    assert [int(r[0]) for r in table[1:]] == np.argmax(expected, axis=1).tolist()


def test_predict_undoes_the_target_standardizer_and_names_the_targets(runs, tmp_path, capsys):
    """The regressor's CSV has no target columns here: they are optional in predict."""
    x = _raw_x(runs)
    new = _write_csv(tmp_path / "new.csv", ["a", "b", "c"], x[:7])
    out_file = tmp_path / "preds.csv"
    code, out, err = _main(capsys, "predict", runs["reg"], "--data", new, "--out", out_file)
    assert (code, err) == (0, "") and "wrote 7 prediction(s)" in out
    table = list(csv.reader(out_file.read_text().splitlines()))
    assert table[0] == ["y1", "y2"]
    run = experiment.load_run(runs["reg"])
    scaler = Standardizer.from_dict(run.preprocessing["targets"])
    expected = scaler.inverse_transform(_expected(runs["reg"], x[:7]))
    np.testing.assert_allclose(np.array(table[1:], float), expected, rtol=4 * eps("float32"))


def test_predict_reads_npz_and_runs_on_every_backend(runs, backend, tmp_path, capsys):
    x = _raw_x(runs)
    np.savez(tmp_path / "new.npz", X=x)
    code, out, err = _main(
        capsys, "predict", runs["clf"], "--data", tmp_path / "new.npz", "--backend", backend.name
    )
    assert (code, err) == (0, "")
    probs = np.array([r[1:] for r in csv.reader(out.splitlines()[1:])], float)
    # float32 matmuls of 3 and 8 terms and a softmax: a few eps apart across libraries
    np.testing.assert_allclose(probs, _expected(runs["clf"], x), rtol=64 * eps("float32"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("clf", None, "missing.csv' does not exist"),
        ("clf", "a,b\n1,2\n", "has no column(s) ['c']; the run reads the features ['a', 'b', 'c']"),
        ("reg", "a,b\n1,2\n", "has 2 feature column(s) ['a', 'b']; the run's model takes 3"),
        ("reg", "a,y1\n1,2\n", "(without the target column(s) ['y1']); the run's model"),
        ("clf", "a,b,c\n1,x,3\n", "line 2, column 'b' holds 'x', expected a number"),
        ("clf", "a,b,c\n1,2\n", "line 2 has 2 cells, expected 3"),
        ("clf", "a,b,c\n", "has no data rows"),
    ],
)
def test_predict_bad_inputs_exit_2_with_one_line(runs, tmp_path, capsys, name, content, message):
    path = tmp_path / "missing.csv"
    if content is not None:
        path.write_text(content)
    code, out, err = _main(capsys, "predict", runs[name], "--data", path)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_predict_npz_of_the_wrong_shape_exits_2(runs, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", X=np.zeros((4, 5)))
    code, _, err = _main(capsys, "predict", runs["clf"], "--data", tmp_path / "x.npz")
    assert code == 2 and "expected shape (N, 3)" in err and err.count("\n") == 1


def test_predict_writes_a_binary_runs_text_labels(tmp_path, capsys):
    """A sigmoid run on text labels: ``class`` holds the labels, ``prob_<label>`` 1-p and p."""
    x = np.random.default_rng(1).normal(size=(40, 2))
    rows = np.concatenate([x, np.where(x[:, :1] > 0, "pos", "neg")], axis=1)
    data = _write_csv(tmp_path / "s.csv", ["a", "b", "kind"], rows)
    raw = {
        "data": {"name": "csv", "path": str(data), "target": "kind", "test_fraction": 0.0},
        "model": {"hidden_sizes": [4], "output": "sigmoid", "loss": "binary_cross_entropy"},
        "training": {"epochs": 2},
    }
    experiment.train_config(config_from_dict(raw), run_dir=tmp_path / "run", verbose=0)
    code, out, err = _main(capsys, "predict", tmp_path / "run", "--data", data)
    assert (code, err) == (0, "")
    table = list(csv.reader(out.splitlines()))
    assert table[0] == ["class", "prob_neg", "prob_pos"]
    run = experiment.load_run(tmp_path / "run")
    p = np.asarray(run.model.predict(run.params, np.float32(x)))[:, 0]
    np.testing.assert_array_equal(np.array([r[2] for r in table[1:]], np.float32), p)
    assert [r[0] for r in table[1:]] == np.where(p >= 0.5, "pos", "neg").tolist()


def test_predict_labels_classes_with_stored_labels(runs):
    from backprop.app.predict import prediction_table

    run = experiment.load_run(runs["clf"])
    run.preprocessing = {**run.preprocessing, "classes": ["cat", "dog", "emu"]}
    header, rows = prediction_table(run, np.array([[0.1, 0.7, 0.2]], np.float32))
    assert header == ["class", "prob_cat", "prob_dog", "prob_emu"]
    assert rows == [["dog", "0.1", "0.7", "0.2"]]


# -- export --------------------------------------------------------------------------------------
def _doc_loader() -> dict:
    """The PyTorch loader docs/cli.md shows (its first ```python block), executed."""
    page = (ROOT / "docs" / "cli.md").read_text()
    block = re.findall(r"^```python\n(.*?)^```$", page, flags=re.S | re.M)[0]
    namespace: dict = {}
    exec(compile(block, "docs/cli.md", "exec"), namespace)
    return namespace


def test_exported_mlp_loads_into_torch_as_the_docs_show(runs, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    import torch

    code, out, _ = _main(capsys, "export", runs["clf"], "--format", "safetensors")
    path = runs["clf"] / "model.safetensors"
    assert code == 0 and out == f"wrote {path}\n"
    model, preprocessing = _doc_loader()["load_mlp"](path)
    assert [type(m).__name__ for m in model] == [
        "Standardize", "Linear", "Tanh", "Linear", "Softmax",
    ]  # fmt: skip
    x = _raw_x(runs)
    with torch.no_grad():
        got = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    # the same float32 sums in another order: a few eps apart
    np.testing.assert_allclose(got, _expected(runs["clf"], x), rtol=64 * eps("float32"))
    assert preprocessing == experiment.load_run(runs["clf"]).preprocessing


def test_export_names_every_array_of_a_layered_model(runs, tmp_path, capsys):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    out = tmp_path / "res.safetensors"
    assert _main(capsys, "export", runs["res"], "--out", out)[0] == 0
    arrays = safetensors_numpy.load_file(out)
    assert sorted(arrays) == [
        "layers.0.W", "layers.0.b", "layers.1.block.0.beta", "layers.1.block.0.gamma",
        "layers.1.block.1.W", "layers.1.block.1.b", "layers.2.W", "layers.2.b",
    ]  # fmt: skip
    with safe_open(out, "np") as f:
        meta = f.metadata()
    assert meta["format"] == "backprop" and meta["dtype"] == "float32"
    assert [s["type"] for s in json.loads(meta["layers"])] == ["dense", "residual", "dense"]
    # the file alone rebuilds the model: spec from the metadata, params from the names
    run = experiment.load_run(runs["res"])
    model = bp.build_model(json.loads(meta["model"]))
    assert set(named_arrays(run.params)) == set(arrays)
    params = [_fill(p, f"layers.{i}", arrays) for i, p in enumerate(run.params)]
    x = np.float32(Standardizer.from_dict(run.preprocessing["features"]).transform(_raw_x(runs)))
    np.testing.assert_array_equal(model.predict(params, x), run.model.predict(run.params, x))


def _fill(tree, prefix: str, arrays: dict):
    if isinstance(tree, dict):
        return {k: _fill(v, f"{prefix}.{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_fill(v, f"{prefix}.{i}", arrays) for i, v in enumerate(tree)]
    return arrays[prefix]


def test_export_unknown_format_exits_2_with_the_supported_list(runs, capsys):
    code, out, err = _main(capsys, "export", runs["clf"], "--format", "onnx")
    assert (code, out) == (2, "")
    assert err == "error: export format 'onnx' is not supported; expected one of ['safetensors']\n"


def test_export_without_safetensors_says_how_to_install_it(runs, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    code, _, err = _main(capsys, "export", runs["clf"])
    assert code == 2 and "pip install 'backprop-xp[export]'" in err and err.count("\n") == 1


# -- --version and broken pipes ------------------------------------------------------------------
def test_version_prints_the_distribution_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"backprop {importlib.metadata.version('backprop-xp')}\n"


class _ClosedPipe:
    """A standard output whose reader went away: every write and flush raises."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise OSError("no file descriptor")


def test_backends_into_a_closed_pipe_exits_141_quietly(monkeypatch, capsys):
    monkeypatch.setattr(cli.backends, "available_backends", lambda: {})  # fast: no probing
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["backends"]) == 141
    assert capsys.readouterr().err == ""


def test_a_real_closed_pipe_exits_141_without_a_traceback(runs):
    """``backprop predict ... | head -0``: the read end is closed before the process starts,
    so its first write fails with EPIPE, deterministically."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "backprop", "predict", str(runs["clf"]), "--data",
             str(runs["data"])],
            stdout=write, stderr=subprocess.PIPE, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, b"")


# -- the progress bar ----------------------------------------------------------------------------
@pytest.fixture
def fake_clock(monkeypatch):
    """`_progress`'s clock advances 1 ms per reading; ``fake_clock[0]`` is the time now."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001
        return now[0]

    monkeypatch.setattr(_progress, "_clock", clock)
    return now


def _terminal(monkeypatch) -> None:
    """The test's (capsys's) stderr reads as a terminal: patched in the test body, where
    capsys's stream is sys.stderr."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)


def test_progress_bar_redraws_at_most_ten_times_a_second(fake_clock, monkeypatch, capsys):
    _terminal(monkeypatch)
    progress = _progress.Progress(epochs=4, steps=250, verbose=1)
    for epoch in range(1, 5):
        for step in range(1, 251):
            progress.batch(step, 0.5)
        record = {"epoch": epoch, "loss": 0.5, "samples_per_s": 100.0}
        progress.epoch(record, None)
    progress.close()
    err = capsys.readouterr().err
    seconds = fake_clock[0]  # about 1 s of fake time for 1000 steps
    assert err.count("\r") <= seconds / _progress.MIN_INTERVAL + 2  # + the first and last draws
    assert "1000/1000" in err.rsplit("\r", 1)[-1]  # the final state is drawn on close


def test_fit_redraws_its_bar_at_most_ten_times_a_second(fake_clock, monkeypatch, capsys):
    _terminal(monkeypatch)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 2)), rng.integers(0, 2, 400)
    model = bp.MLP([2, 4, 2], output="softmax", loss="cross_entropy")
    bp.fit(model, x, y, epochs=5, batch_size=4, verbose=1, log_every=1)  # 500 steps
    err = capsys.readouterr().err
    assert err.count("\r") <= fake_clock[0] / _progress.MIN_INTERVAL + 2
    assert "500/500" in err
