"""The pure training step and a minimal epoch loop.

``step(params, state, xb, yb) -> (params, state, loss)`` is a pure function of arrays; the
backend may compile it (``jax.jit`` on JAX). Data is validated and moved to the backend once;
each epoch moves one host-drawn permutation (same seed, same order on every backend) and
gathers the batches on the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import backends

from . import _host
from .data import DataError, check_training_data
from .model import MLP, Params
from .optimizers import Optimizer

__all__ = ["DataError", "TrainResult", "check_training_data", "make_step", "train"]


def make_step(model: MLP, optimizer: Optimizer, backend: Any = None) -> Callable:
    """The training step ``(params, state, xb, yb) -> (params, state, loss)``.

    Pure: inputs are never modified. Compiled with ``backend.compile`` when a backend is given
    (``jax.jit`` on JAX, unchanged elsewhere).
    """

    def step(params: Params, state: Any, xb: Any, yb: Any) -> tuple[Params, Any, Any]:
        loss, grads = model.loss_and_grad(params, xb, yb)
        params, state = optimizer.update(params, grads, state)
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
    """Minibatch training on host data ``X`` (N, n_in), ``Y`` (N, n_out).

    The weights (when ``params`` is None) and the batch order both come from ``seed`` on the
    host, so every backend sees the same numbers. Losses are read back once per epoch.
    """
    be = backends.as_backend(backend)
    if (
        not isinstance(epochs, int)
        or epochs < 1
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"epochs and batch_size must be positive ints, received {epochs!r} and {batch_size!r}"
        )
    x_host, y_host = check_training_data(X, Y, model.sizes[0], model.sizes[-1])
    xs, ys = be.asarray(x_host, dtype), be.asarray(y_host, dtype)
    if params is None:
        params = model.init(seed=seed, backend=be, dtype=dtype)
    state = optimizer.init(params)
    step = make_step(model, optimizer, be)
    rng = _host.np_rng(seed + 1)
    xp, n = be.xp, x_host.shape[0]
    losses: list[float] = []
    for _ in range(epochs):
        order = be.asarray(rng.permutation(n), "int32")
        epoch_losses = []
        for start in range(0, n, batch_size):
            idx = order[start : min(start + batch_size, n)]  # in-bounds: the standard requires it
            xb, yb = xp.take(xs, idx, axis=0), xp.take(ys, idx, axis=0)
            params, state, loss = step(params, state, xb, yb)
            epoch_losses.append(loss)
        losses.extend(float(v) for v in epoch_losses)
    return TrainResult(params=params, state=state, losses=losses)
