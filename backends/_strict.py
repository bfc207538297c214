"""array-api-strict: the reference namespace that rejects anything outside the standard.

Not for speed: running the whole training here proves ``backprop`` uses only the Array API.
"""

from __future__ import annotations

from typing import Any

from ._base import Library


class StrictLibrary(Library):
    name = "array_api_strict"
    import_name = "array_api_strict"
    extra = "strict"

    def namespace(self) -> Any:
        import array_api_strict as xp

        return xp

    def cpu_device(self) -> Any:
        import array_api_strict as xp

        return xp.Device("CPU_DEVICE")

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        return np.from_dlpack(x)

    def quiet_float_errors(self) -> Any:
        import numpy as np

        return np.errstate(over="ignore", invalid="ignore", divide="ignore")
