"""`Flatten` and `GlobalAveragePool1D`: from (length, channels) examples to feature vectors."""

from __future__ import annotations

import dataclasses

from ._base import Layer, register

__all__ = ["Flatten", "GlobalAveragePool1D"]


def _check_2d(name: str, input_shape) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise ValueError(
            f"layer '{name}' takes (length, channels) inputs, received input shape "
            f"{tuple(input_shape)}"
            + ("; the input is already flat: remove this layer" if len(input_shape) == 1 else "")
        )
    return tuple(input_shape)


@register("flatten")
@dataclasses.dataclass(frozen=True, repr=False)
class Flatten(Layer):
    """One example's (length, channels) as (length*channels,): merges the last two axes, so
    leading axes survive; row-major, so feature l*channels + c is x[l, c].

    Shapes: x (..., N, L, C), y (..., N, L*C). Backward: dJ/dx = dy reshaped to (..., N, L, C).
    Only (length, channels) inputs: with 1-D features (..., N, F) the layer could not tell the
    batch axis from a leading one, so it refuses them rather than guess.
    """

    @classmethod
    def examples(cls):
        return [(cls(), (3, 2)), (cls(), (1, 4))]

    def output_shape(self, input_shape):
        length, channels = _check_2d("flatten", input_shape)
        return (length * channels,)

    def init(self, input_shape, rng):
        return {}, self.output_shape(input_shape)

    def forward(self, xp, params, x, *, train=False):
        return xp.reshape(x, (*x.shape[:-2], x.shape[-2] * x.shape[-1])), tuple(x.shape[-2:])

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        return {}, xp.reshape(dy, (*dy.shape[:-1], *cache)) if need_dx else None


@register("global_average_pool1d")
@dataclasses.dataclass(frozen=True, repr=False)
class GlobalAveragePool1D(Layer):
    """The mean over the length axis: ``y[n, c] = (1/L) sum_l x[n, l, c]``.

    Shapes: x (..., N, L, C), y (..., N, C). Backward: every position gets an equal share,
    dJ/dx[n, l, c] = dy[n, c] / L.
    """

    @classmethod
    def examples(cls):
        return [(cls(), (4, 3)), (cls(), (1, 2))]

    def output_shape(self, input_shape):
        return (_check_2d("global_average_pool1d", input_shape)[1],)

    def init(self, input_shape, rng):
        return {}, self.output_shape(input_shape)

    def forward(self, xp, params, x, *, train=False):
        return xp.mean(x, axis=-2), x.shape[-2]

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        if not need_dx:
            return {}, None
        length = cache
        shape = (*dy.shape[:-1], length, dy.shape[-1])
        return {}, xp.broadcast_to(xp.expand_dims(dy / length, axis=-2), shape)
