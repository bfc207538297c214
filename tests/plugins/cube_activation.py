"""A plugin module for the tests: ``backprop train --import tests/plugins/cube_activation.py``.

Registers the activation "cube" (``a = scale * z**3 + z``, hyperparameter ``scale``) and the
layer "scale" (``y = factor * x``, no parameters), so a config can use
``activation = {name = "cube", scale = 0.5}`` and ``{type = "scale", factor = 2.0}``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from backprop.nn import activations, layers

ACTIVATION_NAMES = ("cube",)
LAYER_NAMES = ("scale",)


@activations.register("cube")
@dataclasses.dataclass(frozen=True, repr=False)
class Cube(activations.Activation):
    """a = scale * z**3 + z; f' = 3 * scale * z**2 + 1 (from z: not invertible from a)."""

    scale: float = 1.0
    needs_input: ClassVar[bool] = True

    def __post_init__(self) -> None:
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0:
            raise ValueError(f"activation 'cube': scale must be a number >= 0, received {s!r}")
        object.__setattr__(self, "scale", float(s))

    def forward(self, xp, z):
        return self.scale * z * z * z + z

    def derivative(self, xp, z, a):
        return 3.0 * self.scale * z * z + 1.0


@layers.register("scale")
@dataclasses.dataclass(frozen=True, repr=False)
class Scale(layers.Layer):
    """y = factor * x; no parameters; dx = factor * dy."""

    factor: float = 1.0

    @classmethod
    def examples(cls):
        return [(cls(2.0), (3,))]

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def init(self, input_shape, rng):
        return {}, tuple(input_shape)

    def forward(self, xp, params, x, *, train=False):
        return self.factor * x, None

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        return {}, self.factor * dy
