"""backprop: hand-derived backpropagation written once against the Python Array API.

>>> import backends, backprop as bp
>>> be = backends.get_backend("numpy")
>>> model = bp.MLP([2, 8, 1], hidden="tanh", output="sigmoid", loss="binary_cross_entropy")
>>> params = model.init(seed=0, backend=be, dtype="float64")
"""

from . import activations, callbacks, layers, losses, metrics, optimizers, schedules
from ._component import UnregisteredError
from ._registry import UnknownNameError
from .activations import ACTIVATIONS, Activation, get_activation
from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, check_training_data, one_hot
from .diagnostics import gradient_flow
from .evaluation import evaluate
from .fit import FitResult, Run, TrainingDiverged, fit
from .gradcheck import GradcheckResult, gradcheck
from .history import History
from .layers import Dense, Layer
from .losses import LOSSES, Loss, get_loss
from .metrics import METRICS, get_metric
from .model import MLP, build_model
from .optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSProp, get_optimizer
from .schedules import SCHEDULES, Schedule, get_schedule
from .sequential import Sequential
from .training import TrainResult, make_step, train
from .tree import tree_leaves, tree_map

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "METRICS",
    "MLP",
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Activation",
    "Adam",
    "AdamW",
    "Callback",
    "Checkpoint",
    "CheckpointError",
    "DataError",
    "Dense",
    "EarlyStopping",
    "FitResult",
    "GradcheckResult",
    "History",
    "LambdaCallback",
    "Layer",
    "Loss",
    "ModelCheckpoint",
    "Optimizer",
    "RMSProp",
    "Run",
    "Schedule",
    "Sequential",
    "TrainResult",
    "TrainingDiverged",
    "UnknownNameError",
    "UnregisteredError",
    "activations",
    "build_model",
    "callbacks",
    "check_training_data",
    "evaluate",
    "fit",
    "get_activation",
    "get_loss",
    "get_metric",
    "get_optimizer",
    "get_schedule",
    "gradcheck",
    "gradient_flow",
    "layers",
    "load_checkpoint",
    "losses",
    "make_step",
    "metrics",
    "one_hot",
    "optimizers",
    "save_checkpoint",
    "schedules",
    "train",
    "tree_leaves",
    "tree_map",
]
