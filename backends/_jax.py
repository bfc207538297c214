"""JAX on CPU or GPU. ``compile`` is ``jax.jit`` (with buffer donation, and without XLA:CPU's
YNNPACK fusions so an ensemble rounds like its members alone: `_compiler_options`), ``scan``
is ``jax.lax.scan``; float64 turns on ``jax_enable_x64``.

Precision (process-global JAX config, part of the jit cache key, so compiled steps retrace):

- "float32", "float64": ``jax_default_matmul_precision = "highest"``: true float32 dots (no TF32
  on GPU, 6 bf16 passes on TPU); "float64" also sets ``jax_enable_x64``.
- "fast": ``"tensorfloat32"`` (``Precision.HIGH``): TF32 tensor cores on Ampere and later NVIDIA
  GPUs, 3 bf16 passes on TPU. Chosen over ``"bfloat16"`` (one bf16 pass on TPU; the same TF32
  on GPU) because its name says what it does on the GPUs this project targets.
- "default": ``None``, JAX's own default (``Precision.DEFAULT``: TF32 where the GPU has it).

On CPU every setting computes float32 dots in float32. Determinism: XLA reads
``--xla_gpu_deterministic_ops`` from ``XLA_FLAGS`` once, when its backends start (the first
``jax.devices()``, which selecting this backend already did); the record says whether the flag
was in force or came too late, in which case set it in the environment before starting Python.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._base import Library, UnknownBackendError, cpu_description, set_env

_MATMUL_PRECISION = {
    "default": None,
    "float32": "highest",
    "float64": "highest",
    "fast": "tensorfloat32",
}
_DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops"


def _flag_on(text: str) -> bool:
    """``--flag``, ``--flag=true`` or ``--flag=1`` are on; ``--flag=false`` is off."""
    return text.partition("=")[2].lower() in ("", "true", "1")


def _platform(device: Any) -> str:
    """ "cpu" or "gpu" of a device, or of the devices of a sharding's mesh."""
    mesh = getattr(device, "mesh", None)
    return str((device if mesh is None else mesh.devices.flat[0]).platform)


def _backends_started() -> bool:
    """Whether XLA's backends (and so their flags) are already initialized in this process."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this private helper: assume started
        return True


class JaxLibrary(Library):
    name = "jax"
    import_name = "jax"
    extra = "jax"
    auto_priority = 20  # only when a GPU is present, see auto_ok
    compute_dtypes = ("bfloat16", "float16")  # mixed precision (backprop.training._mixed)

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

    def resolve_devices(self, kind: str, index: int | None, devices: Any) -> tuple[Any, str]:
        """A replicated `NamedSharding` over a one-axis ("data") `Mesh` of ``devices`` devices
        of the platform ``kind`` names (every process's devices after
        ``jax.distributed.initialize``)."""
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        if index is not None:
            raise UnknownBackendError(
                f"devices={devices!r} takes a device kind ('cpu' or 'gpu'), not one device "
                f"'{kind}:{index}'; drop the index"
            )
        platform = ("gpu" if self._devices("gpu") else "cpu") if kind == "default" else kind
        found = self._devices(platform)
        count = len(found) if devices == "all" else devices
        if not found or count > len(found):
            raise UnknownBackendError(
                f"devices={devices!r} asks for {count} {platform} device(s) but jax has "
                f"{len(found)}; use devices='all' or at most {len(found)} (on the CPU, "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N before starting Python "
                "makes N devices)"
            )
        placement = NamedSharding(Mesh(np.array(found[:count]), ("data",)), PartitionSpec())
        return placement, self.placement_name(placement)

    def process_index(self) -> int:
        import jax

        return int(jax.process_index())

    def placement_name(self, device: Any) -> str:
        return f"{_platform(device)} x{self.n_devices(device)}"

    def n_devices(self, device: Any) -> int:
        mesh = getattr(device, "mesh", None)
        return 1 if mesh is None else int(mesh.size)

    def process_rows(self, device: Any, n_rows: int) -> tuple[int, int]:
        mesh = getattr(device, "mesh", None)
        if mesh is None or mesh.size == 1:
            return 0, n_rows
        import jax

        if jax.process_count() == 1:
            return 0, n_rows
        spans = _rows_sharding(mesh).addressable_devices_indices_map((n_rows,)).values()
        starts = [s[0].start or 0 for s in spans]
        stops = [n_rows if s[0].stop is None else s[0].stop for s in spans]
        return min(starts), max(stops)  # this process's devices hold consecutive rows

    def batch_asarray(self, xp: Any, host: Any, dtype: Any, device: Any, n_rows: int) -> Any:
        mesh = getattr(device, "mesh", None)
        if mesh is None or mesh.size == 1:
            return self.asarray(xp, host, dtype, device)
        import jax
        import numpy as np

        local = np.array(host, dtype=dtype, copy=True)  # private: the transfer may be async
        shape = (n_rows, *local.shape[1:])
        return jax.make_array_from_process_local_data(_rows_sharding(mesh), local, shape)

    def take_rows(self, xp: Any, x: Any, idx: Any, device: Any) -> Any:
        rows = xp.take(x, idx, axis=0)
        mesh = getattr(device, "mesh", None)
        if mesh is None or mesh.size == 1:
            return rows
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        # Data parallelism: each device gets its share of the batch's rows; parameters stay
        # replicated, so XLA sums the gradient contributions across devices (an all-reduce).
        return jax.lax.with_sharding_constraint(rows, NamedSharding(mesh, PartitionSpec("data")))

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

        # A private copy: device_put may read the host buffer after returning (asynchronous
        # transfer, or zero-copy on the CPU), so the user's array must not be handed over.
        return jax.device_put(np.array(host, dtype=dtype, copy=True), device)

    def synchronize(self, device: Any, values: tuple[Any, ...]) -> None:
        import jax

        jax.block_until_ready(values)
        jax.effects_barrier()

    compiles = True
    donates = True

    def compile(self, fn: Callable, donate_argnums: tuple[int, ...] = ()) -> Callable:
        """``jax.jit`` with `_compiler_options` (no YNNPACK fusions, see there)."""
        import jax

        options = _compiler_options()
        if not options:
            return jax.jit(fn, donate_argnums=donate_argnums)
        return jax.jit(fn, donate_argnums=donate_argnums, compiler_options=options)

    def scan(self, xp: Any, body: Callable, carry: Any, xs: tuple[Any, ...]) -> tuple[Any, Any]:
        import jax

        return jax.lax.scan(body, carry, xs)

    def describe_device(self, device: Any) -> str:
        mesh = getattr(device, "mesh", None)
        if mesh is not None:
            first = mesh.devices.flat[0]
            return f"{mesh.size} x {self.describe_device(first)}"
        return cpu_description() if device.platform == "cpu" else str(device.device_kind)

    # -- precision and determinism -------------------------------------------------------------
    def precision_settings(self, device: Any) -> dict[str, Any]:
        import jax

        return {
            "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
            "jax_enable_x64": jax.config.jax_enable_x64,
            "platform": _platform(device),
        }

    def set_precision(self, mode: str, device: Any) -> dict[str, str]:
        import jax

        jax.config.update("jax_default_matmul_precision", _MATMUL_PRECISION[mode])
        if mode == "float64":
            jax.config.update("jax_enable_x64", True)
        if _platform(device) == "cpu":
            return {"effect": "XLA:CPU computes float32 dots in float32 at every setting"}
        return {}

    def restore_precision(self, settings: Mapping[str, Any], device: Any) -> None:
        import jax

        jax.config.update("jax_default_matmul_precision", settings["jax_default_matmul_precision"])
        jax.config.update("jax_enable_x64", settings["jax_enable_x64"])

    def determinism_settings(self, device: Any) -> dict[str, Any]:
        return {"XLA_FLAGS": os.environ.get("XLA_FLAGS")}

    def set_deterministic(self, flag: bool, device: Any) -> dict[str, str]:
        flags = os.environ.get("XLA_FLAGS", "").split()
        others = [f for f in flags if f.partition("=")[0] != _DETERMINISTIC_FLAG]
        present = any(_flag_on(f) for f in flags if f not in others)
        if flag != present and not _backends_started():
            set_env(
                "XLA_FLAGS",
                " ".join([*others, f"{_DETERMINISTIC_FLAG}=true"] if flag else others) or None,
            )
            status = (
                f"{'on: added to' if flag else 'off: removed from'} XLA_FLAGS before XLA started"
            )
        elif flag == present:
            status = "on (in XLA_FLAGS)" if flag else "off"
        elif flag:
            status = (
                "not applied: XLA's backends already started without it; set "
                f"XLA_FLAGS={_DETERMINISTIC_FLAG}=true in the environment before starting Python"
            )
        else:
            status = "still on: XLA's backends started with it; it cannot be turned off now"
        notes = {"xla_gpu_deterministic_ops": status}
        if _platform(device) == "cpu":
            notes["effect"] = "the flag concerns XLA:GPU only; this backend runs on the CPU"
        return notes

    def restore_determinism(self, settings: Mapping[str, Any], device: Any) -> None:
        set_env("XLA_FLAGS", settings["XLA_FLAGS"])


_YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
_options_cache: list[dict[str, str]] = []


def _compiler_options() -> dict[str, str]:
    """``{"xla_cpu_experimental_ynn_fusion_type": ""}``: every compiled function runs without
    XLA:CPU's YNNPACK fusions, or ``{}`` where this jaxlib lacks the option or ``XLA_FLAGS``
    sets it (the user's choice stands). Probed once by compiling a trivial function.

    Why: XLA:CPU (jaxlib 0.10) hands some dots and reductions to YNNPACK depending on their
    shapes, and YNNPACK sums in another order than XLA's own emitters. An ensemble's bias
    gradient ``sum(dz, axis=-2)`` over (K, N, u) went to YNNPACK while a member's (N, u)
    stayed with XLA (rows added in order), and likewise for some of the dots, so member k and
    its solo fit differed by about an ulp per step, which SGD amplified to 7,585 ulps of the
    loss after 30 epochs (W3, benchmarks/README.md). Without YNNPACK both programs round the
    same way: members equal their solo fits bit for bit. The cost: the W3 ensemble's epochs
    take about 5-20% more CPU time on JAX (the solo fits about the same). A per-compile
    option, unlike ``XLA_FLAGS``, needs no restart and leaves other JAX code in the process
    alone; it names an XLA:CPU option, which XLA:GPU does not read."""
    if _options_cache:
        return _options_cache[0]
    import inspect

    import jax

    options = {_YNN_OPTION: ""}
    user = any(
        f.lstrip("-").partition("=")[0] == _YNN_OPTION
        for f in os.environ.get("XLA_FLAGS", "").split()
    )
    if user or "compiler_options" not in inspect.signature(jax.jit).parameters:
        options = {}
    else:
        try:
            jax.jit(lambda: 0, compiler_options=options).lower().compile()
        except Exception:  # "No such compile option" from a jaxlib without YNNPACK fusions
            options = {}
    _options_cache.append(options)
    return options


def _rows_sharding(mesh: Any) -> Any:
    """Arrays split along their first axis (rows) over the mesh's "data" axis."""
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh, PartitionSpec("data"))


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join this process to a multi-process JAX run (``jax.distributed.initialize``), before
    any backend is selected: afterwards ``get_backend("jax", devices="all")`` spans every
    process's devices. Arguments left None are detected by JAX (SLURM, Open MPI, Kubernetes,
    or the ``JAX_COORDINATOR_ADDRESS`` environment variable). A second call does nothing."""
    import jax

    from ._errors import BackendError

    if jax.distributed.is_initialized():
        return
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    except (RuntimeError, ValueError) as exc:
        raise BackendError(
            f"jax.distributed.initialize failed: {exc}. Give coordinator_address "
            "('host:port' of process 0), num_processes and process_id, or run under a launcher "
            "JAX detects (SLURM, Open MPI, Kubernetes); call it before any JAX computation"
        ) from exc
