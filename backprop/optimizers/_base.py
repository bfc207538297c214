"""The optimizer contract: a pure ``init``/``update`` pair with explicit state."""

from __future__ import annotations

from typing import Any

from .._registry import Registry

__all__ = ["OPTIMIZERS", "Optimizer", "get_optimizer", "register"]


class Optimizer:
    """Base class. Hyperparameters are Python floats (no arrays), so updates never sync.

    ``init(params) -> state`` builds the state (velocities, moments, ...) as arrays shaped like
    ``params``; ``update(params, grads, state) -> (params, state)`` returns new trees and never
    modifies its inputs, so it can run under ``jax.jit``.
    """

    name: str = ""

    def init(self, params: Any) -> Any:
        raise NotImplementedError

    def update(self, params: Any, grads: Any, state: Any) -> tuple[Any, Any]:
        raise NotImplementedError


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")


def register(name: str):
    """Class decorator: register an `Optimizer` subclass under ``name``."""

    def add(cls: type[Optimizer]) -> type[Optimizer]:
        cls.name = name
        OPTIMIZERS.register(name)(cls)
        return cls

    return add


def get_optimizer(name: str, **hyperparameters: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` with the given hyperparameters."""
    cls = OPTIMIZERS.get(name)
    try:
        return cls(**hyperparameters)
    except TypeError as exc:
        raise TypeError(f"optimizer {name!r}: {exc}") from None


def check_positive(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a finite real > 0."""
    for key, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < float("inf")
        ):
            raise ValueError(f"{owner}: {key} must be a finite number > 0, received {value!r}")


def check_fraction(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a real in [0, 1)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{owner}: {key} must be a number in [0, 1), received {value!r}")
