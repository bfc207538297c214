"""The multilayer perceptron: a stack of `Dense` layers with hand-derived backpropagation.

Forward, layer l = 0..L-1 (x_0 = X):   z_l = x_l @ W_l + b_l,   a_l = f_l(z_l),   x_{l+1} = a_l.
Backward (the delta recursion), with delta_l = dJ/dz_l:

    delta_{L-1} = (a - y)/N                          fused sigmoid+BCE / softmax+CE
                = f'(z_{L-1}) * dJ/da                otherwise (e.g. MSE)
    delta_l     = (delta_{l+1} @ W_{l+1}.T) * f'_l(a_l)
    dJ/dW_l     = x_l.T @ delta_l  (+ alpha/N * W_l),    dJ/db_l = sum_rows(delta_l)

See `MLP.backprop` for the lines that do this (`MLP.loss_and_grad` returns its loss and grads).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from array_api_compat import array_namespace

import backends

from . import _host
from .activations import ACTIVATIONS, get_activation
from .layers import Dense
from .losses import get_loss

__all__ = ["MLP", "dtype_name"]

Params = list[dict[str, Any]]


class MLP:
    """Multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, input first: ``[n_in, hidden..., n_out]`` (at least two entries).
    hidden : str or sequence of str
        Hidden activation: one name for every hidden layer, or one per hidden layer.
    output : str
        Output activation ("identity", "sigmoid", "softmax", ...).
    loss : str
        "mse", "binary_cross_entropy" (needs output="sigmoid") or "cross_entropy" (needs
        output="softmax").
    alpha : float
        L2 penalty: J += alpha/(2N) * sum(W**2) over weights, not biases.
    dropout : float or sequence of float
        Dropout rate of each hidden layer's output during training (one rate for every hidden
        layer, or one per hidden layer), in [0, 1). Inverted dropout: the training step multiplies
        a hidden output by a mask of 0 and 1/(1-rate) drawn on the host (`dropout_masks`), so the
        same seed drops the same units on every backend and prediction needs no rescaling.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        hidden: str | Sequence[str] = "relu",
        output: str = "identity",
        loss: str = "mse",
        alpha: float = 0.0,
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        self.sizes = _check_sizes(sizes)
        n_hidden = len(self.sizes) - 2
        hidden_names = [hidden] * n_hidden if isinstance(hidden, str) else list(hidden)
        if len(hidden_names) != n_hidden:
            raise ValueError(
                f"hidden has {len(hidden_names)} activations but sizes {self.sizes} has "
                f"{n_hidden} hidden layers; give one name, or exactly {n_hidden}"
            )
        acts = [get_activation(h) for h in hidden_names]
        for a in acts:
            if not a.hidden:
                allowed = [n for n in ACTIVATIONS if ACTIVATIONS.get(n).hidden]
                raise ValueError(
                    f"activation {a.name!r} can only be used on the output layer; "
                    f"hidden layers take one of {allowed}"
                )
        out = get_activation(output)
        self.loss_function = get_loss(loss)
        allowed_outputs = self.loss_function.outputs
        if allowed_outputs is not None and out.name not in allowed_outputs:
            raise ValueError(
                f"loss {self.loss_function.name!r} needs output activation in "
                f"{list(allowed_outputs)}, "
                f"received output={out.name!r}; change the output or use loss='mse'"
            )
        if not isinstance(alpha, numbers.Real) or not alpha >= 0:
            raise ValueError(f"alpha must be a real number >= 0, received {alpha!r}")
        self.alpha = float(alpha)
        self.layers = [
            Dense(n_in, n_out, act)
            for n_in, n_out, act in zip(self.sizes[:-1], self.sizes[1:], [*acts, out], strict=True)
        ]
        self.fused = self.loss_function.fused_output == out.name
        self.dropout = _check_dropout(dropout, n_hidden)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items())
        return f"MLP({args})"

    def spec(self) -> dict[str, Any]:
        """The constructor arguments as plain JSON values; ``MLP(**model.spec())`` rebuilds it."""
        acts = [layer.activation.name for layer in self.layers]
        return {
            "sizes": list(self.sizes),
            "hidden": acts[:-1],
            "output": acts[-1],
            "loss": self.loss_function.name,
            "alpha": self.alpha,
            "dropout": list(self.dropout),
        }

    @property
    def task(self) -> str:
        """Either "classification" (cross-entropy losses or sigmoid/softmax outputs) or
        "regression"; it picks the default metric (accuracy or R^2)."""
        output = self.layers[-1].activation.name
        if self.loss_function.fused_output is not None or output in ("sigmoid", "softmax"):
            return "classification"
        return "regression"

    # -- parameters ------------------------------------------------------------------------------
    def init(self, seed: int = 0, backend: Any = "numpy", dtype: str = "float32") -> Params:
        """Glorot-uniform weights and zero biases, drawn on the host, moved to ``backend``.

        Returns a list with one ``{"W": (n_in, n_out), "b": (n_out,)}`` dict per layer. The same
        seed gives the same numbers on every backend (drawn in float64, then cast).
        """
        be = backends.as_backend(backend)
        host = _host.glorot_uniform(self.sizes, seed)
        return [{k: be.asarray(v, dtype) for k, v in layer.items()} for layer in host]

    # -- forward / backward ----------------------------------------------------------------------
    def forward(self, params: Params, X: Any) -> tuple[Any, Any, list]:
        """Run every layer; return ``(z_out, a_out, caches)`` (caches feed the backward pass)."""
        return self._forward(self._check_x(X, params), params, X)

    def _forward(
        self, xp: Any, params: Params, X: Any, masks: Sequence[Any] | None = None
    ) -> tuple[Any, Any, list]:
        """``masks[l]`` (N, units of hidden layer l) or None multiplies hidden output l."""
        caches = []
        x = X
        z = None
        for i, (layer, p) in enumerate(zip(self.layers, params, strict=True)):
            z, x, cache = layer.forward(xp, p, x)
            caches.append(cache)
            if masks is not None and i < len(masks) and masks[i] is not None:
                x = x * masks[i]  # dropout: the next layer sees the masked output
        return z, x, caches

    def predict(self, params: Params, X: Any) -> Any:
        """Output activations for inputs X (N, n_in) -> (N, n_out)."""
        return self.forward(params, X)[1]

    def loss(self, params: Params, X: Any, Y: Any) -> Any:
        """The loss J (0-d array), including the L2 penalty."""
        xp = self._check_xy(X, Y, params)
        z, a, _ = self._forward(xp, params, X)
        return self._loss_value(xp, params, z, a, Y)

    def loss_and_grad(
        self,
        params: Params,
        X: Any,
        Y: Any,
        weights: Any = None,
        masks: Sequence[Any] | None = None,
    ) -> tuple[Any, Params]:
        """The loss J and dJ/dparams (a list of dicts like ``params``) by backpropagation.

        X: (N, n_in), Y: (N, n_out), both of the parameters' float dtype. ``weights``: optional
        per-row weights (N,) (J = (1/N) sum_i w_i l_i). ``masks``: optional dropout masks, one
        (N, units) array or None per hidden layer (see `dropout_masks`).
        """
        loss, grads, _ = self.backprop(params, X, Y, weights, masks)
        return loss, grads

    def backprop(
        self,
        params: Params,
        X: Any,
        Y: Any,
        weights: Any = None,
        masks: Sequence[Any] | None = None,
    ) -> tuple[Any, Params, list]:
        """`loss_and_grad` that also returns what the gradient-flow diagnostics read:
        ``(loss, grads, (deltas, caches))`` with ``deltas[l] = dJ/dz_l`` (N, units of layer l),
        first layer first, and the forward caches (`DenseCache`: input x, output a)."""
        xp = self._check_xy(X, Y, params)
        w = None if weights is None else xp.reshape(weights, (-1, 1))
        z, a, caches = self._forward(xp, params, X, masks)
        loss = self._loss_value(xp, params, z, a, Y, w)
        l2 = self.alpha / X.shape[0]
        if self.fused:  # sigmoid+BCE, softmax+CE: f' cancels, delta = (a - y)/N
            delta = self.loss_function.fused_delta(xp, a, Y, w)
        else:  # delta = dJ/da * f'(z) through the output activation
            delta = self.layers[-1].delta(xp, caches[-1], self.loss_function.grad(xp, a, Y, w))
        grads: Params = [None] * len(self.layers)  # type: ignore[list-item]
        deltas: list = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            deltas[i] = delta
            grads[i], grad_x = self.layers[i].backward(
                xp, params[i], caches[i], delta, l2=l2, input_grad=i > 0
            )
            if i > 0:  # delta_{i-1} = (delta_i @ W_i.T) * f'(a_{i-1})
                if masks is not None and masks[i - 1] is not None:
                    grad_x = grad_x * masks[i - 1]  # dropped units pass no error back
                delta = self.layers[i - 1].delta(xp, caches[i - 1], grad_x)
        return loss, grads, (deltas, caches)

    def _loss_value(self, xp: Any, params: Params, z: Any, a: Any, Y: Any, w: Any = None) -> Any:
        if self.fused:
            loss = self.loss_function.value_from_logits(xp, z, Y, w)
        else:
            loss = self.loss_function.value(xp, a, Y, w)
        if self.alpha:
            squares = sum(xp.sum(p["W"] * p["W"]) for p in params)
            loss = loss + (self.alpha / (2.0 * Y.shape[0])) * squares
        return loss

    # -- static checks (shapes and dtypes only: no host sync, safe under jax.jit) ----------------
    def _check_params(self, params: Params) -> None:
        if not isinstance(params, (list, tuple)) or len(params) != len(self.layers):
            raise ValueError(
                f"params must be a list of {len(self.layers)} layer dicts (from MLP.init), "
                f"received {type(params).__name__} of length {len(params)}"
                if isinstance(params, (list, tuple))
                else f"params must be a list of layer dicts, received {type(params).__name__}"
            )
        for i, (layer, p) in enumerate(zip(self.layers, params, strict=True)):
            if tuple(p["W"].shape) != (layer.n_in, layer.n_out) or tuple(p["b"].shape) != (
                layer.n_out,
            ):
                raise ValueError(
                    f"params[{i}] has W {tuple(p['W'].shape)} and b {tuple(p['b'].shape)}; "
                    f"this model expects W {(layer.n_in, layer.n_out)} and b {(layer.n_out,)}"
                )

    def _check_x(self, X: Any, params: Params) -> Any:
        """Check params and X; return the shared array namespace."""
        self._check_params(params)
        _check_shape("X", X, self.sizes[0], "n_in")
        try:
            xp = array_namespace(X, params[0]["W"])
        except TypeError:
            raise TypeError(
                f"X is a {type(X).__module__}.{type(X).__name__} but the parameters are "
                f"{type(params[0]['W']).__module__}.{type(params[0]['W']).__name__}; move X to "
                "the parameters' backend with backend.asarray(X)"
            ) from None
        _check_float(xp, "X", X)
        dtype = params[0]["W"].dtype
        if X.dtype != dtype:
            raise TypeError(
                f"X has dtype {X.dtype} but the parameters are {dtype}; convert X with "
                f"backend.asarray(X, dtype=...) to the parameters' dtype"
            )
        return xp

    def _check_xy(self, X: Any, Y: Any, params: Params) -> Any:
        xp = self._check_x(X, params)
        _check_shape("Y", Y, self.sizes[-1], "n_out")
        _check_float(xp, "Y", Y)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; they must have the same rows"
            )
        if Y.dtype != X.dtype:
            raise TypeError(f"Y has dtype {Y.dtype} but X has {X.dtype}; they must match")
        return xp


def _check_shape(name: str, arr: Any, width: int, what: str) -> None:
    shape = getattr(arr, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array, received {type(arr).__name__}")
    if len(shape) != 2 or shape[1] != width:
        raise ValueError(
            f"{name} must have shape (N, {width}) ({what} = {width}), received {tuple(shape)}"
        )


def _check_float(xp: Any, name: str, arr: Any) -> None:
    if not xp.isdtype(arr.dtype, "real floating"):
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64), received {arr.dtype}"
        )


def dtype_name(params: Params) -> str:
    """The parameters' float dtype as a name ("float32" or "float64")."""
    return str(params[0]["W"].dtype).rsplit(".", 1)[-1]


def _check_dropout(dropout: float | Sequence[float], n_hidden: int) -> list[float]:
    rates = [dropout] * n_hidden if isinstance(dropout, numbers.Real) else list(dropout)
    if len(rates) != n_hidden:
        raise ValueError(
            f"dropout has {len(rates)} rates but the model has {n_hidden} hidden layers; "
            f"give one rate, or exactly {n_hidden}"
        )
    for r in rates:
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0 <= r < 1:
            raise ValueError(f"dropout rates must be numbers in [0, 1), received {dropout!r}")
    return [float(r) for r in rates]


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    try:
        out = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a list of ints, received {sizes!r}") from None
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1]
    if len(out) < 2 or bad:
        raise ValueError(
            f"sizes must list at least two positive ints [n_in, ..., n_out], received {sizes!r}"
        )
    return [int(s) for s in out]
