"""backprop: hand-derived backpropagation written once against the Python Array API.

>>> import backends, backprop as bp
>>> be = backends.get_backend("numpy")
>>> model = bp.MLP([2, 8, 1], hidden="tanh", output="sigmoid", loss="binary_cross_entropy")
>>> params = model.init(seed=0, backend=be, dtype="float64")
"""

import sys as _sys

from ._registry import UnknownNameError
from .data.checks import DataError, check_training_data, one_hot
from .nn import activations, layers, losses
from .nn._component import UnregisteredError
from .nn.activations import ACTIVATIONS, Activation, get_activation
from .nn.diagnostics import gradient_flow
from .nn.ensemble import Ensemble
from .nn.gradcheck import GradcheckResult, gradcheck
from .nn.layers import Dense, Layer
from .nn.losses import LOSSES, Loss, get_loss
from .nn.model import MLP, build_model
from .nn.sequential import Sequential
from .training import callbacks, metrics, optimizers, schedules
from .training._ensemble_result import EnsembleResult
from .training.callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
from .training.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .training.fit import FitResult, Run, TrainingDiverged, TrainingInterrupted, fit
from .training.history import History
from .training.metrics import METRICS, get_metric
from .training.optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSProp, get_optimizer
from .training.schedules import SCHEDULES, Schedule, get_schedule
from .training.scoring import evaluate
from .training.step import make_step
from .training.train import TrainResult, train
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
    "Ensemble",
    "EnsembleResult",
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
    "TrainingInterrupted",
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

# The modules' paths before the package was grouped into folders (backprop/README layout):
# ``import backprop.activations`` and ``from backprop.config import load_config`` keep working.
from .app import cli as _cli
from .app import config as _config
from .app import experiment as _experiment
from .data import datasets
from .data import preprocessing as _preprocessing
from .nn import diagnostics as _diagnostics
from .nn import gradcheck as _gradcheck
from .nn import model as _model
from .nn import sequential as _sequential
from .training import checkpoint as _checkpoint
from .training import evaluation as _evaluation
from .training import fit as _fit
from .training import history as _history

for _old, _module in {
    "activations": activations,
    "callbacks": callbacks,
    "checkpoint": _checkpoint,
    "cli": _cli,
    "config": _config,
    "data_preprocessing": _preprocessing,
    "datasets": datasets,
    "diagnostics": _diagnostics,
    "evaluation": _evaluation,
    "experiment": _experiment,
    "fit": _fit,
    "gradcheck": _gradcheck,
    "history": _history,
    "layers": layers,
    "losses": losses,
    "metrics": metrics,
    "model": _model,
    "optimizers": optimizers,
    "schedules": schedules,
    "sequential": _sequential,
}.items():
    _sys.modules.setdefault(f"{__name__}.{_old}", _module)
del _old, _module
