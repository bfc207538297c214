"""`Residual`: the combinator ``y = x + block(x)`` around a list of layers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from ._base import Layer, build_layer, chain_shapes, register

__all__ = ["Residual"]


@register("residual")
@dataclasses.dataclass(frozen=True, repr=False)
class Residual(Layer):
    """``y = x + block(x)``, the block a list of layers run in order (layers or specs).

    Shapes: x and y (..., N, *input_shape); the block must map input_shape to itself.
    Params ``{"block": [p_0, p_1, ...]}``, one dict per block layer; its spec is
    ``{"type": "residual", "layers": [spec_0, ...]}``.

    Backward: the block's layers back from dy in reverse (each through its own ``backward``,
    which applies a built-in activation's f' before its linear part), and the identity path
    adds dy: dJ/dx = dy + dJ/dx through the block. L2, the diagnostics and dropout masks
    reach the block through the hooks below.
    """

    layers: Sequence[Any]
    stackable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        layers = self.layers
        if isinstance(layers, (str, dict, Layer)) or not isinstance(layers, Sequence):
            raise TypeError(
                f"layer 'residual': layers must be a list of layers or layer specs, "
                f"received {layers!r}; wrap one layer in a list: Residual([layer])"
            )
        if not layers:
            raise ValueError("layer 'residual': layers must hold at least one layer, received []")
        object.__setattr__(self, "layers", tuple(build_layer(layer) for layer in layers))

    @classmethod
    def examples(cls):
        from .conv1d import Conv1D
        from .dense import Dense
        from .dropout import Dropout
        from .layernorm import LayerNorm

        return [
            (cls([Dense(4, "tanh")]), (4,)),
            (cls([LayerNorm(), Dense(3, "sigmoid"), Dropout(0.25), Dense(3)]), (3,)),
            (cls([Conv1D(2, 3, padding="same", activation="tanh"), cls([LayerNorm()])]), (5, 2)),
        ]

    def _shapes(self, input_shape) -> list[tuple[int, ...]]:
        """The input shape of every block layer, then the block's output shape, which must
        equal its input shape."""
        shapes = chain_shapes(self.layers, input_shape, "residual block layer")
        if shapes[-1] != shapes[0]:
            raise ValueError(
                f"layer 'residual': its block maps input shape {shapes[0]} to {shapes[-1]}, but "
                "x + block(x) needs the same shape; make the block's last layer output "
                f"{shapes[0]} (e.g. Dense({shapes[0][-1]}) or Conv1D with padding='same')"
            )
        return shapes

    def output_shape(self, input_shape):
        return self._shapes(input_shape)[0]

    def init(self, input_shape, rng):
        shapes = self._shapes(input_shape)
        block = [layer.init(s, rng)[0] for layer, s in zip(self.layers, shapes, strict=False)]
        return {"block": block}, shapes[0]

    def forward(self, xp, params, x, *, train=False):
        h, caches = x, []
        for layer, p in zip(self.layers, params["block"], strict=True):
            h, cache = layer.forward(xp, p, h, train=train)
            caches.append(cache)
        return x + h, caches

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        grads: list[Any] = [None] * len(self.layers)
        signal = dy
        for i in range(len(self.layers) - 1, -1, -1):
            layer, p = self.layers[i], params["block"][i]
            grads[i], signal = layer.backward(xp, p, cache[i], signal, need_dx=need_dx or i > 0)
        return {"block": grads}, dy + signal if need_dx else None

    # -- the model's hooks, reaching into the block --
    def _pairs(self, tree):
        return zip(self.layers, tree["block"], strict=True)

    def penalty_arrays(self, params):
        return [v for layer, p in self._pairs(params) for v in layer.penalty_arrays(p)]

    def add_l2(self, xp, params, grads, l2):
        block = [
            layer.add_l2(xp, p, g, l2)
            for (layer, p), g in zip(self._pairs(params), grads["block"], strict=True)
        ]
        return {"block": block}

    def weight_arrays(self, tree):
        return [v for layer, t in self._pairs(tree) for v in layer.weight_arrays(t)]

    def stacked_shapes(self, input_shape, k):
        """Each block layer's own `stacked_shapes`: the block stacks when its layers do."""
        pairs = zip(self.layers, self._shapes(input_shape)[:-1], strict=True)
        return {"block": [layer.stacked_shapes(s, k) for layer, s in pairs]}

    def dropout_layers(self, input_shape):
        shapes = self._shapes(input_shape)
        return [
            pair
            for layer, shape in zip(self.layers, shapes, strict=False)
            for pair in layer.dropout_layers(shape)
        ]
