"""`Backend`'s precision and determinism switches and its run-manifest record.

These settings are process-global in every library (JAX config, torch globals, CuPy's compute
type, environment variables): they affect every backend object of that library in the process,
not one device. `BackendSettings.precision` and `BackendSettings.determinism` are context
managers that put the previous settings back on exit. The per-library work is done by the
`Library` hooks ``precision_settings``/``set_precision``/``restore_precision`` and
``determinism_settings``/``set_deterministic``/``restore_determinism``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import BackendError, BackendUnavailableError

__all__ = ["PRECISION_MODES", "BackendSettings", "as_record", "distribution_version"]

PRECISION_MODES = ("default", "float32", "float64", "fast")


def distribution_version(name: str) -> str:
    """The installed version of distribution ``name``, or "not installed"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def as_record(settings: Mapping[str, Any]) -> dict[str, str]:
    """Settings as a JSON-ready ``{str: str}`` record (None reads "None")."""
    return {str(key): str(value) for key, value in settings.items()}


class BackendSettings:
    """Mixin of `Backend` (which provides ``name``, ``device``, ``device_name``, ``library``)."""

    name: str
    device: Any
    device_name: str
    library: Any

    # -- precision, determinism and the run manifest -------------------------------------------
    def set_precision(self, mode: str) -> dict[str, str]:
        """Set the library's matmul precision for this process; return what was set.

        Parameters
        ----------
        mode : {"default", "float32", "float64", "fast"}
            "default": the library's own defaults, as in a fresh process. "float32": no TF32 or
            other reduced-precision float32 matmuls. "float64": the same, and float64 made
            computable (JAX: ``jax_enable_x64``). "fast": TF32 (or bf16 passes) where the device
            has them. The model's dtype is chosen separately.

        Returns
        -------
        dict of str to str
            JSON-ready: ``mode``, the library's settings read back after the switch, and notes,
            e.g. ``{"mode": "float32", "jax_default_matmul_precision": "highest", ...}``.

        Raises
        ------
        BackendError
            ``mode`` is not one of the allowed modes.
        BackendUnavailableError
            "float64" on a backend or device without float64.
        """
        if mode not in PRECISION_MODES:
            raise BackendError(
                f"precision mode {mode!r} is not known; expected one of {list(PRECISION_MODES)}"
            )
        if mode == "float64" and not self.library.supports_dtype("float64"):
            raise BackendUnavailableError(
                f"backend {self.name!r} on {self.device_name} cannot compute in float64; use "
                f"precision 'float32' (or 'default', 'fast') here, or a backend and device with "
                f"float64 (e.g. 'numpy', or 'jax' on cpu)"
            )
        notes = self.library.set_precision(mode, self.device)
        self.library._precision_mode = mode
        return {"mode": mode, **as_record(self.library.precision_settings(self.device)), **notes}

    @contextlib.contextmanager
    def precision(self, mode: str) -> Iterator[dict[str, str]]:
        """`set_precision` for the ``with`` block; the previous settings come back on exit."""
        saved = self.library.precision_settings(self.device)
        saved_mode = self.library._precision_mode
        try:
            yield self.set_precision(mode)
        finally:
            self.library.restore_precision(saved, self.device)
            self.library._precision_mode = saved_mode

    def set_deterministic(self, flag: bool) -> dict[str, str]:
        """Ask the library for reproducible kernels (True) or allow faster ones (False).

        Process-global like `set_precision`; some settings only take effect before the library
        starts its GPU runtime, and the record says so where that was too late. Returns a
        JSON-ready record: ``deterministic``, the settings read back, and notes.
        """
        if not isinstance(flag, bool):
            raise BackendError(f"deterministic must be True or False, received {flag!r}")
        notes = self.library.set_deterministic(flag, self.device)
        self.library._deterministic = flag
        settings = as_record(self.library.determinism_settings(self.device))
        return {"deterministic": str(flag), **settings, **notes}

    @contextlib.contextmanager
    def determinism(self, flag: bool = True) -> Iterator[dict[str, str]]:
        """`set_deterministic` for the ``with`` block; the previous settings come back on exit."""
        saved = self.library.determinism_settings(self.device)
        saved_flag = self.library._deterministic
        try:
            yield self.set_deterministic(flag)
        finally:
            self.library.restore_determinism(saved, self.device)
            self.library._deterministic = saved_flag

    def info(self) -> dict[str, Any]:
        """A JSON-ready description of this backend for a run manifest.

        Backend, device (and its model where cheap to ask), library and version, the versions of
        Python, NumPy, array-api-compat and this project ("backprop-xp"), the platform, and the
        current precision and determinism settings (``mode``/``deterministic`` say what was last
        set through a `Backend`, "unset" when nothing was).
        """
        lib = self.library
        try:
            description = lib.describe_device(self.device)
        except Exception as exc:  # a description is optional; never fail a run over it
            description = f"unknown ({type(exc).__name__}: {exc})"
        mode = lib._precision_mode or "unset"
        flag = "unset" if lib._deterministic is None else str(lib._deterministic)
        return {
            "backend": self.name,
            "device": self.device_name,
            "device_description": description,
            "library": lib.import_name or lib.name,
            "library_version": lib.version(),
            "python": platform.python_version(),
            "numpy": distribution_version("numpy"),
            "array_api_compat": distribution_version("array-api-compat"),
            "backprop_xp": distribution_version("backprop-xp"),
            "platform": platform.platform(),
            "precision": {"mode": mode, **as_record(lib.precision_settings(self.device))},
            "deterministic": {
                "deterministic": flag,
                **as_record(lib.determinism_settings(self.device)),
            },
        }
