"""A description of the machine for the results file: CPU, cores, memory, library versions."""

from __future__ import annotations

import os
import platform
from typing import Any

from backends._base import cpu_description

from .contenders._common import distribution_versions

__all__ = ["machine_info"]

LIBRARIES = (
    "numpy",
    "scipy",
    "jax",
    "jaxlib",
    "torch",
    "cupy-cuda12x",
    "scikit-learn",
    "array-api-strict",
    "array-api-compat",
    "matplotlib",
)


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, memory, OS, Python and the versions of the libraries involved."""
    return {
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": distribution_versions(*LIBRARIES),
        "load_average": os.getloadavg(),
    }
