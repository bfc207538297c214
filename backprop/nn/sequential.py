"""`Sequential`: a network as a list of layers, trained by hand-derived backpropagation.

Forward, layer l = 0..L-1 (x_0 = X):  x_{l+1}, cache_l = layer_l.forward(x_l).
Backward, from the loss's signal at the output, each layer maps dJ/d(its output) to dJ/d(its
input) and its parameter gradients (`Layer.backward`). For a layer with an activation
(``a = f(z)``) the signal first goes through f' (``delta = dJ/dz = dJ/da * f'(z)``, the delta
the docs and the diagnostics talk about), then through the linear part (`backward_z`):

    delta_{L-1} = (a - y)/N                   fused sigmoid+BCE / softmax+CE (f' cancels)
                = f'(z_{L-1}) * dJ/da         otherwise (e.g. MSE)
    for a Dense layer:  delta_l = (delta_{l+1} @ W_{l+1}.T) * f'_l(a_l)
                        dJ/dW_l = x_l.T @ delta_l (+ alpha/N * W_l),  dJ/db_l = sum_rows(delta_l)

See `Sequential.backprop` for the loop that does this.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from array_api_compat import array_namespace

import backends

from ..data import _host
from ..tree import tree_leaves, tree_map
from ._checks import (
    _check_float,
    _check_input_shape,
    _check_shape,
    _shapes,
    float_dtype_name,
    params_mismatch,
)
from ._component import check_saveable, structural_key
from .activations import ACTIVATIONS
from .layers import Layer, Train, build_layer
from .layers._base import chain_shapes
from .losses import get_loss

__all__ = ["Params", "Sequential", "first_leaf", "float_dtype_name", "is_activation"]

Params = list[Any]
_INF = float("inf")


class Sequential:
    """A stack of layers with a loss.

    Parameters
    ----------
    layers : sequence of `Layer` or layer specs (``{"type": "dense", "units": 64}``)
    loss : name, spec (``{"name": "huber", "delta": 1.0}``) or `Loss`
        "binary_cross_entropy" needs a sigmoid output, "cross_entropy" a softmax output (the
        last layer's activation); with those the output delta is fused: ``(a - y)/N``.
    input_shape : int or tuple of int
        One example's shape, without the batch axis: ``(64,)`` for 64 features, ``(T,)`` for T
        token ids, ``(length, channels)`` for a 1-D signal.
    alpha : float
        L2 penalty ``alpha/(2N) * sum(W**2)`` over the weights that opt in (Dense's and
        Conv1D's W), not biases, scales or embeddings.

    ``params = model.init(seed, backend, dtype)`` is a list with one dict per layer (empty for
    layers without parameters).
    """

    def __init__(
        self,
        layers: Sequence[Any],
        loss: Any = "mse",
        input_shape: int | Sequence[int] | None = None,
        alpha: float = 0.0,
    ) -> None:
        if isinstance(layers, (str, dict, Layer)) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a list of layers, received {layers!r}")
        if not layers:
            raise ValueError("layers must hold at least one layer, received an empty list")
        self.layers = tuple(build_layer(layer) for layer in layers)
        self.loss_function = get_loss(loss)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha < _INF:
            raise ValueError(
                f"alpha must be a real number >= 0, received {alpha!r}; the L2 penalty "
                "alpha/(2N)*sum(W**2) needs a finite value such as 1e-4 (0 for none)"
            )
        self.alpha = float(alpha)
        self.input_shape = _check_input_shape(input_shape)
        self.shapes = chain_shapes(self.layers, self.input_shape)
        self.output_shape = self.shapes[-1]
        out = self.output_activation
        allowed = self.loss_function.outputs
        if allowed is not None and not any(is_activation(out, name) for name in allowed):
            raise ValueError(
                f"loss {self.loss_function.name!r} needs output activation in {list(allowed)}, "
                f"received output={_act_name(out)!r}; change the output or use loss='mse'"
            )
        fused = self.loss_function.fused_output
        self.fused = fused is not None and is_activation(out, fused)
        self._dropout = [
            (layer, shape)
            for layer, shape0 in zip(self.layers, self.shapes, strict=False)
            for layer, shape in layer.dropout_layers(shape0)
        ]
        self._param_shapes: list | None = None

    # -- description -----------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """JSON values that rebuild the model (`backprop.build_model`). Raises
        `backprop.UnregisteredError` when a component's class is not registered."""
        return {
            "layers": [layer.spec() for layer in self.layers],
            "loss": self.loss_function.spec(),
            "input_shape": list(self.input_shape),
            "alpha": self.alpha,
        }

    def key(self) -> Any:
        """The full structure as a hashable key (compiled-step caches): every layer's type and
        hyperparameters, the loss's, alpha, shapes; unregistered components by identity."""
        return structural_key(
            (type(self), self.layers, self.loss_function, self.alpha, self.input_shape)
        )

    def check_saveable(self) -> None:
        check_saveable([*self.layers, self.loss_function])

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return (
            f"Sequential([{layers}], loss={self.loss_function!r}, "
            f"input_shape={self.input_shape}, alpha={self.alpha})"
        )

    @property
    def output_activation(self) -> Any:
        """The last layer's activation (an `Activation` function), or None."""
        return getattr(self.layers[-1], "activation", None)

    @property
    def task(self) -> str:
        """Either "classification" (cross-entropy losses or sigmoid/softmax outputs) or
        "regression"; it picks the default metric (accuracy or R^2)."""
        out = self.output_activation
        if (
            self.loss_function.task == "classification"
            or is_activation(out, "sigmoid")
            or is_activation(out, "softmax")
        ):
            return "classification"
        return "regression"

    @property
    def input_kind(self) -> str:
        """ "float" features, or "int" token ids (an `EmbeddingBag` first)."""
        return self.layers[0].input_kind

    @property
    def dropout_rates(self) -> list[float]:
        """The rate of every dropout layer, in forward order."""
        return [layer.rate for layer, _ in self._dropout]

    @property
    def dropout_shapes(self) -> list[tuple[int, ...]]:
        """The per-example shape of every dropout layer's mask, in forward order."""
        return [shape for _, shape in self._dropout]

    # -- parameters ------------------------------------------------------------------------------
    def init(self, seed: int = 0, backend: Any = "numpy", dtype: str = "float32") -> Params:
        """Every layer's parameters, drawn in layer order from one host generator seeded with
        ``seed`` (float64, then cast), moved to ``backend``: the same numbers on every backend."""
        be, dtype = backends.as_backend(backend), float_dtype_name(dtype)
        return [tree_map(lambda v: be.asarray(v, dtype), p) for p in self.init_host(seed)]

    def init_host(self, seed: int = 0) -> list[Any]:
        """`init`'s parameters as host NumPy float64 arrays."""
        rng = _host.np_rng(seed)
        params = []
        for layer, shape in zip(self.layers, self.shapes, strict=False):
            p, _ = layer.init(shape, rng)
            params.append(p)
        return params

    # -- forward / backward ----------------------------------------------------------------------
    def forward(self, params: Params, X: Any) -> tuple[Any, Any, list]:
        """Inference through every layer: ``(z_out, a_out, caches)``; ``z_out`` is the last
        layer's pre-activation (its output when it has no activation)."""
        return self._forward(self._check_x(X, params), params, X)

    def _forward(
        self, xp: Any, params: Params, X: Any, masks: Sequence[Any] | None = None, train=None
    ) -> tuple[Any, Any, list]:
        """``masks``: one array or None per dropout layer (training); None: inference."""
        if train is None:
            train = Train(masks) if masks is not None else False
        caches = []
        x = X
        for layer, p in zip(self.layers, params, strict=True):
            x, cache = layer.forward(xp, p, x, train=train)
            caches.append(cache)
        z = getattr(caches[-1], "z", x) if self.output_activation is not None else x
        return z, x, caches

    def predict(self, params: Params, X: Any) -> Any:
        """Output activations for inputs X (..., N, *input_shape) -> (..., N, *output_shape)."""
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
        """The loss J and dJ/dparams (structured like ``params``) by backpropagation.

        X: (N, *input_shape), Y: (N, *output_shape) of the parameters' float dtype (X: integer
        token ids for an `EmbeddingBag` model). ``weights``: optional per-row weights (N,)
        (J = (1/N) sum_i w_i l_i). ``masks``: optional dropout masks, one array (N, *shape) or
        None per dropout layer (``dropout_shapes``).
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
        *,
        stacked: tuple[Any, Any, Any] | None = None,
    ) -> tuple[Any, Params, tuple[list, list]]:
        """`loss_and_grad` that also returns what the gradient-flow diagnostics read:
        ``(loss, grads, (deltas, caches))``. ``deltas[l]``: the error signal at layer l, dJ/dz
        (pre-activation) for a layer with an activation, else dJ/d(its output); first layer
        first. ``caches``: the layers' forward caches.

        ``stacked``: ``(xp, w, alpha)`` from `backprop.Ensemble`, which checked its stacked
        params and arrays itself (w: (..., N, 1) or None; alpha: a number or a `PerMember`);
        the loss is then one per member, (K,)."""
        if stacked is None:
            xp = self._check_xy(X, Y, params)
            w = None if weights is None else xp.reshape(weights, (-1, 1))
            alpha = self.alpha
        else:
            xp, w, alpha = stacked
        z, a, caches = self._forward(xp, params, X, train=Train(masks))
        loss = self._loss_value(xp, params, z, a, Y, w, alpha, per_model=stacked is not None)
        l2 = alpha / Y.shape[-1 - len(self.output_shape)]
        grads, deltas = self._backward(xp, params, caches, self._signal(xp, a, Y, w), l2)
        return loss, grads, (deltas, caches)

    def _signal(self, xp: Any, a: Any, Y: Any, w: Any) -> Any:
        """The loss's signal at the output: fused (sigmoid+BCE, softmax+CE: f' cancels) dJ/dz
        = (a - y)/N, else dJ/da (the output layer's f' is applied in `_backward`)."""
        if self.fused:
            signal = self.loss_function.fused_delta(xp, a, Y, w)  # dJ/dz
        else:
            signal = self.loss_function.grad(xp, a, Y, w)  # dJ/da
        return signal

    def _backward(
        self, xp: Any, params: Params, caches: list, signal: Any, l2: Any
    ) -> tuple[Params, list]:
        """``(grads, deltas)`` from the loss's signal at the output (dJ/dz_out when fused, else
        dJ/da_out) back through every layer (`backprop`); ``l2``: alpha/N, 0 for none. Mixed
        precision (`backprop.training._mixed`) calls it with low-precision arrays."""
        n = len(self.layers)
        grads: Params = [None] * n
        deltas: list = [None] * n
        for i in range(n - 1, -1, -1):
            layer, p, cache = self.layers[i], params[i], caches[i]
            if self.fused and i == n - 1:  # signal is already dJ/dz
                deltas[i] = signal
                g, signal = layer.backward_z(xp, p, cache, signal, need_dx=i > 0)
            elif _has_activation(layer):  # delta = dJ/dz = dJ/da * f'(z), then the linear part
                deltas[i] = layer.activation.vjp(xp, cache.z, cache.a, signal)
                g, signal = layer.backward_z(xp, p, cache, deltas[i], need_dx=i > 0)
            else:
                deltas[i] = signal
                g, signal = layer.backward(xp, p, cache, signal, need_dx=i > 0)
            grads[i] = layer.add_l2(xp, p, g, l2) if l2 else g
        return grads, deltas

    def _loss_value(
        self, xp, params, z, a, Y, w=None, alpha: Any = None, per_model: bool = False
    ) -> Any:
        """J with the L2 penalty. ``alpha``: None for the model's, else a number or a
        `PerMember`; ``per_model``: one J per stacked model (K,) (`backprop.Ensemble`)."""
        alpha = self.alpha if alpha is None else alpha
        if per_model:
            loss = self._member_losses(xp, z, a, Y, w)
        elif self.fused:
            loss = self.loss_function.value_from_logits(xp, z, Y, w)
        else:
            loss = self.loss_function.value(xp, a, Y, w)
        if alpha:
            squares = sum(
                xp.sum(v * v, axis=tuple(range(1, v.ndim))) if per_model else xp.sum(v * v)
                for layer, p in zip(self.layers, params, strict=True)
                for v in layer.penalty_arrays(p)
            )
            loss = loss + (alpha / (2.0 * Y.shape[-1 - len(self.output_shape)])) * squares
        return loss

    def _member_losses(self, xp: Any, z: Any, a: Any, Y: Any, w: Any) -> Any:
        if self.fused:
            return self.loss_function.values_from_logits(xp, z, Y, w)
        return self.loss_function.values(xp, a, Y, w)

    # -- static checks (shapes and dtypes only: no host sync, safe under jax.jit) ----------------
    def param_shapes(self) -> list[Any]:
        """The shape of every parameter, structured like ``params``."""
        if self._param_shapes is None:
            self._param_shapes = [tree_map(lambda a: tuple(a.shape), p) for p in self.init_host()]
        return self._param_shapes

    def _check_params(self, params: Params) -> None:
        n = len(self.layers)
        if not isinstance(params, (list, tuple)) or len(params) != n:
            got = f" of length {len(params)}" if isinstance(params, (list, tuple)) else ""
            raise ValueError(
                f"params must be a list of {n} layer dicts (from model.init), received "
                f"{type(params).__name__}{got}"
            )
        for i, (expected, p) in enumerate(zip(self.param_shapes(), params, strict=True)):
            got = _shapes(p)
            if got != expected:
                raise ValueError(params_mismatch(i, self.layers[i], got, expected))

    def _check_x(self, X: Any, params: Params, ref: Any = None) -> Any:
        """Check params and X; return the shared array namespace. ``ref``: the first parameter
        array, when the caller has it."""
        self._check_params(params)
        return self._check_x_array(X, first_leaf(params) if ref is None else ref)

    def _check_x_array(self, X: Any, ref: Any) -> Any:
        """`_check_x` without the parameters' shapes (``ref``: a parameter array or None)."""
        _check_shape(
            "X", X, self.input_shape, "n_in" if len(self.input_shape) == 1 else "input_shape"
        )
        try:
            xp = array_namespace(X, ref) if ref is not None else array_namespace(X)
        except TypeError:
            raise TypeError(
                f"X is a {type(X).__module__}.{type(X).__name__} but the parameters are "
                f"{type(ref).__module__}.{type(ref).__name__}; move X to the parameters' "
                "backend with backend.asarray(X)"
            ) from None
        if self.input_kind == "int":
            if not xp.isdtype(X.dtype, "integral"):
                raise TypeError(
                    f"X must hold integer token ids for this model (its first layer is "
                    f"{self.layers[0]!r}), received dtype {X.dtype}; move it with "
                    "backend.asarray(X, 'int32')"
                )
            return xp
        _check_float(xp, "X", X)
        if ref is not None and X.dtype != ref.dtype:
            raise TypeError(
                f"X has dtype {X.dtype} but the parameters are {ref.dtype}; convert X with "
                f"backend.asarray(X, dtype=...) to the parameters' dtype"
            )
        return xp

    def _check_xy(self, X: Any, Y: Any, params: Params) -> Any:
        self._check_params(params)
        return self._check_xy_arrays(X, Y, first_leaf(params))

    def _check_xy_arrays(self, X: Any, Y: Any, ref: Any) -> Any:
        """`_check_xy` without the parameters' shapes (``ref``: a parameter array or None)."""
        xp = self._check_x_array(X, ref)
        _check_shape(
            "Y", Y, self.output_shape, "n_out" if len(self.output_shape) == 1 else "output shape"
        )
        _check_float(xp, "Y", Y)
        nx, ny = X.shape[-1 - len(self.input_shape)], Y.shape[-1 - len(self.output_shape)]
        if nx != ny or not nx:
            raise ValueError(
                f"X has {nx} rows but Y has {ny}; they must have the same rows"
                if nx != ny
                else f"X has no rows (shape {tuple(X.shape)}); the loss needs at least one row"
            )
        want = ref.dtype if ref is not None else X.dtype
        if Y.dtype != want:
            raise TypeError(f"Y has dtype {Y.dtype} but X has {want}; they must match")
        return xp


def _has_activation(layer: Any) -> bool:
    return getattr(layer, "activation", None) is not None and hasattr(layer, "backward_z")


def is_activation(activation: Any, name: str) -> bool:
    """Whether ``activation`` is an instance of exactly the class registered as ``name`` (a
    subclass or a look-alike with the same name is not: it may compute something else)."""
    return (
        activation is not None and name in ACTIVATIONS and type(activation) is ACTIVATIONS.get(name)
    )


def _act_name(activation: Any) -> str:
    return "none" if activation is None else activation.name or type(activation).__qualname__


def first_leaf(params: Any) -> Any:
    """The first parameter array (its dtype and backend are the model's), or None."""
    if isinstance(params, list) and params and isinstance(params[0], dict):
        for v in params[0].values():  # fast path: the first layer holds arrays (every step)
            if hasattr(v, "shape"):
                return v
    return next(iter(tree_leaves(params)), None)
