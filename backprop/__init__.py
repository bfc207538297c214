"""backprop: hand-derived backpropagation written once against the Python Array API.

>>> import backends, backprop as bp
>>> be = backends.get_backend("numpy")
>>> model = bp.MLP([2, 8, 1], hidden="tanh", output="sigmoid", loss="binary_cross_entropy")
>>> params = model.init(seed=0, backend=be, dtype="float64")
"""

from . import activations, losses, optimizers
from ._registry import UnknownNameError
from .activations import ACTIVATIONS, Activation, get_activation
from .data import DataError, check_training_data, one_hot
from .gradcheck import GradcheckResult, gradcheck
from .layers import Dense
from .losses import LOSSES, Loss, get_loss
from .model import MLP
from .optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSProp, get_optimizer
from .training import TrainResult, make_step, train
from .tree import tree_leaves, tree_map

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "OPTIMIZERS",
    "SGD",
    "Activation",
    "Adam",
    "AdamW",
    "DataError",
    "Dense",
    "GradcheckResult",
    "Loss",
    "Optimizer",
    "RMSProp",
    "TrainResult",
    "UnknownNameError",
    "activations",
    "check_training_data",
    "get_activation",
    "get_loss",
    "get_optimizer",
    "gradcheck",
    "losses",
    "make_step",
    "one_hot",
    "optimizers",
    "train",
    "tree_leaves",
    "tree_map",
]
