"""PyTorch eager with autograd, as its tutorials write it: ``nn.Linear`` layers, ReLU,
``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD`` and ``zero_grad(set_to_none=True)``;
the data moved to the device once, each batch gathered there with ``index_select``. CUDA on
``--device gpu``.

``--dtype bfloat16`` is automatic mixed precision as torch's AMP recipe writes it (the algorithm
of `fit`'s ``dtype="bfloat16"``): the data, the parameters and SGD stay float32; the forward pass
runs under ``torch.autocast(device_type, dtype=torch.bfloat16)``, which casts the batch and the
weights to bfloat16 for each ``nn.Linear`` (ReLU follows in bfloat16), and the cross-entropy is
computed in float32 from the logits cast up; ``backward()`` runs outside autocast and the
gradients reach the float32 parameters through the casts. bfloat16 needs no ``GradScaler``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..workloads import Workload, batch_slices, epoch_orders, initial_params, make_data
from ._common import (
    CpuMeter,
    ReferenceSettings,
    Skip,
    Trained,
    device_peak_mib,
    distribution_versions,
    epoch_loss,
)

__all__ = ["CONTENDERS", "MIXED"]

MIXED = ("bfloat16",)  # trained under autocast: float32 parameters, the layers in this dtype


def _device(kind: str) -> Any:
    import torch

    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} sees no CUDA GPU here")
    return torch.device("cuda", 0)


def _model(w: Workload, dtype: Any, device: Any) -> Any:
    """``nn.Sequential`` of Linear/ReLU with the shared initial weights (nn.Linear keeps W.T)."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    params = initial_params(w, "float32")
    for i, p in enumerate(params):
        linear = nn.Linear(*p["W"].shape, device=device, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(p["W"].T)))
            linear.bias.copy_(torch.from_numpy(p["b"]))
        layers.append(linear)
        if i < len(params) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _precision(dtype: str, device: Any) -> tuple[Any, Callable[[], Any]]:
    """``(parameter dtype, context of the forward pass)``: a `MIXED` dtype keeps float32
    parameters and computes under ``torch.autocast``; any other trains in ``dtype`` as is."""
    import torch

    if dtype not in MIXED:
        return getattr(torch, dtype), contextlib.nullcontext
    low = getattr(torch, dtype)
    return torch.float32, lambda: torch.autocast(device.type, dtype=low)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torch_eager(w: Workload, s: ReferenceSettings) -> Trained:
    """Eager autograd training, one optimizer step per batch."""
    import torch
    import torch.nn.functional as F

    device = _device(s.device)
    if s.dtype == "float32":  # true float32 matmuls (no TF32), like every other contender
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    dtype, autocast = _precision(s.dtype, device)
    X, y = make_data(w)
    Xd = torch.from_numpy(X).to(device=device, dtype=dtype)
    yd = torch.from_numpy(y).to(device)
    model = _model(w, dtype, device)
    opt = torch.optim.SGD(model.parameters(), lr=w.lr)
    times, losses, meter = [], [], CpuMeter()
    for order in epoch_orders(w, s.epochs):
        _sync(device)
        t0 = time.perf_counter()
        order_d = torch.from_numpy(order).to(device)
        epoch = []
        for sl in batch_slices(w):
            idx = order_d[sl]
            with autocast():
                logits = model(Xd.index_select(0, idx))
                loss = F.cross_entropy(logits.float(), yd.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch.append(loss.detach())
        epoch_host = torch.stack(epoch).cpu().tolist()  # the epoch's one sync
        _sync(device)
        times.append(time.perf_counter() - t0)
        meter.mark()
        losses.extend(epoch_host)
    rows = [sl.stop - sl.start for sl in batch_slices(w)]
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    params = [
        {
            "W": m.weight.detach().float().cpu().numpy().T.copy(),
            "b": m.bias.detach().float().cpu().numpy(),
        }
        for m in linears
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return Trained(
        epoch_times=times,
        step_losses=losses,
        epoch_loss=epoch_loss(losses[-len(rows) :], rows),
        params=params,
        device=f"{device} ({name}; {torch.get_num_threads()} CPU threads)",
        versions={"torch": torch.__version__, **distribution_versions("numpy")},
        peak_device_mib=device_peak_mib("torch", device),
        foreign_cpu_s=meter.foreign,
    )


CONTENDERS = {"torch-eager": run_torch_eager}
