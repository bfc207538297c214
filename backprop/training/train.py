"""`train`: `backprop.fit` without validation, metrics or output, returning every step's loss."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..nn.sequential import Params, Sequential
from .fit import fit
from .optimizers import Optimizer

__all__ = ["TrainResult", "train"]


@dataclasses.dataclass
class TrainResult:
    """Final parameters and optimizer state; ``losses``: the loss of every step, in order."""

    params: Params
    state: Any
    losses: list[float]


def train(
    model: Sequential,
    optimizer: Optimizer,
    X: Any,
    Y: Any,
    *,
    backend: Any = "numpy",
    dtype: str = "float32",
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    params: Params | None = None,
) -> TrainResult:
    """`backprop.fit` without validation, metrics or output: minibatch training on host data
    ``X`` (N, n_in), ``Y`` (N, n_out), returning every step's loss.

    The weights (when ``params`` is None) and the batch order both come from ``seed`` on the
    host, so every backend sees the same numbers.
    """

    result = fit(
        model,
        X,
        Y,
        optimizer=optimizer,
        backend=backend,
        dtype=dtype,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        params=params,
        metric=None,
        verbose=0,
    )
    return TrainResult(result.params, result.opt_state, result.history.step_losses)
