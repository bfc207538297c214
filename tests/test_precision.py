"""Precision and determinism switches, and the run-manifest info: each switch really changes the
library's setting (read back from the library itself), is restored afterwards, and says what it
did. Every test leaves the process-global settings as it found them (checked by a fixture)."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
from conftest import backend_or_skip, eps

import backends
from backends import _cupy, _jax, _registry
from backends._numpy import NumpyLibrary

MODES = list(backends.PRECISION_MODES)


def _global_state() -> dict:
    """Every process-global setting the switches touch, read straight from the libraries."""
    state = {
        name: os.environ.get(name) for name in ("XLA_FLAGS", "CUBLAS_WORKSPACE_CONFIG", "CUPY_TF32")
    }
    report = backends.available_backends()
    if report["jax"].ok:
        import jax

        state["jax"] = (jax.config.jax_default_matmul_precision, jax.config.jax_enable_x64)
    if report["torch"].ok:
        import torch

        state["torch"] = (
            torch.get_float32_matmul_precision(),
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.are_deterministic_algorithms_enabled(),
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
        )
    return state


@pytest.fixture(autouse=True)
def no_leaked_global_state():
    """Fail a test that leaves JAX/torch/environment settings changed for the tests after it."""
    before = _global_state()
    modes = {name: lib._precision_mode for name, lib in _registry._LIBRARIES.items()}
    yield
    assert _global_state() == before
    assert {name: lib._precision_mode for name, lib in _registry._LIBRARIES.items()} == modes


@pytest.fixture
def jax_backend() -> backends.Backend:
    return backend_or_skip("jax")


@pytest.fixture
def torch_backend() -> backends.Backend:
    return backend_or_skip("torch")


# -- every backend ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_precision_records_and_restores(backend, mode):
    library = backend.library
    before = library.precision_settings(backend.device)
    with backend.precision(mode) as record:
        assert record["mode"] == mode
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in record.items())
        json.dumps(record)
        assert backend.info()["precision"]["mode"] == mode
    assert library.precision_settings(backend.device) == before


@pytest.mark.parametrize("flag", [True, False])
def test_determinism_records_and_restores(backend, flag):
    library = backend.library
    before = library.determinism_settings(backend.device)
    with backend.determinism(flag) as record:
        assert record["deterministic"] == str(flag)
        json.dumps(record)
        assert backend.info()["deterministic"]["deterministic"] == str(flag)
    assert library.determinism_settings(backend.device) == before


def test_unknown_precision_mode_lists_the_allowed_ones(backend):
    with pytest.raises(backends.BackendError, match=r"precision mode 'tf32' is not known") as info:
        backend.set_precision("tf32")
    assert str(MODES) in str(info.value)


def test_deterministic_wants_a_bool(backend):
    with pytest.raises(backends.BackendError, match=r"True or False, received 'yes'"):
        backend.set_deterministic("yes")


class _NoFloat64(NumpyLibrary):
    name = "no_float64"

    def supports_dtype(self, dtype: str) -> bool:
        return dtype == "float32"


def test_float64_where_impossible_says_what_to_use():
    library = _NoFloat64()
    be = backends.Backend("no_float64", library.namespace(), "cpu", "cpu", library)
    with pytest.raises(backends.BackendUnavailableError) as info:
        be.set_precision("float64")
    message = str(info.value)
    assert "'no_float64' on cpu cannot compute in float64" in message
    assert "precision 'float32'" in message and "'numpy'" in message
    assert library._precision_mode is None  # nothing was switched


def test_info_is_json_ready_with_versions(backend):
    info = backend.info()
    assert json.loads(json.dumps(info)) == info
    assert info["backend"] == backend.name and info["device"] == backend.device_name
    assert info["library_version"] == backends.available_backends()[backend.name].version
    assert info["numpy"] == np.__version__
    assert info["python"].count(".") == 2
    for key in ("array_api_compat", "backprop_xp", "platform", "device_description"):
        assert isinstance(info[key], str) and info[key], key
    assert info["precision"]["mode"] in [*MODES, "unset"]


def test_library_versions_names_every_backend():
    versions = backends.library_versions()
    assert list(versions) == backends.known_backends()
    assert versions["numpy"] == np.__version__
    for name, availability in backends.available_backends().items():
        if availability.version:
            assert versions[name] == availability.version, name


def test_library_versions_says_not_installed():
    class Missing(backends.Library):
        name = "missing_lib"
        import_name = "surely_not_installed_library_xyz"

    saved = dict(_registry._LIBRARIES)
    try:
        backends.register_library(Missing())
        assert backends.library_versions()["missing_lib"] == "not installed"
    finally:
        _registry._LIBRARIES.clear()
        _registry._LIBRARIES.update(saved)
        _registry._probe.cache_clear()


# -- JAX -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "expected"),
    [("float32", "highest"), ("float64", "highest"), ("fast", "tensorfloat32"), ("default", None)],
)
def test_jax_matmul_precision_is_set_and_restored(jax_backend, mode, expected):
    import jax

    before = jax.config.jax_default_matmul_precision
    with jax_backend.precision(mode) as record:
        assert jax.config.jax_default_matmul_precision == expected
        assert record["jax_default_matmul_precision"] == str(expected)
        if mode == "float64":
            assert jax.config.jax_enable_x64
            assert jax_backend.asarray([1.0], "float64").dtype == jax.numpy.float64
    assert jax.config.jax_default_matmul_precision == before


def test_jax_float32_matmul_matches_float64_within_rounding(jax_backend):
    """Under "float32" a float32 product is a true float32 one: elementwise error at most
    k * eps * (|A| @ |B|), the classic dot-product bound (a TF32 product misses it by up to 10x)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 256)), rng.standard_normal((256, 32))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    exact = a32.astype(np.float64) @ b32.astype(np.float64)
    with jax_backend.precision("float32"):
        x, y = jax_backend.asarray(a32), jax_backend.asarray(b32)
        product = jax_backend.to_numpy(jax_backend.compile(lambda p, q: p @ q)(x, y))
    bound = a.shape[1] * eps("float32") * (np.abs(a32) @ np.abs(b32))
    assert product.dtype == np.float32
    assert np.all(np.abs(product - exact) <= bound)


def test_jax_deterministic_flag_after_start_is_reported_not_applied(jax_backend, monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with jax_backend.determinism(True) as record:
        assert record["xla_gpu_deterministic_ops"].startswith("not applied")
        assert "XLA_FLAGS" not in os.environ  # a flag XLA would ignore is not pretended in place
    with jax_backend.determinism(False) as record:
        assert record["xla_gpu_deterministic_ops"] == "off"


def test_jax_deterministic_flag_before_start_goes_into_xla_flags(jax_backend, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setattr(_jax, "_backends_started", lambda: False)
    with jax_backend.determinism(True) as record:
        assert os.environ["XLA_FLAGS"].split() == [
            "--xla_force_host_platform_device_count=2",
            "--xla_gpu_deterministic_ops=true",
        ]
        assert record["xla_gpu_deterministic_ops"].startswith("on: added")
        off = jax_backend.set_deterministic(False)
        assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
        assert off["xla_gpu_deterministic_ops"].startswith("off: removed")
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"


# -- torch -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("float32", ("highest", False, False)),
        ("float64", ("highest", False, False)),
        ("fast", ("high", True, True)),
        ("default", ("highest", False, True)),
    ],
)
def test_torch_tf32_switches_are_set_and_restored(torch_backend, mode, expected):
    import torch

    def read():
        return (
            torch.get_float32_matmul_precision(),
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
        )

    before = read()
    with torch_backend.precision(mode) as record:
        assert read() == expected
        assert record["float32_matmul_precision"] == expected[0]
    assert read() == before


def test_torch_deterministic_algorithms_are_set_and_restored(torch_backend):
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    with torch_backend.determinism(True) as record:
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert record["use_deterministic_algorithms"] == "True"
        if torch_backend.device_name == "cpu":  # the cuBLAS variable is for GPUs only
            assert record["CUBLAS_WORKSPACE_CONFIG"] == str(
                os.environ.get("CUBLAS_WORKSPACE_CONFIG")
            )
    assert torch.are_deterministic_algorithms_enabled() == before


# -- CuPy ------------------------------------------------------------------------------------
def test_cupy_tf32_compute_type_is_set_and_restored():
    be = backend_or_skip("cupy")
    from cupy._core import _routines_linalg as linalg

    before = linalg.get_compute_type(np.float32)
    with be.precision("float32") as record:
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
        assert record["float32_compute_type"] == "COMPUTE_TYPE_DEFAULT"
    with be.precision("fast") as record:
        tf32 = int(be.device.compute_capability) >= 80
        expected = linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT
        assert linalg.get_compute_type(np.float32) == expected
        assert ("effect" in record) != tf32
    assert linalg.get_compute_type(np.float32) == before


class _FakeGpu:
    """Stands in for a ``cupy.cuda.Device``: a context manager with a compute capability."""

    def __init__(self, capability: str):
        self.compute_capability = capability

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _FakeComputeTypes:
    """CuPy's compute-type switch (``cupy._core._routines_linalg``), without a GPU."""

    COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_TF32 = 0, 1, 7

    def __init__(self):
        self.current = self.COMPUTE_TYPE_TBD

    def get_compute_type(self, dtype):
        if self.current == self.COMPUTE_TYPE_TBD:  # CuPy resolves "unset" from CUPY_TF32
            tf32 = int(os.environ.get("CUPY_TF32", "0")) > 0
            self.current = self.COMPUTE_TYPE_TF32 if tf32 else self.COMPUTE_TYPE_DEFAULT
        return self.current

    def set_compute_type(self, dtype, compute_type):
        assert np.dtype(dtype) == np.float32
        self.current = compute_type


@pytest.mark.parametrize(
    ("mode", "capability", "expected"),
    [
        ("float32", "80", "COMPUTE_TYPE_DEFAULT"),
        ("float64", "90", "COMPUTE_TYPE_DEFAULT"),
        ("fast", "80", "COMPUTE_TYPE_TF32"),
        ("fast", "75", "COMPUTE_TYPE_DEFAULT"),  # no TF32 before Ampere
        ("default", "80", "COMPUTE_TYPE_DEFAULT"),  # CUPY_TF32 unset: CuPy's own default
    ],
)
def test_cupy_switch_logic_without_a_gpu(monkeypatch, mode, capability, expected):
    """The CuPy hooks against a stand-in compute-type module (the real one needs a GPU)."""
    fake = _FakeComputeTypes()
    monkeypatch.setattr(_cupy, "_compute_types", lambda: fake)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    library, gpu = _cupy.CupyLibrary(), _FakeGpu(capability)
    before = library.precision_settings(gpu)
    notes = library.set_precision(mode, gpu)
    assert library.precision_settings(gpu)["float32_compute_type"] == expected
    assert ("no TF32 on compute capability 7.5" in notes.get("effect", "")) == (capability == "75")
    library.restore_precision(before, gpu)
    assert library.precision_settings(gpu) == before


def test_cupy_without_the_compute_type_api_falls_back_to_cupy_tf32(monkeypatch):
    monkeypatch.setattr(_cupy, "_compute_types", lambda: None)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    library, gpu = _cupy.CupyLibrary(), _FakeGpu("80")
    before = library.precision_settings(gpu)
    notes = library.set_precision("fast", gpu)
    assert os.environ["CUPY_TF32"] == "1"
    assert "no float32 matrix product ran yet" in notes["compute_type_api"]
    library.set_precision("float32", gpu)
    assert os.environ["CUPY_TF32"] == "0"
    library.restore_precision(before, gpu)
    assert "CUPY_TF32" not in os.environ


def test_installed_cupy_has_the_compute_type_api():
    """The private CuPy function the switch relies on exists in the installed CuPy (no GPU needed
    to look it up); a CuPy without it would fall back to CUPY_TF32."""
    pytest.importorskip("cupy", reason="cupy is not installed")
    linalg = _cupy._compute_types()
    assert linalg is not None
    assert {"COMPUTE_TYPE_DEFAULT", "COMPUTE_TYPE_TF32"} <= set(dir(linalg))


# -- the config's [backend] precision, as `train` applies it --------------------------------------
def _jax_setting():
    import jax

    return jax.config.jax_default_matmul_precision


def _torch_setting():
    import torch

    return (
        torch.get_float32_matmul_precision(),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )


@pytest.mark.parametrize(
    ("name", "mode", "expected"),
    [
        ("jax", "float32", "highest"),
        ("jax", "fast", "tensorfloat32"),
        ("jax", "default", None),
        ("torch", "float32", ("highest", False, False)),
        ("torch", "fast", ("high", True, True)),
        ("torch", "default", ("highest", False, True)),
    ],
)
def test_configured_precision_is_the_library_setting_during_the_run(name, mode, expected):
    """What a run's ``[backend] precision`` switches on, read from the library itself while the
    run's backend is in use (on a CPU every mode gives the same numbers, so only the setting can
    tell "float32" from a bfloat16 or TF32 one), and the record the manifest keeps says so."""
    from backprop.app.config import load_config
    from backprop.app.experiment import configured_backend

    backend_or_skip(name)
    read = {"jax": _jax_setting, "torch": _torch_setting}[name]
    before = read()
    cfg = load_config(
        pathlib.Path(__file__).parent.parent / "configs" / "xor.toml",
        [f"backend.name={name}", f"backend.precision={mode}"],
    )
    with configured_backend(cfg) as (be, record):
        assert be.name == name and read() == expected
        assert record["precision"]["mode"] == mode
        key = "jax_default_matmul_precision" if name == "jax" else "float32_matmul_precision"
        assert record["precision"][key] == str(expected if name == "jax" else expected[0])
    assert read() == before
