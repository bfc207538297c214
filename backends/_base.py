"""The `Backend` value and the per-library `Library` adapter it delegates to.

A backend module (``_numpy.py``, ``_jax.py``, ...) defines one `Library` subclass: how to probe
the library, build its Array API namespace, resolve a device string, move host data in and out,
wait for queued work and compile a pure function. `Backend` binds one `Library` to one device and
is what the rest of the project passes around.

Precision and determinism switches (`Backend.set_precision`, `Backend.set_deterministic`) change
settings that are process-global in every library (JAX config, torch globals, CuPy's compute type,
environment variables): they affect every backend object of that library in the process, not one
device. `Backend.precision` and `Backend.determinism` are context managers that put the previous
settings back on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import BackendError, BackendUnavailableError, UnknownBackendError
from ._settings import BackendSettings

__all__ = [
    "Availability",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Library",
    "UnknownBackendError",
    "parse_device",
]

FLOAT_DTYPES = ("float32", "float64")
INDEX_DTYPES = (
    "int32",
)  # batch indices; int32 is the one integer type every backend has by default
CUBLAS_WORKSPACE_CONFIG = ":4096:8"  # the value NVIDIA documents for reproducible cuBLAS results


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and why not.

    ``ok`` is True when the library imports and a trivial computation ran on its default device.
    ``reason`` says why not otherwise (not installed and which extra installs it, the CUDA error
    text, ...). ``version`` and ``devices`` are filled when the library imports.
    """

    ok: bool
    reason: str = ""
    version: str = ""
    devices: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.ok:
            return f"usable (version {self.version}; devices {', '.join(self.devices)})"
        return f"unusable: {self.reason}"


def parse_device(device: str | None) -> tuple[str, int | None]:
    """Split ``"cpu"``, ``"gpu"``, ``"gpu:N"`` into ``(kind, index)``; None means default."""
    if device is None:
        return ("default", None)
    text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind == "cuda":
        kind = "gpu"
    if kind not in ("cpu", "gpu") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise UnknownBackendError(
            f"device {device!r} is not understood; expected 'cpu', 'gpu' or 'gpu:N' "
            f"(N a device index, e.g. 'gpu:0')"
        )
    return (kind, int(index) if index else None)


def set_env(name: str, value: str | None) -> None:
    """Set environment variable ``name``, or remove it when ``value`` is None."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def cpu_description() -> str:
    """The CPU's model name where the OS says it cheaply (Linux), else its architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


class Library:
    """Adapter for one array library. Subclasses override what differs.

    Subclasses set ``name``, ``extra`` (the pip extra that installs the library) and
    ``auto_priority`` (lower is tried first by ``get_backend("auto")``; None: never auto).
    """

    name: str = ""
    extra: str = ""
    import_name: str = ""
    auto_priority: int | None = None
    # What `Backend` last set (None: never); process-global like the settings themselves.
    _precision_mode: str | None = None
    _deterministic: bool | None = None

    # -- discovery -----------------------------------------------------------------------------
    def probe(self) -> Availability:
        """Import the library and run a trivial computation; never raises."""
        try:
            module = self.import_module()
        except ImportError as exc:
            return Availability(False, self.not_installed_reason(exc))
        except Exception as exc:  # a broken install or environment (a bad settings variable)
            return Availability(False, self.import_failed_reason(exc))
        version = str(getattr(module, "__version__", ""))
        try:
            devices = tuple(self.list_devices())
            self.smoke_test()
        except Exception as exc:  # the library's own error types vary; report their text
            return Availability(False, self.no_device_reason(exc), version=version)
        return Availability(True, "", version=version, devices=devices)

    def import_module(self) -> Any:
        import importlib

        return importlib.import_module(self.import_name or self.name)

    def not_installed_reason(self, exc: BaseException) -> str:
        hint = (
            f"pip install 'backprop-xp[{self.extra}]'" if self.extra else f"pip install {self.name}"
        )
        return f"{self.name} is not installed ({exc}); install it with: {hint}"

    def import_failed_reason(self, exc: BaseException) -> str:
        return f"{self.name} is installed but failed to import: {type(exc).__name__}: {exc}"

    def no_device_reason(self, exc: BaseException) -> str:
        return f"{self.name} is installed but cannot compute: {type(exc).__name__}: {exc}"

    def list_devices(self) -> Sequence[str]:
        return ["cpu"]

    def smoke_test(self) -> None:
        xp = self.namespace()
        x = xp.asarray([1.0, 2.0], dtype=xp.float32)
        float(xp.sum(x * x))

    # -- the namespace and devices -------------------------------------------------------------
    def namespace(self) -> Any:
        raise NotImplementedError

    def resolve_device(self, kind: str, index: int | None) -> tuple[Any, str]:
        """Return (library device object, canonical device string) for a parsed device."""
        if kind in ("default", "cpu"):
            return (self.cpu_device(), "cpu")
        raise UnknownBackendError(
            f"backend {self.name!r} has no device {kind}{'' if index is None else f':{index}'}; "
            f"it runs on: {', '.join(self.list_devices())}"
        )

    def cpu_device(self) -> Any:
        return "cpu"

    def supports_dtype(self, dtype: str) -> bool:
        return dtype in FLOAT_DTYPES

    # Low-precision float types the library computes in (mixed precision: float32 master
    # weights, `backprop.training._mixed`); NumPy and array-api-strict have none.
    compute_dtypes: tuple[str, ...] = ()

    def prepare_dtype(self, dtype: str) -> None:
        """Hook run before arrays of ``dtype`` are made (JAX enables x64 here)."""

    # -- precision and determinism (process-global switches) -----------------------------------
    # The defaults fit exact CPU libraries (NumPy, array-api-strict): float32 and float64 matmuls
    # are IEEE BLAS calls with no reduced-precision mode, and results repeat run to run for a
    # fixed BLAS thread count. Libraries with switches override all four hooks of a kind.
    def precision_settings(self, device: Any) -> dict[str, Any]:
        """The library's current precision settings, read back from it."""
        return {"matmul": "IEEE float32/float64 (no reduced-precision mode to switch)"}

    def set_precision(self, mode: str, device: Any) -> dict[str, str]:
        """Apply precision ``mode`` (validated by `Backend`); return notes on what it did."""
        return {}

    def restore_precision(self, settings: Mapping[str, Any], device: Any) -> None:
        """Put back settings returned by `precision_settings`."""

    def determinism_settings(self, device: Any) -> dict[str, Any]:
        """The library's current determinism settings, read back from it."""
        return {"kernels": "deterministic run to run (CPU; fixed BLAS thread count)"}

    def set_deterministic(self, flag: bool, device: Any) -> dict[str, str]:
        """Ask for reproducible kernels (or allow faster ones); return notes on what it did."""
        return {}

    def restore_determinism(self, settings: Mapping[str, Any], device: Any) -> None:
        """Put back settings returned by `determinism_settings`."""

    # -- versions and description for a run manifest -------------------------------------------
    def version(self) -> str:
        """The library's version, "not installed", or why its import failed; never raises."""
        try:
            module = self.import_module()
        except ImportError:
            return "not installed"
        except Exception as exc:  # a broken install (missing CUDA libraries, ...)
            return f"import failed: {type(exc).__name__}: {exc}"
        return str(getattr(module, "__version__", "unknown"))

    def describe_device(self, device: Any) -> str:
        """A short description of ``device`` (GPU model, CPU); cheap to compute."""
        return cpu_description()

    # -- data movement and execution -----------------------------------------------------------
    def asarray(self, xp: Any, host: Any, dtype: Any, device: Any) -> Any:
        # Always a copy: sharing the host array's memory (NumPy, torch on the CPU) would let a
        # later write to the user's array change the data (and torch warns on read-only input).
        return xp.asarray(host, dtype=dtype, device=device, copy=True)

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(x)

    def synchronize(self, device: Any, values: tuple[Any, ...]) -> None:
        """Block until queued work on ``device`` (and producing ``values``) is done.

        A no-op for eager CPU libraries.
        """

    # Whether `compile` really compiles (JAX): compiled steps are then worth caching, and a
    # whole epoch as one `scan` saves a dispatch per step.
    compiles: bool = False
    # Whether `compile(..., donate_argnums)` lets the output reuse the donated inputs' memory
    # (which invalidates those inputs).
    donates: bool = False

    def compile(self, fn: Callable, donate_argnums: tuple[int, ...] = ()) -> Callable:
        """Compile a pure function; identity unless the library has a tracer (JAX)."""
        return fn

    def take_rows(self, xp: Any, x: Any, idx: Any, device: Any) -> Any:
        """Rows ``idx`` (B,) of ``x`` (N, ...); the indices are in range and non-negative."""
        return xp.take(x, idx, axis=0)

    def process_rows(self, device: Any, n_rows: int) -> tuple[int, int]:
        """``(start, stop)``: the rows of a batch of ``n_rows`` this process provides (all of
        them unless several processes share a mesh)."""
        return 0, n_rows

    def batch_asarray(self, xp: Any, host: Any, dtype: Any, device: Any, n_rows: int) -> Any:
        """A batch of ``n_rows`` rows on the device from this process's rows ``host`` (its
        `process_rows` share): a plain `asarray` on one process."""
        return self.asarray(xp, host, dtype, device)

    def resolve_devices(self, kind: str, index: int | None, devices: Any) -> tuple[Any, str]:
        """The placement (what `asarray` and ``device=`` receive) and name for data-parallel
        training over ``devices`` ("all" or a count); only JAX shards."""
        raise BackendError(
            f"devices={devices!r}: data-parallel training over several devices needs the jax "
            f"backend (JAX's sharding); {self.name!r} runs on one device. Use backend 'jax', or "
            "leave devices unset"
        )

    def n_devices(self, device: Any) -> int:
        """How many devices a placement spans (1 unless sharded)."""
        return 1

    def process_index(self) -> int:
        """This process's index in a multi-process run (0 when there is one process)."""
        return 0

    def placement_name(self, device: Any) -> str:
        """The ``device_name`` of a multi-device placement (``resolve_devices``'s second value)."""
        raise NotImplementedError

    def scan(self, xp: Any, body: Callable, carry: Any, xs: tuple[Any, ...]) -> tuple[Any, Any]:
        """``body(carry, x) -> (carry, y)`` over the leading axis of every array in ``xs``;
        returns the last carry and the ``y`` (0-d arrays) stacked. A Python loop here; one
        compiled loop where the library has one (``jax.lax.scan``)."""
        ys = []
        for i in range(int(xs[0].shape[0])):
            carry, y = body(carry, tuple(x[i, ...] for x in xs))
            ys.append(y)
        return carry, xp.stack(ys)

    def quiet_float_errors(self) -> contextlib.AbstractContextManager:
        """A context in which overflow and invalid results give inf/NaN without warnings.

        The fit loop trains inside it and checks finiteness itself (its NaN guard), so a
        diverging run ends with `TrainingDiverged` and the last good parameters, not with a
        NumPy RuntimeWarning (an error under ``-W error``). Only NumPy-based libraries warn.
        """
        return contextlib.nullcontext()


@dataclasses.dataclass(frozen=True, eq=False)
class Backend(BackendSettings):
    """One array library on one device, with its Array API namespace ``xp``.

    Attributes
    ----------
    name : str
        Registry name: "numpy", "cupy", "jax", "torch" or "array_api_strict".
    xp : module
        The Array API namespace all of ``backprop`` computes with.
    device : object
        The library's device object (``jax.Device``, ``torch.device``, ...).
    device_name : str
        The canonical device string, "cpu" or "gpu:N".
    """

    name: str
    xp: Any
    device: Any
    device_name: str
    library: Library = dataclasses.field(repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return (self.name, self.device_name) == (other.name, other.device_name)

    def __hash__(self) -> int:
        return hash((self.name, self.device_name))

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device_name!r})"

    def dtype(self, dtype: Any) -> Any:
        """The namespace's dtype for a name ("float32", "float64") or a dtype of this namespace."""
        if not isinstance(dtype, str):
            return dtype
        if dtype in INDEX_DTYPES or dtype in self.library.compute_dtypes:
            return getattr(self.xp, dtype)
        if dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"dtype {dtype!r} is not supported; expected one of {list(FLOAT_DTYPES)}"
            )
        if not self.library.supports_dtype(dtype):
            raise BackendUnavailableError(
                f"backend {self.name!r} on {self.device_name} does not support {dtype}; "
                f"use float32 or another backend"
            )
        self.library.prepare_dtype(dtype)
        return getattr(self.xp, dtype)

    def supports_dtype(self, dtype: str) -> bool:
        return self.library.supports_dtype(dtype)

    def asarray(self, host: Any, dtype: Any = "float32") -> Any:
        """Copy a host (NumPy) array or nested list to this backend's device, as ``dtype``."""
        return self.library.asarray(self.xp, host, self.dtype(dtype), self.device)

    def to_numpy(self, x: Any) -> Any:
        """Copy a backend array to a host NumPy array."""
        return self.library.to_numpy(x)

    def synchronize(self, *values: Any) -> None:
        """Block until queued work on this device has finished (for timing).

        JAX has no device-wide barrier: pass the arrays (or pytrees) whose computation to wait for.
        """
        self.library.synchronize(self.device, values)

    @property
    def compiles(self) -> bool:
        """True when `compile` compiles (JAX); False when it returns the function unchanged."""
        return self.library.compiles

    @property
    def donates(self) -> bool:
        """True when `compile`'s ``donate_argnums`` invalidate the donated input arrays."""
        return self.library.donates

    @property
    def process_index(self) -> int:
        """0, or this process's index after ``initialize_distributed`` (JAX): only process 0
        writes run directories."""
        return self.library.process_index()

    @property
    def n_devices(self) -> int:
        """Devices the backend trains on: 1, or the size of its data-parallel mesh (JAX)."""
        return self.library.n_devices(self.device)

    def compile(self, fn: Callable, donate_argnums: tuple[int, ...] = ()) -> Callable:
        """Compile a pure function for this backend (``jax.jit`` on JAX; identity elsewhere).

        ``donate_argnums``: positions of arguments whose buffers the result may reuse; on a
        backend that `donates`, those input arrays are invalid after the call.
        """
        return self.library.compile(fn, donate_argnums=donate_argnums)

    def process_rows(self, n_rows: int) -> tuple[int, int]:
        """``(start, stop)``: which rows of a batch of ``n_rows`` this process reads from a
        data source. ``(0, n_rows)`` except in a multi-process JAX run, where each process
        reads only the rows its own devices hold (`batch_asarray` joins the shares)."""
        return self.library.process_rows(self.device, n_rows)

    def batch_asarray(self, host: Any, dtype: Any, n_rows: int) -> Any:
        """A batch of ``n_rows`` rows as ``dtype`` on the device, from this process's share
        ``host`` (rows `process_rows` of it): `asarray` on one device; on a data-parallel
        JAX mesh, sharded over the devices along the rows
        (``jax.make_array_from_process_local_data``)."""
        return self.library.batch_asarray(self.xp, host, self.dtype(dtype), self.device, n_rows)

    def take_rows(self, x: Any, idx: Any) -> Any:
        """Rows ``idx`` (B,) of ``x`` (N, ...), gathered on the device: ``xp.take(x, idx,
        axis=0)`` for in-range, non-negative ``idx`` (the batch gather of every step). On a
        data-parallel JAX backend the rows are sharded over the devices (batch axis)."""
        return self.library.take_rows(self.xp, x, idx, self.device)

    def scan(self, body: Callable, carry: Any, xs: tuple[Any, ...]) -> tuple[Any, Any]:
        """Run ``body(carry, x) -> (carry, y)`` for each row ``x`` (a tuple, one row of each
        array in ``xs``, leading axis S); return ``(carry, ys)`` with ``ys`` (S,) the stacked
        0-d ``y``. ``jax.lax.scan`` on JAX (inside `compile`, one compiled loop); a Python loop
        on the other backends."""
        return self.library.scan(self.xp, body, carry, xs)

    def quiet_float_errors(self) -> contextlib.AbstractContextManager:
        """Overflow and invalid operations give inf/NaN silently inside this context."""
        return self.library.quiet_float_errors()
