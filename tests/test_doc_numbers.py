"""The numbers README.md and docs/*.md give, recomputed where that is cheap.

Each check reads the number from the page (so an edited page is checked as edited) and compares
it, at the precision printed, with what the named command computes now:

- the README's table of shipped configs: every config listed, networks, epochs, row counts, and
  the numpy results of every config but waveforms_conv1d (about 2 s of its 20-epoch run on a
  free 2-core CPU, several times that on a busy one), and the least-squares baseline;
- docs/training.md's gradient-flow table, by running the page's own script;
- docs/math.md's gradient-check error range over tests/test_gradients.py's networks, and the
  counts of accepted output/loss pairs; docs/layers.md's LayerNorm finite-difference example;
- docs/configs.md's example error and nesting depths; the README's test-function share;
- the benchmark numbers of the README and docs/performance.md, against the committed
  benchmarks/results/W1-cpu.json (the benchmark itself takes minutes and is not rerun).

Timings of training runs are not checked: they depend on the machine and its load.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_TEXT = " ".join(README.split())  # line breaks as spaces, for phrases that wrap
DOCS = ROOT / "docs"
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
SLOW = {"waveforms_conv1d"}  # its full run is too slow for this file's budget
NEEDS_SKLEARN = {"digits", "breast_cancer", "diabetes"}  # dataset names


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def printed(text: str, value: float) -> bool:
    """``value`` rounds to ``text`` at the number of decimals ``text`` shows."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:.{decimals}f}" == text


def one_sig(x: float) -> float:
    """``x`` rounded to one significant digit, as the pages write error sizes (3e-10)."""
    return float(f"{x:.0e}")


# -- the README's table of shipped configs ------------------------------------------------------
def _table() -> dict[str, list[str]]:
    rows = re.findall(r"^\| `(\w+)\.toml` \|(.*)\|$", README, flags=re.M)
    return {stem: [c.strip() for c in cells.split("|")] for stem, cells in rows}


TABLE = _table()  # stem -> [network, data, result, numpy, jax, torch]


def _config(stem: str):
    from backprop.app.config import load_config

    cfg = load_config(ROOT / "configs" / f"{stem}.toml")
    if cfg.data.name in NEEDS_SKLEARN:
        pytest.importorskip("sklearn", reason=f"the {cfg.data.name} data ships with scikit-learn")
    return cfg


def test_the_table_lists_every_shipped_config_and_the_layered_ones():
    assert sorted(TABLE) == [p.stem for p in CONFIGS]
    layered = [p.stem for p in CONFIGS if "layers" in tomllib.loads(p.read_text())["model"]]
    assert "The three layered configs" in README and len(layered) == 3
    # "agree for the first epochs (the test suite checks 3)"
    import test_shipped_configs

    for stem in layered:
        assert test_shipped_configs.short(ROOT / "configs" / f"{stem}.toml").training.epochs == 3


@pytest.mark.parametrize("stem", sorted(TABLE))
def test_table_networks_epochs_and_rows(stem):
    from backprop.app import experiment

    network, data_cell = TABLE[stem][0], TABLE[stem][1]
    cfg = _config(stem)
    data = experiment.prepare_dataset(cfg)
    model = cfg.model.build(data.n_in, data.n_out)
    sizes = re.match(r"(\d+(?:-\d+)+) ", network)
    if sizes:  # an MLP: 64-64-10
        assert [int(s) for s in sizes[1].split("-")] == model.sizes
    epochs = re.search(r"(?<![(\d])(\d+) (?:epochs|full-batch steps)", network)
    if epochs:  # "(173 epochs)" after early stopping is the run's count: checked with the results
        assert int(epochs[1]) == cfg.training.epochs
    if "full-batch" in network:
        assert cfg.training.batch_size >= len(data.x_train)
    total = int(re.search(r"\d+", data_cell)[0])
    assert total == len(data.x_train) + (len(data.x_test) if data.held_out else 0)
    held = re.search(r"(\d+) held out", data_cell)
    assert data.held_out == bool(held)
    if held:
        assert int(held[1]) == len(data.x_test)
    shape = re.search(r"\((\d+) x (\d+)\)", data_cell)
    if shape:
        assert tuple(map(int, shape.groups())) == data.n_in


def test_the_first_run_paragraph():
    """'a 64-64-10 ReLU/softmax network, SGD with momentum 0.9, 30 epochs, 10% of the training
    rows for validation ... the 449 held-out images: **98.00%**', and the digits loader's
    shapes the Python example states."""
    from backprop import datasets
    from backprop.app import experiment

    cfg = _config("digits")
    text = README[README.index("It reads [configs/digits.toml]") :][:600]
    m = re.search(
        r"a (\d+)-(\d+)-(\d+) ReLU/softmax network, SGD with\s+momentum ([\d.]+), (\d+) epochs, "
        r"(\d+)% of the training rows for validation\).*?the (\d+) held-out images: "
        r"\*\*([\d.]+)%\*\*",
        text,
        flags=re.S,
    )
    assert m, "the paragraph changed: update this test"
    data = experiment.prepare_dataset(cfg)
    assert [int(m[i]) for i in (1, 2, 3)] == cfg.model.build(data.n_in, data.n_out).sizes
    assert (cfg.model.hidden, cfg.model.output) == ("relu", "softmax")
    assert float(m[4]) == cfg.optimizer.options["momentum"]
    assert int(m[5]) == cfg.training.epochs
    assert int(m[6]) / 100 == cfg.training.validation_split
    assert int(m[7]) == len(data.x_test)
    assert m[8] == TABLE["digits"][2].split("**")[1].rstrip("%")
    X, y = datasets.load_digits()
    assert "# 1797 images (N, 64) in [0, 1]; y one-hot (N, 10)" in README
    assert X.shape == (1797, 64) and 0 <= X.min() and X.max() <= 1
    assert y.shape == (1797, 10) and (y.sum(axis=1) == 1).all()


@pytest.mark.parametrize("stem", sorted(set(TABLE) - SLOW))
def test_table_results_of_the_numpy_runs(stem):
    """The result column (and, for digits_residual, the numpy test loss of the paragraph
    above the table), from `backprop train configs/<stem>.toml` on numpy."""
    from backprop.app import experiment

    result = TABLE[stem][2]
    run = experiment.train_config(_config(stem), backend="numpy", save=False, verbose=0)
    accuracy = re.search(r"^(?:test accuracy \*\*)?([\d.]+)%", result)
    r2 = re.search(r"R² \*\*([\d.]+)\*\*", result)
    assert accuracy or r2, f"{stem}: no result in {result!r}"
    if accuracy:
        assert printed(accuracy[1], 100 * run.test["accuracy"]), (accuracy[1], run.test)
    if r2:
        assert printed(r2[1], run.test["r2"]), (r2[1], run.test)
    loss = re.search(r"\bloss ([\d.]+)", result)
    if stem == "digits_residual":
        loss = re.search(
            r"test losses ([\d.]+) / [\d.]+ / [\d.]+ \(numpy / jax / torch\)", README_TEXT
        )
    if loss:
        assert printed(loss[1], run.test["loss"]), (loss[1], run.test)
    stopped = re.search(r"early stopping \((\d+) epochs\)", TABLE[stem][0])
    if stopped:
        assert int(stopped[1]) == run.fit.epochs


def test_least_squares_baseline_of_diabetes():
    """'(least squares, scikit-learn's `LinearRegression`, on the same split: 0.491)'."""
    from backprop.app import experiment

    claim = re.search(r"on the same split: ([\d.]+)\)", TABLE["diabetes"][2])
    data = experiment.prepare_dataset(_config("diabetes"))
    design = np.column_stack([data.x_train, np.ones(len(data.x_train))])
    w = np.linalg.lstsq(design, np.ravel(data.y_train), rcond=None)[0]
    y = np.ravel(data.y_test)
    pred = np.column_stack([data.x_test, np.ones(len(data.x_test))]) @ w
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert claim and printed(claim[1], r2), r2  # measured 0.4912


# -- docs/training.md: the gradient-flow table --------------------------------------------------
def _diagnostics_section() -> str:
    text = page("training.md")
    return text[text.index("## Gradient-flow diagnostics") :]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_gradient_flow_table_is_what_its_script_prints(dtype, capsys):
    section = _diagnostics_section()
    script = re.search(r"```python\n(.*?)```", section, flags=re.S)[1]
    exec(compile(script.replace('"float64"', f'"{dtype}"'), "training.md", "exec"), {})
    out = capsys.readouterr().out
    printed_rows = {
        line.split(" ", 1)[0]: [float(v) for v in ast.literal_eval(line.split(" ", 1)[1])]
        for line in out.splitlines()
    }
    table = {
        m[1]: [float(v) for v in m[2].split(" | ")]
        for m in re.finditer(r"^\| (sigmoid|tanh|relu) \| (.*) \|$", section, flags=re.M)
    }
    assert set(table) == {"sigmoid", "tanh", "relu"}
    assert printed_rows == table
    if dtype == "float64":  # "loses a factor of 3 to 4.6 per layer (3400x over six layers)"
        namespace: dict = {}
        only_sigmoid = script.replace('["sigmoid", "tanh", "relu"]', '["sigmoid"]')
        exec(compile(only_sigmoid, "training.md", "exec"), namespace)
        capsys.readouterr()
        last = namespace["result"].history.last
        norms = [last[f"delta_norm_{i}"] for i in range(7)]
        ratios = [b / a for a, b in itertools.pairwise(norms)]  # measured 3.06 .. 4.63, 3428x
        text = " ".join(section.split())
        m = re.search(r"a factor of (\d+) to ([\d.]+) per layer \((\d+)x over six layers", text)
        assert m and int(m[1]) == round(min(ratios)) and printed(m[2], max(ratios))
        assert int(m[3]) == round(norms[-1] / norms[0], -2)


# -- docs/math.md: gradient checks -----------------------------------------------------------------
def test_math_counts_the_accepted_pairs_and_the_networks():
    import test_gradients

    import backprop as bp

    text = " ".join(page("math.md").split())
    m = re.search(
        r"all (\d+) of them \(mse and huber with each of the (\d+) activations, "
        r"and the (\w+) fused",
        text,
    )
    assert m and int(m[1]) == len(test_gradients.HEADS)
    assert int(m[2]) == len(bp.ACTIVATIONS.names())
    any_output = {n for n in bp.LOSSES.names() if bp.get_loss(n).outputs is None}
    assert any_output == {"mse", "huber"}
    fused = [n for n in bp.LOSSES.names() if bp.get_loss(n).outputs is not None]
    words = {"two": 2, "three": 3, "four": 4, "five": 5}
    assert words[m[3]] == len(fused)
    assert int(m[1]) == 2 * int(m[2]) + len(fused)
    assert f"each of the {m[1]} accepted output/loss pairs" in text
    assert "every hidden activation with six of those pairs" in text
    assert len(test_gradients.CROSSED_HEADS) == 6
    n = re.search(r"over the (\d+) networks of `tests/test_gradients.py`", text)
    assert n and int(n[1]) == len(test_gradients.CASES)


def test_gradcheck_error_range():
    """'a correct gradient measures 3e-10 to 5e-8' (docs/math.md), the largest error of each of
    test_gradients.py's networks. Measured on numpy 2026-11-29: 3.6e-10 .. 5.1e-8 (torch 3.2e-10
    .. 4.0e-8), median 1.4e-9. Each end must round to the page's digit, or lie inside the range
    with the range no more than 1.5x wider at that end."""
    import test_gradients as tg

    import backends
    import backprop as bp

    text = " ".join(page("math.md").split())
    m = re.search(r"relative error <= ([\d.e-]+); a correct gradient measures ([\d.e-]+) to "
                  r"([\d.e-]+),", text)  # fmt: skip
    tol, lo, hi = (float(m[i]) for i in (1, 2, 3))
    be = backends.get_backend("numpy")
    errors = []
    for hidden, output, loss in tg.CASES:
        model, params, X, Y = tg._problem(be, hidden, output, loss)
        args = be.asarray(X, "float64"), be.asarray(Y, "float64")
        result = bp.gradcheck(model.loss_and_grad, params, *args, loss=be.compile(model.loss))
        errors.append(result.max_error)
    assert max(errors) <= tol
    assert one_sig(min(errors)) == lo or lo <= min(errors) <= 1.5 * lo, min(errors)
    assert one_sig(max(errors)) == hi or hi / 1.5 <= max(errors) <= hi, max(errors)


# -- docs/layers.md: finite differences at LayerNorm's steepest point ---------------------------
def test_layernorm_finite_difference_example():
    import backprop as bp
    from backprop import datasets
    from backprop import layers as L

    text = " ".join(page("layers.md").split())
    m = re.search(r"reports ([\d.e-]+) for the first bias at `h = 1e-6` and ([\d.e-]+) at "
                  r"`h = 1e-7`", text)  # fmt: skip
    model_code = re.search(r"`model = (bp\.Sequential\(.*?\))`", text)
    params_code = re.search(r"`params = (model\.init\(.*?\))`", text)
    assert m and model_code and params_code, "the LayerNorm example changed: update this test"
    model = eval(model_code[1], {"bp": bp, "L": L})
    params = eval(params_code[1], {"model": model})
    X, Y = datasets.make_xor()
    for h, claim in ((1e-6, m[1]), (1e-7, m[2])):  # measured 1.96e-3, 1.97e-5
        result = bp.gradcheck(model.loss_and_grad, params, X, Y, eps=h)
        worst = max(result.errors, key=result.errors.get)
        assert worst == "[0].b" and one_sig(result.errors[worst]) == float(claim)


# -- docs/configs.md -------------------------------------------------------------------------------
def test_configs_page_example_error_is_what_the_command_prints(capsys, monkeypatch):
    from backprop.app import cli

    text = page("configs.md")
    block = re.search(r"```text\n\$ backprop (.*?)\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(ROOT)
    assert cli.main(block[1].split()) == 2
    err = capsys.readouterr().err.splitlines()
    shown = block[2].splitlines()
    assert len(err) == len(shown)  # "3 problems": three lines after the first
    for actual, doc in zip(
        err, shown, strict=True
    ):  # "..." on the page stands for the rest of a list
        pattern = ".*".join(re.escape(part) for part in doc.split("..."))
        assert re.fullmatch(pattern, actual), (doc, actual)


def test_config_nesting_limits():
    """'nested more than 32 levels deep ...; the shipped configs need at most 6'."""
    from backprop.app._configkinds import MAX_DEPTH, structure_problems

    text = " ".join(page("configs.md").split())
    m = re.search(r"nested more than (\d+) levels deep .*?the shipped configs need at most (\d+)\)",
                  text)  # fmt: skip
    assert m and int(m[1]) == MAX_DEPTH
    raws = [tomllib.loads(p.read_text()) for p in CONFIGS]
    deepest = int(m[2])
    assert all(structure_problems(raw, limit=deepest) == [] for raw in raws)
    assert any(structure_problems(raw, limit=deepest - 1) for raw in raws)


# -- the README's test-function share -------------------------------------------------------------
def test_share_of_tests_that_run_on_every_backend():
    """'about one test function in five takes the `backend` fixture (or `dtype`)'."""
    assert "about one test function in five takes the `backend` fixture" in README_TEXT
    total = on_backends = 0
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                total += 1
                on_backends += bool({a.arg for a in node.args.args} & {"backend", "dtype"})
    assert 0.15 <= on_backends / total <= 0.25, (on_backends, total)  # 105 of 520 when written


# -- benchmark numbers against the committed results --------------------------------------------
BENCH = json.loads((ROOT / "benchmarks" / "results" / "W1-cpu.json").read_text())
SUMMARY = BENCH["summary"]
LABELS = {
    "**backprop, jax**": "backprop-jax",
    "**backprop, numpy**": "backprop-numpy",
    "**backprop, torch**": "backprop-torch",
    "**backprop, array_api_strict**": "backprop-array_api_strict",
    "JAX `lax.scan` epoch (reference)": "jax-scan",
    "hand-written NumPy (reference)": "numpy-hand",
    "JAX `jit` step (reference)": "jax-jit",
    "PyTorch eager + autograd": "torch-eager",
    "scikit-learn `MLPClassifier`": "sklearn",
    "floor (GEMMs only)": "floor",
}


def _speed_rows() -> dict[str, list[str]]:
    section = README[README.index("## Speed") : README.index("## Layout")]
    rows = re.findall(r"^\| (.+?) \| (.*) \|$", section, flags=re.M)
    return {label: [c.strip() for c in cells.split("|")] for label, cells in rows[1:]}


def test_readme_speed_table_is_the_committed_run():
    rows = _speed_rows()
    assert {LABELS[label] for label in rows} == {
        n for n, s in SUMMARY.items() if s.get("epoch_s") is not None
    }
    floor, hand = SUMMARY["floor"]["epoch_s"], SUMMARY["numpy-hand"]["epoch_s"]
    for label, (median, spread, x_floor, x_hand, compile_s) in rows.items():
        s = SUMMARY[LABELS[label]]
        assert median == f"{s['epoch_s']:.3f}", label
        assert spread == f"{s['epoch_min']:.3f}–{s['epoch_max']:.3f}", label
        assert x_floor == f"{s['epoch_s'] / floor:.2f}", label
        assert x_hand == f"{s['epoch_s'] / hand:.2f}", label
        if compile_s == "0":  # no compile step: warm-up minus the median epoch, noise
            assert s["compile_s"] < 0.05, label
        elif label != "floor (GEMMs only)":
            assert compile_s == f"{s['compile_s']:.2f}", label
    # "up to 2x between rounds (the min–max column)"
    widest = max(s["epoch_max"] / s["epoch_min"] for s in SUMMARY.values() if "epoch_min" in s)
    assert "varies by up to 2x between rounds" in README and 1.5 < widest <= 2.0


def test_readme_speed_paragraph_names_the_run():
    text = " ".join(README[README.index("## Speed") :].split())
    machine, versions, date = BENCH["machine"], BENCH["machine"]["versions"], BENCH["date"][:10]
    assert f"Latest CPU run, {date}, {machine['cores']}-core {machine['cpu']} VM" in text
    assert (
        f"NumPy {versions['numpy']} (OpenBLAS), JAX {versions['jax']}, torch {versions['torch']}, "
        f"scikit-learn {versions['scikit-learn']}; medians of {len(BENCH['rounds'])} rounds "
        f"(`{BENCH['command']}`"
    ) in text
    libs = SUMMARY["floor"]["libraries"]
    assert (
        f"OpenBLAS (NumPy) {libs['numpy']['epoch_s']:.3f} s, MKL (torch) "
        f"{libs['torch']['epoch_s']:.3f} s, XLA (JAX) {libs['jax']['epoch_s']:.3f} s"
    ) in text
    w = BENCH["workload"]
    assert "MLP " + "-".join(map(str, w["sizes"])) in text
    assert f"batch {w['batch_size']}, {w['dtype']}, {w['n_samples']:,} rows" in text


def test_performance_page_numbers_are_the_committed_run():
    text = " ".join(page("performance.md").split())
    t = {n: s["epoch_s"] for n, s in SUMMARY.items() if s.get("epoch_s") is not None}
    lo = {n: s["epoch_min"] for n, s in SUMMARY.items() if s.get("epoch_min") is not None}
    libs = {k: v["epoch_s"] for k, v in SUMMARY["floor"]["libraries"].items()}
    floor, w = t["floor"], BENCH["workload"]
    steps = math.ceil(w["n_samples"] / w["batch_size"])
    sizes = w["sizes"]
    weights = sum(a * b + b for a, b in itertools.pairwise(sizes))
    expected = [
        f"Profiling one epoch of W1 ({steps} steps;",
        f"{round(weights, -4) // 1000:.0f}k weights",
        f"W1 on the CPU, {BENCH['date'][:10]}, medians of {len(BENCH['rounds'])} interleaved",
        f"{floor:.3f} s per epoch (OpenBLAS; MKL {libs['torch']:.3f} s, XLA {libs['jax']:.3f} s)",
        f"backprop-jax {t['backprop-jax']:.3f} s = {t['backprop-jax'] / floor:.2f}x (fastest round "
        f"{lo['backprop-jax']:.3f} s = {lo['backprop-jax'] / floor:.2f}x)",
        f"{t['backprop-numpy']:.3f} / {t['numpy-hand']:.3f} = "
        f"{t['backprop-numpy'] / t['numpy-hand']:.2f}x (fastest rounds {lo['backprop-numpy']:.3f} "
        f"/ {lo['numpy-hand']:.3f} = {lo['backprop-numpy'] / lo['numpy-hand']:.2f}x)",
        f"torch eager ({t['torch-eager']:.3f} s) and scikit-learn ({t['sklearn']:.3f} s)",
        f"numpy {t['backprop-numpy']:.3f}, jax {t['backprop-jax']:.3f}, torch "
        f"{t['backprop-torch']:.3f} s | torch no "
        f"({100 * (t['backprop-torch'] / t['torch-eager'] - 1):.0f}%)",
        f"XLA's own GEMMs on this CPU are {libs['jax']:.3f} s per epoch, "
        f"{libs['jax'] / libs['numpy']:.2f}x the OpenBLAS floor",
        f"Our step runs at {t['backprop-jax'] / libs['jax']:.2f}x XLA's GEMM time",
        f"lands in the same place ({t['jax-scan']:.3f} s;",
        f"The remaining {100 * (t['backprop-jax'] / libs['jax'] - 1):.0f}% is",
        f"The gap to hand NumPy ({lo['backprop-numpy'] - lo['numpy-hand']:.2f}–"
        f"{t['backprop-numpy'] - t['numpy-hand']:.2f} s per epoch)",
        f"({t['backprop-torch']:.3f} vs {t['torch-eager']:.3f} s medians, "
        f"{lo['backprop-torch']:.3f} vs {lo['torch-eager']:.3f} s fastest rounds)",
    ]
    for claim in expected:
        assert claim in text, claim


def test_performance_page_sweep_numbers():
    text = " ".join(page("performance.md").split())
    points = BENCH["sweep"]["points"]
    batch = {p["batch"]: p for p in points if p["axis"] == "batch"}
    wide = [p for p in points if p["axis"] == "width" and p["width"] >= 1024]
    jax_ratio = {b: p["jax_us"] / p["floor_us"] for b, p in batch.items()}
    floors = [p["floor_us"] for p in batch.values()]
    low = min(jax_ratio, key=jax_ratio.get)
    same = next(p for p in points if p["axis"] == "width" and p["width"] == 256)
    expected = [
        f"goes from {batch[32]['numpy_us']:.0f} µs at batch 32 to {batch[4096]['numpy_us']:.0f} "
        f"µs at 4096 while the floor stays at {min(floors):.0f}–{max(floors):.0f} µs",
        f"within {min(jax_ratio.values()):.1f}–{max(jax_ratio.values()):.1f}x the floor at every "
        f"batch size",
        f"{batch[low]['floor_us']:.1f} µs at batch {low})",
        f"numpy {min(p['numpy_us'] / p['floor_us'] for p in wide):.1f}–"
        f"{max(p['numpy_us'] / p['floor_us'] for p in wide):.1f}x; jax "
        f"{min(p['jax_us'] / p['floor_us'] for p in wide):.2f}–"
        f"{max(p['jax_us'] / p['floor_us'] for p in wide):.2f}x",
        f"read {batch[128]['numpy_us']:.1f} µs in one and {same['numpy_us']:.1f} µs in the other",
    ]
    assert same["batch"] == 128
    for claim in expected:
        assert claim in text, claim
