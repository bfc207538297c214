"""The pure training step and its compile cache (`train`, the short form of `fit`, is in
`backprop.fit`).

``step(params, state, xb, yb, lr=None, weights=None, masks=None) -> (params, state, loss)`` is a
pure function of arrays; the backend may compile it (``jax.jit`` on JAX). ``lr`` is the step's
learning rate (a Python float the schedule computed; traced, so a new value does not recompile);
``weights`` (B,) the rows' sample weights; ``masks`` the dropout masks of the hidden layers.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import backends

from ..nn.sequential import Params, Sequential
from ._mixed import mixed_step
from .optimizers import Optimizer

__all__ = ["make_batch_step", "make_epoch", "make_host_batch_step", "make_step"]


_COMPILED: collections.OrderedDict[tuple, Callable] = collections.OrderedDict()
_COMPILED_MAX = 32  # compiled functions kept (least recently used dropped first)


def _compiled(
    kind: Any, model: Sequential, optimizer: Optimizer | None, be: Any, build: Callable
) -> Callable:
    """``build()`` compiled once per (kind, model, optimizer, backend) on compiling backends.

    ``jax.jit`` caches traces per function object, so a fresh closure per `fit` call would
    retrace and recompile every call; reusing the compiled function means a second `fit` of the
    same model and optimizer (another seed, more epochs, cross-validation folds) compiles
    nothing. The key is everything the traced function depends on: ``kind`` (with the
    compute dtype of mixed precision: a float32 and a bfloat16 step of the same model and
    optimizer are different programs), the model's full structure
    (`Sequential.key`: every layer's, activation's and loss's class and hyperparameters, never
    just their names; unregistered components by identity), the optimizer's class and complete
    repr (its constructor arguments) and the backend (library, device).
    """
    if not be.compiles:
        return build()
    key = (kind, model.key(), type(optimizer), repr(optimizer), be)
    fn = _COMPILED.get(key)
    if fn is None:
        fn = _COMPILED[key] = build()
        if len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
    return fn


def _pure_step(model: Sequential, optimizer: Optimizer, compute: str | None = None) -> Callable:
    """The step; ``compute`` "bfloat16"/"float16": in mixed precision (`training._mixed`)."""
    if compute is not None:
        return mixed_step(model, optimizer, compute)

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

    return step


def make_step(
    model: Sequential, optimizer: Optimizer, backend: Any = None, compute: str | None = None
) -> Callable:
    """The training step ``(params, state, xb, yb, lr, weights, masks) -> (params, state, loss)``.

    Pure: inputs are never modified (nor donated). Compiled with ``backend.compile`` when a
    backend is given (``jax.jit`` on JAX, unchanged elsewhere); the compiled step is cached, so
    asking again for the same model, optimizer and backend returns the same function.
    ``compute``: "bfloat16" or "float16" for mixed precision (float32 ``params`` and ``state``,
    `backprop.training._mixed`); None: everything in the parameters' dtype.
    """
    if backend is None:
        return _pure_step(model, optimizer, compute)
    be = backends.as_backend(backend)
    return _compiled(
        ("step", compute), model, optimizer, be,
        lambda: be.compile(_pure_step(model, optimizer, compute)),
    )  # fmt: skip


def make_batch_step(
    model: Sequential, optimizer: Optimizer, backend: Any, compute: str | None = None
) -> Callable:
    """`fit`'s step on device-resident data: ``(params, state, x, y, w, idx, lr, masks) ->
    (params, state, loss)`` trains on rows ``idx`` (B,) of ``x`` (N, n_in), ``y`` (N, n_out)
    and ``w`` (N,) or None, gathered inside the step (one dispatch per step on JAX).

    Compiled and cached like `make_step`; ``params`` and ``state`` are donated (invalid after
    the call on backends that donate), so pass arrays nobody else holds.
    """
    be = backends.as_backend(backend)
    batch_step = _gathering_step(model, optimizer, be, compute)
    return _compiled(
        ("batch_step", compute), model, optimizer, be,
        lambda: be.compile(batch_step, donate_argnums=(0, 1)),
    )  # fmt: skip


def make_host_batch_step(
    model: Sequential, optimizer: Optimizer, backend: Any, compute: str | None = None
) -> Callable:
    """`fit`'s step on batches that come from the host (a data source): the pure `make_step`
    ``(params, state, xb, yb, lr, weights, masks) -> (params, state, loss)``, compiled, cached
    and donating ``params`` and ``state`` like `make_batch_step`."""
    be = backends.as_backend(backend)
    step = _pure_step(model, optimizer, compute)
    return _compiled(
        ("host_batch_step", compute), model, optimizer, be,
        lambda: be.compile(step, donate_argnums=(0, 1)),
    )  # fmt: skip


def _gathering_step(
    model: Sequential, optimizer: Optimizer, be: Any, compute: str | None = None
) -> Callable:
    """The uncompiled ``(params, state, x, y, w, idx, lr, masks) -> (params, state, loss)`` of
    `make_batch_step`: rows ``idx`` gathered on the device (`Backend.take_rows`), then the pure
    step."""
    step = _pure_step(model, optimizer, compute)

    def batch_step(params, state, x, y, w, idx, lr, masks):
        wb = None if w is None else be.take_rows(w, idx)
        return step(params, state, be.take_rows(x, idx), be.take_rows(y, idx), lr, wb, masks)

    return batch_step


def make_epoch(
    model: Sequential, optimizer: Optimizer, backend: Any, compute: str | None = None
) -> Callable:
    """Many steps as one call: ``(params, state, x, y, w, order, lrs) -> (params, state,
    losses)``. Row ``s`` of ``order`` (S, B) holds the rows of step ``s``, ``lrs`` (S,) its
    learning rates; ``losses`` (S,) are the steps' losses.

    The steps run through ``backend.scan``: one compiled ``jax.lax.scan`` on JAX (one dispatch
    for the whole epoch, no per-step Python), a Python loop elsewhere. Every step is the same
    pure step as `make_batch_step`'s, so the numbers match step-by-step training. Compiled,
    cached and donating like `make_batch_step`; S and B are part of the compiled shape, so an
    epoch of the same size reuses it.
    """
    be = backends.as_backend(backend)
    batch_step = _gathering_step(model, optimizer, be, compute)

    def epoch(params, state, x, y, w, order, lrs):
        def body(carry, row):
            idx, lr = row
            params, state, loss = batch_step(*carry, x, y, w, idx, lr, None)
            return (params, state), loss

        (params, state), losses = be.scan(body, (params, state), (order, lrs))
        return params, state, losses

    return _compiled(
        ("epoch", compute), model, optimizer, be,
        lambda: be.compile(epoch, donate_argnums=(0, 1)),
    )  # fmt: skip
