"""`LayerNorm`: normalize each example over its last axis, then scale and shift (learned)."""

from __future__ import annotations

import dataclasses
import numbers

from ...data import _host
from ._base import Layer, register, sum_to

__all__ = ["LayerNorm"]


@register("layer_norm")
@dataclasses.dataclass(frozen=True, repr=False)
class LayerNorm(Layer):
    """``y = gamma * xhat + beta``, ``xhat = (x - mu) / sigma``, ``sigma = sqrt(var + eps)``.

    mu and var (biased) are taken over the last axis, per example. Shapes: x and y
    (..., N, *input_shape); gamma and beta (features,), the last axis. Init: gamma = 1,
    beta = 0. Neither is penalized by L2; the diagnostics report both.

    Backward, means over the last axis, the cache holds xhat and 1/sigma:
    dxhat = dy * gamma; dJ/dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma;
    dJ/dgamma = sum of dy * xhat over all other axes; dJ/dbeta = sum of dy.
    """

    eps: float = 1e-5

    def __post_init__(self) -> None:
        e = self.eps
        if isinstance(e, bool) or not isinstance(e, numbers.Real) or not e > 0:
            raise ValueError(f"layer 'layer_norm': eps must be a number > 0, received {e!r}")
        object.__setattr__(self, "eps", float(e))

    @classmethod
    def examples(cls):
        return [(cls(), (4,)), (cls(eps=1e-3), (3, 5))]

    def output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError("layer 'layer_norm' needs inputs with a feature axis, received ()")
        return tuple(input_shape)

    def init(self, input_shape, rng):
        shape = self.output_shape(input_shape)
        features = (shape[-1],)
        return {"gamma": _host.ones(features), "beta": _host.zeros(features)}, shape

    def forward(self, xp, params, x, *, train=False):
        mu = xp.mean(x, axis=-1, keepdims=True)
        centered = x - mu
        var = xp.mean(centered * centered, axis=-1, keepdims=True)
        inv_sigma = 1.0 / xp.sqrt(var + self.eps)
        xhat = centered * inv_sigma
        return params["gamma"] * xhat + params["beta"], (xhat, inv_sigma)

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        xhat, inv_sigma = cache
        gamma = params["gamma"]
        grads = {
            "gamma": sum_to(xp, dy * xhat, gamma.shape),
            "beta": sum_to(xp, dy, params["beta"].shape),
        }
        if not need_dx:
            return grads, None
        dxhat = dy * gamma
        mean_d = xp.mean(dxhat, axis=-1, keepdims=True)
        mean_dx = xp.mean(dxhat * xhat, axis=-1, keepdims=True)
        return grads, (dxhat - mean_d - xhat * mean_dx) * inv_sigma


# K stacked models: gamma and beta (K, 1, ..., features) only broadcast against x (K, N, ...),
# so the code above takes them as it is. Set here rather than in the class body, which
# docs/layers.md lists verbatim.
LayerNorm.stackable = True
