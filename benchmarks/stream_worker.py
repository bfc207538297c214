"""Run one case of the streaming benchmark in this process and print its result as one line.

``python -m benchmarks.stream_worker CASE --data DIR [--workload W1] [--epochs 2]``

CASE is one of `CASES` (W1 from ``DIR/x.npy``, ``DIR/y.npy``: "memory", "memmap",
"generator") or "big" (``DIR/big_x.npy``, ``DIR/big_y.npy``: one epoch of `BigFile`'s MLP,
memory-mapped, with the peak resident memory measured). The line starts with
`worker.MARKER`, as the contenders' workers print it, so `_subprocess.run_module` reads it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .contenders._common import MIB, CpuMeter, peak_rss_mib
from .stream_data import BigFile
from .worker import MARKER, _jsonable
from .workloads import Workload, batch_slices, epoch_orders, get_workload

__all__ = [
    "BIG",
    "CASES",
    "fit_numpy",
    "main",
    "own_peak_rss_mib",
    "proc_status_mib",
    "run_big",
    "run_w1",
]

BIG = "big"
SAMPLE_EVERY_S = 0.02  # how often `RssSampler` reads /proc/self/status


def _in_memory(w: Workload, folder: pathlib.Path, epochs: int) -> tuple[Any, Any]:
    """(a) the arrays read whole into memory: today's path."""
    return np.load(folder / "x.npy"), np.load(folder / "y.npy")


def _memmap(w: Workload, folder: pathlib.Path, epochs: int) -> tuple[Any, Any]:
    """(b) the ``.npy`` files opened memory-mapped: `fit` reads the rows it needs."""
    return np.load(folder / "x.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")


def _generator(w: Workload, folder: pathlib.Path, epochs: int) -> tuple[Any, None]:
    """(c) a function ``epoch -> generator of (xb, yb)`` reading the memory-mapped files in the
    batch order `fit` draws with ``shuffle=True`` (`epoch_orders`, `batch_slices`), so the
    steps see the same rows in the same order as (a)."""
    X, y = _memmap(w, folder, epochs)
    orders, slices = epoch_orders(w, epochs), batch_slices(w)

    def batches(epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = orders[epoch]
        for sl in slices:
            idx = order[sl]
            yield X[idx], y[idx]

    return batches, None


CASES: dict[str, Callable[[Workload, pathlib.Path, int], tuple[Any, Any]]] = {
    "memory": _in_memory,
    "memmap": _memmap,
    "generator": _generator,
}


def fit_numpy(sizes, batch_size, lr, seed, X, Y, epochs, params=None) -> tuple[Any, CpuMeter]:
    """`backprop.fit` of an MLP ``sizes`` (ReLU, softmax + cross-entropy) with plain SGD on
    NumPy in float32, shuffled, no metric, silent; the result and the `CpuMeter` that watched
    other processes during each epoch."""
    import backprop as bp

    model = bp.MLP(list(sizes), hidden="relu", output="softmax", loss="cross_entropy")
    meter = CpuMeter()
    watch = bp.LambdaCallback(
        on_train_begin=lambda run: meter.restart(), on_epoch_end=lambda run: meter.mark()
    )
    result = bp.fit(
        model,
        X,
        Y,
        optimizer=bp.SGD(lr=lr),
        backend="numpy",
        dtype="float32",
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        shuffle=True,
        metric=None,
        train_metrics=False,
        verbose=0,
        callbacks=[watch],
        params=params,
    )
    return result, meter


def run_w1(case: str, w: Workload, folder: pathlib.Path, epochs: int) -> dict[str, Any]:
    """One W1 case: ``epochs`` epochs (the first a warm-up); the timed epochs' median
    ``epoch_s`` and every step's loss (``step_losses``, to compare bit for bit)."""
    X, Y = CASES[case](w, folder, epochs)
    t0 = time.perf_counter()
    result, meter = fit_numpy(w.sizes, w.batch_size, w.lr, w.seed, X, Y, epochs)
    fit_s = time.perf_counter() - t0
    times = [float(t) for t in result.history["time"]]
    timed = times[1:] or times
    foreign = meter.foreign[1:] or meter.foreign
    steps = [float(v) for v in result.history.step_losses]
    return {
        "name": case,
        "epoch_s": float(np.median(timed)),
        "warmup_s": times[0],
        "epoch_times": times,
        "fit_s": fit_s,
        "step_losses": steps,
        "first_loss": steps[0],
        "last_loss": steps[-1],
        "peak_rss_mib": own_peak_rss_mib(),
        "foreign_cpu_s": None if None in foreign else sum(foreign),
        "foreign_window_s": sum(timed),
    }


def proc_status_mib(*keys: str) -> dict[str, float]:
    """``/proc/self/status`` fields (VmRSS, VmHWM, RssAnon, RssFile, ...) in MiB; {} off Linux."""
    out = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0]) / 1024  # kB
    except OSError:
        return {}
    return out


def own_peak_rss_mib() -> float:
    """This process's peak RSS since it started: VmHWM. Not ``getrusage``'s maxrss, which on
    Linux also holds the RSS of the parent at the fork before this process's exec (the parent
    here holds W1's data: 280 MiB), so a small child reports its parent's size."""
    return proc_status_mib("VmHWM").get("VmHWM") or peak_rss_mib()


def _reset_peak_rss() -> bool:
    """Set the peak RSS (VmHWM, and so getrusage's maxrss) to the current RSS (Linux >= 4.0:
    ``echo 5 > /proc/self/clear_refs``); False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


class RssSampler(threading.Thread):
    """Reads ``RssAnon`` (memory of the process's own) and ``RssFile`` (file pages mapped in,
    the memory map's pages among them) every `SAMPLE_EVERY_S`, keeping their peaks. A sampler
    can miss a spike shorter than its period; VmHWM cannot."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks = {"RssAnon": 0.0, "RssFile": 0.0}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY_S):
            self._sample()

    def _sample(self) -> None:
        for key, value in proc_status_mib(*self.peaks).items():
            self.peaks[key] = max(self.peaks[key], value)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.join()
        self._sample()
        return self.peaks


def run_big(folder: pathlib.Path) -> dict[str, Any]:
    """One epoch of `BigFile`'s MLP on the memory-mapped ``big_x.npy``/``big_y.npy``.

    ``footprint_mib`` is the RSS right before `fit` (imports done, weights made, files mapped);
    the peak RSS is measured from there (``/proc/self/status`` VmHWM and ``getrusage`` maxrss,
    both reset to the footprint first where the kernel allows).
    """
    import backprop as bp

    big = BigFile  # its sizes, batch and seed: class constants
    X = np.load(folder / "big_x.npy", mmap_mode="r")
    Y = np.load(folder / "big_y.npy", mmap_mode="r")
    model = bp.MLP(list(big.sizes), hidden="relu", output="softmax", loss="cross_entropy")
    params = model.init(seed=big.seed, backend="numpy", dtype="float32")
    reset = _reset_peak_rss()
    footprint = proc_status_mib("VmRSS")["VmRSS"]
    sampler = RssSampler()
    sampler.start()
    t0 = time.perf_counter()
    try:
        result, meter = fit_numpy(
            big.sizes, big.batch_size, big.lr, big.seed, X, Y, epochs=1, params=params
        )
    finally:
        peaks = sampler.stop()
    fit_s = time.perf_counter() - t0
    hwm = proc_status_mib("VmHWM")["VmHWM"]
    epoch_s = float(result.history["time"][0])
    return {
        "name": BIG,
        "rows": len(X),
        "features": X.shape[1],
        "file_mib": (X.nbytes + Y.nbytes) / MIB,
        "epoch_s": epoch_s,
        "fit_s": fit_s,
        "rows_per_s": len(X) / epoch_s,
        "footprint_mib": footprint,
        "peak_vmhwm_mib": hwm,
        "peak_maxrss_mib": peak_rss_mib(),
        "above_footprint_mib": hwm - footprint,
        "peak_rss_anon_mib": peaks["RssAnon"],
        "peak_rss_file_mib": peaks["RssFile"],
        "peak_reset": reset,
        "last_loss": float(result.history.step_losses[-1]),
        "foreign_cpu_s": meter.foreign[0],
        "foreign_window_s": epoch_s,
    }


def run(case: str, workload: str, folder: pathlib.Path, epochs: int) -> dict[str, Any]:
    """The case's record, or ``{"name", "error", "traceback"}`` when it raised."""
    t0 = time.perf_counter()
    try:
        if case == BIG:
            record = run_big(folder)
        else:
            record = run_w1(case, get_workload(workload), folder, epochs)
    except Exception as exc:  # reported, not raised: the other cases still run
        last = traceback.format_exc(limit=-3)
        return {"name": case, "error": f"{type(exc).__name__}: {exc}", "traceback": last}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record.update(wall_s=time.perf_counter() - t0, cpu_s=usage.ru_utime + usage.ru_stime)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_worker", description=__doc__)
    parser.add_argument("case", choices=[*CASES, BIG])
    parser.add_argument("--data", required=True, help="folder with the .npy files")
    parser.add_argument("--workload", default="W1")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    record = run(args.case, args.workload, pathlib.Path(args.data), args.epochs)
    sys.stdout.flush()
    print(MARKER + json.dumps(record, default=_jsonable, allow_nan=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
