"""CuPy on an NVIDIA GPU. Any CuPy wheel (cupy-cuda12x, cupy-cuda13x, ...) is accepted.

CuPy imports fine on a machine without a usable GPU and fails only at the first kernel, so the
probe runs one tiny computation and reports the CUDA error text as the reason.

Precision: CuPy chooses a cuBLAS *compute type* for float32 matrix products (2-D ``matmul``,
``dot``, ``tensordot``, ``@``, which reach ``cublasGemmEx``: what dense layers use), one value for
the whole process and every GPU.
Unset, it is decided at the first float32 product from the environment variable ``CUPY_TF32``
(``CUPY_TF32=1``: TF32, otherwise plain float32), after which the variable is not read again.
This module switches it at run time through ``cupy._core._routines_linalg.set_compute_type``
(the function CuPy's own tests use; not a documented public API, so it is looked up defensively):

- "float32", "float64": ``COMPUTE_TYPE_DEFAULT`` (``CUBLAS_COMPUTE_32F``: full float32).
- "fast": ``COMPUTE_TYPE_TF32`` (``CUBLAS_COMPUTE_32F_FAST_TF32``) on GPUs of compute capability
  8.0 or more; older GPUs have no TF32 and keep full float32 (the record says so).
- "default": unset again, so CuPy decides from ``CUPY_TF32`` as in a fresh process.

Limits: float64 products are unaffected (always ``CUBLAS_COMPUTE_64F``); custom kernels and
reductions never use TF32; if a CuPy lacks that function, only ``CUPY_TF32`` is set, which acts
only if no float32 product has run yet (the record says so). ``NVIDIA_TF32_OVERRIDE=0`` set
before start disables TF32 in every NVIDIA library, whatever is chosen here.

Determinism: CuPy has no switch. cuBLAS gives bitwise-identical results run to run on GPUs of the
same architecture and SM count when one stream is active (CuPy's default); for several streams
NVIDIA documents ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, set here when on (unless already set), which
helps only if set before cuBLAS starts in the process (the record cannot tell). Kernels built on
atomics (e.g. ``cupyx.scatter_add``) stay nondeterministic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._base import CUBLAS_WORKSPACE_CONFIG, Library, UnknownBackendError, set_env

_TF32_MIN_CAPABILITY = 80  # TF32 tensor cores: Ampere (compute capability 8.0) and later
_COMPUTE_TYPE_API = ("get_compute_type", "set_compute_type", "COMPUTE_TYPE_TBD")


def _compute_types() -> Any:
    """CuPy's float32 GEMM compute-type module, or None when this CuPy has none."""
    try:
        from cupy._core import _routines_linalg as linalg
    except ImportError:
        return None
    return linalg if all(hasattr(linalg, n) for n in _COMPUTE_TYPE_API) else None


def _compute_type_target(mode: str, capability: int) -> tuple[str, dict[str, str]]:
    """The compute type's name for ``mode`` on a GPU of ``capability``, and a note."""
    if mode == "default":
        return ("COMPUTE_TYPE_TBD", {"effect": "CuPy decides from CUPY_TF32, as unset"})
    if mode != "fast":
        return ("COMPUTE_TYPE_DEFAULT", {})
    if capability < _TF32_MIN_CAPABILITY:
        note = f"no TF32 on compute capability {capability / 10:.1f} (needs 8.0); full float32"
        return ("COMPUTE_TYPE_DEFAULT", {"effect": note})
    return ("COMPUTE_TYPE_TF32", {})


class CupyLibrary(Library):
    name = "cupy"
    import_name = "cupy"
    extra = "cupy-cuda12"
    auto_priority = 10
    compute_dtypes = ("float16",)  # NumPy's dtypes: no bfloat16 (mixed precision)

    def not_installed_reason(self, exc: BaseException) -> str:
        return (
            f"cupy is not installed ({exc}); install the wheel matching your CUDA driver: "
            "pip install 'backprop-xp[cupy-cuda12]' or 'backprop-xp[cupy-cuda13]'"
        )

    def no_device_reason(self, exc: BaseException) -> str:
        return f"cupy is installed but no usable CUDA GPU was found: {type(exc).__name__}: {exc}"

    def namespace(self) -> Any:
        import array_api_compat.cupy as xp

        return xp

    def list_devices(self) -> Sequence[str]:
        import cupy

        return [f"gpu:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]

    def smoke_test(self) -> None:
        import cupy

        with cupy.cuda.Device(0):
            float((cupy.arange(4, dtype=cupy.float32) ** 2).sum())

    def resolve_device(self, kind: str, index: int | None) -> tuple[Any, str]:
        import cupy

        name = f"gpu:{index or 0}"
        if kind == "cpu" or name not in self.list_devices():
            raise UnknownBackendError(
                f"cupy has no device {'cpu' if kind == 'cpu' else name!r}; "
                f"it runs on: {', '.join(self.list_devices())}"
            )
        return (cupy.cuda.Device(index or 0), name)

    def asarray(self, xp: Any, host: Any, dtype: Any, device: Any) -> Any:
        with device:
            return xp.asarray(host, dtype=dtype)

    def to_numpy(self, x: Any) -> Any:
        return x.get()

    def synchronize(self, device: Any, values: tuple[Any, ...]) -> None:
        device.synchronize()

    def describe_device(self, device: Any) -> str:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(device.id)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        return f"{name} (compute capability {device.compute_capability})"

    # -- precision and determinism -------------------------------------------------------------
    def precision_settings(self, device: Any) -> dict[str, Any]:
        import numpy as np

        settings: dict[str, Any] = {"CUPY_TF32": os.environ.get("CUPY_TF32")}
        linalg = _compute_types()
        if linalg is not None:
            with device:
                code = linalg.get_compute_type(np.float32)  # resolves "unset" from CUPY_TF32
            names = {getattr(linalg, n): n for n in dir(linalg) if n.startswith("COMPUTE_TYPE_")}
            settings["float32_compute_type"] = names.get(code, code)
        return settings

    def set_precision(self, mode: str, device: Any) -> dict[str, str]:
        import numpy as np

        target, notes = _compute_type_target(mode, int(device.compute_capability))
        linalg = _compute_types()
        if linalg is not None and hasattr(linalg, target):
            with device:
                linalg.set_compute_type(np.float32, getattr(linalg, target))
            return notes
        if mode != "default":
            set_env("CUPY_TF32", "1" if target == "COMPUTE_TYPE_TF32" else "0")
        return {
            **notes,
            "compute_type_api": "absent in this CuPy; set CUPY_TF32 instead, which acts only if "
            "no float32 matrix product ran yet in this process",
        }

    def restore_precision(self, settings: Mapping[str, Any], device: Any) -> None:
        import numpy as np

        set_env("CUPY_TF32", settings["CUPY_TF32"])
        linalg = _compute_types()
        name = settings.get("float32_compute_type")
        if linalg is not None and isinstance(name, str) and hasattr(linalg, name):
            with device:
                linalg.set_compute_type(np.float32, getattr(linalg, name))

    def determinism_settings(self, device: Any) -> dict[str, Any]:
        return {"CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}

    def set_deterministic(self, flag: bool, device: Any) -> dict[str, str]:
        notes = {
            "kernels": "no CuPy switch; cuBLAS GEMMs repeat bit for bit on one GPU model with "
            "one stream; atomics-based kernels (e.g. cupyx.scatter_add) do not"
        }
        if flag and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
            set_env("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
            notes["cublas_workspace"] = (
                f"CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE_CONFIG} set; effective only if "
                "cuBLAS had not started yet in this process (needed with several streams only)"
            )
        return notes

    def restore_determinism(self, settings: Mapping[str, Any], device: Any) -> None:
        set_env("CUBLAS_WORKSPACE_CONFIG", settings["CUBLAS_WORKSPACE_CONFIG"])
