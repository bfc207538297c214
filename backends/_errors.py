"""The errors backend selection raises."""

from __future__ import annotations

__all__ = ["BackendError", "BackendUnavailableError", "UnknownBackendError"]


class BackendError(ValueError):
    """Base class of backend selection errors."""


class UnknownBackendError(BackendError):
    """A backend or device name that is not known."""


class BackendUnavailableError(BackendError, RuntimeError):
    """A known backend that cannot run here (not installed, no device, ...)."""
