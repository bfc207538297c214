"""The benchmark's ``--dtype bfloat16``: the backprop-* contenders train through `fit`'s mixed
precision where the backend has bfloat16 (JAX, torch) and skip with `fit`'s own refusal where
it has not; the references (jax-jit, jax-scan, torch-eager) train in the same mixed precision
(float32 parameters, the layers in bfloat16); their losses pass the report's bfloat16 checks."""

from __future__ import annotations

import types

import numpy as np
import pytest
from conftest import backend_or_skip

import backends
import backprop as bp
from backends import _registry
from benchmarks import harness, report, worker
from benchmarks.contenders import get_contender
from benchmarks.contenders._common import ReferenceSettings, Skip, Trained
from benchmarks.workloads import (
    QUICK,
    epoch_orders,
    get_workload,
    initial_params,
    make_data,
    reference_loss,
)

BF16 = ReferenceSettings(epochs=2, device="cpu", dtype="bfloat16")
PROJECT = ["backprop-jax", "backprop-torch"]
REFERENCES = ["torch-eager", "jax-jit", "jax-scan"]  # torch-eager is the report's reference


def _fit_refusal(backend: str) -> str:
    """The message `fit` itself raises for a bfloat16 run on ``backend``."""
    X, y = make_data(QUICK)
    model = bp.MLP([784, 4, 10], hidden="relu", output="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match="has no bfloat16") as info:
        bp.fit(model, X[:8], y[:8], backend=backend, dtype="bfloat16", epochs=1, verbose=0)
    return str(info.value)


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_backends_without_bfloat16_skip_with_fits_reason(name):
    backend_or_skip(name)
    with pytest.raises(Skip) as info:
        get_contender(f"backprop-{name}")(get_workload("W1-quick", "bfloat16"), BF16)
    assert str(info.value) == _fit_refusal(name)


def test_cupy_skips_bfloat16_with_fits_reason(monkeypatch):
    """CuPy (float16 only) refuses bfloat16 the way `fit` does, read from its library's
    compute dtypes; no GPU here, so the backend is a stand-in with the real cupy library."""
    cupy_like = types.SimpleNamespace(
        name="cupy", library=_registry._LIBRARIES["cupy"], device_name="cuda:0"
    )
    monkeypatch.setattr(backends, "get_backend", lambda name, device=None: cupy_like)
    with pytest.raises(Skip, match=r"fit: backend 'cupy' has no bfloat16.*use backend jax or"):
        get_contender("backprop-cupy")(get_workload("W1-quick", "bfloat16"), BF16)


@pytest.fixture(scope="module")
def bf16_runs() -> dict[str, tuple[dict, Trained]]:
    """``{name: (worker record, Trained)}`` of every bfloat16 contender on the small W1 (one
    epoch: 16 steps, the early loss included), each run as `worker.run` runs it (what the
    worker process the harness starts runs), here in this process to save five starts of
    Python, JAX and torch (the subprocess path is `test_quick_smoke_run`'s); the `Trained` is
    kept to look at the final weights."""
    backend_or_skip("jax"), backend_or_skip("torch")
    trained: dict[str, Trained] = {}

    def keeping(name: str):
        run = get_contender(name)

        def kept(w, s):
            trained[name] = run(w, s)
            return trained[name]

        return kept

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker, "get_contender", keeping)
        records = {n: worker.run(n, "W1-quick", "bfloat16", 1, "cpu") for n in PROJECT + REFERENCES}
    for record in records.values():
        assert "epoch_s" in record and record["dtype"] == "bfloat16", record
    return {name: (records[name], trained[name]) for name in records}


def test_bfloat16_contenders_pass_the_reports_checks(bf16_runs):
    """Every backprop-* and reference contender in bfloat16 agrees with torch-eager within the
    report's bfloat16 tolerances, and the table shows no mismatch."""
    records = {name: record for name, (record, _) in bf16_runs.items()}
    summary = harness.summarize_rounds([{"round": 1, "order": list(records), "records": records}])
    checks = report.loss_checks(summary, report.tolerances("bfloat16", None))
    assert report.reference_name(summary) == "torch-eager"
    assert checks == {n: [] for n in records}, checks
    assert "LOSS MISMATCH" not in report.table(summary, checks, gpu=False)


def _float32_first_loss() -> float:
    X, y = make_data(QUICK)
    first = epoch_orders(QUICK, 1)[0][: QUICK.batch_size]
    return reference_loss(initial_params(QUICK), X[first], y[first])


def _bfloat16_exact(a: np.ndarray) -> np.ndarray:
    """Where the float32 values of ``a`` are bfloat16 numbers (the low 16 bits zero)."""
    return (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) & 0xFFFF) == 0


@pytest.mark.parametrize("name", PROJECT + REFERENCES)
def test_bfloat16_contender_is_mixed_precision(bf16_runs, name):
    """Each contender computed in bfloat16 (its first loss, one forward pass from the float32
    weights, is off the float32 one by more than float32's tolerance) and kept float32 weights
    (its final weights are not all bfloat16 numbers, as a pure-bfloat16 run's are: a weight
    stored in bfloat16 loses every update below half its ulp)."""
    record, trained = bf16_runs[name]
    tol = report.tolerances("bfloat16", None)["first_loss"]
    f32_tol = report.tolerances("float32", None)["first_loss"]
    f32 = _float32_first_loss()
    rel = abs(record["first_loss"] - f32) / f32
    assert f32_tol < rel < tol, (name, record["first_loss"], f32)
    assert np.isfinite(record["final_loss"]) and record["final_loss"] < record["first_loss"]
    for layer in trained.params:
        share = float(np.mean(_bfloat16_exact(layer["W"])))
        assert share < 0.01, f"{name}: {share:.0%} of W are bfloat16 numbers (pure bfloat16?)"


# Measured on W2's network (4096-4096-4096-10) on the CPU, batch 512, 4,096 rows, 16 steps
# (README, "bfloat16"): (first, early, final) losses.
_PROBE = {
    "torch-eager": (2.591568, 2.225095, 2.027538),
    "jax-jit": (2.591550, 2.224973, 2.027185),
    "backprop-jax": (2.591566, 2.224851, 2.027068),
    "backprop-torch": (2.591568, 2.224684, 2.026908),
}
_PURE_JAX_JIT = (2.591550, 2.260141, 2.108562)  # the former pure-bfloat16 jax-jit


def _probe_summary(runs: dict[str, tuple[float, float, float]]) -> dict[str, dict]:
    keys = ("first_loss", "early_loss", "final_loss")
    return {
        n: {"name": n, "epoch_s": 1.0, **dict(zip(keys, v, strict=True))} for n, v in runs.items()
    }


def test_bfloat16_tolerances_pass_mixed_runs_and_catch_a_pure_bfloat16_one():
    """The report's bfloat16 tolerances pass the measured mixed-precision runs and flag the
    early loss of a pure-bfloat16 trainer (its lost updates) on W2's network."""
    tol = report.tolerances("bfloat16", None)
    assert report.loss_checks(_probe_summary(_PROBE), tol) == {n: [] for n in _PROBE}
    pure = _probe_summary({**_PROBE, "jax-jit": _PURE_JAX_JIT})
    problems = report.loss_checks(pure, tol)["jax-jit"]
    assert [p.split()[0] for p in problems] == ["early_loss"], problems  # final: 4.0e-2
