"""Checks of dataset options (``[data]`` keys of a config, or a loader's keyword arguments).

Host-only module (plain Python and NumPy scalars): each check returns the value as the loader
needs it or raises `DataError` naming the dataset, the option, the value received, the range
expected and the fix, so that no bad option reaches NumPy (whose errors name neither).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .checks import DataError

SEED_MAX = 2**63 - 1  # numpy.random.default_rng takes any non-negative int; TOML ints are int64
NOISE_MAX = 100.0  # the generated datasets have features of scale ~1


def _fail(dataset: str, name: str, value: Any, expected: str, allowed: str = "") -> DataError:
    return DataError(
        f"dataset {dataset!r}: {name} must be {expected}, received {value!r}"
        + (f" (allowed: {allowed})" if allowed else "")
        + f"; set data.{name} (or the {name}= argument) to such a value"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_int(dataset: str, name: str, value: Any, low: int, high: int) -> int:
    """An integer in [low, high]."""
    if not _is_int(value) or not low <= int(value) <= high:
        raise _fail(dataset, name, value, f"an integer >= {low}", f"[{low}, {high:,}]")
    return int(value)


def check_number(
    dataset: str, name: str, value: Any, low: float, high: float, *, low_open: bool = False
) -> float:
    """A finite real number in [low, high] (``(low, high]`` with ``low_open``)."""
    ok = _is_int(value) or (isinstance(value, float | np.floating) and math.isfinite(value))
    above = ok and (float(value) > low if low_open else float(value) >= low)
    if not (above and float(value) <= high):
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
        allowed = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise _fail(dataset, name, value, expected, allowed)
    return float(value)


def check_seed(dataset: str, value: Any) -> int:
    """A random seed: an integer in [0, 2**63 - 1]."""
    return check_int(dataset, "seed", value, 0, SEED_MAX)


def check_name(dataset: str, name: str, value: Any) -> str:
    """A non-empty string (a column or array name)."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(dataset, name, value, 'a non-empty string such as "y"')
    return value


def check_path(dataset: str, value: Any) -> str | os.PathLike:
    """A file path: a non-empty string (or path object) without NUL characters."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip() or "\0" in text:
        raise _fail(dataset, "path", value, 'a path to a file such as "data/train.csv"')
    return value
