"""The ``[model]`` section of a config: the MLP shorthand or ``[[model.layers]]`` tables.

Host-only helpers of `backprop.config`. Two ways to describe a model, never both:

- the MLP shorthand: ``hidden_sizes``, ``hidden``, ``output``, ``dropout`` (and ``loss``,
  ``alpha``), built as a `backprop.MLP`;
- ``[[model.layers]]`` tables, one layer spec each (``type = "dense"``, ``units = 64``,
  ``activation = "relu"``), with ``loss`` and ``alpha``, built as a `backprop.Sequential`.

Activations and losses are a name or an inline table with hyperparameters
(``{name = "leaky_relu", slope = 0.1}``). The input shape comes from the data; the last
layer's output width must be the data's.
"""

# ruff: noqa: RUF009  (`_key` returns a dataclasses.field, as `field(...)` defaults do)
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from ._configkinds import (
    FLOAT,
    INT,
    ConfigError,
    Kind,
    _closest,
    _key,
    at_least,
    either,
    fraction,
    list_of,
)
from ._toml import inline_toml

__all__ = ["ModelConfig", "check_model"]


def _is_spec(v: Any) -> bool:
    return isinstance(v, (str, dict))


ACTIVATION = Kind('a name or an inline table such as {name = "leaky_relu", slope = 0.1}', _is_spec)
HIDDEN = Kind(
    f"{ACTIVATION.described}, or a list of those (one per hidden layer)",
    lambda v: _is_spec(v) or (isinstance(v, list) and all(_is_spec(x) for x in v)),
)
LOSS = Kind('a name or an inline table such as {name = "huber", delta = 0.5}', _is_spec)
LAYER_TABLES = Kind(
    "a non-empty list of layer tables ([[model.layers]] tables, or "
    '[{type = "dense", units = 64}, ...])',
    lambda v: isinstance(v, list) and bool(v),
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model: the MLP shorthand (``hidden_sizes``: the hidden layers' widths, ``hidden``:
    one activation or one per hidden layer, ``output``, ``dropout``) or ``layers`` (layer specs,
    input side first); ``loss`` and ``alpha`` for both. Input and output sizes come from the
    data. With ``layers``, ``output`` is the last layer's activation name (read, not set)."""

    hidden_sizes: list = _key([], list_of(INT), at_least(1))
    hidden: Any = _key("relu", HIDDEN)
    output: Any = _key("identity", ACTIVATION)
    loss: Any = _key("mse", LOSS)
    alpha: float = _key(0.0, FLOAT, at_least(0))
    dropout: Any = _key(0.0, either(FLOAT, list_of(FLOAT)), fraction())
    layers: list | None = _key(None, LAYER_TABLES, doc="[[model.layers]] tables")

    SHORTHAND: ClassVar[tuple[str, ...]] = ("hidden_sizes", "hidden", "output", "dropout")

    def __post_init__(self) -> None:
        if isinstance(self.layers, list) and self.layers and isinstance(self.layers[-1], dict):
            act = self.layers[-1].get("activation", "identity")
            name = act.get("name") if isinstance(act, dict) else act
            object.__setattr__(self, "output", name if isinstance(name, str) else "identity")

    def to_dict(self) -> dict[str, Any]:
        """The resolved ``[model]`` table: the shorthand's keys, or ``layers``, ``loss`` and
        ``alpha`` (the layer tables as written)."""
        if self.layers is None:
            keep = [*self.SHORTHAND, "loss", "alpha"]
        else:
            keep = ["loss", "alpha", "layers"]
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in keep}

    def build(self, input_shape: Any, n_out: int, *, source: str = "<config>") -> Any:
        """The model for the data's per-example input shape (an int: that many features) and
        output width; raises `ConfigError` when the layers do not fit the data."""
        from ..nn.model import MLP
        from ..nn.sequential import Sequential

        shape = (int(input_shape),) if isinstance(input_shape, int) else tuple(input_shape)
        if self.layers is None:
            if len(shape) != 1:
                raise ConfigError(
                    source,
                    [
                        f"[model] hidden_sizes: the MLP shorthand takes 1-D features, but the "
                        f"data's examples have shape {shape}; describe the model with "
                        f"[[model.layers]] tables instead{_flatten_hint()}"
                    ],
                )
            return MLP(
                [shape[0], *self.hidden_sizes, n_out],
                hidden=self.hidden,
                output=self.output,
                loss=self.loss,
                alpha=self.alpha,
                dropout=self.dropout,
            )
        try:
            model = Sequential(self.layers, loss=self.loss, input_shape=shape, alpha=self.alpha)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                source, [f"[model] layers, on the data's input shape {shape}: {exc}"]
            ) from None
        if tuple(model.output_shape) != (n_out,):
            raise ConfigError(source, [self._width_problem(model.output_shape, n_out)])
        return model

    def _width_problem(self, out: tuple[int, ...], n_out: int) -> str:
        last = len(self.layers) - 1
        with_units = [i for i, t in enumerate(self.layers) if isinstance(t, dict) and "units" in t]
        got = f"{out[0]} values" if len(out) == 1 else f"shape {tuple(out)}"
        fix = (
            f"set units = {n_out} in layers[{with_units[-1]}]"
            if len(out) == 1 and with_units
            else f'end with a layer of {n_out} units (e.g. {{type = "dense", units = {n_out}}})'
            + (_flatten_hint(" after") if len(out) > 1 else "")
        )
        return (
            f"[model] layers: the last layer (layers[{last}]) outputs {got} per example, but the "
            f"data has {n_out} output{'s' if n_out != 1 else ''} per example (targets' columns, "
            f"or classes for a softmax output); {fix}"
        )


def _flatten_hint(where: str = ", e.g. with") -> str:
    from ..nn.layers import LAYERS

    names = [n for n in LAYERS.names() if "flatten" in n or "pool" in n]
    return f"{where} a {' or '.join(repr(n) for n in names)} layer" if names else ""


# -- checks -------------------------------------------------------------------------------------
def check_model(raw: dict[str, Any], model: ModelConfig, problems: list[str]) -> None:
    """Every activation, loss and layer table of ``[model]`` against the registries and the
    components' own checks; ``raw``: the ``[model]`` table as written (which keys were given)."""
    if model.layers is not None:
        given = [k for k in ModelConfig.SHORTHAND if k in raw]
        if given:
            keys = ", ".join(given)
            problems.append(
                f"[model] layers and {keys}: describe the model either with [[model.layers]] "
                f"tables or with the MLP shorthand (hidden_sizes, hidden, output, dropout), not "
                f"both; remove {keys}, or remove layers (in layer tables a dense layer has units "
                "and activation, a dropout layer has rate)"
            )
            return
        _check_layers(model, problems)
    else:
        _check_shorthand(model, problems)


def _check_shorthand(model: ModelConfig, problems: list[str]) -> None:
    from ..nn.activations import ACTIVATIONS, get_activation
    from ..nn.losses import LOSSES, get_loss
    from ..nn.model import MLP

    before = len(problems)
    hidden = model.hidden if isinstance(model.hidden, list) else [model.hidden]
    for i, spec in enumerate(hidden):
        where = f"[model] hidden[{i}]" if isinstance(model.hidden, list) else "[model] hidden"
        _spec_problem(where, ACTIVATIONS, get_activation, spec, problems)
    _spec_problem("[model] output", ACTIVATIONS, get_activation, model.output, problems)
    _spec_problem("[model] loss", LOSSES, get_loss, model.loss, problems)
    if len(problems) > before:
        return
    try:  # sizes do not matter for these checks; the data gives the real ones
        MLP(
            [2, *model.hidden_sizes, 2],
            model.hidden,
            model.output,
            model.loss,
            model.alpha,
            model.dropout,
        )
    except (ValueError, TypeError) as exc:  # activation/loss pairs, lengths
        problems.append(f"[model] {exc}")


def _check_layers(model: ModelConfig, problems: list[str]) -> None:
    from ..nn.losses import LOSSES, get_loss
    from ..nn.sequential import is_activation

    before = len(problems)
    built = [_layer(f"[model] layers[{i}]", t, problems) for i, t in enumerate(model.layers)]
    _spec_problem("[model] loss", LOSSES, get_loss, model.loss, problems)
    if len(problems) > before:
        return
    loss = get_loss(model.loss)
    out = getattr(built[-1], "activation", None)
    allowed = loss.outputs
    if allowed is not None and not any(is_activation(out, name) for name in allowed):
        got = "none" if out is None else out.name
        problems.append(
            f"[model] loss {loss.name!r} needs the last layer's activation in {list(allowed)}, "
            f"received {got!r}; set activation = {allowed[0]!r} in the last [[model.layers]] "
            "table, or use loss = 'mse'"
        )


def _layer(where: str, spec: Any, problems: list[str]) -> Any:
    """The layer a table describes, or None after appending its problems."""
    from ..nn.activations import ACTIVATIONS, get_activation
    from ..nn.layers import LAYERS, build_layer

    names = LAYERS.names()
    if not isinstance(spec, dict):
        problems.append(
            f'{where}: expected a layer table such as {{type = "dense", units = 64}}, '
            f"received {_describe(spec)}"
        )
        return None
    kind = spec.get("type")
    if kind is None:
        problems.append(f"{where}: the layer table has no type; expected type = one of {names}")
        return None
    if not isinstance(kind, str) or kind not in LAYERS:
        problems.append(f"{where} type: {_unknown('layer type', kind, names)}")
        return None
    before = len(problems)
    rest = {k: v for k, v in spec.items() if k != "type"}
    _keys_problem(where, f"layer {kind!r}", LAYERS.get(kind), rest, "type", problems)
    for key, value in rest.items():
        if key == "activation" and _is_spec(value):
            _spec_problem(f"{where} {key}", ACTIVATIONS, get_activation, value, problems)
        elif _is_layer_list(value):  # a combinator's block (Residual's layers)
            for j, sub in enumerate(value):
                _layer(f"{where}.{key}[{j}]", sub, problems)
    if len(problems) > before:
        return None
    try:
        return build_layer(spec)
    except (ValueError, TypeError) as exc:
        problems.append(f"{where}: {exc}")
        return None


def _describe(value: Any) -> str:
    try:
        return inline_toml(value)
    except TypeError:
        return repr(value)


def _unknown(kind: str, name: Any, names: list[str]) -> str:
    """An unknown name: the closest registered one, else where a plugin's name comes from."""
    close = _closest(str(name), names)
    plugin = (
        ""
        if close
        else "; if a plugin module registers it, import that with --import MODULE or the "
        "config's imports = [...]"
    )
    return f"unknown {kind} {name!r}; {close}expected one of {names}{plugin}"


def _is_layer_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(x, dict) for x in value)
        and any("type" in x for x in value)
    )


def _spec_problem(
    where: str, registry: Any, build: Callable[[Any], Any], spec: Any, problems: list[str]
) -> None:
    """An activation or loss (a name or ``{name = ..., **hyperparameters}``): known name, known
    hyperparameter names, values its constructor accepts."""
    kind = registry.kind
    if isinstance(spec, dict):
        name, rest = spec.get("name"), {k: v for k, v in spec.items() if k != "name"}
        if name is None:
            problems.append(
                f"{where}: the inline table {_describe(spec)} has no name; expected e.g. "
                f'{{name = "{registry.names()[0]}", ...}}'
            )
            return
    else:
        name, rest = spec, {}
    if not isinstance(name, str) or name not in registry:
        problems.append(f"{where}: {_unknown(kind, name, registry.names())}")
        return
    before = len(problems)
    _keys_problem(where, f"{kind} {name!r}", registry.get(name), rest, "name", problems)
    if len(problems) > before:
        return
    try:
        build(spec)
    except (ValueError, TypeError) as exc:
        problems.append(f"{where}: {exc}")


def _keys_problem(
    where: str, what: str, cls: Any, keys: dict[str, Any], fixed: str, problems: list[str]
) -> None:
    """Keys against the constructor's keyword parameters (unknown ones, missing required)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [key for key in keys if key not in valid]
    for key in unknown:
        takes = f"valid keys: {[fixed, *valid]}" if valid else f"it takes only {fixed}"
        problems.append(f"{where}: {what} has no key {key!r}; {_closest(key, valid)}{takes}")
    if unknown:  # a misspelt required key: its "did you mean" says it all
        return
    for name, p in params.items():
        required = p.default is inspect.Parameter.empty and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        if required and name not in keys:
            problems.append(f"{where}: {what} needs {name} (a required key is missing)")
