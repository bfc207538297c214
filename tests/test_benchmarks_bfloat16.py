"""The benchmark's ``--dtype bfloat16``: the backprop-* contenders train through `fit`'s mixed
precision where the backend has bfloat16 (JAX, torch) and skip with `fit`'s own refusal where
it has not; their losses pass the report's bfloat16 checks against a reference."""

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
from benchmarks.contenders._common import ReferenceSettings, Skip
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
REFERENCE = "jax-jit"  # the quickest reference to start; pure bfloat16 training


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


def test_jax_and_torch_train_bfloat16_and_pass_the_reports_checks():
    """backprop-jax and backprop-torch on the small W1 in bfloat16: their losses pass the
    report's bfloat16 checks against jax-jit, and they did compute in bfloat16: the first loss
    is off the float32 one by more than the float32 tolerance. Each runs as `worker.run`, what
    the worker process the harness starts runs, here in this process to save three starts of
    Python, JAX and torch (the subprocess path is `test_quick_smoke_run`'s)."""
    backend_or_skip("jax"), backend_or_skip("torch")
    records = {n: worker.run(n, "W1-quick", "bfloat16", 2, "cpu") for n in [*PROJECT, REFERENCE]}
    for record in records.values():
        assert "epoch_s" in record and record["dtype"] == "bfloat16", record
    summary = harness.summarize_rounds([{"round": 1, "order": list(records), "records": records}])
    tol = report.tolerances("bfloat16", None)
    checks = report.loss_checks(summary, tol)
    assert report.reference_name(summary) == REFERENCE
    assert checks == {n: [] for n in records}, checks
    assert "LOSS MISMATCH" not in report.table(summary, checks, gpu=False)
    X, y = make_data(QUICK)
    first = epoch_orders(QUICK, 1)[0][: QUICK.batch_size]
    float32_first = reference_loss(initial_params(QUICK), X[first], y[first])
    f32_tol = report.tolerances("float32", None)["first_loss"]
    for name in PROJECT:
        s = summary[name]
        rel = abs(s["first_loss"] - float32_first) / float32_first
        assert f32_tol < rel < tol["first_loss"], (name, s["first_loss"], float32_first)
        assert np.isfinite(s["final_loss"]) and s["final_loss"] < s["first_loss"], s
