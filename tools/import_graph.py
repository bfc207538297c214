"""Print backprop's internal import graph, by module and by folder, and any import circles.

Usage: python tools/import_graph.py [--folders] [--check]

Reads the source with `ast` (nothing is imported). An edge A -> B means module A imports B at
module level or inside a function (both count: a lazy import still ties A to B). `--folders`
collapses modules to their top folder under backprop/ (`backprop.core.activations` ->
`core`); `--check` exits 1 if the module graph or the folder graph has a cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "backprop"
# backprop/__init__.py re-exports the public names of every folder and backprop/__main__.py
# starts the command line: both sit above the folders and are left out of the graph.
ENTRY_POINTS = (PACKAGE, f"{PACKAGE}.__main__")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Internal modules ``name`` imports (``from . import x`` resolves to module x if it is one)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - (node.level - 1)]
                mod = ".".join([*stem, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] == PACKAGE:
                found.add(t)
    # a module importing a sibling through its package __init__ ("from . import x") is fine;
    # a package importing its own submodules is its re-export, not a dependency on itself
    return {t for t in found if not name.startswith(t + ".")}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def folder(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and _is_package(name)) else "(top)"


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def folder_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, bs in g.items():
        if a in ENTRY_POINTS:
            continue
        fa = folder(a)
        out.setdefault(fa, set())
        out[fa] |= {folder(b) for b in bs if folder(b) != fa and b != PACKAGE}
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:  # the deeper limit only while walking: callers (the test run) keep their own
        for v in sorted(g):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def main(argv: list[str]) -> int:
    g = graph()
    for facade in ENTRY_POINTS:  # re-exports and the command's entry: above every folder
        g.pop(facade, None)
    shown = folder_graph(g) if "--folders" in argv else g
    for a in sorted(shown):
        print(f"{a} -> {', '.join(sorted(shown[a])) or '-'}")
    found = cycles(g) + cycles(folder_graph(g))
    for c in found:
        print("CIRCLE:", " <-> ".join(c))
    if not found:
        print("no circles")
    return 1 if found and "--check" in argv else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
