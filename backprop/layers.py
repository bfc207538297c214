"""Layers: forward and backward of one layer side by side.

A layer's parameters are a dict of arrays (``{"W": (n_in, n_out), "b": (n_out,)}`` for
`Dense`); the layer object holds only its static description (sizes, activation), so the math
stays pure and the parameters can be traced by ``jax.jit``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .activations import Activation

__all__ = ["Dense", "DenseCache"]


@dataclasses.dataclass(frozen=True)
class DenseCache:
    """What `Dense.backward` needs from the forward pass.

    ``x``: the layer input (N, n_in); ``a``: the output f(z) (N, n_out); ``z``: the
    pre-activation, kept only when the activation's derivative needs it (else None).
    """

    x: Any
    a: Any
    z: Any = None


@dataclasses.dataclass(frozen=True)
class Dense:
    """Fully connected layer ``a = f(x @ W + b)``.

    Shapes: x (N, n_in), W (n_in, n_out), b (n_out,), z and a (N, n_out).
    """

    n_in: int
    n_out: int
    activation: Activation

    def forward(self, xp: Any, p: dict[str, Any], x: Any) -> tuple[Any, Any, DenseCache]:
        """Return ``(z, a, cache)`` with ``z = x @ W + b`` and ``a = f(z)``."""
        z = x @ p["W"] + p["b"]
        a = self.activation.forward(xp, z)
        return z, a, DenseCache(x=x, a=a, z=z if self.activation.needs_input else None)

    def delta(self, xp: Any, cache: DenseCache, grad_a: Any) -> Any:
        """This layer's error signal ``delta = dJ/dz = dJ/da * f'(z)``, f' from the cache."""
        return self.activation.vjp(xp, cache.z, cache.a, grad_a)

    def backward(
        self,
        xp: Any,
        p: dict[str, Any],
        cache: DenseCache,
        delta: Any,
        l2: float = 0.0,
        input_grad: bool = True,
    ) -> tuple[dict[str, Any], Any]:
        """Gradients from this layer's error signal ``delta = dJ/dz`` (N, n_out).

        dJ/dW = x.T @ delta (+ l2 * W, the L2 penalty's gradient); dJ/db = sum of delta over rows;
        dJ/dx = delta @ W.T, the ``dJ/da`` of the layer below (skipped for the first layer).
        """
        grad_w = xp.matrix_transpose(cache.x) @ delta
        if l2:
            grad_w = grad_w + l2 * p["W"]
        grads = {"W": grad_w, "b": xp.sum(delta, axis=0)}
        grad_x = delta @ xp.matrix_transpose(p["W"]) if input_grad else None
        return grads, grad_x
