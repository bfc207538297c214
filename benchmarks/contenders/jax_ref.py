"""JAX written the way its documentation teaches: ``value_and_grad`` of the loss, an SGD update,
the whole step under ``jax.jit`` with the parameters donated, and the batch gathered on the device
from device-resident data by a slice of the device-resident permutation.

``jax-jit`` dispatches one compiled step per batch; ``jax-scan`` runs the epoch's full batches in
one compiled ``lax.scan`` and the partial last batch with the jitted step. Both compile the
partial batch's shape during the warm-up epoch, so the timed epoch never recompiles.

``--dtype bfloat16`` is mixed precision as JAX users write it (the algorithm of `fit`'s
``dtype="bfloat16"``): the data and the parameters stay float32 on the device; the loss function
casts the batch and the parameters to bfloat16, runs the layers in bfloat16 and casts the logits
up to float32 for the log-softmax and the mean; ``value_and_grad`` carries the gradients back
through the casts, so they arrive float32 and SGD updates the float32 parameters.
"""

from __future__ import annotations

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

MIXED = ("bfloat16",)  # trained in mixed precision: float32 parameters, the layers in this dtype


def _device(kind: str) -> Any:
    import jax

    try:
        return jax.devices(kind)[0]
    except RuntimeError as exc:
        raise Skip(f"jax has no {kind} device here: {exc}") from None


def _make_step(lr: float, compute: Any = None) -> Callable:
    """The jitted ``step(params, X, y, order, start, size) -> (params, loss)``.

    ``compute`` (e.g. ``jnp.bfloat16``): the layers' dtype, the batch and the parameters cast to
    it inside the loss (mixed precision, module docstring); None computes in the params' dtype.
    """
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        if compute is not None:
            params = jax.tree.map(lambda p: p.astype(compute), params)
            x = x.astype(compute)
        h = x
        for p in params[:-1]:
            h = jax.nn.relu(h @ p["W"] + p["b"])
        z = (h @ params[-1]["W"] + params[-1]["b"]).astype(jnp.float32)
        log_p = jax.nn.log_softmax(z)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    def step(params, X, y, idx):
        xb, yb = jnp.take(X, idx, axis=0), jnp.take(y, idx, axis=0)
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss

    def sliced_step(params, X, y, order, start, size):
        return step(params, X, y, jax.lax.dynamic_slice_in_dim(order, start, size))

    return step, jax.jit(sliced_step, donate_argnums=0, static_argnames="size")


def _setup(w: Workload, s: ReferenceSettings) -> tuple[Any, ...]:
    """``(device, X, y, params, compute)``: data and parameters on the device in the storage
    dtype (float32 for a `MIXED` dtype), and the compute dtype for `_make_step` (or None)."""
    import jax
    import jax.numpy as jnp

    device = _device(s.device)
    if s.dtype == "float64":
        raise Skip("float64 needs jax_enable_x64; the benchmark runs float32 and bfloat16")
    if s.dtype == "float32":  # true float32 dots (no TF32 on GPUs), like every other contender
        jax.config.update("jax_default_matmul_precision", "highest")
    compute = jnp.dtype(s.dtype) if s.dtype in MIXED else None
    dtype = jnp.dtype("float32" if compute is not None else s.dtype)
    X, y = make_data(w)
    Xd = jax.device_put(jnp.asarray(X, dtype), device)
    yd = jax.device_put(y.astype(np.int32), device)
    params = [
        {k: jax.device_put(jnp.asarray(v, dtype), device) for k, v in p.items()}
        for p in initial_params(w, "float32")
    ]
    return device, Xd, yd, params, compute


def _trained(w, s, times, losses, params, device, meter) -> Trained:
    import jax

    rows = [sl.stop - sl.start for sl in batch_slices(w)]
    host = [{k: np.asarray(v, dtype=np.float32) for k, v in p.items()} for p in params]
    return Trained(
        epoch_times=times,
        step_losses=losses,
        epoch_loss=epoch_loss(losses[-len(rows) :], rows),
        params=host,
        device=f"{device.platform} ({device.device_kind})",
        versions={"jax": jax.__version__, **distribution_versions("jaxlib")},
        peak_device_mib=device_peak_mib("jax", device),
        foreign_cpu_s=meter.foreign,
    )


def run_jax_jit(w: Workload, s: ReferenceSettings) -> Trained:
    """One jitted step per batch."""
    import jax
    import jax.numpy as jnp

    device, X, y, params, compute = _setup(w, s)
    _, step = _make_step(w.lr, compute)
    times, losses, meter = [], [], CpuMeter()
    for order in epoch_orders(w, s.epochs):
        t0 = time.perf_counter()
        order_d = jax.device_put(order.astype(np.int32), device)
        epoch = []
        for sl in batch_slices(w):
            params, loss = step(params, X, y, order_d, sl.start, size=sl.stop - sl.start)
            epoch.append(loss)
        epoch_host = np.asarray(jnp.stack(epoch)).tolist()  # the epoch's one sync
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
        meter.mark()
        losses.extend(epoch_host)
    return _trained(w, s, times, losses, params, device, meter)


def run_jax_scan(w: Workload, s: ReferenceSettings) -> Trained:
    """The epoch's full batches in one jitted ``lax.scan``; the partial batch by the step."""
    import jax
    import jax.numpy as jnp

    device, X, y, params, compute = _setup(w, s)
    raw_step, step = _make_step(w.lr, compute)

    def scan_epoch(params, X, y, idx_matrix):
        return jax.lax.scan(lambda p, idx: raw_step(p, X, y, idx), params, idx_matrix)

    scan = jax.jit(scan_epoch, donate_argnums=0)
    n_full, b = w.n_samples // w.batch_size, w.batch_size
    times, losses, meter = [], [], CpuMeter()
    for order in epoch_orders(w, s.epochs):
        t0 = time.perf_counter()
        order_d = jax.device_put(order.astype(np.int32), device)
        params, full = scan(params, X, y, order_d[: n_full * b].reshape(n_full, b))
        parts = [full]
        if n_full * b < w.n_samples:
            params, loss = step(params, X, y, order_d, n_full * b, size=w.n_samples - n_full * b)
            parts.append(loss[None])
        epoch_host = np.asarray(jnp.concatenate(parts)).tolist()
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
        meter.mark()
        losses.extend(epoch_host)
    return _trained(w, s, times, losses, params, device, meter)


CONTENDERS = {"jax-jit": run_jax_jit, "jax-scan": run_jax_scan}
