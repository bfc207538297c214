"""The optimizer contract: a pure ``init``/``update`` pair with explicit state."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from array_api_compat import array_namespace, device

from ..._registry import Registry
from ...nn._members import PerMember, per_member
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

    Ensembles (K models stacked on a leading axis, `backprop.Ensemble`): ``update(...,
    members=K)``. Then ``lr`` may be a (K,) array (or a list of K numbers), one rate per
    member, and the fields named in ``member_fields`` (every optimizer's ``lr``; AdamW's
    ``weight_decay``) may be lists of K values: a sweep in one program. ``_update`` then gets
    them as `backprop.nn._members.PerMember` values, which scale each member's slice of a
    leaf by its own value, so member k moves exactly as it would alone with its values (a
    custom ``_update`` must combine them with leaves by ``*``, as ``lr * g``).
    ``clip_norm`` clips each member to its own global norm (`clip_by_global_norm`). Every
    other hyperparameter is one number shared by all members; the state (moments, Adam's
    step count) is elementwise or shared, so it stacks as it is.
    """

    name: ClassVar[str] = ""
    member_fields: ClassVar[tuple[str, ...]] = ("lr",)

    # Keyword-only, so subclasses keep their own fields first (``SGD(0.1)`` is still ``lr``).
    clip_norm: float | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (list, tuple)):
                continue
            if field.name not in self.member_fields:
                raise ValueError(
                    f"{owner}: {field.name} must be one number, received {value!r}; a list of "
                    f"values, one per ensemble member, is accepted only for "
                    f"{', '.join(self.member_fields)}"
                )
            if not value:
                raise ValueError(f"{owner}: {field.name} is an empty list; give one number or K")
            object.__setattr__(self, field.name, tuple(value))
        if self.clip_norm is not None:
            check_positive(owner, clip_norm=self.clip_norm)

    def init(self, params: Any) -> Any:
        raise NotImplementedError

    def update(
        self, params: Any, grads: Any, state: Any, lr: Any = None, *, members: int | None = None
    ) -> tuple[Any, Any]:
        """One step; ``members=K`` for K stacked models (class docstring)."""
        _check_members(self, params, members, lr)
        if self.clip_norm is not None:
            grads = clip_by_global_norm(grads, float(self.clip_norm), members=members)
        if lr is None:
            lr = self.hyper("lr", params)
        elif isinstance(lr, (list, tuple)) or getattr(lr, "ndim", 0) == 1:
            lr = PerMember(_as_array(lr, params))
        return self._update(params, grads, state, lr)

    def hyper(self, field: str, params: Any) -> Any:
        """The field's value for this step: a float, or for a per-member list a `PerMember`
        in the parameters' dtype and device, which multiplies each member's slice of a leaf by
        its own value (``lr * g``), so ``_update`` reads like one model's rule."""
        value = getattr(self, field)
        return PerMember(_as_array(value, params)) if isinstance(value, tuple) else float(value)

    def _update(self, params: Any, grads: Any, state: Any, lr: Any) -> tuple[Any, Any]:
        """The optimizer's rule with learning rate ``lr``, on gradients already clipped."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **hyperparameters}``: JSON-ready, for configs and checkpoints."""
        return {"name": self.name, **dataclasses.asdict(self)}


def clip_by_global_norm(grads: Any, max_norm: float, members: int | None = None) -> Any:
    """Scale every gradient leaf by ``min(1, max_norm / ||grads||)``; returns a new tree.

    ``||grads|| = sqrt(sum over leaves of sum(g**2))``, the norm of all leaves flattened into one
    vector, so clipping keeps the gradient's direction. The factor is computed on the device as
    ``max_norm / maximum(||grads||, max_norm)``: the same value, and since ``max_norm > 0`` the
    denominator is never zero (all-zero gradients stay zero) and no value goes to the host.
    Below the threshold the factor is exactly 1, so the gradients come back unchanged.
    ``members=K``: K models stacked on each leaf's leading axis, each clipped to its own norm
    (the sums skip the member axis; the (K,) factors are reshaped per leaf).
    """
    leaves = list(tree_leaves(grads))
    if not leaves:
        return grads
    xp = array_namespace(*leaves)
    if members is None:
        norm = xp.sqrt(sum(xp.sum(g * g) for g in leaves))
    else:
        norm = xp.sqrt(sum(xp.sum(g * g, axis=tuple(range(1, g.ndim))) for g in leaves))
    cap = xp.full_like(norm, max_norm)
    # array / array: `float / tensor` is `reciprocal * float` on torch, not exactly 1 at the cap.
    scale = cap / xp.maximum(norm, cap)
    return tree_map(lambda g: g * per_member(scale, g), grads)


def _as_array(values: Any, params: Any) -> Any:
    """Per-member numbers (a list, or a (K,) array) as a (K,) array of the parameters' float
    dtype and device."""
    first = next(tree_leaves(params))
    xp = array_namespace(first)
    if isinstance(values, (list, tuple)):
        return xp.asarray([float(v) for v in values], dtype=first.dtype, device=device(first))
    return values if values.dtype == first.dtype else xp.astype(values, first.dtype)


def _check_members(opt: Optimizer, params: Any, members: int | None, lr: Any) -> None:
    """Per-member values need ``members=K`` and K of them; every leaf has K on its first axis.
    Shapes and lengths only (no values are read), so it is safe under ``jax.jit``."""
    owner = type(opt).__name__
    given = {f: getattr(opt, f) for f in opt.member_fields}
    if lr is not None:
        given["lr"] = lr
    for name, value in given.items():
        k = len(value) if isinstance(value, (list, tuple)) else _length(value)
        if k is None:
            continue
        if members is None:
            raise ValueError(
                f"{owner}: {name} holds {k} values, one per ensemble member, but update got "
                f"one model's parameters; pass update(..., members={k}) with stacked "
                "parameters (backprop.Ensemble), or give one number"
            )
        if k != members:
            raise ValueError(
                f"{owner}: {name} holds {k} values but the ensemble has {members} members; "
                f"give {members} values (one per member) or one number"
            )
    for leaf in tree_leaves(params) if members is not None else ():
        if not leaf.shape or leaf.shape[0] != members:
            raise ValueError(
                f"{owner}: update(..., members={members}) needs every parameter stacked on a "
                f"leading axis of {members}, received one of shape {tuple(leaf.shape)}; use "
                "Ensemble.init for the parameters"
            )


def _length(value: Any) -> int | None:
    """K for a (K,) array, None for a number or 0-d array."""
    shape = getattr(value, "shape", ())
    if len(shape) > 1:
        raise ValueError(f"lr must be a number or a (K,) array, received shape {tuple(shape)}")
    return shape[0] if shape else None


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")


register = OPTIMIZERS.register_class  # class decorator: @register("name")


def get_optimizer(name: str | Optimizer, **hyperparameters: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` with the given hyperparameters (an
    `Optimizer` passes through unchanged); ``get_optimizer(**opt.spec())`` rebuilds ``opt``."""
    return OPTIMIZERS.build(name, Optimizer, **hyperparameters)


def _each(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs, a per-member tuple giving one pair per member's value."""
    return [
        (f"{key}[{i}]", v) if isinstance(value, tuple) else (key, v)
        for key, value in values.items()
        for i, v in enumerate(value if isinstance(value, tuple) else (value,))
    ]


def check_positive(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a finite real > 0."""
    for key, value in _each(values):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < float("inf")
        ):
            raise ValueError(f"{owner}: {key} must be a finite number > 0, received {value!r}")


def check_nonnegative(owner: str, **values: float) -> None:
    """Raise a clear error unless every value is a finite real >= 0."""
    for key, value in _each(values):
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
