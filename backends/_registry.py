"""Backends by name: the registry, ``get_backend`` and ``available_backends``."""

from __future__ import annotations

import difflib
import functools
from typing import Any

from ._base import (
    Availability,
    Backend,
    BackendError,
    BackendUnavailableError,
    Library,
    UnknownBackendError,
    parse_device,
)
from ._cupy import CupyLibrary
from ._jax import JaxLibrary
from ._numpy import NumpyLibrary
from ._strict import StrictLibrary
from ._torch import TorchLibrary

__all__ = [
    "as_backend",
    "available_backends",
    "get_backend",
    "known_backends",
    "library_versions",
    "register_library",
]

_LIBRARIES: dict[str, Library] = {}


@functools.cache
def _probe(name: str) -> Availability:
    return _LIBRARIES[name].probe()


def register_library(library: Library) -> Library:
    """Add a backend; its ``name`` becomes selectable by ``get_backend``."""
    _LIBRARIES[library.name] = library
    _probe.cache_clear()
    return library


for _lib in (NumpyLibrary(), JaxLibrary(), TorchLibrary(), CupyLibrary(), StrictLibrary()):
    register_library(_lib)


def known_backends() -> list[str]:
    """Every registered backend name, usable here or not."""
    return list(_LIBRARIES)


def available_backends() -> dict[str, Availability]:
    """``{name: Availability}`` for every known backend, with the reason when not usable.

    The probe imports each library and runs one tiny computation, once per process.
    """
    return {name: _probe(name) for name in _LIBRARIES}


def library_versions() -> dict[str, str]:
    """``{name: version}`` for every known backend's library: "not installed" when missing.

    Imports each installed library (no device work), so it answers where a probe would fail.
    """
    return {name: library.version() for name, library in _LIBRARIES.items()}


def _unknown_name(name: str) -> UnknownBackendError:
    allowed = [*_LIBRARIES, "auto"]
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UnknownBackendError(f"unknown backend {name!r}: expected one of {allowed}{hint}")


def _usable_summary() -> str:
    usable = [n for n, a in available_backends().items() if a.ok]
    return f"usable backends here: {usable}" if usable else "no backend is usable here"


def _auto() -> str:
    ordered = sorted(
        (lib for lib in _LIBRARIES.values() if lib.auto_priority is not None),
        key=lambda lib: lib.auto_priority,
    )
    for lib in ordered:
        if _probe(lib.name).ok and getattr(lib, "auto_ok", lambda: True)():
            return lib.name
    raise BackendUnavailableError(f"get_backend('auto') found nothing usable; {_usable_summary()}")


def get_backend(name: str = "numpy", device: str | None = None, devices: Any = None) -> Backend:
    """Return the `Backend` called ``name`` on ``device``.

    Parameters
    ----------
    name : str
        "numpy", "cupy", "jax", "torch", "array_api_strict", or "auto" (the first usable of
        cupy, jax on a GPU, numpy).
    device : str, optional
        "cpu", "gpu" or "gpu:N"; the library's default device when omitted.
    devices : "all", int or None
        Data-parallel training over this many devices of ``device``'s kind ("all": every one,
        across all processes after ``jax.distributed.initialize``): JAX only. Parameters and
        data are replicated, each batch is sharded along its rows, and XLA averages the
        gradients. None or 1: one device.

    Raises
    ------
    UnknownBackendError
        ``name`` or ``device`` is not known.
    BackendUnavailableError
        The backend is known but cannot run here; the message gives the reason and the usable
        backends.
    """
    if name == "auto":
        name = _auto()
    if name not in _LIBRARIES:
        raise _unknown_name(name)
    kind, index = parse_device(device)
    availability = _probe(name)
    if not availability.ok:
        raise BackendUnavailableError(
            f"backend {name!r} is not usable: {availability.reason}. {_usable_summary()}"
        )
    library = _LIBRARIES[name]
    if devices is None or (devices == 1 and not isinstance(devices, bool)):
        device_obj, device_name = library.resolve_device(kind, index)
    else:
        _check_devices(devices)
        device_obj, device_name = library.resolve_devices(kind, index, devices)
    return Backend(name, library.namespace(), device_obj, device_name, library)


def _check_devices(devices: Any) -> None:
    if devices == "all" or (isinstance(devices, int) and not isinstance(devices, bool)):
        if devices == "all" or devices >= 1:
            return
    raise BackendError(f'devices must be "all" or an int >= 1, received {devices!r}')


def as_backend(backend: str | Backend) -> Backend:
    """A `Backend` passes through; a name goes to `get_backend` (default device)."""
    return backend if isinstance(backend, Backend) else get_backend(backend)


def backend_of(array: Any) -> Backend:
    """The `Backend` an array lives on: its library (by namespace) and its device.

    Raises `UnknownBackendError` for an array of a library no registered backend wraps.
    """
    from array_api_compat import array_namespace, device

    try:
        xp = array_namespace(array)
    except TypeError:
        raise UnknownBackendError(
            f"{type(array).__module__}.{type(array).__name__} is not an array of a known "
            f"backend ({known_backends()})"
        ) from None
    for name, library in _LIBRARIES.items():
        if _probe(name).ok and library.namespace() is xp:
            if library.n_devices(device(array)) > 1:  # a data-parallel (sharded) placement
                placement = device(array)
                return Backend(name, xp, placement, library.placement_name(placement), library)
            for candidate in _device_candidates(library):
                if str(candidate[0]) == str(device(array)):
                    return Backend(name, xp, candidate[0], candidate[1], library)
    raise UnknownBackendError(
        f"no usable backend holds a {type(array).__module__}.{type(array).__name__} on device "
        f"{device(array)}; usable: {[n for n, a in available_backends().items() if a.ok]}"
    )


def _device_candidates(library: Any) -> list[tuple[Any, str]]:
    found = [library.resolve_device("cpu", None)]
    for text in library.list_devices():
        if text != "cpu":
            kind, index = parse_device(text)
            found.append(library.resolve_device(kind, index))
    return found
