"""The floor: one epoch's matrix products alone, at the GEMM rate measured on the same shapes.

A training step cannot be faster than its GEMMs (`workloads.step_gemms`: forward ``x @ W``,
weight gradient ``x.T @ delta``, input gradient ``delta @ W.T`` except for the first layer). Here
each library runs exactly those products, with the same transposes, for every step of one epoch
(the partial last batch included), into preallocated outputs, and nothing else. The floor of a
round is the fastest library's time: the strictest bound the hardware showed that round.

- NumPy and CuPy: ``matmul(a, b, out=c)`` in a Python loop.
- PyTorch: ``torch.matmul(a, b, out=c)`` in a Python loop (CPU, or CUDA with a final sync).
- JAX: all steps in one jitted ``lax.scan``. So that XLA neither hoists the loop-invariant
  products out of the loop nor deletes them, each product's non-weight operand gets
  ``carry * 1e-30`` added and each output's sum goes into the carry; those two element-wise
  passes make JAX's floor slightly pessimistic, which is why the floor is the minimum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .contenders._common import CpuMeter, ReferenceSettings, Skip, distribution_versions
from .workloads import Workload, batch_slices, flops_per_epoch, step_gemms

__all__ = ["CONTENDERS", "measure_gemm_floor", "run_floor"]

WARMUP_STEPS = 3
# (kind, m, k, n) -> shapes of the stored operands (A stored, B stored) and how the product
# reads them: "fwd" x @ W; "grad_w" x.T @ delta (x stored (k, m)); "grad_x" delta @ W.T (W
# stored (n, k)).
_STORED = {
    "fwd": lambda m, k, n: ((m, k), (k, n)),
    "grad_w": lambda m, k, n: ((k, m), (k, n)),
    "grad_x": lambda m, k, n: ((m, k), (n, k)),
}


def _operands(w: Workload, batch: int, rng: np.random.Generator) -> list[tuple]:
    """Host float32 ``(kind, A, B)`` per product of a step with ``batch`` rows."""
    out = []
    for kind, m, k, n in step_gemms(w, batch):
        a_shape, b_shape = _STORED[kind](m, k, n)
        a = rng.standard_normal(a_shape, dtype=np.float32)
        b = rng.standard_normal(b_shape, dtype=np.float32)
        out.append((kind, a, b))
    return out


def _as_product(kind: str, a: Any, b: Any, transpose: Callable) -> tuple[Any, Any]:
    """The operands as the product reads them (transposed views where the step has them)."""
    if kind == "grad_w":
        return transpose(a), b
    if kind == "grad_x":
        return a, transpose(b)
    return a, b


def _steps(w: Workload) -> list[int]:
    return [sl.stop - sl.start for sl in batch_slices(w)]


def _loop_floor(w, ops_for: Callable, matmul: Callable, sync: Callable) -> float:
    """Seconds for one epoch of ``matmul(a, b, out=c)`` calls; ``ops_for(batch)`` gives the
    ``(a, b, c)`` triples of a step (built once per distinct batch size)."""
    steps = _steps(w)
    cache = {b: ops_for(b) for b in set(steps)}
    for b in steps[:WARMUP_STEPS]:
        for a, bb, c in cache[b]:
            matmul(a, bb, out=c)
    sync()
    t0 = time.perf_counter()
    for b in steps:
        for a, bb, c in cache[b]:
            matmul(a, bb, out=c)
    sync()
    return time.perf_counter() - t0


def _numpy_floor(w: Workload, s: ReferenceSettings) -> float:
    if s.device != "cpu":
        raise Skip("NumPy runs on the CPU")
    if s.dtype not in ("float32", "float64"):
        raise Skip(f"NumPy has no {s.dtype}")
    rng = np.random.default_rng(0)

    def ops_for(batch):
        triples = []
        for kind, a, b in _operands(w, batch, rng):
            a, b = _as_product(kind, a.astype(s.dtype), b.astype(s.dtype), np.transpose)
            triples.append((a, b, np.empty((a.shape[0], b.shape[1]), s.dtype)))
        return triples

    return _loop_floor(w, ops_for, np.matmul, lambda: None)


def _torch_floor(w: Workload, s: ReferenceSettings) -> float:
    import torch

    if s.device == "gpu" and not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} sees no CUDA GPU here")
    device = torch.device("cuda", 0) if s.device == "gpu" else torch.device("cpu")
    if s.dtype == "float32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    dtype, rng = getattr(torch, s.dtype), np.random.default_rng(0)

    def ops_for(batch):
        triples = []
        for kind, a, b in _operands(w, batch, rng):
            ta = torch.from_numpy(a).to(device=device, dtype=dtype)
            tb = torch.from_numpy(b).to(device=device, dtype=dtype)
            ta, tb = _as_product(kind, ta, tb, lambda t: t.T)
            out = torch.empty(ta.shape[0], tb.shape[1], dtype=dtype, device=device)
            triples.append((ta, tb, out))
        return triples

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return _loop_floor(w, ops_for, torch.matmul, sync)


def _cupy_floor(w: Workload, s: ReferenceSettings) -> float:
    if s.device != "gpu":
        raise Skip("CuPy runs only on a GPU")
    try:
        import cupy

        cupy.zeros(1).sum()
    except Exception as exc:  # not installed, no driver, no device: all mean "not here"
        raise Skip(f"CuPy is not usable here: {type(exc).__name__}: {exc}") from None
    if s.dtype not in ("float32", "float64"):
        raise Skip(f"CuPy has no {s.dtype}")
    rng = np.random.default_rng(0)

    def ops_for(batch):
        triples = []
        for kind, a, b in _operands(w, batch, rng):
            ca, cb = cupy.asarray(a, s.dtype), cupy.asarray(b, s.dtype)
            ca, cb = _as_product(kind, ca, cb, lambda t: t.T)
            triples.append((ca, cb, cupy.empty((ca.shape[0], cb.shape[1]), s.dtype)))
        return triples

    return _loop_floor(w, ops_for, cupy.matmul, cupy.cuda.Device().synchronize)


def _jax_floor(w: Workload, s: ReferenceSettings) -> float:
    import jax
    import jax.numpy as jnp

    try:
        device = jax.devices(s.device)[0]
    except RuntimeError as exc:
        raise Skip(f"jax has no {s.device} device here: {exc}") from None
    if s.dtype == "float64":
        raise Skip("float64 needs jax_enable_x64")
    if s.dtype == "float32":
        jax.config.update("jax_default_matmul_precision", "highest")
    dtype, rng = jnp.dtype(s.dtype), np.random.default_rng(0)
    kinds = [kind for kind, *_ in step_gemms(w)]

    def body(carry, ops):
        nudge = carry * 1e-30
        for kind, (a, b) in zip(kinds, ops, strict=True):
            if kind == "grad_w":  # the batch-side operand is delta, stored as b
                b = b + nudge.astype(b.dtype)
            else:  # fwd: the batch rows x; grad_x: delta; both stored as a
                a = a + nudge.astype(a.dtype)
            x, y = _as_product(kind, a, b, lambda t: t.T)
            carry = carry + jnp.sum(x @ y, dtype=jnp.float32) * 1e-30
        return carry, None

    def run_steps(ops, carry, length):
        return jax.lax.scan(lambda c, _: body(c, ops), carry, None, length=length)[0]

    epoch = jax.jit(run_steps, static_argnames="length")
    steps = _steps(w)
    n_full, rest = steps.count(w.batch_size), [b for b in steps if b != w.batch_size]

    def put(host):
        return jax.device_put(jnp.asarray(host, dtype), device)

    def device_ops(batch):
        return [(put(a), put(b)) for _, a, b in _operands(w, batch, rng)]

    full_ops, rest_ops = device_ops(w.batch_size), [device_ops(b) for b in rest]
    carry = jax.device_put(jnp.zeros((), jnp.float32), device)
    jax.block_until_ready(epoch(full_ops, carry, length=n_full))  # compiles; length is static
    jax.block_until_ready([epoch(ops, carry, length=1) for ops in rest_ops])
    t0 = time.perf_counter()
    carry = epoch(full_ops, carry, length=n_full)
    for ops in rest_ops:
        carry = epoch(ops, carry, length=1)
    jax.block_until_ready(carry)
    return time.perf_counter() - t0


_LIBRARIES = {"cpu": ("numpy", "torch", "jax"), "gpu": ("torch", "jax", "cupy")}
_MEASURE = {"numpy": _numpy_floor, "torch": _torch_floor, "jax": _jax_floor, "cupy": _cupy_floor}


def measure_gemm_floor(w: Workload, library: str, settings: ReferenceSettings) -> dict[str, Any]:
    """``{"epoch_s", "gflops"}`` of one epoch of the step's GEMMs in ``library``, or
    ``{"skipped": reason}`` where the library cannot run them here."""
    try:
        seconds = _MEASURE[library](w, settings)
    except (Skip, ImportError) as exc:
        return {"skipped": str(exc)}
    return {"epoch_s": seconds, "gflops": flops_per_epoch(w) / seconds / 1e9}


def run_floor(w: Workload, s: ReferenceSettings) -> dict[str, Any]:
    """The floor contender: every library of the device kind; the floor is the fastest."""
    meter, t0 = CpuMeter(), time.perf_counter()
    libraries = {lib: measure_gemm_floor(w, lib, s) for lib in _LIBRARIES[s.device]}
    meter.mark()
    timed = {lib: r["epoch_s"] for lib, r in libraries.items() if "epoch_s" in r}
    if not timed:
        raise Skip(f"no library could run the GEMMs here: {libraries}")
    fastest = min(timed, key=timed.__getitem__)
    return {
        "epoch_s": timed[fastest],
        "fastest": fastest,
        "flops_per_epoch": flops_per_epoch(w),
        "gflops": flops_per_epoch(w) / timed[fastest] / 1e9,
        "libraries": libraries,
        "foreign_cpu_s": meter.foreign[0],
        "foreign_window_s": time.perf_counter() - t0,
        "versions": distribution_versions("numpy", "torch", "jax", "cupy-cuda12x"),
    }


CONTENDERS = {"floor": run_floor}
