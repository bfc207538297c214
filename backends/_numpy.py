"""NumPy on the CPU, through array-api-compat's standard-conforming view of NumPy."""

from __future__ import annotations

from typing import Any

from ._base import Library


class NumpyLibrary(Library):
    name = "numpy"
    import_name = "numpy"
    auto_priority = 30

    def namespace(self) -> Any:
        import array_api_compat.numpy as xp

        return xp

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(x)

    def quiet_float_errors(self) -> Any:
        import numpy as np

        return np.errstate(over="ignore", invalid="ignore", divide="ignore")
