"""Fixtures: every known backend as a parameter (unusable ones skip with their reason), dtypes
with tolerances derived from machine epsilon, and an `assert_close` that checks namespace, dtype,
shape and device before values."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

import numpy as np
import pytest

import backends
from backends import _registry

BACKENDS = backends.known_backends()
DTYPES = ["float32", "float64"]
# The backends CI installs (pyproject.toml's "test" extra, .ci/run): there each must be usable.
# A probe failure is a test failure, so a backend that silently broke cannot turn ~300 tests
# into skips and CI green (see `unusable_action`).
CI_BACKENDS = ("numpy", "jax", "torch", "array_api_strict")


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """The ``CI`` environment variable is true ("true" or "1", as CI services set it)."""
    return environ.get("CI", "").strip().lower() in ("true", "1")


def is_installed(name: str) -> bool:
    """The backend's library is on the path (whether or not it imports or computes)."""
    library = _registry._LIBRARIES[name]
    return importlib.util.find_spec(library.import_name or library.name) is not None


def unusable_action(
    name: str, availability: backends.Availability, *, ci: bool, installed: bool
) -> tuple[str, str]:
    """What a test needing the unusable backend ``name`` does: ``("skip", why)`` or
    ``("fail", why)``. Outside CI it skips. In CI a backend of `CI_BACKENDS` that is installed
    must work, so its probe failure fails with the probe's reason; an absent library, or one
    CI does not install (cupy: no GPU there), skips."""
    message = f"backend {name} unusable here: {availability.reason}"
    if ci and installed and name in CI_BACKENDS:
        return ("fail", f"{message} (CI=true: {name} must be usable in CI)")
    return ("skip", message)


def backend_or_skip(name: str) -> backends.Backend:
    """The backend ``name``; unusable: skip, or fail where `unusable_action` says CI needs it."""
    availability = backends.available_backends()[name]
    if not availability.ok:
        action, message = unusable_action(
            name, availability, ci=in_ci(), installed=is_installed(name)
        )
        if action == "fail":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return backends.get_backend(name)


@pytest.fixture(params=BACKENDS)
def backend(request) -> backends.Backend:
    """Every known backend; an unusable one skips with the reason it gave."""
    return backend_or_skip(request.param)


@pytest.fixture(params=DTYPES)
def dtype(request, backend) -> str:
    if not backend.supports_dtype(request.param):
        pytest.skip(f"{backend.name} on {backend.device_name} has no {request.param}")
    return request.param


def eps(dtype: str) -> float:
    return float(np.finfo(dtype).eps)


def to_host(backend: backends.Backend, x) -> np.ndarray:
    return np.asarray(backend.to_numpy(x))


def assert_close(backend, actual, expected, *, rtol: float, atol: float = 0.0) -> None:
    """``actual`` is an array of ``backend`` (namespace, device checked), close to ``expected``."""
    from array_api_compat import array_namespace, device

    assert array_namespace(actual) is array_namespace(backend.asarray([0.0]))
    assert str(device(actual)) == str(device(backend.asarray([0.0])))
    host = to_host(backend, actual)
    expected = np.asarray(expected)
    assert host.shape == expected.shape, (host.shape, expected.shape)
    np.testing.assert_allclose(host, expected, rtol=rtol, atol=atol)
