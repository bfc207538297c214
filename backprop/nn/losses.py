"""Losses: the value J and its gradient dJ/da; fused output deltas where the algebra collapses.

Definitions (the same as scikit-learn's MLP; N = rows of the batch, K = output units):

- ``mse``: J = 0.5 * mean((a - y)**2) over all N*K elements; dJ/da = (a - y) / (N*K).
- ``binary_cross_entropy`` (sigmoid outputs): J = -(1/N) * sum(y*log(a) + (1-y)*log(1-a));
  dJ/da = (a - y) / (a*(1-a)) / N.
- ``cross_entropy`` (softmax outputs): J = -(1/N) * sum(y*log(a)); dJ/da = -y / a / N.
- ``huber`` (hyperparameter ``delta``, default 1): per element r = a - y,
  h(r) = r**2/2 for |r| <= delta, delta*(|r| - delta/2) beyond; J = mean(h) over all N*K
  elements (so J equals mse's 0.5*mean(r**2) while every |r| <= delta);
  dJ/da = clip(r, -delta, delta) / (N*K): the squared error's gradient, capped at delta.
- ``poisson`` (exp outputs, targets y >= 0): half the Poisson deviance,
  J = (1/N) * sum(y*log(y/a) - y + a) with 0*log(0) = 0; dJ/da = (1 - y/a) / N.

N is the size of the second-to-last axis, K of the last: leading axes (a stack of models) are
summed over, each slice being one model's batch.

Sample weights: every method takes an optional ``w`` of shape (N, 1) that multiplies each row's
terms (J = (1/N) * sum_i w_i * l_i, and the same factor in dJ/da and the fused delta). The fit
loop rescales weights to mean 1 over the training set, so all-ones weights give the unweighted
loss; ``w=None`` skips the product altogether.

For sigmoid + binary cross-entropy, softmax + cross-entropy and exp + poisson the output
activation's derivative cancels against dJ/da, and the error signal at the output is simply
``delta = dJ/dz = (a - y) / N``. The model uses this fused form (`Loss.fused_delta`) and
computes J from the pre-activation z with log-sum-exp / softplus (poisson: log a = z), so
saturated outputs give neither ``log(0)`` nor NaN.

To add a loss: subclass `Loss`, decorate with ``@register("name")`` (a frozen dataclass whose
fields are hyperparameters, like `Huber`'s ``delta``). ``get_loss`` accepts a name, a spec
``{"name": "huber", "delta": 0.5}`` or an instance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from .._registry import Registry
from ._component import Component, build_component, short_spec
from .activations import Exp, log_softmax, softplus

__all__ = ["LOSSES", "Loss", "get_loss", "register"]

LOSSES: Registry[Loss] = Registry("loss")


register = LOSSES.register_class  # class decorator: @register("name")


def get_loss(spec: Any) -> Loss:
    """A `Loss` from a registered name, a spec ``{"name": ..., **hyperparameters}`` or an
    instance (passed through)."""
    return build_component(LOSSES, Loss, spec)


@dataclasses.dataclass(frozen=True, repr=False)
class Loss(Component):
    """Base class (a frozen dataclass). Shapes: ``a``, ``y``, ``z`` are (..., N, K); values are
    0-d arrays.

    ``outputs``: the registered output activations this loss accepts (None: any).
    ``fused_output``: the registered output activation whose derivative cancels, giving
    ``delta = (a - y)/N``. ``task``: "classification" for losses of class targets (the model's
    default metric is then accuracy, and fit stratifies its validation split), else
    "regression".
    """

    registry: ClassVar[Registry] = LOSSES
    outputs: ClassVar[tuple[str, ...] | None] = None
    fused_output: ClassVar[str | None] = None
    task: ClassVar[str] = "regression"

    def value(self, xp: Any, a: Any, y: Any, w: Any = None) -> Any:
        """J(a, y) from the output activations; ``w``: optional (N, 1) sample weights."""
        raise NotImplementedError

    def grad(self, xp: Any, a: Any, y: Any, w: Any = None) -> Any:
        """dJ/da, shape (N, K)."""
        raise NotImplementedError

    def value_from_logits(self, xp: Any, z: Any, y: Any, w: Any = None) -> Any:
        """J from the pre-activation z of the fused output (stable); fused losses only."""
        raise NotImplementedError

    def fused_delta(self, xp: Any, a: Any, y: Any, w: Any = None) -> Any:
        """dJ/dz = w * (a - y) / N for the fused output activation."""
        return _weighted(a - y, w) * (1.0 / a.shape[-2])

    def spec(self) -> Any:
        """The registered name, or ``{"name": ..., **hyperparameters}`` when one differs from
        its default."""
        return short_spec(self)


@register("mse")
class MeanSquaredError(Loss):
    """J = 0.5 * mean((a - y)**2); dJ/da = (a - y) / (N*K). Pairs with an identity output."""

    def value(self, xp, a, y, w=None):
        d = a - y
        return 0.5 * _mean(xp, _weighted(d * d, w))

    def grad(self, xp, a, y, w=None):
        return _weighted(a - y, w) * (1.0 / (a.shape[-2] * a.shape[-1]))


@register("binary_cross_entropy")
class BinaryCrossEntropy(Loss):
    """J = -(1/N) sum(y log a + (1-y) log(1-a)) for sigmoid outputs (one or more labels).

    From logits: -(y log s(z) + (1-y) log(1-s(z))) = softplus(z) - y*z, exact and stable.
    """

    outputs: ClassVar[tuple[str, ...]] = ("sigmoid",)
    fused_output: ClassVar[str] = "sigmoid"
    task: ClassVar[str] = "classification"

    def value(self, xp, a, y, w=None):
        terms = y * xp.log(a) + (1.0 - y) * xp.log(1.0 - a)
        return -xp.sum(_weighted(terms, w)) * (1.0 / a.shape[-2])

    def grad(self, xp, a, y, w=None):
        return _weighted((a - y) / (a * (1.0 - a)), w) * (1.0 / a.shape[-2])

    def value_from_logits(self, xp, z, y, w=None):
        return xp.sum(_weighted(softplus(xp, z) - y * z, w)) * (1.0 / z.shape[-2])


@register("cross_entropy")
class CrossEntropy(Loss):
    """J = -(1/N) sum(y log a) for softmax outputs; y one-hot (or class probabilities).

    From logits: log a = log_softmax(z) = z - max(z) - log(sum(exp(z - max(z)))).
    """

    outputs: ClassVar[tuple[str, ...]] = ("softmax",)
    fused_output: ClassVar[str] = "softmax"
    task: ClassVar[str] = "classification"

    def value(self, xp, a, y, w=None):
        return -xp.sum(_weighted(y * xp.log(a), w)) * (1.0 / a.shape[-2])

    def grad(self, xp, a, y, w=None):
        return _weighted(-y / a, w) * (1.0 / a.shape[-2])

    def value_from_logits(self, xp, z, y, w=None):
        return -xp.sum(_weighted(y * log_softmax(xp, z), w)) * (1.0 / z.shape[-2])


@register("huber")
@dataclasses.dataclass(frozen=True, repr=False)
class Huber(Loss):
    """J = mean(h(a - y)), h(r) = r**2/2 for |r| <= delta else delta*(|r| - delta/2);
    dJ/da = clip(a - y, -delta, delta) / (N*K). Robust regression: beyond ``delta`` an error
    pulls with constant force instead of one growing with it."""

    delta: float = 1.0

    def __post_init__(self) -> None:
        d = self.delta
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < math.inf:
            raise ValueError(f"loss 'huber': delta must be a number > 0, received {d!r}")
        object.__setattr__(self, "delta", float(d))

    def value(self, xp, a, y, w=None):
        r = xp.abs(a - y)
        small = xp.minimum(r, xp.full_like(r, self.delta))  # min(|r|, delta)
        # |r| <= delta: small = |r|, h = |r|**2/2; beyond: small = delta, h = delta*|r| - delta**2/2
        return _mean(xp, _weighted(small * (r - 0.5 * small), w))

    def grad(self, xp, a, y, w=None):
        r = xp.clip(a - y, min=-self.delta, max=self.delta)
        return _weighted(r, w) * (1.0 / (a.shape[-2] * a.shape[-1]))


@register("poisson")
class Poisson(Loss):
    """Half the Poisson deviance for counts or rates y >= 0 and exp outputs a > 0 (the log
    link), scikit-learn's ``loss="poisson"`` including its constant y*log(y) - y:
    J = (1/N) sum(y log(y/a) - y + a); dJ/da = (1 - y/a) / N; fused with exp: dJ/dz = (a - y)/N.

    From logits: log a = z, so J = (1/N) sum(a - y*z + y*log(y) - y), with no log of an ``a``
    that underflowed to 0. 0*log(0) = 0 (y = 0 adds a alone).
    """

    outputs: ClassVar[tuple[str, ...]] = ("exp",)
    fused_output: ClassVar[str] = "exp"

    def value(self, xp, a, y, w=None):
        terms = a - y * xp.log(a) + _ylogy(xp, y) - y
        return xp.sum(_weighted(terms, w)) * (1.0 / a.shape[-2])

    def grad(self, xp, a, y, w=None):
        return _weighted(1.0 - y / a, w) * (1.0 / a.shape[-2])

    def value_from_logits(self, xp, z, y, w=None):
        terms = Exp().forward(xp, z) - y * z + _ylogy(xp, y) - y
        return xp.sum(_weighted(terms, w)) * (1.0 / z.shape[-2])


def _ylogy(xp: Any, y: Any) -> Any:
    """y * log(y) elementwise, 0 where y = 0 (its limit)."""
    return y * xp.log(xp.where(y > 0, y, xp.ones_like(y)))


def _mean(xp: Any, terms: Any) -> Any:
    """Mean over the (N, K) batch; with leading axes, the sum of each slice's mean."""
    if terms.ndim <= 2:
        return xp.mean(terms)
    return xp.sum(xp.mean(terms, axis=(-2, -1)))


def _weighted(terms: Any, w: Any) -> Any:
    """``terms * w`` with (N, 1) weights broadcast over the K columns; unchanged when w is None."""
    return terms if w is None else terms * w
