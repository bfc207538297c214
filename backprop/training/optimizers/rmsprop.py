"""RMSProp: gradient steps divided by a running root mean square of the gradient (Hinton)."""

from __future__ import annotations

import dataclasses
from typing import Any

from array_api_compat import array_namespace

from ...tree import tree_map
from ._base import Optimizer, check_fraction, check_positive, register

__all__ = ["RMSProp"]


@register("rmsprop")
@dataclasses.dataclass(frozen=True)
class RMSProp(Optimizer):
    """w <- w - lr * g / (sqrt(s) + eps), with s a running mean of g*g.

    With g = dJ/dw:
        s <- rho*s + (1-rho)*g*g
        w <- w - lr * g / (sqrt(s) + eps)
    eps is added outside the square root, as in ``torch.optim.RMSprop`` (libraries that write
    sqrt(s + eps) take different steps while s is small); there is no bias correction, no
    momentum and no centring.
    State: ``{"square_avg": tree like params}``, starting at zero.
    ``clip_norm`` (keyword): clip the gradients to this global norm first (see `Optimizer`).
    Per ensemble member (a list of K values): ``lr``.
    """

    lr: float = 0.001
    rho: float = 0.9
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("RMSProp", lr=self.lr, epsilon=self.epsilon)
        check_fraction("RMSProp", rho=self.rho)

    def init(self, params: Any) -> dict[str, Any]:
        return {"square_avg": tree_map(lambda p: array_namespace(p).zeros_like(p), params)}

    def _update(self, params: Any, grads: Any, state: dict[str, Any], lr: Any) -> tuple[Any, dict]:
        rho, eps = float(self.rho), float(self.epsilon)
        square_avg = tree_map(
            lambda s, g: rho * s + (1.0 - rho) * (g * g), state["square_avg"], grads
        )
        params = tree_map(
            lambda p, g, s: p - lr * g / (array_namespace(s).sqrt(s) + eps),
            params,
            grads,
            square_avg,
        )
        return params, {"square_avg": square_avg}
