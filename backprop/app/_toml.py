"""A small TOML writer for resolved configs (tables of scalars, lists, nested tables and arrays
of tables).

Host-only. The standard library reads TOML (``tomllib``) but does not write it.
"""

from __future__ import annotations

import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def dump_toml(config: dict[str, Any]) -> str:
    """TOML text for a resolved config (``Config.to_dict()``): ``tomllib.loads(dump_toml(d)) ==
    d``. A dict value is a ``[table]``, a list of dicts an array of tables (``[[model.layers]]``);
    dicts inside those and inside lists are inline tables (``{name = "leaky_relu", slope = 0.1}``).
    """
    lines: list[str] = []
    _dump_table(config, [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: dict[str, Any], path: list[str], lines: list[str], item=False) -> None:
    """``item``: one table of an array of tables (``[[path]]``); its dicts are written inline."""
    tables = {} if item else {k: v for k, v in table.items() if isinstance(v, dict)}
    arrays = {} if item else {k: v for k, v in table.items() if _is_table_array(v)}
    scalars = {k: v for k, v in table.items() if k not in tables and k not in arrays}
    header = ".".join(_toml_key(p) for p in path)
    if item:
        lines += ["", f"[[{header}]]"]
    elif path and (scalars or not (tables or arrays)):
        lines += ["", f"[{header}]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        _dump_table(v, [*path, k], lines)
    for k, v in arrays.items():
        for entry in v:
            _dump_table(entry, [*path, k], lines, item=True)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_value(key)


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    return f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(_escape(ch) for ch in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) as TOML")
