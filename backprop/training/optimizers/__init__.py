"""Optimizers as pure ``init``/``update`` pairs, registered by name.

>>> opt = SGD(lr=0.1, momentum=0.9)             # or Adam(), AdamW(weight_decay=0.01), RMSProp()
>>> opt = Adam(lr=1e-3, clip_norm=1.0)           # every optimizer: clip to a global norm first
>>> # state = opt.init(params); params, state = opt.update(params, grads, state)

To add one: a module here with a frozen-dataclass `Optimizer` subclass decorated
``@register("name")`` that defines ``init`` and ``_update`` (``update`` clips, then calls it),
imported below.
"""

from ._base import OPTIMIZERS, Optimizer, clip_by_global_norm, get_optimizer, register
from .adam import Adam, AdamW
from .rmsprop import RMSProp
from .sgd import SGD

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSProp",
    "clip_by_global_norm",
    "get_optimizer",
    "register",
]
