"""The layer protocol: a registered, frozen description (no arrays) with forward and backward.

A layer is a frozen dataclass whose fields are its hyperparameters, registered under a type name
(``@register("dense")``). It never holds arrays: parameters live in a dict the model passes in,
so the math stays pure and ``jax.jit`` can trace it. Shapes exclude the batch axis
(``input_shape=(64,)``); arrays carry it, and any leading axes before it: ``x`` is
``(..., N, *input_shape)``: every shipped layer takes extra leading axes on ``x`` with the
parameters shared across them (their gradients are summed over those axes by `sum_to`), which
the test suite checks with a leading axis of 2.

Stacked parameters (`backprop.Ensemble`: K models in one program). A layer whose class sets
``stackable = True`` also takes the parameters of K models stacked on a leading member axis,
shaped by ``stacked_shapes``: each array right-aligned against the layer's output
(K, N, *output_shape), so a bias (units,) becomes (K, 1, units) and a Dense W (n_in, units)
(K, n_in, units); x is then (N, *input_shape), shared by the members, or (K, N, ...), and
y is (K, N, ...). The gradients keep the member axis: `sum_to` sums only over axes a
parameter was broadcast along, never over K (member k's slice of every gradient is member
k's own gradient), so most one-model code needs no change.

The methods (see docs/layers.md for a worked example):

``init(input_shape, rng) -> (params, output_shape)``
    Parameters as host NumPy arrays (float64), drawn from the host generator ``rng`` in a fixed
    order, so the same seed gives the same numbers on every backend.
``forward(xp, params, x, *, train) -> (y, cache)``
    ``train`` is falsy for inference, or a `Train` handing out dropout masks. ``cache``: what
    backward needs (inputs, outputs, anything forward computed that backward can reuse).
``backward(xp, params, cache, dy, *, need_dx=True) -> (grads, dx)``
    ``dy = dJ/dy``; returns ``dJ/dparams`` (a dict like ``params``) and ``dx = dJ/dx`` (None when
    ``need_dx`` is False: the first layer's input gradient is never used).
``spec()``
    ``{"type": name, **hyperparameters}``; `build_layer` builds the layer back from it.

A layer with a built-in activation (`Dense`, `Conv1D`) also has ``activation`` and
``backward_z(xp, params, cache, dz, *, need_dx)``, the backward from ``dz = dJ/dz`` (the
pre-activation): the model uses it for the fused softmax/sigmoid + cross-entropy delta and for
the gradient-flow diagnostics. Its cache has ``z`` and ``a``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from ..._registry import Registry
from .._component import Component
from ..activations import get_activation

__all__ = [
    "LAYERS",
    "Activated",
    "ActivationCache",
    "Layer",
    "Train",
    "build_layer",
    "chain_shapes",
    "register",
    "sum_to",
]

LAYERS: Registry[type] = Registry("layer")

register = LAYERS.register_class  # class decorator: @register("type name")

Shape = tuple[int, ...]


class Train:
    """The ``train`` argument of ``forward`` during a training step: truthy, and hands out the
    host-drawn dropout masks in forward order (``mask()`` -> the next one, None when there is
    none, e.g. a rate of 0 or a gradient check without masks)."""

    def __init__(self, masks: Sequence[Any] | None = None) -> None:
        self._masks = iter(masks or ())

    def __bool__(self) -> bool:
        return True

    def mask(self) -> Any:
        return next(self._masks, None)


@dataclasses.dataclass(frozen=True, repr=False)
class Layer(Component):
    """Base class of layers (see the module docstring for the protocol).

    Class attributes: ``penalized``: parameter names the model's L2 penalty applies to
    (Dense's "W"); ``weights``: names whose gradient norm the diagnostics report (default:
    all); ``input_kind``: "float" or "int" (token ids); ``dropout``: True for a layer that takes
    a mask from `Train` (the fit loop draws one per such layer and step); ``stackable``: True
    when forward and backward take parameters stacked by `stacked_shapes` (an ensemble).
    """

    registry: ClassVar[Registry] = LAYERS
    spec_key: ClassVar[str] = "type"
    penalized: ClassVar[tuple[str, ...]] = ()
    weights: ClassVar[tuple[str, ...] | None] = None
    input_kind: ClassVar[str] = "float"
    dropout: ClassVar[bool] = False
    stackable: ClassVar[bool] = False

    def init(self, input_shape: Shape, rng: Any) -> tuple[dict[str, Any], Shape]:
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        """The output shape for ``input_shape`` (batch axis excluded); raises ValueError for an
        input this layer cannot take. Default: ``init`` with a throwaway generator."""
        from ...data import _host

        return tuple(self.init(tuple(input_shape), _host.np_rng(0))[1])

    def forward(self, xp: Any, params: dict[str, Any], x: Any, *, train: Any = False):
        raise NotImplementedError

    def backward(
        self, xp: Any, params: dict[str, Any], cache: Any, dy: Any, *, need_dx: bool = True
    ) -> tuple[dict[str, Any], Any]:
        raise NotImplementedError

    @classmethod
    def examples(cls) -> list[tuple[Layer, Shape]]:
        """Instances and input shapes the test suite checks this layer at (finite differences
        and autodiff on every backend, with and without a leading batch axis). Every
        registered layer must give at least one; cover each option (padding modes, activations)."""
        raise NotImplementedError(
            f"layer {cls.__qualname__} gives no examples(); return [(instance, input_shape), ...] "
            "so the test suite can check its gradients"
        )

    # -- hooks the model calls; combinators (`Residual`) override them to reach their block --
    def penalty_arrays(self, params: dict[str, Any]) -> list[Any]:
        """The arrays the model's L2 penalty ``alpha/(2N) * sum(W**2)`` covers."""
        return [params[k] for k in self.penalized]

    def add_l2(self, xp: Any, params: dict[str, Any], grads: dict[str, Any], l2: Any) -> dict:
        """``grads`` plus the penalty's gradient ``l2 * W`` (l2 = alpha/N) on penalized arrays.
        ``l2``: a number, or a `PerMember` for K stacked models (one alpha per member)."""
        return {k: g + l2 * params[k] if k in self.penalized else g for k, g in grads.items()}

    def weight_arrays(self, tree: dict[str, Any]) -> list[Any]:
        """The entries of ``tree`` (params or grads) whose norm the diagnostics report."""
        return list(tree.values()) if self.weights is None else [tree[k] for k in self.weights]

    def dropout_layers(self, input_shape: Shape) -> list[tuple[Layer, Shape]]:
        """``(layer, input shape)`` of every dropout layer in this one, in forward order."""
        return [(self, tuple(input_shape))] if self.dropout else []

    def stacked_shapes(self, input_shape: Shape, k: int) -> dict[str, Any]:
        """The shape of each parameter with K models stacked (module docstring): shape s of
        one model -> (K, 1, ..., 1, *s), right-aligned against the output (K, N, *output).
        A layer with parameters that is not ``stackable`` raises TypeError naming it."""
        from ...data import _host

        params, out = self.init(tuple(input_shape), _host.np_rng(0))
        if params and not self.stackable:
            raise TypeError(
                f"layer {self!r} ({type(self).__qualname__}) does not take stacked parameters "
                "(its class does not set stackable = True), so an Ensemble cannot hold it; "
                "use the layers backprop.layers ships, or make its forward/backward take "
                "parameters with a leading member axis and set stackable = True"
            )
        rank = 1 + len(out)  # the activation's axes: N and the example's
        return {
            name: (k, *(1,) * max(0, rank - len(v.shape)), *v.shape) for name, v in params.items()
        }


@dataclasses.dataclass(frozen=True)
class ActivationCache:
    """Forward values of a layer with an activation: its input ``x``, pre-activation ``z`` and
    output ``a = f(z)``."""

    x: Any
    z: Any
    a: Any


@dataclasses.dataclass(frozen=True, repr=False)
class Activated(Layer):
    """A layer ``a = f(z)`` on top of a linear map ``z = affine(x)`` (`Dense`, `Conv1D`).

    Subclasses implement ``affine(xp, params, x)`` and ``backward_z`` (the linear part's
    backward from ``dz``); this class adds the activation on both sides. Subclasses declare
    the field ``activation`` (None: identity; a name, spec or `Activation`).
    """

    def __post_init__(self) -> None:
        act = get_activation("identity" if self.activation is None else self.activation)
        object.__setattr__(self, "activation", act)

    def affine(self, xp: Any, params: dict[str, Any], x: Any) -> Any:
        raise NotImplementedError

    def backward_z(
        self, xp: Any, params: dict[str, Any], cache: Any, dz: Any, *, need_dx: bool = True
    ) -> tuple[dict[str, Any], Any]:
        raise NotImplementedError

    def forward(self, xp, params, x, *, train=False):
        """``z = affine(x)``, ``a = f(z)``; the cache keeps x, z and a."""
        z = self.affine(xp, params, x)
        a = self.activation.forward(xp, z)
        return a, ActivationCache(x=x, z=z, a=a)

    def backward(self, xp, params, cache, dy, *, need_dx=True):
        """``dz = dy * f'(z)`` (f' from the cached output where it can be), then `backward_z`."""
        dz = self.activation.vjp(xp, cache.z, cache.a, dy)
        return self.backward_z(xp, params, cache, dz, need_dx=need_dx)


def chain_shapes(layers: Sequence[Layer], input_shape: Shape, where: str = "layer") -> list[Shape]:
    """``[input_shape, shape after layer 0, ...]`` through ``layers``; a layer that cannot take
    its input raises ValueError naming it (``where`` and its index)."""
    shapes = [tuple(input_shape)]
    for i, layer in enumerate(layers):
        try:
            shapes.append(tuple(layer.output_shape(shapes[-1])))
        except ValueError as exc:
            raise ValueError(f"{where} {i} ({layer!r}): {exc}") from None
    return shapes


def sum_to(xp: Any, g: Any, shape: Sequence[int]) -> Any:
    """Sum ``g`` over its extra leading axes (and axes where ``shape`` has 1) so it has
    ``shape``: the gradient of a parameter that was broadcast over a stack of models.

    K stacked models' parameter (K, 1, ..., 1, *s) keeps its member axis (never summed: it is
    in ``shape``). A caller that summed the rows away first (``xp.sum(dz, axis=-2)`` for a
    bias) hands a ``g`` with fewer axes than ``shape``: they come back as 1-axes after the
    member axis, then every axis where ``shape`` has 1 is summed."""
    if g.shape == shape:  # the common case: nothing was broadcast
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = xp.sum(g, axis=tuple(range(extra)))
    elif extra < 0:
        g = xp.reshape(g, (g.shape[0], *(1,) * -extra, *g.shape[1:]))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return g


def build_layer(spec: Any) -> Layer:
    """A layer from its spec ``{"type": name, **hyperparameters}`` (a `Layer` passes through).

    Nested specs (an activation spec, a `Residual`'s list of layer specs) are built by the
    layer's own constructor. Unknown types and bad hyperparameters raise errors naming them.
    """
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Layer):
        raise TypeError(f"received the layer class {spec.__qualname__}; pass an instance")
    if not isinstance(spec, dict) or "type" not in spec:
        raise TypeError(
            f"a layer spec is a dict with a 'type' key, e.g. {{'type': 'dense', 'units': 64}}; "
            f"received {spec!r}"
        )
    rest = dict(spec)
    return LAYERS.build(rest.pop("type"), Layer, **rest)
