"""What `fit` returns and raises: `FitResult`, `TrainingDiverged`, `TrainingInterrupted`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..nn.model import dtype_name
from ..nn.sequential import Params, Sequential
from .history import History
from .run import Run

__all__ = ["FitResult", "TrainingDiverged", "TrainingInterrupted"]


class TrainingDiverged(FloatingPointError):
    """The loss or the parameters became NaN or infinite, or an epoch's loss exceeded
    ``divergence_factor`` times the untrained model's. ``result`` keeps the last good parameters;
    ``reason``: what went wrong (the message without the advice)."""

    def __init__(self, message: str, result: FitResult, reason: str | None = None) -> None:
        super().__init__(message)
        self.result, self.reason = result, reason


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during an epoch. ``result``: a `FitResult` at the end of the last finished epoch;
    ``run``: the `Run` put back there (parameters, optimizer and schedule state, position, RNG
    states, history), as callbacks saw it in ``on_interrupt`` (`ModelCheckpoint` saves it)."""

    def __init__(self, message: str, result: FitResult, run: Run) -> None:
        super().__init__(message)
        self.result, self.run = result, run


@dataclasses.dataclass
class FitResult:
    """What `fit` returns.

    ``params``: the final parameters (the best epoch's with ``EarlyStopping(restore_best=True)``);
    ``opt_state``: the optimizer state after the last step; ``history``: per-epoch records;
    ``epochs``: epochs completed; ``best_epoch``: set by early stopping; ``stop_reason``: why
    training ended before ``epochs`` (None when it ran them all); ``time``: seconds of training.
    """

    model: Sequential
    backend: Any
    params: Params
    opt_state: Any
    history: History
    epochs: int
    best_epoch: int | None
    stop_reason: str | None
    time: float
    summary: str = ""

    def predict(self, X: Any) -> Any:
        """Outputs for host inputs ``X`` (N, n_in), as a NumPy array; a memory-mapped array or
        a `backprop.data.RowSource` is read and predicted in chunks of rows."""
        from ._sourcedata import is_row_source, predict_source

        if is_row_source(X):
            return predict_source(self.model, self.params, X)
        x = self.backend.asarray(X, dtype_name(self.params))
        return self.backend.to_numpy(self.model.predict(self.params, x))
