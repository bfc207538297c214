"""Layers: each a registered, frozen description with its forward and hand-derived backward.

>>> from backprop import layers as L
>>> L.Dense(64, activation="relu").spec()
{'type': 'dense', 'units': 64, 'activation': 'relu'}

The protocol (``init``, ``forward``, ``backward``, ``spec``) is in `backprop.layers._base` and
docs/layers.md. To add a layer: subclass `Layer` as a frozen dataclass and decorate it with
``@backprop.layers.register("name")``; models, configs, checkpoints and the test suite's
gradient checks pick it up from the registry.
"""

from ._base import LAYERS, ActivationCache, Layer, Train, build_layer, register, sum_to
from .activation import Activation
from .conv1d import Conv1D
from .dense import Dense
from .dropout import Dropout
from .embedding import EmbeddingBag
from .layernorm import LayerNorm
from .reshape import Flatten, GlobalAveragePool1D
from .residual import Residual

__all__ = [
    "LAYERS",
    "Activation",
    "ActivationCache",
    "Conv1D",
    "Dense",
    "Dropout",
    "EmbeddingBag",
    "Flatten",
    "GlobalAveragePool1D",
    "Layer",
    "LayerNorm",
    "Residual",
    "Train",
    "build_layer",
    "register",
    "sum_to",
]
