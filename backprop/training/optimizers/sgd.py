"""Stochastic gradient descent with optional (Nesterov) momentum."""

from __future__ import annotations

import dataclasses
from typing import Any

from array_api_compat import array_namespace

from ...tree import tree_map
from ._base import Optimizer, check_fraction, check_positive, register

__all__ = ["SGD"]


@register("sgd")
@dataclasses.dataclass(frozen=True)
class SGD(Optimizer):
    """w <- w - lr * dJ/dw, optionally with momentum (the velocity form scikit-learn uses).

    With momentum m: v <- m*v - lr*g; w <- w + v.
    With Nesterov:   v <- m*v - lr*g; w <- w + m*v - lr*g.
    State: ``{}`` without momentum, ``{"velocity": tree like params}`` with it.
    ``clip_norm`` (keyword): clip the gradients to this global norm first (see `Optimizer`).
    Per ensemble member (a list of K values): ``lr``.
    """

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("SGD", lr=self.lr)
        check_fraction("SGD", momentum=self.momentum)
        if self.nesterov and not self.momentum:
            raise ValueError("SGD: nesterov=True needs momentum > 0, received momentum=0")

    def init(self, params: Any) -> dict[str, Any]:
        if not self.momentum:
            return {}
        return {"velocity": tree_map(lambda p: array_namespace(p).zeros_like(p), params)}

    def _update(self, params: Any, grads: Any, state: dict[str, Any], lr: Any) -> tuple[Any, dict]:
        m = float(self.momentum)
        if not m:
            return tree_map(lambda p, g: p - lr * g, params, grads), state
        velocity = tree_map(lambda v, g: m * v - lr * g, state["velocity"], grads)
        if self.nesterov:
            step = tree_map(lambda v, g: m * v - lr * g, velocity, grads)
        else:
            step = velocity
        return tree_map(lambda p, s: p + s, params, step), {"velocity": velocity}
