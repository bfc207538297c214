"""PyTorch (CPU or CUDA) through array-api-compat's standard-conforming view of torch.

Precision (process-global torch settings, legacy API: torch 2.9+ also has ``fp32_precision``
attributes, and mixing the two APIs makes torch raise when the settings are read, so only the
legacy one is used):

- "float32", "float64": ``torch.set_float32_matmul_precision("highest")``,
  ``torch.backends.cuda.matmul.allow_tf32 = False``, ``torch.backends.cudnn.allow_tf32 = False``.
- "fast": ``"high"`` and both ``allow_tf32 = True``: TF32 on Ampere and later NVIDIA GPUs, and on
  CPUs whose oneDNN supports it.
- "default": torch's own defaults: ``"highest"``, cuBLAS TF32 off, cuDNN TF32 on.

Determinism: ``torch.use_deterministic_algorithms(flag)`` (ops without a deterministic kernel
then raise), ``cudnn.deterministic = flag``, ``cudnn.benchmark = False`` when on, and on a GPU
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless already set, which cuBLAS honours only if no cuBLAS
handle was created yet in the process (the record says which).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._base import CUBLAS_WORKSPACE_CONFIG, Library, UnknownBackendError, cpu_description, set_env

_PRECISION = {  # mode: (float32_matmul_precision, cuBLAS allow_tf32, cuDNN allow_tf32)
    "default": ("highest", False, True),
    "float32": ("highest", False, False),
    "float64": ("highest", False, False),
    "fast": ("high", True, True),
}


def _read(getter: Any) -> Any:
    """A torch setting, or None where torch refuses to report it (mixed TF32 APIs)."""
    try:
        return getter()
    except RuntimeError:
        return None


class TorchLibrary(Library):
    name = "torch"
    import_name = "torch"
    extra = "torch"
    compute_dtypes = ("bfloat16", "float16")  # mixed precision (backprop.training._mixed)

    def namespace(self) -> Any:
        import array_api_compat.torch as xp

        return xp

    def list_devices(self) -> Sequence[str]:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu", *(f"gpu:{i}" for i in range(count))]

    def cpu_device(self) -> Any:
        import torch

        return torch.device("cpu")

    def resolve_device(self, kind: str, index: int | None) -> tuple[Any, str]:
        import torch

        if kind != "gpu":
            return (self.cpu_device(), "cpu")
        gpus = [d for d in self.list_devices() if d != "cpu"]
        name = f"gpu:{index or 0}"
        if name not in gpus:
            raise UnknownBackendError(
                f"torch has no device {name!r}; available: {', '.join(self.list_devices())}"
            )
        return (torch.device("cuda", index or 0), name)

    def to_numpy(self, x: Any) -> Any:
        return x.detach().cpu().numpy()

    def compile(self, fn: Callable, donate_argnums: tuple[int, ...] = ()) -> Callable:
        """``fn`` run under ``torch.no_grad()``: nothing here needs autograd's bookkeeping, and
        skipping it takes a few microseconds off each of the step's ~60 kernel calls."""
        import torch

        @functools.wraps(fn)
        def without_autograd(*args: Any, **kwargs: Any) -> Any:
            with torch.no_grad():
                return fn(*args, **kwargs)

        return without_autograd

    def asarray(self, xp: Any, host: Any, dtype: Any, device: Any) -> Any:
        import numpy as np
        import torch

        if isinstance(host, torch.Tensor):
            return host.to(device=device, dtype=dtype, copy=True)
        # A private copy in native byte order, then converted: torch.asarray(copy=True) fails on
        # 0-d arrays that change dtype, and on big-endian input (e.g. some .npy files).
        private = np.array(host, copy=True)
        if not private.dtype.isnative:
            private = private.astype(private.dtype.newbyteorder("="))
        return xp.asarray(private, dtype=dtype, device=device)

    def take_rows(self, xp: Any, x: Any, idx: Any, device: Any) -> Any:
        import torch

        # array-api-compat's take also maps negative indices (three more kernels per call);
        # batch indices never are negative.
        return torch.index_select(x, 0, idx)

    def synchronize(self, device: Any, values: tuple[Any, ...]) -> None:
        import torch

        if getattr(device, "type", "cpu") == "cuda":
            torch.cuda.synchronize(device)

    def describe_device(self, device: Any) -> str:
        import torch

        if device.type == "cuda":
            return torch.cuda.get_device_name(device)
        return cpu_description()

    # -- precision and determinism -------------------------------------------------------------
    def precision_settings(self, device: Any) -> dict[str, Any]:
        import torch

        return {
            "float32_matmul_precision": _read(torch.get_float32_matmul_precision),
            "cuda.matmul.allow_tf32": _read(lambda: torch.backends.cuda.matmul.allow_tf32),
            "cudnn.allow_tf32": _read(lambda: torch.backends.cudnn.allow_tf32),
        }

    def set_precision(self, mode: str, device: Any) -> dict[str, str]:
        self._apply_precision(*_PRECISION[mode])
        return {}

    def restore_precision(self, settings: Mapping[str, Any], device: Any) -> None:
        self._apply_precision(
            settings["float32_matmul_precision"],
            settings["cuda.matmul.allow_tf32"],
            settings["cudnn.allow_tf32"],
        )

    @staticmethod
    def _apply_precision(matmul: str | None, cublas_tf32: bool | None, cudnn_tf32: bool | None):
        import torch

        # In this order: set_float32_matmul_precision also sets cuBLAS allow_tf32.
        if matmul is not None:
            torch.set_float32_matmul_precision(matmul)
        if cublas_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = cublas_tf32
        if cudnn_tf32 is not None:
            torch.backends.cudnn.allow_tf32 = cudnn_tf32

    def determinism_settings(self, device: Any) -> dict[str, Any]:
        import torch

        return {
            "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        }

    def set_deterministic(self, flag: bool, device: Any) -> dict[str, str]:
        import torch

        torch.use_deterministic_algorithms(flag)
        torch.backends.cudnn.deterministic = flag
        if flag:
            torch.backends.cudnn.benchmark = False
        if not (flag and device.type == "cuda"):
            return {}
        if os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
            return {"cublas_workspace": "CUBLAS_WORKSPACE_CONFIG was already set; kept"}
        set_env("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        started = torch.cuda.is_initialized()
        return {
            "cublas_workspace": f"CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE_CONFIG} set"
            + (
                "; CUDA had already started, so it holds only if no cuBLAS call ran yet"
                if started
                else " before CUDA started"
            )
        }

    def restore_determinism(self, settings: Mapping[str, Any], device: Any) -> None:
        import torch

        torch.use_deterministic_algorithms(
            settings["use_deterministic_algorithms"], warn_only=settings["warn_only"]
        )
        torch.backends.cudnn.deterministic = settings["cudnn.deterministic"]
        torch.backends.cudnn.benchmark = settings["cudnn.benchmark"]
        set_env("CUBLAS_WORKSPACE_CONFIG", settings["CUBLAS_WORKSPACE_CONFIG"])
