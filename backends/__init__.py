"""Backend selector: array libraries as values, chosen by name.

>>> import backends
>>> be = backends.get_backend("numpy")
>>> be.name, be.device_name
('numpy', 'cpu')
"""

from ._base import Availability, Backend, Library
from ._errors import BackendError, BackendUnavailableError, UnknownBackendError
from ._jax import initialize_distributed
from ._registry import (
    as_backend,
    available_backends,
    backend_of,
    get_backend,
    known_backends,
    library_versions,
    register_library,
)
from ._settings import PRECISION_MODES

__all__ = [
    "PRECISION_MODES",
    "Availability",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Library",
    "UnknownBackendError",
    "as_backend",
    "available_backends",
    "backend_of",
    "get_backend",
    "initialize_distributed",
    "known_backends",
    "library_versions",
    "register_library",
]
