"""Components: registered, frozen descriptions with hyperparameters (activations, losses, layers).

A component is a frozen dataclass whose fields are its hyperparameters and whose class is
registered under a name in a `Registry`. Three things follow from the fields alone:

- ``spec()``: JSON values that rebuild it (``registry.build_spec(spec)``); nested components
  (a layer's activation, a combinator's layers) appear as their own specs.
- ``structural_key(obj)``: a hashable key of the *whole* structure (class, every hyperparameter,
  nested components), the key of compiled-function caches. Two objects get the same key only
  when they compute the same function, so a cache can never hand one model's compiled step to
  another. A component that is not registered (a class defined in a script and passed as an
  instance) is keyed by its identity: its spec could not describe it.
- ``check_saveable(obj)``: saving a model needs every component registered, else the saved spec
  could not be built back; the error says how to register it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

__all__ = [
    "Component",
    "UnregisteredError",
    "build_component",
    "check_saveable",
    "short_spec",
    "structural_key",
]


class UnregisteredError(TypeError):
    """A component whose class is not registered cannot be described by a spec (nor saved)."""


class Component:
    """Mixin for registered components; subclasses are frozen dataclasses.

    ``registry``: the `Registry` the subclass family registers in; ``spec_key``: "name" for
    activations and losses (``{"name": "leaky_relu", "slope": 0.1}``), "type" for layers.
    """

    registry: ClassVar[Any] = None
    spec_key: ClassVar[str] = "name"
    name: ClassVar[str] = ""

    def hyperparameters(self) -> dict[str, Any]:
        """The dataclass fields as JSON values (nested components as their specs)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def is_registered(self) -> bool:
        return self.registry is not None and self.registry.is_registered(self)

    def spec(self) -> Any:
        """JSON-able description: ``{spec_key: registered name, **hyperparameters}``.

        Raises `UnregisteredError` for an unregistered class (its name would not build it back).
        """
        check_saveable(self)
        return {self.spec_key: self.name, **self.hyperparameters()}

    def __repr__(self) -> str:
        label = self.name if self.is_registered() else type(self).__qualname__
        args = ", ".join(f"{k}={v!r}" for k, v in _repr_fields(self).items())
        return f"{label}({args})" if args else label


def _repr_fields(obj: Any) -> dict[str, Any]:
    if not dataclasses.is_dataclass(obj):
        return {}
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.repr}


def _plain(value: Any) -> Any:
    if isinstance(value, Component):
        return value.spec()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def check_saveable(obj: Any) -> None:
    """Raise `UnregisteredError` if ``obj`` is or holds a component of an unregistered class."""
    if isinstance(obj, Component):
        if not obj.is_registered():
            kind = obj.registry.kind if obj.registry is not None else "component"
            cls = type(obj)
            raise UnregisteredError(
                f"{kind} {cls.__module__}.{cls.__qualname__} is not registered, so a saved model "
                f"or config cannot name it; register it with "
                f"@backprop.{_module_of(kind)}.register('my_name') on the class, and load that "
                "module before loading the model (backprop train --import MODULE, or the config's "
                "imports = [...])"
            )
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                check_saveable(getattr(obj, f.name))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            check_saveable(v)


def _module_of(kind: str) -> str:
    return {"activation": "activations", "loss": "losses", "layer": "layers"}.get(kind, kind)


def structural_key(obj: Any) -> Any:
    """A hashable key of ``obj``'s full structure (see the module docstring)."""
    if isinstance(obj, Component):
        if not obj.is_registered():
            return ("unregistered", type(obj), id(obj))
        fields = dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ()
        return (type(obj), tuple((f.name, structural_key(getattr(obj, f.name))) for f in fields))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(structural_key(v) for v in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, structural_key(v)) for k, v in obj.items()))
    if isinstance(obj, float):
        return ("float", obj.hex())  # -0.0 and 0.0 differ; NaN equals NaN
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return ("object", type(obj), id(obj))


def build_component(registry: Any, base: type, spec: Any) -> Any:
    """``base`` instance from a name, a ``{"name": ..., **hyperparameters}`` dict or an instance
    (shared by activations and losses)."""
    if isinstance(spec, base):
        return spec
    if isinstance(spec, dict):
        rest = dict(spec)
        name = rest.pop("name", None)
        if name is None:
            raise ValueError(
                f"{registry.kind} spec {spec!r} has no 'name'; expected e.g. "
                f'{{"name": "{registry.names()[0]}"}}'
            )
        return registry.build(name, base, **rest)
    if isinstance(spec, type) and issubclass(spec, base):
        raise TypeError(
            f"received the {registry.kind} class {spec.__qualname__}; pass an instance "
            f"({spec.__qualname__}()) or a registered name"
        )
    return registry.build(spec, base)


def short_spec(obj: Component) -> Any:
    """The name alone when every hyperparameter has its default; else the name and each
    hyperparameter that differs or has no default."""
    full = Component.spec(obj)
    defaults = {}
    for f in dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ():
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = _plain(f.default_factory())
    hyper = obj.hyperparameters()
    changed = {k: v for k, v in hyper.items() if k not in defaults or v != defaults[k]}
    return {"name": obj.name, **changed} if changed else full["name"]
