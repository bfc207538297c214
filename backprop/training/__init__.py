"""Training: the pure step and its compile cache (`step`), `fit` and its helpers, callbacks,
schedules, optimizers, checkpoints, history, metrics and evaluation. Builds on `backprop.nn`
and `backprop.data`; never on the application or the scikit-learn front end."""

from .step import make_batch_step, make_epoch, make_step
from .train import TrainResult, train

__all__ = ["TrainResult", "make_batch_step", "make_epoch", "make_step", "train"]
