"""`fit`'s guard against a loss that explodes but stays finite.

Cross-entropy computed from the logits stays finite while the logits grow without bound, so a
classifier trained at an absurd learning rate ends at chance accuracy with no NaN to report.
`fit` therefore compares each epoch's mean training loss with a reference: the loss of the
untrained model, ``model.init(seed)``, on the training rows with the training weights (with
``params`` given, the larger of that and their loss). An epoch whose loss exceeds
``divergence_factor`` times the reference diverged. The reference is a forward pass and a host
read at the start of `fit` (deterministic, so a resumed run gets the same); the check itself
compares host floats at the epoch end, adding nothing to the epoch's one sync.
"""

from __future__ import annotations

import math
from typing import Any

from ..nn.sequential import Sequential
from .evaluation import evaluate_arrays

__all__ = [
    "Diverged",
    "as_epoch_loss",
    "check_factor",
    "check_loss",
    "nonfinite",
    "reference",
    "reference_loss",
]


def check_factor(factor: Any) -> float | None:
    """``factor`` as a float: a finite number > 1, or None (no check)."""
    if factor is None:
        return None
    ok = isinstance(factor, (int, float)) and not isinstance(factor, bool)
    if not ok or not math.isfinite(factor) or not factor > 1:
        raise ValueError(
            "fit: divergence_factor must be a finite number > 1 (an epoch whose mean training "
            "loss exceeds that many times the untrained model's loss raises TrainingDiverged) "
            f"or None to turn the check off, received {factor!r}"
        )
    return float(factor)


def reference_loss(
    model: Sequential, be: Any, settings: dict[str, Any], data: Any, n_steps: int, given: Any
) -> float:
    """The loss of ``model.init(seed)`` on the training rows ``data`` (`FitData`) as the
    epoch's mean training loss measures it, a Python float; with ``given`` (parameters the
    user started from instead) the larger of the two losses, so a run that starts from worse
    weights is not a divergence. inf without a ``divergence_factor`` (nothing computed).
    """
    return reference(
        model, be, settings, given, lambda params: _epoch_loss(model, params, data, n_steps, be.xp)
    )


def reference(
    model: Sequential, be: Any, settings: dict[str, Any], given: Any, epoch_loss: Any
) -> float:
    """The larger of ``epoch_loss(model.init(seed))`` and ``epoch_loss(given)`` (given: the
    user's start parameters or None); inf without a ``divergence_factor``. ``epoch_loss``:
    parameters -> the mean training loss an epoch would report for them held fixed (rows in
    memory: `_epoch_loss`; a data source: its streamed version)."""
    if settings["divergence_factor"] is None:
        return math.inf
    init = model.init(seed=settings["seed"], backend=be, dtype=settings["dtype"])
    starts = [init] if given is None else [init, given]
    return max(epoch_loss(params) for params in starts)


def _epoch_loss(model: Sequential, params: Any, data: Any, n_steps: int, xp: Any) -> float:
    """The mean training loss an epoch of ``n_steps`` steps would report for ``params`` held
    fixed (one forward pass, one host read).

    Data term: (1/N) sum_i w_i l_i over all N rows (`evaluate_arrays`, in chunks), which
    is the batch-size-weighted mean of the batch losses. L2 term: each of the epoch's S steps
    adds alpha/(2B) sum(W**2) for its batch of B rows, and their B/N-weighted mean is
    S * alpha/(2N) sum(W**2), not the alpha/(2N) sum(W**2) of one pass over all rows.
    """
    loss = evaluate_arrays(model, params, data.x, data.y, None, weights=data.w)["loss"]
    return as_epoch_loss(model, params, loss, data.x.shape[0], n_steps, xp)


def as_epoch_loss(model: Sequential, params: Any, loss: Any, n: int, n_steps: int, xp: Any):
    """The one-pass loss ``loss`` over ``n`` rows (with the L2 term alpha/(2N) sum(W**2)) as
    the mean of an epoch of ``n_steps`` steps reports it (see `_epoch_loss`), a Python float."""
    if model.alpha and n_steps > 1:
        squares = sum(
            xp.sum(v * v)
            for layer, p in zip(model.layers, params, strict=True)
            for v in layer.penalty_arrays(p)
        )
        loss = loss + ((n_steps - 1) * model.alpha / (2.0 * n)) * squares
    return float(loss)


class Diverged(Exception):
    """Internal: raised inside `fit`'s loop, turned into `TrainingDiverged` with the result.
    ``reason``: what went wrong, without the advice; ``epoch``: the epoch it went wrong in;
    ``hint``: appended to the advice."""

    def __init__(self, reason: str, epoch: int, hint: str = "") -> None:
        super().__init__(
            f"training diverged: {reason}; the parameters from the end of epoch {epoch - 1} (the "
            "last good ones) are kept in the result. Lower the learning rate, clip the gradients "
            f"(clip_norm=...), or scale the inputs{hint}"
        )
        self.reason, self.epoch = reason, epoch


def check_loss(loss: float, reference: float, run: Any, lr: float) -> None:
    """Raise `Diverged` when the mean training loss ``loss`` of the epoch ``run`` is finishing
    (``run.epoch + 1``) exceeds ``divergence_factor`` times ``reference`` (never for a reference
    that is not a positive finite number: an untrained model already at loss 0, or one whose
    loss overflows)."""
    factor = run.settings["divergence_factor"]
    if factor is None or not (0 < reference < math.inf) or not loss > factor * reference:
        return
    raise Diverged(
        f"the mean training loss of epoch {run.epoch + 1} is {loss:.4g}, more than {factor:g} "
        f"times the untrained model's loss ({reference:.4g}), at learning rate {lr:g}",
        run.epoch + 1,
        f"; divergence_factor={factor:g} set that limit, divergence_factor=None turns it off",
    )


def nonfinite(value: float | None, run: Any, lr: float) -> Diverged:
    """The error for the epoch ``run`` is in (``run.epoch + 1``): a loss ``value`` of it is NaN
    or infinite, or (``value`` None) a parameter is."""
    what = "a parameter became NaN or infinite" if value is None else f"the loss became {value}"
    epoch = run.epoch + 1
    return Diverged(f"{what} in epoch {epoch} (step {run.step}, learning rate {lr:g})", epoch)
