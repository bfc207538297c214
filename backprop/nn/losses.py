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
summed over by ``value``, each slice being one model's batch. ``values`` gives each model's J
instead, (M,) for a stack of M models (an ensemble's per-member losses), in one batched
reduction over each slice's (N, K); y and w are shared by the models or stacked like a.

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
fields are hyperparameters, like `Huber`'s ``delta``), and define ``value`` and ``grad`` (and
``value_from_logits`` for a fused one); ``values`` then evaluates ``value`` model by model,
unless the class also defines the batched ``_values`` (``_values_from_logits``). ``get_loss``
accepts a name, a spec ``{"name": "huber", "delta": 0.5}`` or an instance.
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

    def values(self, xp: Any, a: Any, y: Any, w: Any = None) -> Any:
        """J of each model of a stack: a (M, N, K); y (N, K) or (M, N, K); w (N, 1) or
        (M, N, 1) -> (M,). One batched reduction when the class that defines ``value``
        also defines ``_values``; else ``value`` on each model's slice."""
        if _owner(type(self), "_values") is _owner(type(self), "value"):
            return self._values(xp, a, y, w)
        return _per_slice(xp, self.value, a, y, w)

    def _values(self, xp: Any, a: Any, y: Any, w: Any = None) -> Any:
        """``values`` in one batched reduction (the shipped losses define it)."""
        raise NotImplementedError

    def grad(self, xp: Any, a: Any, y: Any, w: Any = None) -> Any:
        """dJ/da, shape (N, K)."""
        raise NotImplementedError

    def value_from_logits(self, xp: Any, z: Any, y: Any, w: Any = None) -> Any:
        """J from the pre-activation z of the fused output (stable); fused losses only."""
        raise NotImplementedError

    def values_from_logits(self, xp: Any, z: Any, y: Any, w: Any = None) -> Any:
        """``value_from_logits`` of each model of a stack (shapes as in ``values``)."""
        if _owner(type(self), "_values_from_logits") is _owner(type(self), "value_from_logits"):
            return self._values_from_logits(xp, z, y, w)
        return _per_slice(xp, self.value_from_logits, z, y, w)

    def _values_from_logits(self, xp: Any, z: Any, y: Any, w: Any = None) -> Any:
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

    def _values(self, xp, a, y, w=None):
        d = a - y
        return 0.5 * _mean(xp, _weighted(d * d, w), per_model=True)

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

    def _values(self, xp, a, y, w=None):
        terms = y * xp.log(a) + (1.0 - y) * xp.log(1.0 - a)
        return -_row_sums(xp, _weighted(terms, w))

    def grad(self, xp, a, y, w=None):
        return _weighted((a - y) / (a * (1.0 - a)), w) * (1.0 / a.shape[-2])

    def value_from_logits(self, xp, z, y, w=None):
        return xp.sum(_weighted(softplus(xp, z) - y * z, w)) * (1.0 / z.shape[-2])

    def _values_from_logits(self, xp, z, y, w=None):
        return _row_sums(xp, _weighted(softplus(xp, z) - y * z, w))


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

    def _values(self, xp, a, y, w=None):
        return -_row_sums(xp, _weighted(y * xp.log(a), w))

    def grad(self, xp, a, y, w=None):
        return _weighted(-y / a, w) * (1.0 / a.shape[-2])

    def value_from_logits(self, xp, z, y, w=None):
        return -xp.sum(_weighted(y * log_softmax(xp, z), w)) * (1.0 / z.shape[-2])

    def _values_from_logits(self, xp, z, y, w=None):
        return -_row_sums(xp, _weighted(y * log_softmax(xp, z), w))


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
        return _mean(xp, _weighted(self._h(xp, a, y), w))

    def _values(self, xp, a, y, w=None):
        return _mean(xp, _weighted(self._h(xp, a, y), w), per_model=True)

    def _h(self, xp, a, y):
        r = xp.abs(a - y)
        small = xp.minimum(r, xp.full_like(r, self.delta))  # min(|r|, delta)
        # |r| <= delta: small = |r|, h = |r|**2/2; beyond: small = delta, h = delta*|r| - delta**2/2
        return small * (r - 0.5 * small)

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

    def _values(self, xp, a, y, w=None):
        return _row_sums(xp, _weighted(a - y * xp.log(a) + _ylogy(xp, y) - y, w))

    def grad(self, xp, a, y, w=None):
        return _weighted(1.0 - y / a, w) * (1.0 / a.shape[-2])

    def value_from_logits(self, xp, z, y, w=None):
        terms = Exp().forward(xp, z) - y * z + _ylogy(xp, y) - y
        return xp.sum(_weighted(terms, w)) * (1.0 / z.shape[-2])

    def _values_from_logits(self, xp, z, y, w=None):
        return _row_sums(xp, _weighted(Exp().forward(xp, z) - y * z + _ylogy(xp, y) - y, w))


def _ylogy(xp: Any, y: Any) -> Any:
    """y * log(y) elementwise, 0 where y = 0 (its limit)."""
    return y * xp.log(xp.where(y > 0, y, xp.ones_like(y)))


def _mean(xp: Any, terms: Any, per_model: bool = False) -> Any:
    """Mean over the (N, K) batch; with leading axes, the sum of each slice's mean (per_model:
    each slice's mean)."""
    if per_model:
        return xp.mean(terms, axis=(-2, -1))
    if terms.ndim <= 2:
        return xp.mean(terms)
    return xp.sum(xp.mean(terms, axis=(-2, -1)))


def _row_sums(xp: Any, terms: Any) -> Any:
    """(1/N) * the sum over each slice's (N, K): one value per model of a stack."""
    return xp.sum(terms, axis=(-2, -1)) * (1.0 / terms.shape[-2])


def _owner(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO whose body defines ``name``."""
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


def _per_slice(xp: Any, fn: Any, a: Any, y: Any, w: Any) -> Any:
    """``fn(xp, a[m], y[m], w[m])`` for each model m of the stack a (M, N, K), stacked: the
    fallback of `Loss.values` for a loss without ``_values`` (y, w may be shared)."""

    def part(v: Any, m: int) -> Any:
        return v[m, ...] if v is not None and v.ndim == a.ndim else v

    return xp.stack([fn(xp, a[m, ...], part(y, m), part(w, m)) for m in range(a.shape[0])])


def _weighted(terms: Any, w: Any) -> Any:
    """``terms * w`` with (N, 1) weights broadcast over the K columns; unchanged when w is None."""
    return terms if w is None else terms * w
