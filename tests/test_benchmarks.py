"""The benchmark suite (benchmarks/): workloads, loss checks, targets, and a smoke run."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from benchmarks import report, sweep
from benchmarks.__main__ import main as bench_main
from benchmarks.contenders.numpy_hand import HandMLP
from benchmarks.workloads import (
    QUICK,
    W1,
    batch_slices,
    epoch_orders,
    flops_per_epoch,
    initial_params,
    make_data,
    reference_loss,
    step_gemms,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
F32_EPS = float(np.finfo(np.float32).eps)
SMOKE = ["backprop-numpy", "numpy-hand", "sklearn", "jax-jit"]


def test_w1_flops_per_epoch_match_a_hand_count():
    def step(b):
        forward = 2 * b * (784 * 256 + 256 * 256 + 256 * 10)
        grad_w = forward
        grad_x = 2 * b * (256 * 256 + 256 * 10)  # no input gradient for the first layer
        return forward + grad_w + grad_x

    assert W1.n_steps == 469 and 60_000 == 468 * 128 + 96
    assert flops_per_epoch(W1) == 468 * step(128) + step(96)


def test_step_gemms_are_the_products_of_a_step_with_their_transposes():
    assert step_gemms(W1, 96) == [
        ("fwd", 96, 784, 256),
        ("grad_w", 784, 96, 256),
        ("fwd", 96, 256, 256),
        ("grad_w", 256, 96, 256),
        ("grad_x", 96, 256, 256),
        ("fwd", 96, 256, 10),
        ("grad_w", 256, 96, 10),
        ("grad_x", 96, 10, 256),
    ]


def test_batches_are_consecutive_slices_with_a_partial_last_one():
    slices = batch_slices(W1)
    assert len(slices) == 469 and slices[-1] == slice(59_904, 60_000)


def test_initial_params_are_the_weights_mlp_init_draws():
    model = bp.MLP(list(QUICK.sizes), hidden="relu", output="softmax", loss="cross_entropy")
    expected = model.init(seed=QUICK.seed, backend="numpy", dtype="float32")
    for mine, theirs in zip(initial_params(QUICK), expected, strict=True):
        for key in ("W", "b"):
            assert mine[key].dtype == np.float32
            np.testing.assert_array_equal(mine[key], np.asarray(theirs[key]))


def test_data_is_deterministic_and_every_class_occurs():
    X, y = make_data(QUICK)
    X2, y2 = make_data(QUICK)
    assert X.dtype == np.float32 and X.shape == (2048, 784)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert set(np.unique(y)) == set(range(10))


def test_first_hand_step_loss_is_the_float64_loss_of_the_first_batch():
    X, y = make_data(QUICK)
    params = initial_params(QUICK)
    idx = epoch_orders(QUICK, 1)[0][: QUICK.batch_size]
    loss = HandMLP(params, QUICK.batch_size).step(X, y, idx, QUICK.lr)
    expected = reference_loss(params, X[idx], y[idx])
    np.testing.assert_allclose(loss, expected, rtol=100 * F32_EPS)


def test_epoch_orders_are_the_batches_fit_draws():
    """Hand NumPy fed `epoch_orders` and `backprop.fit` (shuffle=True) see the same batches:
    every step's loss of two epochs agrees to float32 rounding."""
    X, y = make_data(QUICK)
    model = bp.MLP(list(QUICK.sizes), hidden="relu", output="softmax", loss="cross_entropy")
    result = bp.fit(
        model,
        X,
        y,
        optimizer=bp.SGD(lr=QUICK.lr),
        backend="numpy",
        dtype="float32",
        epochs=2,
        batch_size=QUICK.batch_size,
        seed=QUICK.seed,
        shuffle=True,
        metric=None,
        verbose=0,
    )
    net = HandMLP(initial_params(QUICK), QUICK.batch_size)
    hand = [
        net.step(X, y, order[sl], QUICK.lr)
        for order in epoch_orders(QUICK, 2)
        for sl in batch_slices(QUICK)
    ]
    np.testing.assert_allclose(result.history.step_losses, hand, rtol=100 * F32_EPS)


def test_sweep_points_take_whole_batches_within_the_data():
    for p in sweep.points():
        assert p["batch"] <= p["n"] <= W1.n_samples
        assert p["n"] % p["batch"] == 0 or p["n"] == W1.n_samples
    assert {p["batch"] for p in sweep.points() if p["axis"] == "batch"} == set(sweep.BATCHES)
    assert {p["width"] for p in sweep.points() if p["axis"] == "width"} == set(sweep.WIDTHS)


def _summary(**times):
    return {
        name: {"name": name, "epoch_s": t, "first_loss": 2.5, "final_loss": 0.2}
        for name, t in times.items()
    }


def test_loss_check_flags_a_fast_wrong_answer():
    summary = _summary(**{"numpy-hand": 1.0, "backprop-numpy": 1.0, "fast-wrong": 0.1})
    summary["fast-wrong"]["final_loss"] = 0.25
    checks = report.loss_checks(summary, report.tolerances("float32", None))
    assert checks["backprop-numpy"] == [] and checks["numpy-hand"] == []
    assert len(checks["fast-wrong"]) == 1 and checks["fast-wrong"][0].startswith("final_loss")


def test_final_loss_tolerance_widens_with_the_measured_rounding_spread():
    assert report.tolerances("float32", None)["final_loss"] == 1e-3
    assert report.tolerances("float32", {"relative": 4e-3})["final_loss"] == 8e-3


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"backprop-numpy": 1.0, "numpy-hand": 1.0, "floor": 0.95, "torch-eager": 2.0}, True),
        ({"backprop-numpy": 1.2, "numpy-hand": 1.0, "floor": 0.5, "torch-eager": 1.1}, False),
    ],
    ids=["all-hold", "all-fail"],
)
def test_targets(times, expected):
    results = report.targets(_summary(**times))
    assert [t["holds"] for t in results] == [expected] * 3


def test_w2_refuses_the_cpu(capsys):
    assert bench_main(["--workload", "W2", "--device", "cpu", "--no-sweep"]) == 2
    assert "GPU workload" in capsys.readouterr().err


def test_quick_smoke_run(tmp_path):
    """The documented command on the small W1: exits 0, writes the JSON, losses agree."""
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--rounds", "1", "--no-sweep"]
    cmd += ["--max-wait", "0", "--retries", "0"]  # it checks results, not timings: never wait
    cmd += ["--contenders", ",".join(SMOKE), "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "W1-quick-cpu.json").read_text())
    summary = results["summary"]
    assert set(SMOKE) | {"floor"} <= set(summary)
    assert (tmp_path / "W1-quick-cpu.png").stat().st_size > 0
    ref = summary["numpy-hand"]
    for name in SMOKE:
        s = summary[name]
        assert s["epoch_s"] > 0, s
        for key, rtol in (("first_loss", 1e-5), ("final_loss", 1e-3)):
            if s[key] is not None:
                np.testing.assert_allclose(s[key], ref[key], rtol=rtol, err_msg=f"{name} {key}")
    assert not any(results["loss_checks"].values()), results["loss_checks"]
    assert "LOSS MISMATCH" not in proc.stdout


def test_stream_smoke_run(tmp_path, capsys):
    """`python -m benchmarks.stream` on the small W1 and a 20 MB big file: refuses a file the
    disk cannot hold, then runs, writes the JSON, memory-mapped and generator step losses are
    bit-identical to the in-memory ones, and the data files are gone afterwards."""
    from benchmarks.stream import main as stream_main

    too_big = ["--big-gb", "1000000", "--tmp", str(tmp_path), "--out", str(tmp_path)]
    assert stream_main(too_big) == 2
    assert "GiB free" in capsys.readouterr().err
    cmd = [sys.executable, "-m", "benchmarks.stream", "--quick", "--rounds", "1"]
    cmd += ["--big-gb", "0.02", "--max-wait", "0", "--retries", "0"]  # results, not timings
    cmd += ["--out", str(tmp_path), "--tmp", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    results = json.loads((tmp_path / "stream-W1-quick.json").read_text())
    summary, big = results["summary"], results["big_record"]
    assert not list(tmp_path.glob("backprop-stream-*")), "the data files were not removed"
    assert summary["memory"]["epoch_s"] > 0 and summary["memmap"]["epoch_s"] > 0, summary
    assert summary["memmap"]["losses_identical_rounds"] == 1, summary["memmap"]
    assert big["rows"] == int(0.02 * 2**30) // 4096 and big["epoch_s"] > 0, big
    assert big["peak_vmhwm_mib"] >= big["footprint_mib"] > 0, big
    generator = summary["generator"]
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert generator["losses_identical_rounds"] == 1, generator


def test_ensemble_smoke_run(tmp_path, capsys):
    """`python -m benchmarks.ensemble --quick` on NumPy: refuses --members 0, then runs both
    cases, writes the JSON, and the 4 members trained as one ensemble match the 4 sequential
    fits (every epoch's loss within the benchmark's ulps, the final float64 losses too)."""
    from benchmarks.ensemble import F32_EPS as EPS
    from benchmarks.ensemble import MAX_ULPS
    from benchmarks.ensemble import main as ensemble_main

    assert ensemble_main(["--members", "0"]) == 2
    assert "--members must be >= 1" in capsys.readouterr().err
    cmd = [sys.executable, "-m", "benchmarks.ensemble", "--quick", "--rounds", "1"]
    cmd += ["--backends", "numpy", "--max-wait", "0", "--retries", "0"]  # results, not timings
    cmd += ["--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "ensemble-W3-quick-cpu.json").read_text())
    s = results["summary"]["numpy"]
    assert s["ensemble"]["wall_s"] > 0 and s["sequential"]["wall_s"] > 0, s
    assert s["speedup"] > 0 and len(results["criteria"]) == 3, s
    members = s["members"]
    assert members["compared"] and members["members"] == 4, members
    assert members["curve_ulps"] <= MAX_ULPS and members["final"] <= MAX_ULPS * EPS, members
    pair = results["rounds"][0]["records"]["numpy"]
    assert len(pair["ensemble"]["final_loss"]) == len(pair["sequential"]["final_loss"]) == 4
    assert "curves" not in pair["ensemble"], "loss curves are dropped once compared"


def test_ensemble_bound_stacked_step_is_the_members_steps(capsys):
    """The bound's stacked step computes, member by member, the one-member step (the two
    timings compare the same work), and its command prints the ratio."""
    from benchmarks import ensemble_bound

    rng = np.random.default_rng(0)
    stacked = ensemble_bound._params(3, rng)
    X, Y = ensemble_bound.load_w3()
    x, y = X[:32].astype(np.float32), Y[:32].astype(np.float32)
    after = ensemble_bound._step(stacked, x, y, 0.1)
    for k in range(3):
        alone = ensemble_bound._step([p[k] for p in stacked], x, y, 0.1)
        for a, b in zip(after, alone, strict=True):
            np.testing.assert_allclose(a[k], b, rtol=1e-6, atol=1e-7)
    ensemble_bound.main(["--members", "4", "--steps", "2", "--rounds", "1"])
    assert "4 x one / stacked" in capsys.readouterr().out
