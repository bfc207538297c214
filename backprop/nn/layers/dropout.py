"""`Dropout`: inverted dropout with masks drawn on the host (the same units dropped on every
backend for the same seed)."""

from __future__ import annotations

import dataclasses
import numbers
from typing import ClassVar

from ._base import Layer, register

__all__ = ["Dropout"]


@register("dropout")
@dataclasses.dataclass(frozen=True, repr=False)
class Dropout(Layer):
    """During training ``y = x * m`` with ``m`` 0 (probability ``rate``) or ``1/(1-rate)``, so
    the expected output is unchanged and prediction needs no rescaling; identity otherwise.

    The mask (N, *shape) comes from ``train.mask()``: `backprop.fit` draws it on the host for
    every step (``numpy.random.Generator``), moves it to the device, and passes the masks of all
    dropout layers in forward order. Backward: ``dx = dy * m`` (a dropped unit passes no error).
    """

    rate: float = 0.5
    dropout: ClassVar[bool] = True

    def __post_init__(self) -> None:
        r = self.rate
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0 <= r < 1:
            raise ValueError(f"layer 'dropout': rate must be a number in [0, 1), received {r!r}")
        object.__setattr__(self, "rate", float(r))

    @classmethod
    def examples(cls):
        return [(cls(0.5), (4,)), (cls(0.25), (3, 2))]

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def init(self, input_shape, rng):
        return {}, tuple(input_shape)

    def forward(self, xp, params, x, *, train=False):
        mask = train.mask() if train and hasattr(train, "mask") else None
        if mask is None:
            return x, None
        return x * mask, mask

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        if not need_dx:
            return {}, None
        return {}, dy if cache is None else dy * cache
