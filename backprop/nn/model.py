"""`MLP`: the multilayer perceptron as a `Sequential` of `Dense` layers (and `Dropout`).

``MLP([n_in, h1, ..., n_out], hidden, output, loss, alpha, dropout)`` builds
``Sequential([Dense(h1, hidden), (Dropout(rate)), ..., Dense(n_out, output)], loss,
input_shape=(n_in,), alpha)``: the same parameters (one ``{"W", "b"}`` dict per dense layer, an
empty dict per dropout layer), the same initial weights and the same numbers as any
`Sequential` of those layers. Its ``spec()`` is its constructor arguments, so checkpoints and
configs keep their short form. The math of the delta recursion is in `backprop.sequential`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from .activations import ACTIVATIONS, get_activation
from .layers import Dense, Dropout
from .sequential import Params, Sequential, first_leaf

__all__ = ["MLP", "build_model", "dtype_name"]


class MLP(Sequential):
    """Multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, input first: ``[n_in, hidden..., n_out]`` (at least two entries).
    hidden : activation or sequence of activations
        Hidden activation: one (name, spec such as ``{"name": "leaky_relu", "slope": 0.1}``, or
        `Activation`) for every hidden layer, or one per hidden layer.
    output : activation
        Output activation ("identity", "sigmoid", "softmax", ...).
    loss : name, spec or `Loss`
        "mse", "huber", "binary_cross_entropy" (needs output="sigmoid") or "cross_entropy"
        (needs output="softmax").
    alpha : float
        L2 penalty: J += alpha/(2N) * sum(W**2) over weights, not biases.
    dropout : float or sequence of float
        Dropout rate of each hidden layer's output during training (one rate for every hidden
        layer, or one per hidden layer), in [0, 1). Each nonzero rate adds a `Dropout` layer
        after its hidden layer (inverted dropout, masks drawn on the host: the same seed drops
        the same units on every backend; prediction needs no rescaling).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        hidden: Any = "relu",
        output: Any = "identity",
        loss: Any = "mse",
        alpha: float = 0.0,
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        self.sizes = _check_sizes(sizes)
        n_hidden = len(self.sizes) - 2
        one = isinstance(hidden, (str, dict)) or not isinstance(hidden, Sequence)
        hidden_list = [hidden] * n_hidden if one else list(hidden)
        if len(hidden_list) != n_hidden:
            raise ValueError(
                f"hidden has {len(hidden_list)} activations but sizes {self.sizes} has "
                f"{n_hidden} hidden layers; give one, or exactly {n_hidden}"
            )
        acts = [get_activation(h) for h in hidden_list]
        for a in acts:
            if not a.hidden:
                allowed = [n for n in ACTIVATIONS if ACTIVATIONS.get(n).hidden]
                raise ValueError(
                    f"activation {a.name!r} can only be used on the output layer; "
                    f"hidden layers take one of {allowed}"
                )
        self.dropout = _check_dropout(dropout, n_hidden)
        layers: list[Any] = []
        for units, act, rate in zip(self.sizes[1:-1], acts, self.dropout, strict=True):
            layers.append(Dense(units, act))
            if rate:
                layers.append(Dropout(rate))
        layers.append(Dense(self.sizes[-1], get_activation(output)))
        super().__init__(layers, loss=loss, input_shape=(self.sizes[0],), alpha=alpha)

    @property
    def dense_layers(self) -> list[Dense]:
        """The `Dense` layers, input side first (``model.layers`` also holds any `Dropout`)."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def dense_params(self, params: Params) -> Params:
        """The dense layers' ``{"W", "b"}`` dicts of ``params`` (without the dropout ``{}``)."""
        return [p for layer, p in zip(self.layers, params, strict=True) if isinstance(layer, Dense)]

    def expand_params(self, dense: Params) -> Params:
        """The inverse of `dense_params`: one dict per dense layer -> ``params`` for this model
        (an empty dict inserted for each dropout layer)."""
        dense = list(dense)
        n = len(self.dense_layers)
        if len(dense) != n:
            raise ValueError(f"expected {n} dense-layer dicts, received {len(dense)}")
        it = iter(dense)
        return [next(it) if isinstance(layer, Dense) else {} for layer in self.layers]

    def spec(self) -> dict[str, Any]:
        """The constructor arguments as plain JSON values; ``MLP(**model.spec())`` rebuilds it."""
        self.check_saveable()
        acts = [layer.activation.spec() for layer in self.dense_layers]
        return {
            "sizes": list(self.sizes),
            "hidden": acts[:-1],
            "output": acts[-1],
            "loss": self.loss_function.spec(),
            "alpha": self.alpha,
            "dropout": list(self.dropout),
        }

    def __repr__(self) -> str:
        acts = [layer.activation for layer in self.dense_layers]
        args = {
            "sizes": list(self.sizes),
            "hidden": acts[:-1],
            "output": acts[-1],
            "loss": self.loss_function,
            "alpha": self.alpha,
            "dropout": list(self.dropout),
        }
        return "MLP(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def build_model(spec: dict[str, Any]) -> Sequential:
    """The model a ``spec()`` describes: a `Sequential` (``{"layers": [...], ...}``) or an
    `MLP` (its constructor arguments)."""
    if not isinstance(spec, dict):
        raise TypeError(f"a model spec is a dict, received {type(spec).__name__}")
    if "layers" in spec:
        return Sequential(**spec)
    return MLP(**spec)


def dtype_name(params: Params) -> str:
    """The parameters' float dtype as a name ("float32" or "float64")."""
    return str(first_leaf(params).dtype).rsplit(".", 1)[-1]


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
