"""Command line: ``python -m backprop`` (or ``backprop``).

Host-only module. Subcommands so far: ``digits`` (train the bundled handwritten digits and report
held-out accuracy) and ``backends`` (what is usable here, and why not).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import backends

from . import datasets
from .data import DataError
from .model import MLP
from .optimizers import SGD
from .training import train

__all__ = ["main"]


def _digits(args: argparse.Namespace) -> int:
    X, Y = datasets.load_digits()
    x_train, y_train, x_test, y_test = datasets.train_test_split(X, Y, 0.25, seed=args.seed)
    be = backends.get_backend(args.backend, device=args.device)
    model = MLP([64, 64, 10], hidden="relu", output="softmax", loss="cross_entropy")
    print(f"digits: {len(x_train)} train / {len(x_test)} held-out images, {model}")
    print(
        f"backend {be.name} on {be.device_name}, {args.dtype}, SGD lr 0.1 momentum 0.9, "
        f"batch {args.batch_size}, {args.epochs} epochs"
    )
    start = time.perf_counter()
    result = train(
        model,
        SGD(lr=0.1, momentum=0.9),
        x_train,
        y_train,
        backend=be,
        dtype=args.dtype,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    steps = len(result.losses) // args.epochs
    for epoch in range(0, args.epochs, max(1, args.epochs // 5)):
        epoch_loss = np.mean(result.losses[epoch * steps : (epoch + 1) * steps])
        print(f"  epoch {epoch + 1:3d}  train loss {epoch_loss:.4f}")
    predicted = be.to_numpy(model.predict(result.params, be.asarray(x_test, args.dtype)))
    accuracy = float((predicted.argmax(axis=1) == y_test.argmax(axis=1)).mean())
    print(
        f"final train loss {np.mean(result.losses[-steps:]):.4f}; held-out accuracy "
        f"{accuracy:.2%}; {seconds:.2f} s ({len(x_train) * args.epochs / seconds:,.0f} samples/s)"
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
