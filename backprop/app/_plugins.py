"""Plugin modules: user code that registers layers, activations, losses (or anything else with a
registry) before a config is validated.

Host-only. A plugin is named by ``backprop train --import MODULE`` (also ``gradcheck`` and
``evaluate``) or by the config's top-level ``imports = [...]``. MODULE is a dotted module name
importable from the current directory or ``sys.path`` (``mypackage.layers``), or a path to a
``.py`` file (``plugins/cube.py``). The resolved config of a run lists every plugin it imported
(files by absolute path), so ``backprop evaluate RUN`` imports them again.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Iterable

from ._configkinds import ConfigError

__all__ = ["PluginError", "import_plugin", "import_plugins", "is_path"]

HINT = (
    "expected a module importable from the current directory or sys.path "
    "(e.g. mypackage.layers), or a path to a .py file"
)


class PluginError(ConfigError):
    """A plugin module that cannot be imported: one line naming it and the error."""

    def __init__(self, source: str, message: str) -> None:
        ValueError.__init__(self, message)
        self.source, self.problems = source, [message]


def is_path(name: str) -> bool:
    """Whether ``name`` is a file path (ends in .py or has a directory part), not a module name."""
    return name.endswith(".py") or "/" in name or os.sep in name


def import_plugins(names: Iterable[str], origin: str, source: str = "<dict>") -> list[str]:
    """Import every plugin in ``names`` (in order); returns the names to store in a resolved
    config (files as absolute paths). ``origin`` says where the names came from, for messages
    ("--import", "imports in configs/x.toml"). Raises `PluginError` at the first failure."""
    out: list[str] = []
    for name in names:
        stored = import_plugin(name, origin, source)
        if stored not in out:
            out.append(stored)
    return out


def import_plugin(name: str, origin: str, source: str = "<dict>") -> str:
    """Import one plugin; returns its name as stored (a file's absolute path)."""
    if not isinstance(name, str) or not name.strip():
        raise PluginError(
            source, f"{origin}: expected a module name or a .py path, received {name!r}"
        )
    name = name.strip()
    try:
        if is_path(name):
            return _import_file(name, origin, source)
        _import_module(name)
    except PluginError:
        raise
    except Exception as exc:  # any failure of user code is reported in one line
        raise PluginError(source, _failed(name, origin, exc)) from None
    return name


def _failed(name: str, origin: str, exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line, whatever the exception says
    return f"cannot import plugin module {name!r} ({origin}): {type(exc).__name__}: {text}; {HINT}"


def _import_module(name: str) -> None:
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:  # `python -m` puts the current directory on sys.path; the console script does not
        sys.path.insert(0, cwd)
    try:
        importlib.import_module(name)
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_file(name: str, origin: str, source: str) -> str:
    path = pathlib.Path(name).expanduser().resolve()
    if not path.is_file():
        raise PluginError(
            source,
            f"cannot import plugin module {name!r} ({origin}): no such file {str(path)!r}; {HINT}",
        )
    if path.suffix != ".py":
        raise PluginError(
            source, f"cannot import plugin module {name!r} ({origin}): not a .py file; {HINT}"
        )
    module_name = path.stem
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        if _file_of(loaded) == path:
            return str(path)  # imported already (a run trained earlier in this process)
        module_name = f"_backprop_plugin_{abs(hash(str(path))):x}_{path.stem}"
        if module_name in sys.modules:
            return str(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return str(path)


def _file_of(module: object) -> pathlib.Path | None:
    file = getattr(module, "__file__", None)
    return pathlib.Path(file).resolve() if file else None
