"""Gradient-flow diagnostics: how large the error signal and the weight gradients are in each
layer, and how many sigmoid/tanh units are saturated.

This is the vanishing-gradient story made visible. Each layer passes its error signal down as
``delta_{l-1} = (delta_l @ W_l.T) * f'(a_{l-1})``; a sigmoid's ``f' = s(1-s) <= 1/4``, so through
a stack of sigmoid layers ``||delta_l||`` shrinks layer by layer, and a saturated unit (s near 0
or 1, f' near 0) passes back almost nothing. ReLU's ``f' = 1`` where active does not shrink it.

Returned values are 0-d arrays of the backend (no host sync); the fit loop reads them once per
epoch into the history as ``delta_norm_l``, ``grad_norm_l`` and ``saturation_l`` (l = 0 is the
first layer).
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

__all__ = ["flow_columns", "gradient_flow"]


def flow_columns(model: Any) -> list[str]:
    """The keys `gradient_flow` returns for ``model``, in order."""
    names = []
    for i, layer in enumerate(model.layers):
        names += [f"delta_norm_{i}", f"grad_norm_{i}"]
        if layer.activation.peak_derivative is not None:
            names.append(f"saturation_{i}")
    return names


def gradient_flow(model: Any, params: Any, X: Any, Y: Any) -> dict[str, Any]:
    """Per-layer gradient-flow statistics on one batch ``X`` (N, n_in), ``Y`` (N, n_out).

    - ``delta_norm_l``: ||delta_l||, the Frobenius norm of dJ/dz_l over the batch (N, units);
    - ``grad_norm_l``: ||dJ/dW_l||, the Frobenius norm of the weight gradient;
    - ``saturation_l`` (sigmoid and tanh layers only): the fraction of (row, unit) pairs where
      f' is below 10% of its peak (`Activation.saturated`).

    No dropout masks and no sample weights: the plain network on the given rows.
    """
    _, grads, (deltas, caches) = model.backprop(params, X, Y)
    xp = array_namespace(X)
    out: dict[str, Any] = {}
    for i, (layer, delta, grad, cache) in enumerate(
        zip(model.layers, deltas, grads, caches, strict=True)
    ):
        out[f"delta_norm_{i}"] = xp.sqrt(xp.sum(delta * delta))
        out[f"grad_norm_{i}"] = xp.sqrt(xp.sum(grad["W"] * grad["W"]))
        if layer.activation.peak_derivative is not None:
            saturated = layer.activation.saturated(xp, cache.z, cache.a)
            out[f"saturation_{i}"] = xp.mean(xp.astype(saturated, cache.a.dtype))
    return out
