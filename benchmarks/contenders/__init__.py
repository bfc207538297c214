"""The contenders, by name. Each is a function ``(Workload, ReferenceSettings) -> Trained``
(the floor returns its own record) living in a small module that is imported only by the worker
that runs it, so one contender's libraries never load into another's process."""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["CONTENDERS", "PROJECT", "default_contenders", "get_contender"]

PROJECT = [
    "backprop-numpy",
    "backprop-jax",
    "backprop-torch",
    "backprop-cupy",
    "backprop-array_api_strict",
]
REFERENCES = ["numpy-hand", "jax-jit", "jax-scan", "torch-eager", "sklearn"]
# name -> module defining it (in that module's CONTENDERS dict)
CONTENDERS: dict[str, str] = {
    **{name: "benchmarks.contenders.project" for name in PROJECT},
    "numpy-hand": "benchmarks.contenders.numpy_hand",
    "jax-jit": "benchmarks.contenders.jax_ref",
    "jax-scan": "benchmarks.contenders.jax_ref",
    "torch-eager": "benchmarks.contenders.torch_ref",
    "sklearn": "benchmarks.contenders.sklearn_ref",
    "floor": "benchmarks.floor",
}
_CPU_ONLY = {"backprop-numpy", "backprop-array_api_strict", "numpy-hand", "sklearn"}


def get_contender(name: str) -> Callable:
    """The function that runs contender ``name`` (imports its module)."""
    if name not in CONTENDERS:
        raise ValueError(f"unknown contender {name!r}: expected one of {list(CONTENDERS)}")
    return importlib.import_module(CONTENDERS[name]).CONTENDERS[name]


def default_contenders(device: str, gpu_only_workload: bool) -> list[str]:
    """Every contender that makes sense for the device kind (the floor is always run).

    On a GPU the CPU-only ones stay out, except numpy-hand on workloads a CPU can train in
    reasonable time (it anchors the "x numpy-hand" column).
    """
    names = PROJECT + REFERENCES
    if device == "gpu":
        keep = set() if gpu_only_workload else {"numpy-hand"}
        names = [n for n in names if n not in _CPU_ONLY or n in keep]
    return names
