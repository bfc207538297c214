"""`Activation`: an elementwise (or softmax) function as a layer of its own, ``a = f(x)``."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..activations import get_activation
from ._base import ActivationCache, Layer, register

__all__ = ["Activation"]


@register("activation")
@dataclasses.dataclass(frozen=True, repr=False)
class Activation(Layer):
    """``a = f(x)`` for any registered activation (a name, spec or instance); shapes unchanged.

    Backward: ``dx = f'(x) * dy`` (softmax: its Jacobian-vector product), f' from the cached
    output where it can be. No parameters. As the last layer it can be fused with a
    cross-entropy loss like a `Dense` layer's activation.
    """

    activation: Any = "identity"

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation))

    @classmethod
    def examples(cls):
        return [(cls("sigmoid"), (3,)), (cls({"name": "leaky_relu", "slope": 0.2}), (4,))]

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def init(self, input_shape, rng):
        return {}, tuple(input_shape)

    def forward(self, xp, params, x, *, train=False):
        a = self.activation.forward(xp, x)
        return a, ActivationCache(x=x, z=x, a=a)

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        return {}, self.activation.vjp(xp, cache.z, cache.a, dy) if need_dx else None

    def backward_z(self, xp, params, cache, dz, *, need_dx=True):
        """From ``dz = dJ/dx`` (this layer's input is the pre-activation) nothing is left to do."""
        return {}, dz
