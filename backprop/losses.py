"""Losses: the value J and its gradient dJ/da; fused output deltas where the algebra collapses.

Definitions (the same as scikit-learn's MLP; N = rows of the batch, K = output units):

- ``mse``: J = 0.5 * mean((a - y)**2) over all N*K elements; dJ/da = (a - y) / (N*K).
- ``binary_cross_entropy`` (sigmoid outputs): J = -(1/N) * sum(y*log(a) + (1-y)*log(1-a));
  dJ/da = (a - y) / (a*(1-a)) / N.
- ``cross_entropy`` (softmax outputs): J = -(1/N) * sum(y*log(a)); dJ/da = -y / a / N.

Sample weights: every method takes an optional ``w`` of shape (N, 1) that multiplies each row's
terms (J = (1/N) * sum_i w_i * l_i, and the same factor in dJ/da and the fused delta). The fit
loop rescales weights to mean 1 over the training set, so all-ones weights give the unweighted
loss; ``w=None`` skips the product altogether.

For sigmoid + binary cross-entropy and softmax + cross-entropy the output activation's
derivative cancels against dJ/da, and the error signal at the output is simply
``delta = dJ/dz = (a - y) / N``. The model uses this fused form (`Loss.fused_delta`) and
computes J from the pre-activation z with log-sum-exp / softplus, so saturated outputs give
neither ``log(0)`` nor NaN.

To add a loss: subclass `Loss`, decorate with ``@register("name")``.
"""

from __future__ import annotations

from typing import Any

from ._registry import Registry
from .activations import log_softmax, softplus

__all__ = ["LOSSES", "Loss", "get_loss", "register"]

LOSSES: Registry[Loss] = Registry("loss")


register = LOSSES.register_instance  # class decorator: @register("name")


def get_loss(name: str | Loss) -> Loss:
    """The registered loss called ``name`` (a `Loss` passes through)."""
    return LOSSES.resolve(name, Loss)


class Loss:
    """Base class. Shapes: ``a``, ``y``, ``z`` are (N, K); values are 0-d arrays.

    ``outputs``: the output activations this loss accepts (None: any). ``fused_output``: the
    output activation whose derivative cancels, giving ``delta = (a - y)/N``.
    """

    name: str = ""
    outputs: tuple[str, ...] | None = None
    fused_output: str | None = None

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
        return _weighted(a - y, w) * (1.0 / a.shape[0])

    def __repr__(self) -> str:
        return f"<loss {self.name}>"


@register("mse")
class MeanSquaredError(Loss):
    """J = 0.5 * mean((a - y)**2); dJ/da = (a - y) / (N*K). Pairs with an identity output."""

    def value(self, xp, a, y, w=None):
        d = a - y
        return 0.5 * xp.mean(_weighted(d * d, w))

    def grad(self, xp, a, y, w=None):
        return _weighted(a - y, w) * (1.0 / (a.shape[0] * a.shape[1]))


@register("binary_cross_entropy")
class BinaryCrossEntropy(Loss):
    """J = -(1/N) sum(y log a + (1-y) log(1-a)) for sigmoid outputs (one or more labels).

    From logits: -(y log s(z) + (1-y) log(1-s(z))) = softplus(z) - y*z, exact and stable.
    """

    outputs = ("sigmoid",)
    fused_output = "sigmoid"

    def value(self, xp, a, y, w=None):
        terms = y * xp.log(a) + (1.0 - y) * xp.log(1.0 - a)
        return -xp.sum(_weighted(terms, w)) * (1.0 / a.shape[0])

    def grad(self, xp, a, y, w=None):
        return _weighted((a - y) / (a * (1.0 - a)), w) * (1.0 / a.shape[0])

    def value_from_logits(self, xp, z, y, w=None):
        return xp.sum(_weighted(softplus(xp, z) - y * z, w)) * (1.0 / z.shape[0])


@register("cross_entropy")
class CrossEntropy(Loss):
    """J = -(1/N) sum(y log a) for softmax outputs; y one-hot (or class probabilities).

    From logits: log a = log_softmax(z) = z - max(z) - log(sum(exp(z - max(z)))).
    """

    outputs = ("softmax",)
    fused_output = "softmax"

    def value(self, xp, a, y, w=None):
        return -xp.sum(_weighted(y * xp.log(a), w)) * (1.0 / a.shape[0])

    def grad(self, xp, a, y, w=None):
        return _weighted(-y / a, w) * (1.0 / a.shape[0])

    def value_from_logits(self, xp, z, y, w=None):
        return -xp.sum(_weighted(y * log_softmax(xp, z), w)) * (1.0 / z.shape[0])


def _weighted(terms: Any, w: Any) -> Any:
    """``terms * w`` with (N, 1) weights broadcast over the K columns; unchanged when w is None."""
    return terms if w is None else terms * w
