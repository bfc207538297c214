"""Watching one history value for improvement: shared by early stopping, reduce-on-plateau and
"keep best" checkpoints, so all three agree on what "better" means.

Plain Python floats only (values already read back to the host at the end of an epoch).
"""

from __future__ import annotations

import math

__all__ = ["check_monitor_mode", "initial_best", "is_improvement", "mode_for"]

_MAXIMIZED = ("accuracy", "r2")
MODES = ("auto", "min", "max")


def check_monitor_mode(owner: str, monitor: str, mode: str) -> None:
    """Raise a clear error for a monitor that is not a string or an unknown mode."""
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(
            f"{owner}: monitor must name a history column such as 'val_loss', received {monitor!r}"
        )
    if mode not in MODES:
        raise ValueError(f"{owner}: mode must be one of {list(MODES)}, received {mode!r}")


def mode_for(monitor: str, mode: str = "auto") -> str:
    """Return "min" or "max". With "auto", metrics named like accuracy or r2 are maximized, the rest
    (losses) minimized."""
    if mode != "auto":
        return mode
    return "max" if monitor.endswith(_MAXIMIZED) else "min"


def initial_best(mode: str) -> float:
    """The starting "best" value: anything finite improves on it."""
    return math.inf if mode == "min" else -math.inf


def is_improvement(value: float, best: float, min_delta: float, mode: str) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never improves)."""
    if math.isnan(value):
        return False
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta
