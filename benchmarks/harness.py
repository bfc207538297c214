"""The rounds: every contender in its own process, one after another, in a rotated order.

Round r starts the list at contender r (mod n), so no contender always runs first (cold disk
cache) or right after the same neighbour. A contender that skipped (library missing, no GPU) is
not started again. Medians over the rounds are what the report shows.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from ._subprocess import disturbed, progress_line, run_module, run_quietly
from .workloads import Workload

__all__ = ["rounding_envelope", "run_contender", "run_rounds", "summarize_rounds"]

FLOOR = "floor"
_NUMBERS = (
    "epoch_s",
    "warmup_s",
    "compile_s",
    "first_loss",
    "early_loss",
    "last_loss",
    "epoch_loss",
    "final_loss",
    "peak_rss_mib",
    "peak_device_mib",
)


def run_contender(name: str, w: Workload, device: str, epochs: int) -> dict[str, Any]:
    """One worker process for contender ``name``; its result record."""
    args = ["--workload", w.name, "--dtype", w.dtype, "--epochs", str(epochs), "--device", device]
    return run_module("benchmarks.worker", [name, *args], name)


def run_rounds(
    w: Workload,
    names: list[str],
    device: str,
    rounds: int,
    epochs: int,
    max_wait_s: float = 60.0,
    retries: int = 2,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every contender (and the floor) ``rounds`` times; the raw records, round by round.

    Before each worker the harness waits up to ``max_wait_s`` for a quiet machine, and runs a
    worker that other processes disturbed again, up to ``retries`` times (`run_quietly`).
    """
    names = [n for n in names if n != FLOOR] + [FLOOR]
    skipped: set[str] = set()
    out = []
    for r in range(rounds):
        k = r % len(names)
        order = [n for n in names[k:] + names[:k] if n not in skipped]
        records = {}
        for name in order:
            record = run_quietly(
                lambda name=name: run_contender(name, w, device, epochs), max_wait_s, retries, log
            )
            records[name] = record
            if "skipped" in record:
                skipped.add(name)
            log(f"round {r + 1}/{rounds} {name:26s} {_progress(record)}")
        out.append({"round": r + 1, "order": order, "records": records})
    return out


def _progress(record: dict[str, Any]) -> str:
    return progress_line(record, _timing)


def _timing(record: dict[str, Any]) -> str:
    text = f"{record['epoch_s']:.3f} s/epoch"
    if "warmup_s" in record:
        text += f" (warm-up {record['warmup_s']:.3f} s)"
    return text


def summarize_rounds(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per contender: medians of every number over the rounds that produced one, the min and
    max of ``epoch_s``, and the reason when no round did (skipped or error)."""
    names = list(dict.fromkeys(n for r in rounds for n in r["records"]))
    out = {}
    for name in names:
        records = [r["records"][name] for r in rounds if name in r["records"]]
        good = [rec for rec in records if "epoch_s" in rec]
        if not good:
            first = records[0]
            out[name] = {"name": name, **{k: first[k] for k in ("skipped", "error") if k in first}}
            continue
        summary: dict[str, Any] = {"name": name, "rounds": len(good)}
        for key in _NUMBERS:
            values = [rec[key] for rec in good if rec.get(key) is not None]
            summary[key] = statistics.median(values) if values else None
        times = [rec["epoch_s"] for rec in good]
        summary.update(epoch_min=min(times), epoch_max=max(times))
        summary.update({k: good[-1][k] for k in ("device", "versions") if k in good[-1]})
        if name == FLOOR:
            summary["libraries"] = _floor_libraries(good)
            summary["gflops"] = statistics.median(rec["gflops"] for rec in good)
        noisy = [r["round"] for r in rounds if disturbed(r["records"].get(name, {}))]
        if noisy:
            summary["disturbed_rounds"] = noisy
        errors = [rec["error"] for rec in records if "error" in rec]
        if errors:
            summary["errors"] = errors
        out[name] = summary
    return out


def _floor_libraries(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    libs: dict[str, dict[str, Any]] = {}
    for lib in records[0]["libraries"]:
        timed = [rec["libraries"][lib] for rec in records if "epoch_s" in rec["libraries"][lib]]
        if timed:
            libs[lib] = {
                "epoch_s": statistics.median(t["epoch_s"] for t in timed),
                "gflops": statistics.median(t["gflops"] for t in timed),
            }
        else:
            libs[lib] = {"skipped": records[0]["libraries"][lib].get("skipped", "no result")}
    return libs


def rounding_envelope(
    w: Workload, epochs: int, float32_final: float | None
) -> dict[str, Any] | None:
    """How far float32 rounding alone moves the final loss: numpy-hand in float64 against its
    float32 result. Over hundreds of SGD steps tiny rounding differences grow (each batch's
    update depends on the last), so two correct float32 implementations end further apart than
    float32's epsilon; this measures that spread on this workload, once per run."""
    if float32_final is None or w.dtype != "float32":
        return None
    record = run_module(
        "benchmarks.worker",
        ["numpy-hand", "--workload", w.name, "--dtype", "float64", "--epochs", str(epochs)],
        "numpy-hand",
    )
    if "final_loss" not in record:
        return {"error": record.get("error") or record.get("skipped")}
    f64 = record["final_loss"]
    return {
        "float64_final_loss": f64,
        "float32_final_loss": float32_final,
        "relative": abs(float32_final - f64) / abs(f64),
    }
