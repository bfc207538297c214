"""Fixtures: every known backend as a parameter (unusable ones skip with their reason), dtypes
with tolerances derived from machine epsilon, and an `assert_close` that checks namespace, dtype,
shape and device before values."""

from __future__ import annotations

import numpy as np
import pytest

import backends

BACKENDS = backends.known_backends()
DTYPES = ["float32", "float64"]


def backend_or_skip(name: str) -> backends.Backend:
    availability = backends.available_backends()[name]
    if not availability.ok:
        pytest.skip(f"backend {name} unusable here: {availability.reason}")
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
