"""Reading a config file, writing a run's resolved ``config.toml``, TOML snippets in messages.

Host-only. The standard library reads TOML (``tomllib``) but does not write it; the maintained
``tomli_w`` does, escaping what must be escaped (quotes, backslashes, newlines and every other
control character in strings, keys that are not bare ASCII words), so
``tomllib.loads(dump_toml(d)) == d`` for every table the loader accepts
(tests/test_config_roundtrip.py checks it on generated configs).
"""

from __future__ import annotations

import pathlib
from typing import Any

import tomli_w

from ._configkinds import ConfigError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["TOO_DEEP", "dump_toml", "inline_toml", "read_toml_file"]

TOO_DEEP = (
    "nested too deeply for the TOML reader (arrays or inline tables inside each other "
    "hundreds of levels deep); a config needs only a few levels: remove the extra nesting"
)


def read_toml_file(path: pathlib.Path, source: str) -> dict[str, Any]:
    """The tables of a TOML config file. `ConfigError` for what is not a UTF-8 TOML file (a
    directory, binary data, a syntax error, nesting the reader cannot follow); `OSError` with a
    one-line message for a file that cannot be read (permission denied: `PermissionError`)."""
    try:
        if not path.is_file():
            raise ConfigError(source, [_not_a_file(path)])
        data = path.read_bytes()
    except PermissionError:
        raise PermissionError(
            f"cannot read config {source}: permission denied; make it readable "
            f"(chmod u+r {source}) or copy it somewhere you can read"
        ) from None
    except OSError as exc:
        raise OSError(f"cannot read config {source}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is fine
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source,
            [
                f"not a UTF-8 text file (byte {data[exc.start]:#04x} at offset {exc.start}); a "
                "config is TOML text such as configs/xor.toml, saved as UTF-8"
            ],
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    except RecursionError:  # the reader recurses into arrays and inline tables
        raise ConfigError(source, [f"not valid TOML: {TOO_DEEP}"]) from None


def _not_a_file(path: pathlib.Path) -> str:
    if path.is_dir():
        return "is a directory, not a config file; expected a TOML file such as configs/xor.toml"
    if path.exists():
        return "is not a regular file; expected a TOML file such as configs/xor.toml"
    shipped = _shipped()
    return f"no such file; shipped configs: {shipped}" if shipped else "no such file"


def _shipped() -> list[str]:
    root = pathlib.Path(__file__).resolve().parents[2] / "configs"
    return sorted(str(p.relative_to(root.parent)) for p in root.glob("*.toml"))


def dump_toml(config: dict[str, Any], comment: str = "") -> str:
    """TOML text for a resolved config (``Config.to_dict()``): ``tomllib.loads(dump_toml(d)) ==
    d``. Tables are written in the dict's order (``[backend]``, ``[data]``, ``[model]``, ...),
    each table's plain values before its subtables; a list of tables is an array of tables
    (``[[model.layers]]``), or an inline array of inline tables when each fits on one line.
    ``comment``: text put first as ``#`` lines (any text: a control character in it, say from a
    file name, is written escaped, as a comment cannot hold it).

    Raises TypeError for a value TOML cannot hold (anything but str, int, float, bool, list and
    dict; ``None``).
    """
    try:
        body = tomli_w.dumps(config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot write the config as TOML: {exc}") from None
    lines = comment.splitlines() if comment else []
    return "".join(f"# {_comment_safe(line)}".rstrip() + "\n" for line in lines) + body


def _comment_safe(line: str) -> str:
    """``line`` with what a TOML comment cannot hold (control characters but tab, text that is
    not Unicode) written as Python escapes (``\\x00``)."""
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        ch if ch == "\t" or not (ord(ch) < 0x20 or ord(ch) == 0x7F) else ascii(ch)[1:-1]
        for ch in line
    )


def inline_toml(value: Any) -> str:
    """``value`` as one line of TOML, for messages: ``{name = "leaky_relu", slope = 0.1}``,
    ``[1, 2]``, ``"relu"``. Raises TypeError for a value TOML cannot hold."""
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {inline_toml(v)}" for k, v in value.items())
        return f"{{{items}}}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline_toml(v) for v in value) + "]"
    return dump_toml({"v": value}).removeprefix("v = ").rstrip("\n")


def _key(key: Any) -> str:
    """A key as TOML writes it: bare when it can be, else quoted and escaped."""
    return dump_toml({key: 0}).rstrip("\n").removesuffix(" = 0")
