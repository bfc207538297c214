"""The backend selector: availability with reasons, errors, devices, data movement."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CI_BACKENDS, backend_or_skip, in_ci, unusable_action

import backends
from backends import _registry
from backends._strict import StrictLibrary


def test_every_known_backend_is_reported():
    report = backends.available_backends()
    assert list(report) == backends.known_backends()
    assert {"numpy", "cupy", "jax", "torch", "array_api_strict"} <= set(report)
    assert report["numpy"].ok
    for name, availability in report.items():
        assert availability.ok or availability.reason, name
        assert availability.ok == (not availability.reason), name


def test_roundtrip_keeps_values_dtype_and_device(backend, dtype):
    host = np.arange(6.0).reshape(2, 3) / 7.0
    x = backend.asarray(host, dtype)
    assert x.dtype == backend.dtype(dtype)
    back = backend.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host.astype(dtype))
    backend.synchronize(x)
    assert backend.device_name in backends.available_backends()[backend.name].devices


def test_backend_is_a_value():
    a, b = backends.get_backend("numpy"), backends.get_backend("numpy", device="cpu")
    assert a == b and hash(a) == hash(b)
    assert repr(a) == "Backend(name='numpy', device='cpu')"


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(
        backends.UnknownBackendError,
        match=r"unknown backend 'numpi'.*'numpy'.*did you mean 'numpy'",
    ):
        backends.get_backend("numpi")


@pytest.mark.parametrize("device", ["tpu", "gpu:x", "cpu:1", ""])
def test_bad_device_string(device):
    with pytest.raises(backends.UnknownBackendError, match="expected 'cpu', 'gpu' or 'gpu:N'"):
        backends.get_backend("numpy", device=device)


def test_device_the_backend_lacks():
    with pytest.raises(
        backends.UnknownBackendError, match="numpy.*has no device gpu:3.*runs on: cpu"
    ):
        backends.get_backend("numpy", device="gpu:3")


def test_unsupported_dtype_name():
    with pytest.raises(ValueError, match=r"dtype 'float16' is not supported; expected one of"):
        backends.get_backend("numpy").asarray([1.0], "float16")


class _Broken(backends.Library):
    name = "broken_gpu_lib"
    import_name = "math"  # imports fine

    def namespace(self):
        raise AssertionError("never reached")

    def smoke_test(self):
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


class _Missing(backends.Library):
    name = "missing_lib"
    import_name = "surely_not_installed_library_xyz"
    extra = "missing"


@pytest.fixture
def fake_libraries():
    saved = dict(_registry._LIBRARIES)
    backends.register_library(_Broken())
    backends.register_library(_Missing())
    yield
    _registry._LIBRARIES.clear()
    _registry._LIBRARIES.update(saved)
    _registry._probe.cache_clear()


def test_installed_without_device_reports_the_error_text(fake_libraries):
    availability = backends.available_backends()["broken_gpu_lib"]
    assert not availability.ok
    assert "cudaErrorNoDevice" in availability.reason
    with pytest.raises(backends.BackendUnavailableError) as info:
        backends.get_backend("broken_gpu_lib")
    message = str(info.value)
    assert "cudaErrorNoDevice" in message and "usable backends here: [" in message
    assert "'numpy'" in message


def test_not_installed_says_which_extra(fake_libraries):
    availability = backends.available_backends()["missing_lib"]
    assert not availability.ok
    assert "not installed" in availability.reason
    assert "pip install 'backprop-xp[missing]'" in availability.reason


def test_cupy_without_gpu_is_unavailable_not_a_crash():
    availability = backends.available_backends()["cupy"]
    if availability.ok:
        pytest.skip("a usable CUDA GPU is present")
    assert availability.reason
    with pytest.raises(backends.BackendUnavailableError, match="cupy"):
        backends.get_backend("cupy")


def test_auto_prefers_gpu_then_numpy():
    report = backends.available_backends()
    be = backends.get_backend("auto")
    if report["cupy"].ok:
        assert be.name == "cupy"
    elif report["jax"].ok and any(d.startswith("gpu") for d in report["jax"].devices):
        assert be.name == "jax" and be.device_name.startswith("gpu")
    else:
        assert be.name == "numpy"


def test_compile_keeps_the_function_and_says_what_it_does(backend):
    """jax: ``jax.jit`` (compiles, donates); torch: the function under ``torch.no_grad()``
    (same results, no autograd bookkeeping); elsewhere the function itself."""

    def f(x):
        return x * 2.0

    compiled = backend.compile(f)
    x = backend.asarray([1.0, 2.0], "float32")
    np.testing.assert_array_equal(backend.to_numpy(compiled(x)), [2.0, 4.0])
    if backend.name == "jax":
        assert compiled is not f and hasattr(compiled, "lower")
        assert backend.compiles and backend.donates
    elif backend.name == "torch":
        assert compiled is not f and compiled.__wrapped__ is f
        assert not backend.compiles and not backend.donates
    else:
        assert compiled is f
        assert not backend.compiles and not backend.donates


def test_an_import_that_raises_anything_is_a_reason_not_a_crash(monkeypatch):
    """A library whose import raises something other than ImportError (array-api-strict with
    ``ARRAY_API_STRICT_API_VERSION=bogus`` raises ValueError) is unusable with that error as the
    reason; every other backend is still reported."""

    def bad_import(self):
        raise ValueError("Unsupported standard version 'bogus'")

    monkeypatch.setattr(StrictLibrary, "import_module", bad_import)
    _registry._probe.cache_clear()
    try:
        report = backends.available_backends()
    finally:
        monkeypatch.undo()
        _registry._probe.cache_clear()
    assert list(report) == backends.known_backends() and report["numpy"].ok
    strict = report["array_api_strict"]
    assert not strict.ok
    assert strict.reason == (
        "array_api_strict is installed but failed to import: "
        "ValueError: Unsupported standard version 'bogus'"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("TRUE", True), ("", False), ("false", False), ("0", False)],
)
def test_in_ci_reads_the_ci_variable(value, expected):
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_unusable_backends_skip_outside_ci_and_fail_in_ci():
    """The rule `backend_or_skip` applies: in CI, a backend CI installs whose probe failed
    fails with the probe's reason; a library that is absent, or that CI does not install, and
    anything outside CI skip."""
    broken = backends.Availability(False, "jax is installed but cannot compute: RuntimeError: x")
    action, message = unusable_action("jax", broken, ci=True, installed=True)
    assert action == "fail" and "RuntimeError: x" in message
    assert unusable_action("jax", broken, ci=False, installed=True)[0] == "skip"
    assert unusable_action("jax", broken, ci=True, installed=False)[0] == "skip"
    assert unusable_action("cupy", broken, ci=True, installed=True)[0] == "skip"
    assert set(CI_BACKENDS) == {"numpy", "jax", "torch", "array_api_strict"}


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail), ("", pytest.skip)])
def test_backend_fixture_fails_in_ci_when_a_probe_raised(monkeypatch, ci, outcome):
    """The fixture itself: jax installed but its probe raised. CI=true: the test fails with the
    probe's reason (never a silent skip); elsewhere it skips with it."""
    reason = "jax is installed but cannot compute: RuntimeError: probe raised"
    report = dict(backends.available_backends(), jax=backends.Availability(False, reason))
    monkeypatch.setattr(backends, "available_backends", lambda: report)
    monkeypatch.setattr("conftest.is_installed", lambda name: True)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome.Exception, match="RuntimeError: probe raised"):
        backend_or_skip("jax")
