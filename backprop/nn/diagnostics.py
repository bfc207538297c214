"""Gradient-flow diagnostics: how large the error signal and the weight gradients are in each
layer, and how many squashing units (sigmoid, tanh) are saturated.

This is the vanishing-gradient story made visible. Each dense layer passes its error signal down
as ``delta_{l-1} = (delta_l @ W_l.T) * f'(a_{l-1})``; a sigmoid's ``f' = s(1-s) <= 1/4``, so
through a stack of sigmoid layers ``||delta_l||`` shrinks layer by layer, and a saturated unit
(s near 0 or 1, f' near 0) passes back almost nothing. ReLU's ``f' = 1`` where active does not
shrink it; a residual connection adds an identity path the signal takes unshrunk.

Returned values are 0-d arrays of the backend (no host sync); the fit loop reads them once per
epoch into the history as ``delta_norm_l``, ``grad_norm_l`` (layers with parameters) and
``saturation_l`` (layers whose activation saturates), l being the index in ``model.layers``.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from ..tree import tree_leaves

__all__ = ["flow_columns", "gradient_flow"]


def _saturates(layer: Any) -> bool:
    act = getattr(layer, "activation", None)
    return act is not None and act.peak_derivative is not None


def flow_columns(model: Any) -> list[str]:
    """The keys `gradient_flow` returns for ``model``, in order."""
    names = []
    for i, (layer, shapes) in enumerate(zip(model.layers, model.param_shapes(), strict=True)):
        if any(True for _ in tree_leaves(shapes)):
            names += [f"delta_norm_{i}", f"grad_norm_{i}"]
        if _saturates(layer):
            names.append(f"saturation_{i}")
    return names


def gradient_flow(model: Any, params: Any, X: Any, Y: Any) -> dict[str, Any]:
    """Per-layer gradient-flow statistics on one batch ``X`` (N, ...), ``Y`` (N, n_out).

    For each layer with parameters:
    - ``delta_norm_l``: ||delta_l||, the Frobenius norm over the batch of the layer's error
      signal (dJ/dz for a layer with an activation, else dJ/d(its output));
    - ``grad_norm_l``: the Frobenius norm of its weight gradients (Dense/Conv1D: dJ/dW; other
      layers: the arrays they name in ``Layer.weights``, all by default).
    For each layer whose activation saturates (sigmoid, tanh):
    - ``saturation_l``: the fraction of (row, unit) pairs where f' is below 10% of its peak
      (`Activation.saturated`).

    No dropout masks and no sample weights: the plain network on the given rows.
    """
    _, grads, (deltas, caches) = model.backprop(params, X, Y)
    xp = array_namespace(Y)
    out: dict[str, Any] = {}
    for i, (layer, delta, grad, cache) in enumerate(
        zip(model.layers, deltas, grads, caches, strict=True)
    ):
        if any(True for _ in tree_leaves(grad)):
            out[f"delta_norm_{i}"] = xp.sqrt(xp.sum(delta * delta))
            weights = layer.weight_arrays(grad)
            out[f"grad_norm_{i}"] = xp.sqrt(sum(xp.sum(g * g) for g in weights))
        if _saturates(layer):
            saturated = layer.activation.saturated(xp, cache.z, cache.a)
            out[f"saturation_{i}"] = xp.mean(xp.astype(saturated, cache.a.dtype))
    return out
