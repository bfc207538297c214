"""Adam (Kingma & Ba) and AdamW, Adam with decoupled weight decay (Loshchilov & Hutter)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from array_api_compat import array_namespace, device

from ...tree import tree_leaves, tree_map
from ._base import Optimizer, check_fraction, check_nonnegative, check_positive, register

__all__ = ["EPSILON_FORMS", "Adam", "AdamW"]

EPSILON_FORMS = ("vhat", "v")  # where Adam adds eps: to sqrt(vhat), or to sqrt(v)


@register("adam")
@dataclasses.dataclass(frozen=True)
class Adam(Optimizer):
    """Adam: a step scaled per weight by running moments of the gradient (Kingma & Ba 2015).

    With g = dJ/dw, at step t = 1, 2, ...:
        m <- b1*m + (1-b1)*g;   v <- b2*v + (1-b2)*g*g
        mhat = m / (1 - b1**t); vhat = v / (1 - b2**t)     (bias corrections: m, v start at 0)
        w <- w - lr * mhat / (sqrt(vhat) + eps)
    as in Kingma & Ba's Algorithm 1 and ``torch.optim.Adam`` (``epsilon_on="vhat"``, the default).
    ``epsilon_on="v"`` (keyword) selects the form of Kingma & Ba's section 2, which scikit-learn's
    ``AdamOptimizer`` and Keras use: the corrections are folded into the step size,
        lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t);   w <- w - lr_t * m / (sqrt(v) + eps)
    which is the default form with eps replaced by eps / sqrt(1 - b2**t): the same step where
    sqrt(vhat) >> eps, a smaller one where gradients are tiny (eps weighs up to ~30x more in the
    first steps with b2 = 0.999). `backprop.sklearn` uses it to match scikit-learn's MLP.
    State: ``{"t": 0-d array, "m": tree like params, "v": tree like params}``. The step count
    ``t`` is an array of the params' dtype, not a Python int, so a jitted update is traced once
    and ``b**t`` is computed on the device.
    ``clip_norm`` (keyword): clip the gradients to this global norm first (see `Optimizer`).
    Per ensemble member (a list of K values): ``lr``.
    """

    lr: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    # Keyword-only, so AdamW(lr, beta_1, beta_2, epsilon, weight_decay) keeps its positions.
    epsilon_on: str = dataclasses.field(default="vhat", kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_positive(owner, lr=self.lr, epsilon=self.epsilon)
        check_fraction(owner, beta_1=self.beta_1, beta_2=self.beta_2)
        if self.epsilon_on not in EPSILON_FORMS:
            raise ValueError(
                f"{owner}: epsilon_on must be one of {list(EPSILON_FORMS)}, received "
                f"{self.epsilon_on!r}; 'vhat': w -= lr * mhat / (sqrt(vhat) + eps) (Kingma & Ba "
                "Algorithm 1, torch), 'v': w -= lr_t * m / (sqrt(v) + eps) (scikit-learn, Keras)"
            )

    def init(self, params: Any) -> dict[str, Any]:
        first = next(tree_leaves(params), None)
        if first is None:
            raise ValueError(f"{type(self).__name__}: params holds no arrays, received {params!r}")
        xp = array_namespace(first)
        return {
            "t": xp.zeros((), dtype=first.dtype, device=device(first)),
            "m": tree_map(lambda p: array_namespace(p).zeros_like(p), params),
            "v": tree_map(lambda p: array_namespace(p).zeros_like(p), params),
        }

    def _direction(self, grads: Any, state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The bias-corrected ``mhat / (sqrt(vhat) + eps)`` per leaf, and the new state."""
        eps = float(self.epsilon)
        m, v, t, c1, c2 = self._moments(grads, state)
        xp = array_namespace(t)
        direction = tree_map(lambda mi, vi: (mi / c1) / (xp.sqrt(vi / c2) + eps), m, v)
        return direction, {"t": t, "m": m, "v": v}

    def _moments(self, grads: Any, state: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
        """The new ``m``, ``v``, ``t`` and the bias corrections ``1 - b1**t``, ``1 - b2**t``."""
        b1, b2 = float(self.beta_1), float(self.beta_2)
        t = state["t"] + 1.0
        m = tree_map(lambda mi, g: b1 * mi + (1.0 - b1) * g, state["m"], grads)
        v = tree_map(lambda vi, g: b2 * vi + (1.0 - b2) * (g * g), state["v"], grads)
        return m, v, t, 1.0 - b1**t, 1.0 - b2**t

    def _steps(self, grads: Any, state: dict[str, Any], lr: Any) -> tuple[Any, dict[str, Any]]:
        """What each leaf moves by (``lr * direction``), and the new state. With
        ``epsilon_on="v"``: ``lr_t * m / (sqrt(v) + eps)``, in scikit-learn's order of
        operations, so its updates are reproduced to the last bit where ``b**t`` rounds alike."""
        if self.epsilon_on == "vhat":
            direction, state = self._direction(grads, state)
            return tree_map(lambda d: lr * d, direction), state
        eps = float(self.epsilon)
        m, v, t, c1, c2 = self._moments(grads, state)
        xp = array_namespace(t)
        lr_t = lr * xp.sqrt(c2) / c1
        steps = tree_map(lambda mi, vi: lr_t * mi / (xp.sqrt(vi) + eps), m, v)
        return steps, {"t": t, "m": m, "v": v}

    def _update(self, params: Any, grads: Any, state: dict[str, Any], lr: Any) -> tuple[Any, dict]:
        steps, state = self._steps(grads, state, lr)
        return tree_map(lambda p, s: p - s, params, steps), state


@register("adamw")
@dataclasses.dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, ``torch.optim.AdamW``).

        w <- w - lr * (mhat / (sqrt(vhat) + eps) + weight_decay * w)
           = (1 - lr*weight_decay) * w - lr * mhat / (sqrt(vhat) + eps)
    with m, v, mhat, vhat as in `Adam`. The decay acts on w directly instead of being added to
    g, so it is not rescaled by 1/sqrt(vhat): with zero gradients each step multiplies w by
    exactly (1 - lr*weight_decay). State and ``epsilon_on`` as in `Adam`.
    Per ensemble member (lists of K values): ``lr`` and ``weight_decay``.
    """

    weight_decay: float = 0.01
    member_fields: ClassVar[tuple[str, ...]] = ("lr", "weight_decay")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_nonnegative("AdamW", weight_decay=self.weight_decay)

    def _update(self, params: Any, grads: Any, state: dict[str, Any], lr: Any) -> tuple[Any, dict]:
        decay = 1.0 - lr * self.hyper("weight_decay", params)
        steps, state = self._steps(grads, state, lr)
        return tree_map(lambda p, s: decay * p - s, params, steps), state
