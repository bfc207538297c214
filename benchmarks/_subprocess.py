"""Starting a worker process, reading its one result line, and watching the machine's noise.

Multi-threaded BLAS slows down many times over when another process holds a core (each GEMM
waits for its descheduled thread), so the harness waits for a quiet machine before each worker
(`wait_for_quiet`) and records how much CPU *other* processes used while it ran
(``run_foreign_cpu_s``: the machine's busy CPU time from ``/proc/stat`` minus the worker's own;
workers also measure it over their timed epochs alone, ``foreign_cpu_s``).
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .contenders._common import cpu_busy_seconds
from .worker import MARKER

__all__ = [
    "ROOT",
    "cpu_busy_seconds",
    "disturbed",
    "is_disturbed",
    "run_module",
    "run_quietly",
    "wait_for_quiet",
]

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository: its backprop, not a copy
TIMEOUT_S = 1800
QUIET_CORES = 0.2  # other processes may use this many cores on average and still be "quiet"
DISTURBED_CORES = 0.05  # a timed epoch during which others used more than this is "disturbed"
MIN_FOREIGN_S = 0.02  # /proc/stat counts in clock ticks (10 ms): below two, it is no evidence


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait_s: float, log: Callable[[str], None], probe_s: float = 0.5) -> float:
    """Wait (up to ``max_wait_s``) until other processes use under `QUIET_CORES` cores; return
    the cores they used in the last probe."""
    deadline, warned = time.monotonic() + max_wait_s, False
    while True:
        start = cpu_busy_seconds()
        time.sleep(probe_s)
        end = cpu_busy_seconds()
        if start is None or end is None:
            return 0.0
        cores = (end - start) / probe_s
        if cores < QUIET_CORES or time.monotonic() >= deadline:
            if cores >= QUIET_CORES:
                log(f"  the machine stayed busy ({cores:.1f} cores used by others); going on")
            return cores
        if not warned:
            log(f"  waiting for a quiet machine ({cores:.1f} cores used by other processes)")
            warned = True


def run_module(module: str, args: list[str], name: str) -> Any:
    """Run ``python -m module *args`` from the repository root and return the JSON after
    `MARKER` on its output, with ``run_foreign_cpu_s`` (CPU other processes used while it ran)
    and ``run_wall_s`` added; on a crash, a timeout or no result, ``{"name", "error"}``."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    busy0, own0, t0 = cpu_busy_seconds(), _children_cpu(), time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"no result within {TIMEOUT_S} s"}
    wall, busy1 = time.perf_counter() - t0, cpu_busy_seconds()
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"name": name, "error": f"exit {proc.returncode}, no result: {' | '.join(tail)}"}
    record = json.loads(lines[-1][len(MARKER) :])
    if busy0 is not None and busy1 is not None:
        foreign = (busy1 - busy0) - (_children_cpu() - own0)
        record["run_foreign_cpu_s"] = max(0.0, foreign)
    record["run_wall_s"] = wall
    return record


def is_disturbed(foreign_s: float | None, window_s: float) -> bool:
    """Whether other processes used over `DISTURBED_CORES` cores during a ``window_s`` window."""
    if foreign_s is None or window_s <= 0:
        return False
    return foreign_s / window_s > DISTURBED_CORES and foreign_s > MIN_FOREIGN_S


def disturbed(record: dict[str, Any]) -> float | None:
    """Cores other processes used on average during the worker's timed epochs (as the worker
    measured them; else during the whole worker), when above `DISTURBED_CORES`; else None."""
    foreign, wall = record.get("foreign_cpu_s"), record.get("foreign_window_s")
    if foreign is None or not wall:
        foreign, wall = record.get("run_foreign_cpu_s"), record.get("run_wall_s")
    if foreign is None or not wall:
        return None
    return foreign / wall if is_disturbed(foreign, wall) else None


def run_quietly(
    run: Callable[[], dict[str, Any]],
    max_wait_s: float,
    retries: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``run()`` on a quiet machine: wait for quiet first, and run again (up to ``retries``
    times) when other processes disturbed it. The result keeps the discarded attempts' timings
    under ``disturbed_attempts``; it may itself still be disturbed when retries ran out."""
    discarded = []
    for attempt in range(retries + 1):
        if max_wait_s > 0:
            wait_for_quiet(max_wait_s, log)
        record = run()
        share = disturbed(record)
        failed = "epoch_s" not in record and "points" not in record  # skipped, error
        if share is None or attempt == retries or failed:
            break
        log(f"  {record.get('name', 'worker')}: other processes used {share:.1f} cores; again")
        keys = ("epoch_s", "foreign_cpu_s", "foreign_window_s", "run_foreign_cpu_s", "run_wall_s")
        discarded.append({k: record.get(k) for k in keys})
    if discarded:
        record["disturbed_attempts"] = discarded
    return record


def add_quiet_options(parser: Any, retries: int = 2) -> None:
    """``--max-wait`` and ``--retries``: how every benchmark waits for a quiet machine and runs
    a disturbed worker again (`run_quietly`)."""
    parser.add_argument(
        "--max-wait",
        type=float,
        default=60.0,
        help="seconds to wait for a quiet machine before each worker (0: never wait)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=retries,
        help="run a worker again (up to this often) when other processes disturbed it",
    )


def progress_line(record: dict[str, Any], timing: Callable[[dict[str, Any]], str]) -> str:
    """A worker's record as one log line: skipped or ERROR with the reason, else ``timing``'s
    text and, when other processes used the cores meanwhile, how many."""
    if "skipped" in record:
        return f"skipped: {record['skipped']}"
    if "error" in record:
        return f"ERROR: {record['error']}"
    text = timing(record)
    share = disturbed(record)
    if share is not None:
        text += f"  [disturbed: other processes used {share:.1f} cores meanwhile]"
    return text
