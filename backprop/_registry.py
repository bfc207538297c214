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
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def register_class(self, name: str) -> Callable[[type], type]:
        """Class decorator: register the class itself under ``name`` (and set its ``name``)."""

        def add(cls: type) -> type:
            cls.name = name
            self.register(name)(cls)
            return cls

        return add

    def register_instance(self, name: str) -> Callable[[type], type]:
        """Class decorator: register ``cls()`` under ``name`` (and set its ``name``)."""

        def add(cls: type) -> type:
            instance = cls()
            instance.name = name
            self.register(name)(instance)
            return cls

        return add

    def resolve(self, item: str | T, base: type) -> T:
        """``item`` itself when it is a ``base`` instance, else the entry registered as ``item``."""
        return item if isinstance(item, base) else self.get(item)

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

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
