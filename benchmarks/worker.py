"""Run one contender in this process and print its result as one JSON line.

``python -m benchmarks.worker NAME --workload W1 [--dtype float32] [--epochs 2] [--device cpu]``

The line starts with `MARKER`; libraries may print other lines before it. The result has the
contender's ``name``, ``epoch_s`` (the timed epoch), ``warmup_s``, ``compile_s``, the losses
(``first_loss``, ``early_loss`` after `EARLY_STEP` steps, ``last_loss``, ``epoch_loss``,
``final_loss`` in float64 on the first `FINAL_ROWS` rows), ``peak_rss_mib``,
``peak_device_mib``, ``foreign_cpu_s`` (CPU seconds other processes used during the timed
epochs, ``foreign_window_s`` long), ``versions`` and ``device``; or ``skipped`` / ``error``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import traceback
from typing import Any

from .contenders import get_contender
from .contenders._common import ReferenceSettings, Skip, Trained, peak_rss_mib
from .workloads import get_workload, make_data, reference_loss

__all__ = ["EARLY_STEP", "FINAL_ROWS", "MARKER", "main", "summarize"]

MARKER = "BENCHMARK-RESULT "
EARLY_STEP = 10  # the step whose loss checks the first updates (still far from chaotic growth)
FINAL_ROWS = 4096


def summarize(name: str, w: Any, trained: Trained) -> dict[str, Any]:
    """The result record of a training contender."""
    times = trained.epoch_times
    timed = times[1:] if len(times) > 1 else times
    epoch_s = statistics.median(timed)
    steps = trained.step_losses
    X, y = make_data(w)
    rows = min(FINAL_ROWS, w.n_samples)
    foreign = (trained.foreign_cpu_s or [None])[1:] or [None]
    return {
        "name": name,
        "epoch_s": epoch_s,
        "warmup_s": times[0],
        "compile_s": max(0.0, times[0] - epoch_s),
        "epoch_times": times,
        "first_loss": None if steps is None else steps[0],
        "early_loss": None if steps is None or len(steps) <= EARLY_STEP else steps[EARLY_STEP],
        "last_loss": None if steps is None else steps[-1],
        "epoch_loss": trained.epoch_loss,
        "final_loss": reference_loss(trained.params, X[:rows], y[:rows]),
        "peak_device_mib": trained.peak_device_mib,
        "foreign_cpu_s": None if None in foreign else sum(foreign),
        "foreign_window_s": sum(timed),
        "device": trained.device,
        "versions": trained.versions,
    }


def run(name: str, workload: str, dtype: str | None, epochs: int, device: str) -> dict[str, Any]:
    w = get_workload(workload, dtype)
    settings = ReferenceSettings(epochs=epochs, device=device, dtype=w.dtype)
    t0 = time.perf_counter()
    try:
        out = get_contender(name)(w, settings)
    except Skip as exc:
        return {"name": name, "skipped": str(exc)}
    except Exception as exc:  # reported, not raised: one broken contender must not end the run
        last = traceback.format_exc(limit=-3)
        return {"name": name, "error": f"{type(exc).__name__}: {exc}", "traceback": last}
    rss = peak_rss_mib()  # before `summarize` makes the data again for the final loss
    record = summarize(name, w, out) if isinstance(out, Trained) else {"name": name, **out}
    record.update(
        workload=w.name,
        dtype=w.dtype,
        peak_rss_mib=rss,
        wall_s=time.perf_counter() - t0,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--workload", default="W1")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args(argv)
    record = run(args.name, args.workload, args.dtype, args.epochs, args.device)
    sys.stdout.flush()
    print(MARKER + json.dumps(record, default=_jsonable, allow_nan=True), flush=True)
    return 0


def _jsonable(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else str(number)


if __name__ == "__main__":
    sys.exit(main())
