"""PyTorch (CPU or CUDA) through array-api-compat's standard-conforming view of torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Library, UnknownBackendError


class TorchLibrary(Library):
    name = "torch"
    import_name = "torch"
    extra = "torch"

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

    def synchronize(self, device: Any, values: tuple[Any, ...]) -> None:
        import torch

        if getattr(device, "type", "cpu") == "cuda":
            torch.cuda.synchronize(device)
