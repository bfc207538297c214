"""The optimizer contract: a pure ``init``/``update`` pair with explicit state."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from array_api_compat import array_namespace

from ..._registry import Registry
from ...tree import tree_leaves, tree_map

__all__ = ["OPTIMIZERS", "Optimizer", "clip_by_global_norm", "get_optimizer", "register"]


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """Base class. Hyperparameters are Python floats (no arrays), so updates never sync.

    ``init(params) -> state`` builds the state (velocities, moments, ...) as arrays shaped like
    ``params``; ``update(params, grads, state, lr=None) -> (params, state)`` returns new trees and
    never modifies its inputs, so it can run under ``jax.jit``.

    ``lr`` overrides the optimizer's own ``lr`` for this step: a learning-rate schedule passes the
    step's rate here (a Python float, or a 0-d array traced by ``jax.jit`` so a changing rate
    does not recompile the step).

    Every optimizer takes the keyword ``clip_norm``: when set, ``update`` first rescales the
    gradients with `clip_by_global_norm`, then hands them to the subclass's ``_update``, which
    holds the optimizer's own rule. Subclasses are frozen dataclasses whose ``__post_init__``
    calls ``super().__post_init__()``.
    """

    name: ClassVar[str] = ""

    # Keyword-only, so subclasses keep their own fields first (``SGD(0.1)`` is still ``lr``).
    clip_norm: float | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.clip_norm is not None:
            check_positive(type(self).__name__, clip_norm=self.clip_norm)

    def init(self, params: Any) -> Any:
        raise NotImplementedError

    def update(self, params: Any, grads: Any, state: Any, lr: Any = None) -> tuple[Any, Any]:
        if self.clip_norm is not None:
            grads = clip_by_global_norm(grads, float(self.clip_norm))
        return self._update(params, grads, state, float(self.lr) if lr is None else lr)

    def _update(self, params: Any, grads: Any, state: Any, lr: Any) -> tuple[Any, Any]:
        """The optimizer's rule with learning rate ``lr``, on gradients already clipped."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **hyperparameters}``: JSON-ready, for configs and checkpoints."""
        return {"name": self.name, **dataclasses.asdict(self)}


def clip_by_global_norm(grads: Any, max_norm: float) -> Any:
    """Scale every gradient leaf by ``min(1, max_norm / ||grads||)``; returns a new tree.

    ``||grads|| = sqrt(sum over leaves of sum(g**2))``, the norm of all leaves flattened into one
    vector, so clipping keeps the gradient's direction. The factor is computed on the device as
    ``max_norm / maximum(||grads||, max_norm)``: the same value, and since ``max_norm > 0`` the
    denominator is never zero (all-zero gradients stay zero) and no value goes to the host.
    Below the threshold the factor is exactly 1, so the gradients come back unchanged.
    """
    leaves = list(tree_leaves(grads))
    if not leaves:
        return grads
    xp = array_namespace(*leaves)
    norm = xp.sqrt(sum(xp.sum(g * g) for g in leaves))
    cap = xp.full_like(norm, max_norm)
    # array / array: `float / tensor` is `reciprocal * float` on torch, not exactly 1 at the cap.
    scale = cap / xp.maximum(norm, cap)
    return tree_map(lambda g: g * scale, grads)


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")


register = OPTIMIZERS.register_class  # class decorator: @register("name")


def get_optimizer(name: str | Optimizer, **hyperparameters: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` with the given hyperparameters (an
    `Optimizer` passes through unchanged); ``get_optimizer(**opt.spec())`` rebuilds ``opt``."""
    return OPTIMIZERS.build(name, Optimizer, **hyperparameters)


def check_positive(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a finite real > 0."""
    for key, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < float("inf")
        ):
            raise ValueError(f"{owner}: {key} must be a finite number > 0, received {value!r}")


def check_nonnegative(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a finite real >= 0."""
    for key, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 <= value < float("inf")
        ):
            raise ValueError(f"{owner}: {key} must be a finite number >= 0, received {value!r}")


def check_fraction(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a real in [0, 1)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{owner}: {key} must be a number in [0, 1), received {value!r}")
