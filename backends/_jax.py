"""JAX on CPU or GPU. ``compile`` is ``jax.jit``; float64 turns on ``jax_enable_x64``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._base import Library, UnknownBackendError


class JaxLibrary(Library):
    name = "jax"
    import_name = "jax"
    extra = "jax"
    auto_priority = 20  # only when a GPU is present, see auto_ok

    def namespace(self) -> Any:
        import jax.numpy as xp

        return xp

    def _devices(self, platform: str) -> list[Any]:
        import jax

        try:
            return list(jax.devices(platform))
        except RuntimeError:  # no such platform in this jaxlib
            return []

    def list_devices(self) -> Sequence[str]:
        gpus = self._devices("gpu")
        return ["cpu", *(f"gpu:{i}" for i in range(len(gpus)))]

    def auto_ok(self) -> bool:
        """``get_backend("auto")`` takes JAX only on a GPU; NumPy is faster on small CPU work."""
        return bool(self._devices("gpu"))

    def resolve_device(self, kind: str, index: int | None) -> tuple[Any, str]:
        if kind == "default":
            kind = "gpu" if self._devices("gpu") else "cpu"
        if kind == "cpu":
            return (self._devices("cpu")[0], "cpu")
        gpus = self._devices("gpu")
        i = index or 0
        if i >= len(gpus):
            raise UnknownBackendError(
                f"jax has no device 'gpu:{i}'; available: {', '.join(self.list_devices())}"
            )
        return (gpus[i], f"gpu:{i}")

    def prepare_dtype(self, dtype: str) -> None:
        import jax

        if dtype == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)

    def asarray(self, xp: Any, host: Any, dtype: Any, device: Any) -> Any:
        import jax
        import numpy as np

        return jax.device_put(np.asarray(host, dtype=dtype), device)

    def synchronize(self, device: Any, values: tuple[Any, ...]) -> None:
        import jax

        jax.block_until_ready(values)
        jax.effects_barrier()

    def compile(self, fn: Callable, donate_argnums: tuple[int, ...] = ()) -> Callable:
        import jax

        return jax.jit(fn, donate_argnums=donate_argnums)
