"""What a config key accepts: value kinds, range checks and "did you mean" hints; the error.

Host-only helpers of `backprop.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
from collections.abc import Callable
from typing import Any


class ConfigError(ValueError):
    """A config that cannot run; ``problems`` lists every problem found (one line each)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, [one_line(p) for p in problems]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"config {one_line(source)}: {count}:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters written as escapes (a key or a
    file name can hold them), so each problem is one line of the message."""
    return "".join(
        ascii(ch)[1:-1] if ch in _BREAKS or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 else ch
        for ch in text
    )


_BREAKS = frozenset("\u2028\u2029")  # with C0, DEL and C1: what str.splitlines breaks on


# -- value kinds and checks ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Kind:
    """What a key accepts: a description for messages and a test on the TOML value."""

    described: str
    test: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


INT = Kind("an integer", _is_int)
FLOAT = Kind("a finite number", _is_number, float)
BOOL = Kind("true or false", lambda v: isinstance(v, bool))
STR = Kind("a string", lambda v: isinstance(v, str))


def list_of(kind: Kind, *, empty: bool = True) -> Kind:
    return Kind(
        f"a list of {kind.described.removeprefix('an ').removeprefix('a ')}s",
        lambda v: isinstance(v, list) and (empty or bool(v)) and all(kind.test(x) for x in v),
        lambda v: [kind.convert(x) for x in v],
    )


def either(*kinds: Kind) -> Kind:
    def convert(v: Any) -> Any:
        return next(k.convert(v) for k in kinds if k.test(v))

    return Kind(
        " or ".join(k.described for k in kinds), lambda v: any(k.test(v) for k in kinds), convert
    )


Check = Callable[[Any], str | None]  # None when fine, else what is allowed


def at_least(low: float) -> Check:
    def check(v: Any) -> str | None:
        values = v if isinstance(v, list) else [v]
        return None if all(x >= low for x in values) else f">= {low}"

    return check


def fraction(*, closed_high: bool = False) -> Check:
    def check(v: Any) -> str | None:
        values = v if isinstance(v, list) else [v]
        ok = all(0 <= x <= 1 if closed_high else 0 <= x < 1 for x in values)
        return None if ok else f"in [0, 1{']' if closed_high else ')'}"

    return check


def one_of(*allowed: str) -> Check:
    return lambda v: None if v in allowed else f"one of {list(allowed)}"


def _key(default: Any, kind: Kind, check: Check | None = None, doc: str = "") -> Any:
    """A config key: its default (``dataclasses.MISSING``: required), kind and range check."""
    meta = {"kind": kind, "check": check, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: default.copy(), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def shown(key: Any) -> str:
    """A key as messages show it: as written when it is a plain name, else quoted."""
    return key if isinstance(key, str) and key.replace("-", "_").isidentifier() else repr(key)


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _kind_of(parameter: inspect.Parameter) -> Kind:
    """The kind a keyword parameter takes, from its annotation (a string under ``from
    __future__ import annotations``, e.g. ``"int | None"``), else from its default."""
    text = parameter.annotation if isinstance(parameter.annotation, str) else ""
    text = re.sub(r"(Sequence|list)\[str\]", "strlist", text)
    tokens = set(re.findall(r"\w+", text))
    kinds = [
        kind
        for names, kind in (
            ({"bool"}, BOOL),
            ({"int"}, INT),
            ({"float"}, FLOAT),
            ({"str", "Path"}, STR),
            ({"strlist"}, list_of(STR, empty=False)),
        )
        if names & tokens
    ]
    if kinds:
        return kinds[0] if len(kinds) == 1 else either(*kinds)
    default = parameter.default
    for kind in (BOOL, INT, FLOAT, STR):
        if default is not inspect.Parameter.empty and kind.test(default):
            return kind
    return either(STR, INT, FLOAT)


# -- the shape of the whole config ---------------------------------------------------------------
MAX_DEPTH = 32  # tables and arrays inside each other; the deepest shipped config has 6 levels


def structure_problems(raw: Any, limit: int = MAX_DEPTH) -> list[str]:
    """Nesting deeper than ``limit`` levels (a 900-deep or cyclic dict would overflow the
    recursive checks), and strings or keys that are not Unicode text (lone surrogates: the
    undecodable bytes of a command-line argument, which no file can hold). Walks without
    recursion."""
    problems: list[str] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), raw)]
    while stack:
        path, value = stack.pop()
        if len(path) > limit:
            return [
                f"{_dotted(path[:4])}...: nested more than {limit} levels deep (tables, inline "
                "tables or arrays inside each other); a config needs only a few levels: remove "
                "the extra nesting"
            ]
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        else:
            items = []
        for key, item in items:
            if isinstance(key, str) and not _is_text(key):
                problems.append(f"{_dotted(path)}: the key {key!r} {_NOT_TEXT}")
            stack.append(((*path, key), item))
        if isinstance(value, str) and not _is_text(value):
            problems.append(f"{_dotted(path)}: {value!r} {_NOT_TEXT}")
    return problems


_NOT_TEXT = (
    "is not valid Unicode text (an undecodable byte, e.g. from a command-line argument in "
    "another encoding); write it as UTF-8"
)


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "."


# -- reading a section ---------------------------------------------------------------------------
def deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [deep_copy(v) for v in raw]
    return raw


def read_section(
    where: str,
    cls: type,
    table: dict[str, Any],
    problems: list[str],
    subtables: dict[tuple[str, str], type],
) -> Any:
    """Check ``table`` against the dataclass ``cls``; unknown keys go to ``options`` when the
    section has them (they are checked later, against the named component); ``subtables``:
    the ``(section, key)`` pairs that are tables of their own, and their dataclasses."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "options"}
    has_options = any(f.name == "options" for f in dataclasses.fields(cls))
    values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    label = ".".join(where.split("."))
    for key, value in table.items():
        sub = subtables.get((where, key))
        if sub is not None:
            if not isinstance(value, dict):
                problems.append(
                    f"[{label}] {key}: expected a [{label}.{key}] table, received {value!r}"
                )
                continue
            values[key] = read_section(f"{where}.{key}", sub, value, problems, subtables)
        elif key in fields:
            values[key] = _value(f"[{label}] {key}", fields[key], value, problems)
        elif has_options:
            options[key] = value
        else:
            valid = [*fields]
            problems.append(
                f"[{label}] {shown(key)}: unknown key; {_closest(key, valid)}valid keys: {valid}"
            )
    for name, f in fields.items():
        if (
            name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            problems.append(f"[{label}] {name}: required key is missing")
    if has_options:
        values["options"] = options
    try:
        return cls(**values)
    except TypeError:  # a missing required key, already reported
        return None


def _value(where: str, f: dataclasses.Field, value: Any, problems: list[str]) -> Any:
    kind: Kind = f.metadata["kind"]
    if not kind.test(value):
        problems.append(f"{where}: expected {kind.described}, received {value!r}")
        return value
    value = kind.convert(value)
    check = f.metadata["check"]
    allowed = check(value) if check is not None else None
    if allowed is not None:
        problems.append(f"{where}: expected {allowed}, received {value!r}")
    return value
