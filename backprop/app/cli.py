"""Command line: ``backprop`` (or ``python -m backprop``).

Host-only module. Subcommands:

- ``backprop train CONFIG [--backend NAME] [--device DEV] [--set section.key=value ...]``
- ``backprop evaluate RUN_DIR_OR_CHECKPOINT [--data NAME|FILE] [--backend NAME]``
- ``backprop gradcheck CONFIG [--backend NAME]``
- ``backprop backends``

``train``, ``gradcheck`` and ``evaluate`` take ``--import MODULE`` (repeatable): a plugin module
(dotted name or .py path) that registers layers, activations or losses, imported before the
config is read (`backprop._plugins`).

Exit codes: 0 success; 2 a usage, config, data or backend error (one message, no traceback);
1 a runtime failure (training diverged, a gradient check failed, a file could not be written).
"""

from __future__ import annotations

import argparse
import platform
import sys

import backends

from ..data.checks import DataError
from ..training.checkpoint import CheckpointError
from ..training.fit import TrainingDiverged
from . import experiment
from ._plugins import import_plugins
from .config import ConfigError, load_config

__all__ = ["main"]

USAGE_ERRORS = (
    ConfigError,
    DataError,
    backends.BackendError,
    CheckpointError,
    FileExistsError,
    FileNotFoundError,
    ValueError,
)
RUNTIME_ERRORS = (TrainingDiverged, FloatingPointError, RuntimeError, OSError, MemoryError)


def _load(args: argparse.Namespace):
    """The config with ``--set`` and the ``--backend``/``--device`` shorthands, validated."""
    shorthands = []
    if args.backend:
        shorthands.append(f"backend.name={args.backend}")
    if args.device:
        shorthands.append(f"backend.device={args.device}")
    return load_config(args.config, [*args.set, *shorthands], imports=args.imports)


def _train(args: argparse.Namespace) -> int:
    cfg = _load(args)
    experiment.train_config(
        cfg,
        run_dir=args.run_dir,
        save=not args.no_save,
        verbose=0 if args.quiet else 1,
        command=["backprop", *args.argv],
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import_plugins(args.imports, "--import")  # the run's own plugins: its saved config's imports
    run, values, what = experiment.evaluate_run(
        args.path, data=args.data, target=args.target, backend=args.backend, device=args.device
    )
    print(f"model {run.model} from {run.path}")
    print(f"evaluated on {what} ({args.backend}):")
    for key, value in values.items():
        print(f"  {key:10s} {experiment.format_metric(key, value)}")
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    cfg = _load(args)
    be, layers, result = experiment.gradcheck_config(
        cfg,
        rows=args.rows,
        max_per_array=args.max_per_array or None,
    )
    print(
        f"finite differences (central, h=1e-6, float64) vs backprop on {be.name} "
        f"({be.device_name}), {args.rows} rows of {cfg.data.name}, "
        + (
            f"{args.max_per_array} sampled elements per array at most:"
            if args.max_per_array
            else "every element:"
        )
    )
    print(f"  {'layer':>5}  {'shape':>14}  {'activation':>10}  worst relative error (W, b)")
    for row in layers:
        print(
            f"  {row['layer']:>5}  {row['shape']:>14}  {row['activation']:>10}  "
            f"{row['max_rel_error']:.2e}"
        )
    verdict = "ok" if result.ok else "FAILED"
    print(f"max relative error {result.max_error:.2e} (tolerance {result.tol:g}): {verdict}")
    return 0 if result.ok else 1


def _backends(args: argparse.Namespace) -> int:
    rows = [("backend", "usable", "version", "devices", "why not")]
    for name, a in backends.available_backends().items():
        rows.append(
            (name, "yes" if a.ok else "no", a.version or "-", ", ".join(a.devices) or "-", a.reason)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print(
            ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4]).rstrip()
        )
    print(f"python {platform.python_version()} on {platform.platform(terse=True)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Train and check hand-derived backprop MLPs on NumPy, JAX, PyTorch or CuPy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def backend_options(p: argparse.ArgumentParser, default: str | None) -> None:
        where = "the config's [backend] name" if default is None else default
        p.add_argument(
            "--backend",
            default=default,
            help=f"numpy, jax, torch, cupy, array_api_strict or auto (default: {where})",
        )
        p.add_argument("--device", default=None, help="cpu, gpu or gpu:N")

    def import_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--import",
            dest="imports",
            action="append",
            default=[],
            metavar="MODULE",
            help="import a plugin module first: a dotted name importable from the current "
            "directory or sys.path, or a .py file, that registers layers, activations or losses "
            "(repeatable)",
        )

    def set_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override a config key, e.g. --set training.epochs=5 (repeatable)",
        )

    train = sub.add_parser("train", help="train a model from a TOML config")
    train.add_argument("config", help="a TOML config, e.g. configs/digits.toml")
    backend_options(train, None)
    set_option(train)
    import_option(train)
    train.add_argument("--run-dir", default=None, help="exact run directory (must be new or empty)")
    train.add_argument("--no-save", action="store_true", help="do not write a run directory")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    train.set_defaults(run=_train)

    ev = sub.add_parser("evaluate", help="evaluate a trained run directory or checkpoint")
    ev.add_argument(
        "path",
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="a run directory (uses its model.npz) or a .npz checkpoint written by a run",
    )
    ev.add_argument(
        "--data",
        default=None,
        help="a dataset name or a .npz/.csv file (default: the run's test rows)",
    )
    ev.add_argument("--target", default=None, help="target column of a --data CSV file")
    backend_options(ev, "numpy")
    import_option(ev)
    ev.set_defaults(run=_evaluate)

    gc = sub.add_parser("gradcheck", help="finite-difference check of a config's model")
    gc.add_argument("config", help="a TOML config")
    backend_options(gc, None)
    set_option(gc)
    import_option(gc)
    gc.add_argument("--rows", type=int, default=8, help="training rows in the check (default 8)")
    gc.add_argument(
        "--max-per-array",
        type=int,
        default=50,
        help="check at most this many (seeded, sampled) elements per array; 0: all (default 50)",
    )
    gc.set_defaults(run=_gradcheck)

    sub.add_parser(
        "backends", help="every backend: usable or not and why, version, devices"
    ).set_defaults(run=_backends)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except USAGE_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RUNTIME_ERRORS as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
