"""Run one case of the W3 ensemble benchmark in this process and print its result as one line.

``python -m benchmarks.ensemble_worker CASE --backend NAME [--device cpu] [--members 64]
[--epochs 30] [--rows N]``

CASE is "ensemble" (one ``backprop.fit(..., ensemble=K)``) or "sequential" (K ``backprop.fit``
calls, member k from ``model.init(seed + k)``, all in the batch order of ``seed``: the same
members). The line starts with `worker.MARKER`, as the contenders' workers print it, so
`_subprocess.run_module` reads it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from .contenders._common import CpuMeter, device_peak_mib
from .stream_worker import own_peak_rss_mib
from .worker import MARKER, _jsonable
from .workloads import reference_loss

__all__ = ["CASES", "SIZES", "W3", "fits_ensembles", "load_w3", "main", "run"]

SIZES = (64, 64, 10)  # 64-64-10: ReLU hidden, softmax + cross-entropy
W3 = {"batch_size": 32, "lr": 0.1, "seed": 0, "dtype": "float32"}


class Skipped(Exception):
    """The case cannot run here (backend missing, no GPU, fit without ``ensemble=``)."""


def fits_ensembles() -> bool:
    """Whether this `backprop.fit` takes ``ensemble=K`` (issue 18)."""
    import backprop as bp

    return "ensemble" in inspect.signature(bp.fit).parameters


def load_w3(rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as `backprop.data.datasets.load_digits` gives them: X (1797, 64)
    pixels scaled to [0, 1] (not standardized), Y (1797, 10) one-hot; the first ``rows`` rows
    when given."""
    from backprop.data.datasets import load_digits

    X, Y = load_digits()
    return (X, Y) if rows is None else (X[:rows], Y[:rows])


def _model() -> Any:
    import backprop as bp

    return bp.MLP(list(SIZES), hidden="relu", output="softmax", loss="cross_entropy")


def _fit(be: Any, X: Any, Y: Any, epochs: int, meter: CpuMeter, **extra: Any) -> Any:
    """One `backprop.fit` with W3's settings: plain SGD, shuffled, no metric, silent."""
    import backprop as bp

    watch = bp.LambdaCallback(on_epoch_end=lambda run: meter.mark())
    return bp.fit(
        _model(),
        X,
        Y,
        optimizer=bp.SGD(lr=W3["lr"]),
        backend=be,
        dtype=W3["dtype"],
        epochs=epochs,
        batch_size=W3["batch_size"],
        seed=W3["seed"],
        shuffle=True,
        metric=None,
        train_metrics=False,
        verbose=0,
        callbacks=[watch],
        **extra,
    )


def _host_params(be: Any, params: Any) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(be.to_numpy(v)) for k, v in layer.items()} for layer in params]


def _times(history: Any) -> list[float]:
    return [float(t) for t in history["time"]]


def run_ensemble(be: Any, X: Any, Y: Any, members: int, epochs: int) -> dict[str, Any]:
    """One fit of ``members`` members: wall time, epoch times, each member's loss curve and
    final params (as host arrays, to score in float64)."""
    if not fits_ensembles():
        raise Skipped("this backprop.fit has no ensemble= argument yet (issue 18)")
    meter = CpuMeter()
    t0 = time.perf_counter()
    result = _fit(be, X, Y, epochs, meter, ensemble=members)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "epoch_times": _times(result.history),
        "curves": [[float(v) for v in result.member_history(k)["loss"]] for k in range(members)],
        "params": [_host_params(be, result.member_params(k)) for k in range(members)],
        "foreign": meter.foreign,
    }


def run_sequential(be: Any, X: Any, Y: Any, members: int, epochs: int) -> dict[str, Any]:
    """``members`` fits one after another, member k from ``model.init(seed + k)`` (its init
    inside the timing, as the ensemble's fit draws it too); the same fields as
    `run_ensemble`, epoch times summed over the fits."""
    meter, model = CpuMeter(), _model()
    wall, epoch_times, curves, params = 0.0, [0.0] * epochs, [], []
    for k in range(members):
        t0 = time.perf_counter()
        start = model.init(seed=W3["seed"] + k, backend=be, dtype=W3["dtype"])
        result = _fit(be, X, Y, epochs, meter, params=start)
        wall += time.perf_counter() - t0
        epoch_times = [a + b for a, b in zip(epoch_times, _times(result.history), strict=True)]
        curves.append([float(v) for v in result.history["loss"]])
        params.append(_host_params(be, result.params))
    return {
        "wall_s": wall,
        "epoch_times": epoch_times,
        "curves": curves,
        "params": params,
        "foreign": meter.foreign,
    }


CASES: dict[str, Callable[..., dict[str, Any]]] = {
    "ensemble": run_ensemble,
    "sequential": run_sequential,
}


def _backend(name: str, device: str) -> Any:
    import backends

    try:
        be = backends.get_backend(name, device)
    except backends.BackendError as exc:
        raise Skipped(str(exc)) from None
    be.set_precision("float32")  # true float32 matmuls (no TF32 on GPUs), as W1 asks too
    return be


def record(case: str, backend: str, out: dict[str, Any], be: Any, X: Any, Y: Any) -> dict:
    """The result line: times (``wall_s`` the fit call(s), ``first_epoch_s``, ``later_s`` the
    epochs 2..), per member the loss curve and ``final_loss`` (float64 NumPy cross-entropy of
    the final weights on all rows), and the CPU other processes used meanwhile."""
    times, labels = out["epoch_times"], np.argmax(Y, axis=1)
    foreign = out["foreign"]
    return {
        "name": f"{backend}/{case}",
        "backend": backend,
        "case": case,
        "wall_s": out["wall_s"],
        "train_s": sum(times),
        "first_epoch_s": times[0],
        "later_s": sum(times[1:]),
        "epoch_times": times,
        "curves": out["curves"],
        "final_loss": [reference_loss(p, X, labels) for p in out["params"]],
        "foreign_cpu_s": None if None in foreign else sum(foreign),
        "foreign_window_s": out["wall_s"],
        "peak_rss_mib": own_peak_rss_mib(),
        "peak_device_mib": device_peak_mib(be.name, be.device),
        "device": f"{be.device_name} ({be.library.describe_device(be.device)})",
        "versions": {be.name: be.library.version()},
    }


def run(case: str, backend: str, device: str, members: int, epochs: int, rows: int | None) -> dict:
    """The case's record, ``{"name", "skipped"}``, or ``{"name", "error", "traceback"}``."""
    name, t0 = f"{backend}/{case}", time.perf_counter()
    try:
        be = _backend(backend, device)
        X, Y = load_w3(rows)
        out = CASES[case](be, X, Y, members, epochs)
        result = record(case, backend, out, be, X, Y)
    except Skipped as exc:
        return {"name": name, "backend": backend, "case": case, "skipped": str(exc)}
    except Exception as exc:  # reported, not raised: the other cases still run
        last = traceback.format_exc(limit=-3)
        error = f"{type(exc).__name__}: {exc}"
        return {"name": name, "backend": backend, "case": case, "error": error, "traceback": last}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(process_s=time.perf_counter() - t0, cpu_s=usage.ru_utime + usage.ru_stime)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ensemble_worker", description=__doc__)
    p.add_argument("case", choices=list(CASES))
    p.add_argument("--backend", required=True)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--members", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--rows", type=int, default=None, help="the first N digits (default all)")
    args = p.parse_args(argv)
    result = run(args.case, args.backend, args.device, args.members, args.epochs, args.rows)
    sys.stdout.flush()
    print(MARKER + json.dumps(result, default=_jsonable, allow_nan=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
