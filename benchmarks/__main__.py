"""``python -m benchmarks``: run a workload's contenders in interleaved rounds and report.

Prints the results table (medians over rounds), the floor per library, the loss checks, the
issue's targets and (unless ``--no-sweep``) the batch/width sweep; writes
``<out>/<workload>-<device>.json`` and ``.png``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import sys
import time
from typing import Any

from . import harness, report
from ._subprocess import add_quiet_options
from .contenders import CONTENDERS, default_contenders
from .machine import machine_info
from .sweep import run_sweep, sweep_table
from .workloads import get_workload


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--workload", choices=("W1", "W2"), default="W1")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument(
        "--contenders",
        default=None,
        help=f"comma-separated subset of {[c for c in CONTENDERS if c != 'floor']} "
        "(default: all that fit the device); the floor always runs",
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--epochs", type=int, default=2, help="1 warm-up + timed epochs (default 2)")
    p.add_argument("--quick", action="store_true", help="W1 on 2,048 rows (the smoke test)")
    p.add_argument("--no-sweep", action="store_true", help="skip the batch/width sweep")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON and PNG")
    add_quiet_options(p, retries=2)
    return p


def _fail(message: str) -> int:
    print(f"python -m benchmarks: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick and args.workload != "W1":
        return _fail("--quick is a small W1; it does not apply to W2")
    w = get_workload("W1-quick" if args.quick else args.workload, args.dtype)
    if w.gpu_only and args.device == "cpu":
        return _fail(
            f"{w.name} is a GPU workload (MLP {'-'.join(map(str, w.sizes))}, batch "
            f"{w.batch_size}: about 11 TFLOP per epoch); run it with --device gpu"
        )
    if args.rounds < 1 or args.epochs < 2:
        return _fail("--rounds must be >= 1 and --epochs >= 2 (one warm-up, one timed)")
    names = default_contenders(args.device, w.gpu_only)
    if args.contenders:
        names = [n.strip() for n in args.contenders.split(",") if n.strip()]
        unknown = [n for n in names if n not in CONTENDERS]
        if unknown:
            return _fail(f"unknown contenders {unknown}; expected some of {list(CONTENDERS)}")
    started, t0 = datetime.datetime.now().astimezone(), time.perf_counter()
    print(
        f"# {w.name}: MLP {'-'.join(map(str, w.sizes))}, batch {w.batch_size}, "
        f"{w.n_samples} rows, SGD lr {w.lr}, {w.dtype}, device {args.device}"
    )
    rounds = harness.run_rounds(
        w, names, args.device, args.rounds, args.epochs, args.max_wait, args.retries
    )
    results = _report(w, args, rounds)
    if not args.no_sweep:
        if args.device == "cpu":
            results["sweep"] = run_sweep(args.quick, args.max_wait)
            for axis in ("batch", "width"):
                print(f"\n## Sweep: time per sample versus {axis}\n")
                print(sweep_table(results["sweep"], axis))
        else:
            print("\n(the sweep covers the CPU backends numpy and jax; run it with --device cpu)")
    results.update(
        date=started.isoformat(timespec="seconds"),
        wall_s=time.perf_counter() - t0,
        command=" ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
    )
    _save(results, pathlib.Path(args.out), f"{w.name}-{args.device}")
    print(f"\nwhole run: {results['wall_s']:.0f} s")
    return 0


def _report(w: Any, args: argparse.Namespace, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    summary = harness.summarize_rounds(rounds)
    hand = summary.get("numpy-hand", {}).get("final_loss")
    envelope = harness.rounding_envelope(w, args.epochs, hand) if args.device == "cpu" else None
    tol = report.tolerances(w.dtype, envelope)
    checks = report.loss_checks(summary, tol)
    target_results = report.targets(summary)
    print(f"\n## Results: medians over {args.rounds} round(s)\n")
    print(report.table(summary, checks, gpu=args.device == "gpu"))
    print("\n## Floor by library (the floor is the fastest)\n")
    print(report.floor_lines(summary))
    print(f"\n## Loss checks against {report.reference_name(summary)}\n")
    if envelope and "relative" in envelope:
        print(
            f"float32 rounding alone moves numpy-hand's final loss by {envelope['relative']:.1e} "
            f"(float64 run: {envelope['float64_final_loss']:.6f})"
        )
    print("tolerances (relative): " + ", ".join(f"{k} {v:.0e}" for k, v in tol.items()))
    bad = {n: p for n, p in checks.items() if p}
    for name, problems in bad.items():
        print(f"- LOSS MISMATCH {name}: {'; '.join(problems)}")
    if not bad:
        print("all losses agree")
    print("\n## Targets\n")
    print(report.targets_text(target_results))
    return {
        "workload": dataclasses.asdict(w),
        "device": args.device,
        "dtype": w.dtype,
        "epochs": args.epochs,
        "machine": machine_info(),
        "rounds": rounds,
        "summary": summary,
        "rounding_envelope": envelope,
        "tolerances": tol,
        "loss_checks": checks,
        "targets": target_results,
    }


def _save(results: dict[str, Any], out: pathlib.Path, stem: str) -> None:
    from .plot import plot_results

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    png = plot_results(results, out / f"{stem}.png")
    print(f"\nwrote {path} and {png}")


if __name__ == "__main__":
    sys.exit(main())
