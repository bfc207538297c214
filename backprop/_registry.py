"""A name -> object registry with helpful errors; activations, losses and optimizers use it."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not in a registry; the message lists the allowed names."""


class Registry(Generic[T]):
    """Named components of one kind ("activation", "loss", "optimizer", ...).

    >>> acts = Registry("activation")
    >>> @acts.register("double")
    ... class Double: ...
    >>> acts.get("double") is Double
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``.

        Registering a name again with the same class (same module and qualified name, as when a
        notebook cell defining it runs again) replaces the entry quietly; a different class under
        a taken name is an error naming both.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty str, received {name!r}")

        def add(obj: T) -> T:
            old = self._items.get(name)
            if old is not None and _identity(old) != _identity(obj):
                raise ValueError(
                    f"{self.kind} {name!r} is already registered as {_identity(old)}; cannot "
                    f"register {_identity(obj)} under the same name. Pick another name"
                )
            self._items[name] = obj
            return obj

        return add

    def register_class(self, name: str) -> Callable[[type], type]:
        """Class decorator: register the class itself under ``name`` (and set its ``name``)."""

        def add(cls: type) -> type:
            self.register(name)(cls)  # raises on a conflict before the class is renamed
            cls.name = name
            return cls

        return add

    def build(self, item: Any, base: type, **kwargs: Any) -> Any:
        """A ``base`` instance passes through (``kwargs`` must then be empty); a name builds the
        class registered under it with ``kwargs``. Bad keywords raise TypeError naming the kind."""
        if isinstance(item, base):
            if kwargs:
                raise TypeError(
                    f"received the {self.kind} {item!r} and hyperparameters {sorted(kwargs)}; "
                    f"pass a {self.kind} name with them, or set them on the instance"
                )
            return item
        cls = self.get(item)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.kind} {item!r}: {exc}") from None

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def unknown(self, name: object, allowed: list[str] | None = None) -> UnknownNameError:
        allowed = self.names() if allowed is None else allowed
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}: expected one of {allowed}{hint}")

    def is_registered(self, obj: Any) -> bool:
        """Whether ``obj`` is an instance of exactly the class registered under its ``name``."""
        name = getattr(obj, "name", None)
        return isinstance(name, str) and self._items.get(name) is type(obj)

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)


def _identity(obj: Any) -> str:
    """``module.QualifiedName`` of a class or function (or of an instance's class)."""
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{target.__module__}.{target.__qualname__}"
