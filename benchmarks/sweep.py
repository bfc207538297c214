"""Where Python overhead ends and the GEMMs take over: time per sample of `backprop.fit` on the
numpy and jax backends versus batch size (width 256) and versus width (batch 128), next to the
GEMM floor per sample (NumPy's ``matmul``, `floor.measure_gemm_floor`) at each point.

Each point trains a 784-width-width-10 MLP for a warm-up epoch and `REPEATS` timed epochs (the
fastest counts; the floor likewise takes the fastest of `REPEATS` passes) on the first ``n`` rows
of W1's data, ``n`` chosen so the epoch's GEMMs are about `BUDGET_FLOPS` (at least `MIN_STEPS`
steps, at most 60,000 rows). One process per backend runs every point in turn
(``python -m benchmarks.sweep numpy|jax|floor``); the harness merges the three.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from ._subprocess import is_disturbed, run_module, wait_for_quiet
from .contenders._common import CpuMeter, ReferenceSettings
from .contenders.project import timed_fit
from .workloads import QUICK, W1, Workload, make_data, step_flops

__all__ = ["BATCHES", "WIDTHS", "points", "run_sweep", "sweep_table"]

BATCHES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
BUDGET_FLOPS = {False: 4e10, True: 1e9}  # per epoch; keyed by --quick
MIN_STEPS = 8
REPEATS = 2  # timed epochs (fit) or floor passes per point; the fastest counts (noise only adds)
POINT_RETRIES = 2
BACKENDS = ("numpy", "jax")


def points(quick: bool = False) -> list[dict[str, Any]]:
    """Every sweep point: axis ("batch" or "width"), batch, width and the rows ``n`` to train."""
    base = QUICK if quick else W1
    out = [{"axis": "batch", "batch": b, "width": 256} for b in BATCHES]
    out += [{"axis": "width", "batch": 128, "width": width} for width in WIDTHS]
    for p in out:
        w = point_workload(p, base.n_samples)
        per_sample = step_flops(w) / w.batch_size
        n = int(BUDGET_FLOPS[quick] / per_sample) // p["batch"] * p["batch"]
        p["n"] = min(max(n, MIN_STEPS * p["batch"]), base.n_samples)
    return out


def point_workload(p: dict[str, Any], n: int | None = None) -> Workload:
    return Workload(
        f"sweep-{p['axis']}-b{p['batch']}-w{p['width']}",
        (784, p["width"], p["width"], 10),
        batch_size=p["batch"],
        n_samples=p.get("n", n),
    )


# (seconds, CPU seconds other processes used, over a window of this many seconds)
Samples = list[tuple[float, float | None, float]]


def _fit_point(backend: str) -> Callable[[Workload, Any, Any], Samples]:
    import backends

    be = backends.get_backend(backend, "cpu")

    def timed_epochs(w: Workload, X: Any, y: Any) -> Samples:
        result, meter = timed_fit(be, w, X, y, epochs=1 + REPEATS, dtype="float32")
        times = result.history["time"][1:]
        return list(zip(times, meter.foreign[1:], times, strict=True))

    return timed_epochs


def _floor_point(w: Workload, X: Any, y: Any) -> Samples:
    from .floor import measure_gemm_floor

    settings = ReferenceSettings(epochs=1, device="cpu", dtype="float32")
    samples = []
    for _ in range(REPEATS):
        meter, t0 = CpuMeter(), time.perf_counter()
        seconds = measure_gemm_floor(w, "numpy", settings)["epoch_s"]
        meter.mark()
        samples.append((seconds, meter.foreign[0], time.perf_counter() - t0))
    return samples


def worker(backend: str, quick: bool) -> dict[str, Any]:
    """Time every point on ``backend`` ("numpy", "jax", or "floor"). A point whose every timed
    epoch other processes disturbed is measured again, up to `POINT_RETRIES` times; the fastest
    undisturbed epoch counts (``disturbed``: none was)."""
    X, y = make_data(QUICK if quick else W1)
    measure = _floor_point if backend == "floor" else _fit_point(backend)
    out = []
    for p in points(quick):
        w = point_workload(p)
        samples: Samples = []
        for _ in range(1 + POINT_RETRIES):
            samples += measure(w, X[: w.n_samples], y[: w.n_samples])
            clean = [t for t, foreign, window in samples if not is_disturbed(foreign, window)]
            if clean:
                break
        seconds = min(clean or [t for t, _, _ in samples])
        out.append(
            {
                **p,
                "epoch_s": seconds,
                "us_per_sample": seconds / w.n_samples * 1e6,
                "disturbed": not clean,
            }
        )
    return {"backend": backend, "points": out}


def run_sweep(
    quick: bool, max_wait_s: float = 60.0, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the three sweep processes (each after waiting for a quiet machine); returns
    ``{"points": [...], "errors": {...}}`` merged by point."""
    merged = [dict(p) for p in points(quick)]
    errors = {}
    for backend in (*BACKENDS, "floor"):
        if max_wait_s > 0:
            wait_for_quiet(max_wait_s, log)
        args = [backend, *(["--quick"] if quick else [])]
        result = run_module("benchmarks.sweep", args, f"sweep-{backend}")
        if "points" not in result:
            errors[backend] = result.get("error", "no result")
            log(f"sweep {backend}: ERROR {errors[backend]}")
            continue
        for row, p in zip(merged, result["points"], strict=True):
            row[f"{backend}_us"] = p["us_per_sample"]
            row[f"{backend}_disturbed"] = p["disturbed"]
        noisy = sum(p["disturbed"] for p in result["points"])
        note = f" ({noisy} disturbed by other processes)" if noisy else ""
        log(f"sweep {backend}: {len(result['points'])} points done{note}")
    return {"points": merged, "errors": errors}


def sweep_table(sweep: dict[str, Any], axis: str) -> str:
    """Markdown: µs per sample of each backend, the floor, and each backend's ratio to it."""
    head = [axis, "rows", *(f"{b} µs/sample" for b in BACKENDS), "floor µs/sample"]
    head += [f"{b} × floor" for b in BACKENDS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in (p for p in sweep["points"] if p["axis"] == axis):
        floor = p.get("floor_us")
        cells = [str(p[axis]), str(p["n"])]
        cells += [_num(p.get(f"{b}_us"), p.get(f"{b}_disturbed")) for b in BACKENDS]
        cells.append(_num(floor, p.get("floor_disturbed")))
        cells += [
            "—" if floor is None or p.get(f"{b}_us") is None else f"{p[f'{b}_us'] / floor:.2f}"
            for b in BACKENDS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: float | None, disturbed: bool | None = False) -> str:
    """The value; "(disturbed)" when other processes ran during every timing of it."""
    if value is None:
        return "—"
    return f"{value:.2f}" + (" (disturbed)" if disturbed else "")


def main(argv: list[str] | None = None) -> int:
    from .worker import MARKER

    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep")
    parser.add_argument("backend", choices=(*BACKENDS, "floor"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(MARKER + json.dumps(worker(args.backend, args.quick)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
