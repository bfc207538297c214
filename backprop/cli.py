"""Command line: ``python -m backprop`` (or ``backprop``).

Host-only module. Subcommands so far: ``digits`` (train the bundled handwritten digits and report
held-out accuracy) and ``backends`` (what is usable here, and why not).
"""

from __future__ import annotations

import argparse
import sys
import time

import backends

from . import datasets
from .data import DataError
from .evaluation import evaluate
from .fit import TrainingDiverged, fit
from .model import MLP
from .optimizers import SGD, Adam

__all__ = ["main"]


OPTIMIZERS = {  # the main command's two recipes: name -> (optimizer, what the help says)
    "sgd": (SGD(lr=0.1, momentum=0.9), "SGD lr 0.1 momentum 0.9"),
    "adam": (Adam(lr=0.003), "Adam lr 0.003"),
}


def _digits(args: argparse.Namespace) -> int:
    X, Y = datasets.load_digits()
    x_train, y_train, x_test, y_test = datasets.train_test_split(X, Y, 0.25, seed=args.seed)
    be = backends.get_backend(args.backend, device=args.device)
    model = MLP([64, 64, 10], hidden="relu", output="softmax", loss="cross_entropy")
    optimizer, described = OPTIMIZERS[args.optimizer]
    print(f"digits: {len(x_train)} train / {len(x_test)} held-out images, {model}")
    print(
        f"backend {be.name} on {be.device_name}, {args.dtype}, {described}, "
        f"batch {args.batch_size}, {args.epochs} epochs, 10% of the training rows for validation"
    )
    start = time.perf_counter()
    result = fit(
        model,
        x_train,
        y_train,
        optimizer=optimizer,
        backend=be,
        dtype=args.dtype,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_split=0.1,
        verbose=1,
    )
    seconds = time.perf_counter() - start
    held_out = evaluate(model, result.params, x_test, y_test)
    print(
        f"held-out accuracy {held_out['accuracy']:.2%} (loss {held_out['loss']:.4f}); "
        f"{seconds:.2f} s in fit"
    )
    return 0


def _backends(args: argparse.Namespace) -> int:
    for name, availability in backends.available_backends().items():
        print(f"{name:18s} {availability}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backprop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    digits = sub.add_parser("digits", help="train the 8x8 handwritten digits (scikit-learn's)")
    digits.add_argument("--backend", default="numpy", help="numpy, jax, torch, cupy, ... or auto")
    digits.add_argument("--device", default=None, help="cpu, gpu or gpu:N")
    digits.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    digits.add_argument("--epochs", type=int, default=30)
    digits.add_argument("--batch-size", type=int, default=32)
    digits.add_argument("--seed", type=int, default=0)
    digits.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS))
    digits.set_defaults(run=_digits)
    sub.add_parser("backends", help="list every backend: usable or not, and why").set_defaults(
        run=_backends
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (backends.BackendError, DataError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
