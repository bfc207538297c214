"""Per-member values for K models stacked on a leading axis (an `backprop.Ensemble`).

A hyperparameter that differs between members (a learning rate, an L2 alpha, a weight decay)
is K numbers; to scale a stacked leaf of shape (K, d_1, ..., d_m) member by member they are
reshaped to (K, 1, ..., 1). `PerMember` does that at the point of use, so the one-model
formulas (``p - lr * g``, ``g + l2 * W``, ``1.0 - lr * wd``) stay as they are: it combines
with numbers and 0-d arrays into another `PerMember`, and multiplies a leaf member by member.
A Python number or 0-d array stays what it was, so one model's arithmetic is untouched.
"""

from __future__ import annotations

import operator
from typing import Any

from array_api_compat import array_namespace

__all__ = ["PerMember", "per_member"]


def per_member(value: Any, like: Any) -> Any:
    """``value`` shaped to multiply the stacked leaf ``like``: a (K,) array -> (K, 1, ..., 1)
    with ``like.ndim`` axes; a number or 0-d array unchanged."""
    if getattr(value, "ndim", 0) == 0:
        return value
    xp = array_namespace(value)
    return xp.reshape(value, (value.shape[0], *(1,) * (like.ndim - 1)))


class PerMember:
    """K values ``values`` (a (K,) array), one per member, used like a scalar on stacked
    arrays: ``v * leaf`` multiplies member k's slice of ``leaf`` (K, ...) by ``values[k]``;
    ``v * 2.0``, ``v / n``, ``1.0 - v`` and ``v * w`` (both `PerMember`) stay per member.
    Always truthy (reading the values would sync with the device and break ``jax.jit``)."""

    __slots__ = ("values",)
    __array_ufunc__ = None  # NumPy: `array * v` defers to `v.__rmul__`

    def __init__(self, values: Any) -> None:
        self.values = values

    def _combine(self, other: Any, op: Any) -> Any:
        if isinstance(other, PerMember):
            return PerMember(op(self.values, other.values))
        if getattr(other, "ndim", 0) == 0:  # a number or 0-d array: still one value per member
            return PerMember(op(self.values, other))
        return op(per_member(self.values, other), other)

    def __mul__(self, other: Any) -> Any:
        return self._combine(other, operator.mul)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Any:
        return self._combine(other, operator.truediv)

    def __rsub__(self, other: Any) -> Any:
        return self._combine(other, lambda v, o: o - v)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"PerMember({self.values!r})"
