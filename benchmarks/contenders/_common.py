"""What every contender shares: the `Trained` result, `Skip`, timing and memory helpers."""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
from typing import Any

import numpy as np

from backends._settings import distribution_version

__all__ = [
    "CpuMeter",
    "ReferenceSettings",
    "Skip",
    "Trained",
    "cpu_busy_seconds",
    "device_peak_mib",
    "distribution_versions",
    "epoch_loss",
    "peak_rss_mib",
]

MIB = 2**20


class Skip(Exception):
    """The contender cannot run here (library missing, no GPU, dtype unsupported); says why."""


@dataclasses.dataclass
class Trained:
    """What a contender's training run hands back to the worker.

    ``epoch_times``: wall seconds of each epoch, each ending with a device sync (the first one
    is the warm-up, compilation included); ``step_losses``: every step's loss, all epochs, or
    None when the library does not expose them; ``epoch_loss``: the last epoch's row-weighted
    mean step loss; ``params``: the final weights as host float arrays; ``peak_device_mib``: the
    accelerator's peak memory (None on the CPU); ``foreign_cpu_s``: per epoch, the CPU seconds
    other processes used meanwhile (`CpuMeter`).
    """

    epoch_times: list[float]
    step_losses: list[float] | None
    epoch_loss: float | None
    params: list[dict[str, np.ndarray]]
    device: str
    versions: dict[str, str]
    peak_device_mib: float | None = None
    foreign_cpu_s: list[float | None] | None = None  # per epoch, from `CpuMeter`


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
    """How the worker asks a contender to run: epochs, device kind ("cpu"/"gpu") and dtype."""

    epochs: int
    device: str
    dtype: str


def epoch_loss(step_losses: list[float], batch_rows: list[int]) -> float:
    """Row-weighted mean of one epoch's step losses (what `History` and sklearn report)."""
    rows = np.asarray(batch_rows, dtype=np.float64)
    return float(np.dot(np.asarray(step_losses, dtype=np.float64), rows) / rows.sum())


def peak_rss_mib() -> float:
    """This process's peak resident memory (``getrusage`` maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def distribution_versions(*names: str) -> dict[str, str]:
    """``{distribution: version}`` read from the installed metadata, without importing."""
    return {name: distribution_version(name) for name in names}


def device_peak_mib(library: str, device: Any) -> float | None:
    """Peak accelerator memory of this process on ``device`` in MiB; None on a CPU.

    torch: ``max_memory_allocated``; JAX: the device's ``peak_bytes_in_use``; CuPy: the bytes its
    default memory pool holds (the pool keeps freed blocks, so this is its high-water mark).
    """
    if library == "torch" and getattr(device, "type", "cpu") == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / MIB
    if library == "jax" and getattr(device, "platform", "cpu") != "cpu":
        stats = device.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / MIB
    if library == "cupy":
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / MIB
    return None


def cpu_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (all cores), or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds *other* processes use between marks: the machine's busy time minus this
    process's own. Multi-threaded BLAS slows down many times over when a neighbour takes a core,
    so an epoch during which others ran is a suspect timing."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self._last = (cpu_busy_seconds(), _own_cpu_seconds())
        self.foreign: list[float | None] = []

    def mark(self) -> None:
        """Close the current window (e.g. an epoch) and open the next."""
        now = (cpu_busy_seconds(), _own_cpu_seconds())
        (busy0, own0), (busy1, own1) = self._last, now
        if busy0 is None or busy1 is None:
            self.foreign.append(None)
        else:
            self.foreign.append(max(0.0, (busy1 - busy0) - (own1 - own0)))
        self._last = now
