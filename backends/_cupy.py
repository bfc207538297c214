"""CuPy on an NVIDIA GPU. Any CuPy wheel (cupy-cuda12x, cupy-cuda13x, ...) is accepted.

CuPy imports fine on a machine without a usable GPU and fails only at the first kernel, so the
probe runs one tiny computation and reports the CUDA error text as the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Library, UnknownBackendError


class CupyLibrary(Library):
    name = "cupy"
    import_name = "cupy"
    extra = "cupy-cuda12"
    auto_priority = 10

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
