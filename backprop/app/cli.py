"""Command line: ``backprop`` (or ``python -m backprop``).

Host-only module. Subcommands:

- ``backprop train CONFIG [--backend NAME] [--device DEV] [--set section.key=value ...]``
- ``backprop train --resume RUN_DIR [--set training.epochs=N]`` (or ``backprop resume RUN_DIR``)
- ``backprop evaluate RUN_DIR_OR_CHECKPOINT [--data NAME|FILE] [--backend NAME] [--members]``
- ``backprop gradcheck CONFIG [--backend NAME]``
- ``backprop backends``
- ``backprop predict RUN_DIR_OR_CHECKPOINT --data FILE [--target COL] [--out FILE]``
- ``backprop export RUN_DIR_OR_CHECKPOINT --format safetensors [--out FILE]``
- ``backprop convert-csv CSV OUT_DIR [--target COL] [--chunk-rows N] [--dtype float32|float64]``
  ``[--delimiter C] [--overwrite]``: a CSV -> x.npy, y.npy for a config's ``npy`` dataset
- ``backprop --version``

``train``, ``gradcheck``, ``evaluate``, ``predict`` and ``export`` take ``--import MODULE``
(repeatable): a plugin module (dotted name or .py path) that registers layers, activations or
losses, imported before the config is read (`backprop._plugins`).

Exit codes: 0 success; 2 a usage, config, data or backend error (one message, no traceback);
1 a runtime or I/O failure (training diverged, a gradient check failed, a file could not be
written or read: a full disk, a permission); 130 interrupted (Ctrl-C; the run directory keeps
the last finished epoch and the message says how to resume); 141 the output's reader went away
(``backprop backends | head -1``: a closed pipe ends the command quietly, as SIGPIPE ends other
Unix tools).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import backends

from ..data.checks import DataError
from ..data.convert import DTYPES, csv_to_npy
from ..training.checkpoint import CheckpointError
from ..training.fit import TrainingDiverged
from . import experiment, export, predict
from ._plugins import import_plugins
from ._toml import dump_toml
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


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values, then the ``--backend``/``--device`` shorthands as overrides."""
    shorthands = [f"backend.name={args.backend}"] if args.backend else []
    shorthands += [f"backend.device={args.device}"] if args.device else []
    return [*args.set, *shorthands]


def _load(args: argparse.Namespace):
    """The config with ``--set`` and the ``--backend``/``--device`` shorthands, validated."""
    return load_config(args.config, _overrides(args), imports=args.imports)


def _train(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return _resume(args)
    cfg = _load(args)
    experiment.train_config(
        cfg,
        run_dir=args.run_dir,
        save=not args.no_save,
        verbose=0 if args.quiet else 1,
        command=["backprop", *args.argv],
    )
    return 0


def _resume(args: argparse.Namespace) -> int:
    """``backprop train --resume RUN_DIR`` / ``backprop resume RUN_DIR``."""
    clash = [
        flag
        for flag, given in (
            ("CONFIG", getattr(args, "config", None)),
            ("--run-dir", getattr(args, "run_dir", None)),
            ("--no-save", getattr(args, "no_save", False)),
        )
        if given
    ]
    if clash:
        raise ValueError(
            f"{', '.join(clash)} cannot be combined with --resume: the run directory holds the "
            "config and receives the results; pass only --resume RUN_DIR (and --set "
            "training.epochs=N to train longer)"
        )
    experiment.resume_run(
        args.resume,
        _overrides(args),
        args.imports,
        verbose=0 if args.quiet else 1,
        command=["backprop", *args.argv],
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import_plugins(args.imports, "--import")  # the run's own plugins: its saved config's imports
    run, values, what = experiment.evaluate_run(
        args.path, data=args.data, target=args.target, backend=args.backend, device=args.device
    )
    if args.members and run.members is None:
        raise ValueError(
            f"--members: {run.path} holds one model, not an ensemble; leave out --members"
        )
    kind = "" if run.members is None else f"ensemble of {run.members} members of "
    print(f"model {kind}{run.model} from {run.path}")
    print(f"evaluated on {what} ({args.backend}):" if run.members is None else
          f"evaluated on {what} ({args.backend}), the members' mean prediction:")  # fmt: skip
    for key, value in values.items():
        print(f"  {key:10s} {experiment.format_metric(key, value)}")
    for k, member in enumerate(values.members if args.members else []):
        text = ", ".join(f"{c} {experiment.format_metric(c, v)}" for c, v in member.items())
        print(f"  member {k}: {text}")
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
        f"({be.device_name}), {result.rows} rows of {cfg.data.name}, biases offset by seeded "
        "N(0, 0.1^2) noise, "
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
    if result.kinks:  # central differences across a ReLU-like corner: compared one-sided
        print(result.kink_note())
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


def _predict(args: argparse.Namespace) -> int:
    import_plugins(args.imports, "--import")
    run, rows = predict.predict_file(
        args.path, args.data, target=args.target, out=args.out, backend=args.backend,
        device=args.device,
    )  # fmt: skip
    if args.out is not None:
        print(f"wrote {rows} prediction(s) of {run.path} to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import_plugins(args.imports, "--import")
    print(f"wrote {export.export_run(args.path, args.format, args.out)}")
    return 0


def _convert_csv(args: argparse.Namespace) -> int:
    """``backprop convert-csv``: the files written, and the config table that trains on them."""
    done = csv_to_npy(
        args.csv, args.out_dir, target=args.target, chunk_rows=args.chunk_rows,
        dtype=args.dtype, overwrite=args.overwrite,
        delimiter="\t" if args.delimiter in ("\\t", "tab") else args.delimiter,
    )  # fmt: skip
    print(
        f"wrote {done['rows']} rows x {done['columns']} features ({done['dtype']}) to "
        f"{done['features']} and targets {done['target']!r} ({done['target_kind']}, "
        f"{done['targets_dtype']}) to {done['targets']} in {done['seconds']:.2f} s"
    )
    paths = {k: os.path.abspath(done[k]) for k in ("features", "targets")}
    print("to train on them, put this table in a config:\n")
    print(dump_toml({"data": {"name": "npy", **paths}}).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Train and check hand-derived backprop MLPs on NumPy, JAX, PyTorch or CuPy.",
    )
    parser.add_argument(
        "--version", action="version", version=f"backprop {export.package_version()}"
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

    train = sub.add_parser("train", help="train a model from a TOML config, or continue a run")
    train.add_argument("config", nargs="?", help="a TOML config, e.g. configs/digits.toml")
    backend_options(train, None)
    set_option(train)
    import_option(train)
    train.add_argument("--run-dir", default=None, help="exact run directory (must be new or empty)")
    train.add_argument("--no-save", action="store_true", help="do not write a run directory")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue an interrupted or finished run from its last.npz, in that directory, up "
        "to its training.epochs (or a larger --set training.epochs=N); no CONFIG",
    )
    train.set_defaults(run=_train)

    res = sub.add_parser("resume", help="continue a run directory (same as train --resume)")
    res.add_argument("resume", metavar="RUN_DIR", help="a run directory written by train")
    backend_options(res, None)
    set_option(res)
    import_option(res)
    res.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    res.set_defaults(run=_resume)

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
    ev.add_argument(
        "--members", action="store_true", help="an ensemble run: also each member's scores"
    )
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

    pr = sub.add_parser("predict", help="a trained run's predictions for new rows, as CSV")
    pr.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or checkpoint")
    pr.add_argument("--data", required=True, help="a .csv (header row) or .npz file of inputs")
    pr.add_argument("--target", default=None, help="a CSV column to drop (default: the run's)")
    pr.add_argument("--out", default=None, help="write the CSV here (default: standard output)")
    backend_options(pr, "numpy")
    import_option(pr)
    pr.set_defaults(run=_predict)

    ex = sub.add_parser("export", help="a trained run's weights for other frameworks")
    ex.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or checkpoint")
    ex.add_argument("--format", default="safetensors", help="safetensors (the only one so far)")
    ex.add_argument("--out", default=None, help="the file (default: RUN_DIR/model.safetensors)")
    import_option(ex)
    ex.set_defaults(run=_export)

    cv = sub.add_parser(
        "convert-csv", help="a CSV file -> x.npy, y.npy, in chunks (for data.name = 'npy')"
    )
    cv.add_argument("csv", metavar="CSV", help="a CSV file, with or without a header row")
    cv.add_argument("out_dir", metavar="OUT_DIR", help="where x.npy and y.npy go (created)")
    cv.add_argument(
        "--target", default=None, help="the target column: a name or number (default: the last)"
    )
    cv.add_argument(
        "--chunk-rows", type=int, default=65536, help="rows read at a time (default 65536)"
    )
    cv.add_argument("--dtype", choices=DTYPES, default="float32", help="features' type")
    cv.add_argument("--delimiter", default=",", help="the cell separator: ',' (default), ';', "
                    "'\\t' (a tab) ...")  # fmt: skip
    cv.add_argument("--overwrite", action="store_true", help="replace existing x.npy, y.npy")
    cv.set_defaults(run=_convert_csv)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is _train and args.config is None and args.resume is None:
        parser.error("train needs a CONFIG, or --resume RUN_DIR to continue a run")
    args.argv = argv
    try:
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe fails here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:  # `backprop backends | head -1`: the reader went away
        return _reader_gone()
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, exit 130 like the shell's own
        message = str(exc) or "nothing was saved"
        print(message if message.startswith("interrupted") else f"interrupted: {message}",
              file=sys.stderr)  # fmt: skip
        return 130
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        text = str(exc) if code == 2 else f"{type(exc).__name__}: {exc}"
        print(f"error: {text}", file=sys.stderr)
        return code


def _reader_gone() -> int:
    """Standard output's reader closed the pipe: point stdout at the null device (so the
    interpreter's final flush cannot fail again) and exit 141, 128 + SIGPIPE, with no message."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured in a test)
        pass
    return 141


def exit_code(exc: BaseException) -> int | None:
    """2 for usage, config, data and backend errors; 1 for runtime and I/O failures (a full
    disk, a permission, a checkpoint that could not be written); None: a bug, let it raise."""
    if isinstance(exc, CheckpointError) and isinstance(exc.__cause__, OSError):
        return 1  # the write failed, not the user's input
    if isinstance(exc, USAGE_ERRORS):
        return 2
    if isinstance(exc, RUNTIME_ERRORS):
        return 1
    return None
