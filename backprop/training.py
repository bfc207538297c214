"""The pure training step, and `train`, the short form of `backprop.fit`.

``step(params, state, xb, yb, lr=None, weights=None, masks=None) -> (params, state, loss)`` is a
pure function of arrays; the backend may compile it (``jax.jit`` on JAX). ``lr`` is the step's
learning rate (a Python float the schedule computed; traced, so a new value does not recompile);
``weights`` (B,) the rows' sample weights; ``masks`` the dropout masks of the hidden layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import backends

from .data import DataError, check_training_data
from .model import MLP, Params
from .optimizers import Optimizer

__all__ = ["DataError", "TrainResult", "check_training_data", "make_step", "train"]


def make_step(model: MLP, optimizer: Optimizer, backend: Any = None) -> Callable:
    """The training step ``(params, state, xb, yb, lr, weights, masks) -> (params, state, loss)``.

    Pure: inputs are never modified. Compiled with ``backend.compile`` when a backend is given
    (``jax.jit`` on JAX, unchanged elsewhere).
    """

    def step(
        params: Params,
        state: Any,
        xb: Any,
        yb: Any,
        lr: Any = None,
        weights: Any = None,
        masks: Any = None,
    ) -> tuple[Params, Any, Any]:
        loss, grads = model.loss_and_grad(params, xb, yb, weights, masks)
        params, state = optimizer.update(params, grads, state, lr)
        return params, state, loss

    return step if backend is None else backends.as_backend(backend).compile(step)


@dataclasses.dataclass
class TrainResult:
    """Final parameters and optimizer state; ``losses``: the loss of every step, in order."""

    params: Params
    state: Any
    losses: list[float]


def train(
    model: MLP,
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
    from .fit import fit  # fit builds on make_step

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
