"""Optimizers as pure ``init``/``update`` pairs, registered by name.

>>> opt = SGD(lr=0.1, momentum=0.9)
>>> # state = opt.init(params); params, state = opt.update(params, grads, state)

To add one: a module here with an `Optimizer` subclass decorated ``@register("name")``, imported
below.
"""

from ._base import OPTIMIZERS, Optimizer, get_optimizer, register
from .sgd import SGD

__all__ = ["OPTIMIZERS", "SGD", "Optimizer", "get_optimizer", "register"]
