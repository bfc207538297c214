"""``python -m benchmarks.stream``: training from disk next to training from memory (issue 17).

W1 is written to ``.npy`` once; each round trains it, each case in its own process, one after
another in a rotated order, on NumPy: (a) ``memory``, the arrays read whole; (b) ``memmap``, the
files memory-mapped; (c) ``generator``, a function ``epoch -> batches`` reading the memory map in
`fit`'s batch order. Then a big file (``--big-gb``, written in chunks) trains one epoch
memory-mapped, its peak RSS measured above the process's footprint before `fit`. Prints the
tables and the issue's done-when checks; writes ``<out>/stream-<workload>.json``. See
benchmarks/README.md, "Streaming".
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ._subprocess import (
    add_quiet_options,
    disturbed,
    progress_line,
    run_module,
    run_quietly,
    wait_for_quiet,
)
from .machine import machine_info
from .stream_data import GIB, BigFile, drop_from_page_cache, space_problem, write_big, write_w1
from .stream_worker import BIG, CASES
from .workloads import QUICK, W1, Workload

__all__ = ["compare_losses", "criteria", "main", "run_rounds", "summarize"]

WORKER = "benchmarks.stream_worker"
REFERENCE = "memory"
EPOCHS = 2  # one warm-up, one timed
MAX_RATIO = 1.15  # issue 17: memory-mapped W1 within 1.15x the in-memory epoch
LABELS = {
    "memory": "(a) in-memory arrays",
    "memmap": "(b) memory-mapped .npy",
    "generator": "(c) generator over the memmap",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream", description=__doc__)
    p.add_argument("--rounds", type=int, default=5, help="interleaved W1 rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="W1 on 2,048 rows, big file 0.25 GiB")
    p.add_argument(
        "--big-gb",
        type=float,
        default=None,
        help="size of the big feature file in GiB (default 4, --quick 0.25; 0 skips it)",
    )
    p.add_argument(
        "--rss-limit-gb",
        type=float,
        default=1.0,
        help="the big file's peak RSS above the footprint must stay under this (GiB, default "
        "1); measured and checked, not enforced",
    )
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON")
    p.add_argument("--tmp", default=None, help="folder for the data files (default: the temp dir)")
    add_quiet_options(p, retries=2)
    return p


def _fail(message: str) -> int:
    print(f"python -m benchmarks.stream: error: {message}", file=sys.stderr)
    return 2


def compare_losses(ref: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Whether ``other``'s step losses equal ``ref``'s bit for bit; else where they first
    differ and by how much at most."""
    a, b = ref.get("step_losses"), other.get("step_losses")
    if a is None or b is None:
        return {"identical": None}
    if len(a) != len(b):
        return {"identical": False, "steps": [len(a), len(b)]}
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return {
        "identical": not diffs,
        "steps": len(a),
        "first_difference": diffs[0] if diffs else None,
        "max_abs_difference": max((abs(a[i] - b[i]) for i in diffs), default=0.0),
    }


def _w1_worker(name: str, w: Workload, folder: pathlib.Path) -> dict[str, Any]:
    args = [name, "--data", str(folder), "--workload", w.name, "--epochs", str(EPOCHS)]
    return run_module(WORKER, args, name)


def run_rounds(
    w: Workload,
    folder: pathlib.Path,
    rounds: int,
    max_wait_s: float,
    retries: int,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every W1 case ``rounds`` times, round r starting at case r (mod 3); the raw records with
    each case's step losses compared to the same round's in-memory run (``losses``), the loss
    lists themselves dropped once compared."""
    names, out = list(CASES), []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        records = {}
        for name in order:
            run = lambda name=name: _w1_worker(name, w, folder)  # noqa: E731
            records[name] = run_quietly(run, max_wait_s, retries, log)
            log(f"round {r + 1}/{rounds} {name:10s} {_progress(records[name])}")
        for name in names:
            if name != REFERENCE:
                records[name]["losses"] = compare_losses(records[REFERENCE], records[name])
        for record in records.values():
            record.pop("step_losses", None)
        out.append({"round": r + 1, "order": order, "records": records})
    return out


def _progress(record: dict[str, Any]) -> str:
    return progress_line(
        record, lambda r: f"{r['epoch_s']:.3f} s/epoch (warm-up {r['warmup_s']:.3f} s)"
    )


def summarize(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case: the median, min and max epoch over the rounds, the ratio of the medians to the
    in-memory case, in how many rounds the step losses were bit-identical, and errors."""
    out: dict[str, dict[str, Any]] = {}
    for name in CASES:
        records = [r["records"][name] for r in rounds]
        good = [rec for rec in records if "epoch_s" in rec]
        summary: dict[str, Any] = {"name": name, "rounds": len(good)}
        errors = [rec["error"] for rec in records if "error" in rec]
        if errors:
            summary["errors"] = errors
        if good:
            times = [rec["epoch_s"] for rec in good]
            summary.update(
                epoch_s=statistics.median(times),
                epoch_min=min(times),
                epoch_max=max(times),
                peak_rss_mib=statistics.median(rec["peak_rss_mib"] for rec in good),
            )
        checks = [rec["losses"] for rec in records if "losses" in rec]
        if checks:
            summary["losses_identical_rounds"] = sum(c["identical"] is True for c in checks)
            summary["losses_compared_rounds"] = sum(c["identical"] is not None for c in checks)
            summary["losses_worst"] = max(checks, key=lambda c: c.get("max_abs_difference", 0))
        noisy = [r["round"] for r in rounds if disturbed(r["records"][name])]
        if noisy:
            summary["disturbed_rounds"] = noisy
        out[name] = summary
    ref = out[REFERENCE].get("epoch_s")
    for s in out.values():
        s["ratio"] = s["epoch_s"] / ref if ref and "epoch_s" in s else None
    return out


def _identical(s: dict[str, Any]) -> bool | None:
    compared = s.get("losses_compared_rounds", 0)
    if not compared or compared < s["rounds"]:
        return None
    return s["losses_identical_rounds"] == compared


def criteria(summary: dict[str, Any], big: dict[str, Any] | None, limit_gib: float) -> list:
    """Issue 17's done-when checks that this benchmark measures: ``{"what", "value", "holds"}``
    (holds None when the case produced no number)."""
    mm = summary["memmap"]
    ratio = mm.get("ratio")
    out = [
        {
            "what": f"memory-mapped W1 within {MAX_RATIO}x the in-memory epoch (medians)",
            "value": None if ratio is None else f"{ratio:.3f}x",
            "holds": None if ratio is None else ratio <= MAX_RATIO,
        },
        {
            "what": "memory-mapped W1's step losses bit-identical to in-memory (NumPy)",
            "value": _losses_text(mm),
            "holds": _identical(mm),
        },
    ]
    above = None if big is None else big.get("above_footprint_mib")
    out.append(
        {
            "what": f"big file: peak RSS under {limit_gib:g} GiB above the model's footprint",
            "value": None if above is None else f"{above:.0f} MiB above",
            "holds": None if above is None else above < limit_gib * 1024,
        }
    )
    return out


def _losses_text(s: dict[str, Any]) -> str:
    if s["name"] == REFERENCE:
        return "(reference)"
    if not s.get("losses_compared_rounds"):
        return "not compared"
    same, n = s["losses_identical_rounds"], s["losses_compared_rounds"]
    if same == n:
        return f"identical, {s['losses_worst']['steps']} steps ({same}/{n} rounds)"
    worst = s["losses_worst"]
    where = worst.get("first_difference")
    return (
        f"DIFFER in {n - same}/{n} rounds (from step {where}, "
        f"max |diff| {worst.get('max_abs_difference', float('nan')):.2e})"
    )


def w1_table(summary: dict[str, Any]) -> str:
    """The W1 cases as a Markdown table."""
    lines = [
        "| case | s/epoch | min–max | × in-memory | step losses vs (a) | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        if "epoch_s" not in s:
            error = s.get("errors", ["no result"])[0]
            lines.append(f"| {LABELS[name]} | ERROR: {error} | | | | |")
            continue
        note = " (disturbed)" if s.get("disturbed_rounds") else ""
        lines.append(
            f"| {LABELS[name]} | {s['epoch_s']:.3f}{note} | {s['epoch_min']:.3f}–"
            f"{s['epoch_max']:.3f} | {s['ratio']:.3f} | {_losses_text(s)} | "
            f"{s['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def big_table(big: dict[str, Any]) -> str:
    """The big-file case as a Markdown table (or its error)."""
    if "error" in big:
        return f"big file: ERROR: {big['error']}"
    share = disturbed(big)
    note = "" if share is None else f" (disturbed: others used {share:.1f} cores)"
    head = (
        "| file | rows | epoch s | rows/s | footprint MiB | peak RSS MiB (VmHWM / maxrss) | "
        "above footprint MiB | peak anon / file-backed MiB | in-memory load needs MiB |"
    )
    row = (
        f"| {big['file_mib'] / 1024:.2f} GiB{'' if big.get('cold_cache') else ' (cached)'} | "
        f"{big['rows']:,} | {big['epoch_s']:.1f}{note} | {big['rows_per_s']:,.0f} | "
        f"{big['footprint_mib']:.0f} | {big['peak_vmhwm_mib']:.0f} / "
        f"{big['peak_maxrss_mib']:.0f} | {big['above_footprint_mib']:.0f} | "
        f"{big['peak_rss_anon_mib']:.0f} / {big['peak_rss_file_mib']:.0f} | "
        f"{big['file_mib']:.0f} |"
    )
    return "\n".join([head, "|---" * 9 + "|", row])


def criteria_text(checks: list[dict[str, Any]]) -> str:
    marks = {True: "holds", False: "FAILS", None: "not measured"}
    return "\n".join(f"- {c['what']}: {c['value'] or '-'} — {marks[c['holds']]}" for c in checks)


def run_big(
    big: BigFile, folder: pathlib.Path, max_wait_s: float, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Write the big files, drop them from the page cache, train one epoch on them in a worker;
    the worker's record with the writing time added. The files are deleted in every case."""
    log(f"writing {big.nbytes / GIB:.2f} GiB ({big.rows:,} rows of {big.sizes[0]} float32)")
    t0 = time.perf_counter()
    paths = write_big(big, folder)
    try:
        write_s = time.perf_counter() - t0
        cold = drop_from_page_cache(*paths)
        if max_wait_s > 0:
            wait_for_quiet(max_wait_s, log)
        record = run_module(WORKER, [BIG, "--data", str(folder)], BIG)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    record.update(write_s=write_s, cold_cache=cold, requested_gib=big.gib)
    if "error" not in record:
        log(
            f"big file: {record['epoch_s']:.1f} s, {record['rows_per_s']:,.0f} rows/s, peak RSS "
            f"{record['above_footprint_mib']:.0f} MiB above the footprint"
        )
    return record


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so the `with` blocks remove the data files on `kill` too


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    gib = args.big_gb if args.big_gb is not None else (0.25 if args.quick else 4.0)
    if args.rounds < 1 or gib < 0 or args.rss_limit_gb <= 0:
        return _fail("--rounds must be >= 1, --big-gb >= 0 and --rss-limit-gb > 0")
    w = QUICK if args.quick else W1
    big = BigFile(gib) if gib > 0 else None
    tmp = pathlib.Path(args.tmp or tempfile.gettempdir())
    if not tmp.is_dir():
        return _fail(f"--tmp {tmp} is not a folder; pass an existing folder for the data files")
    needed = w.n_samples * (w.sizes[0] * 4 + 8) + (big.nbytes if big else 0)
    problem = space_problem(tmp, needed)
    if problem:
        return _fail(problem)
    signal.signal(signal.SIGTERM, _terminate)
    started, t0 = datetime.datetime.now().astimezone(), time.perf_counter()
    print(
        f"# streaming: {w.name} (MLP {'-'.join(map(str, w.sizes))}, batch {w.batch_size}, "
        f"{w.n_samples} rows) on numpy, {args.rounds} round(s); big file {gib:g} GiB"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="backprop-stream-", dir=tmp) as name:
            folder = pathlib.Path(name)
            write_w1(w, folder)
            rounds = run_rounds(w, folder, args.rounds, args.max_wait, args.retries)
            big_record = run_big(big, folder, args.max_wait) if big else None
    except KeyboardInterrupt:
        print("\ninterrupted; the data files were removed", file=sys.stderr)
        return 130
    results = _report(w, big, rounds, big_record, args.rss_limit_gb)
    command = argv if argv is not None else sys.argv[1:]
    results.update(
        date=started.isoformat(timespec="seconds"),
        wall_s=time.perf_counter() - t0,
        command=" ".join(["python -m benchmarks.stream", *command]),
    )
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"stream-{w.name}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {path}; whole run {results['wall_s']:.0f} s")
    failed = any("errors" in s for s in results["summary"].values()) or "error" in (
        big_record or {}
    )
    return 1 if failed else 0


def _report(
    w: Workload,
    big: BigFile | None,
    rounds: list[dict[str, Any]],
    big_record: dict[str, Any] | None,
    limit_gib: float,
) -> dict[str, Any]:
    """Print the tables and the checks; the results to save."""
    summary = summarize(rounds)
    checks = criteria(summary, big_record, limit_gib)
    print(f"\n## W1 from memory, memory-mapped, generator: medians over {len(rounds)} round(s)\n")
    print(w1_table(summary))
    if big_record is not None:
        print("\n## Big file, memory-mapped, one epoch\n")
        print(big_table(big_record))
    print("\n## Issue 17's done-when checks\n")
    print(criteria_text(checks))
    keys = ("name", "sizes", "batch_size", "n_samples", "lr", "dtype")
    return {
        "workload": {k: getattr(w, k) for k in keys},
        "big": None if big is None else {k: getattr(big, k) for k in ("gib", *keys[1:3], "rows")},
        "machine": machine_info(),
        "rounds": rounds,
        "summary": summary,
        "big_record": big_record,
        "criteria": checks,
    }


if __name__ == "__main__":
    sys.exit(main())
