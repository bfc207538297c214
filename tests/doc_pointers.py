"""Doc pointers: the `backprop/file.py: Name` references docs pages make, and the code lines
they quote next to them, parsed from the Markdown (plain text and `ast`, no imports of the
code). Shared by tests/test_worked_example.py (math.md, worked_example.md, layers.md) and
tests/test_layers_docs.py.

The quoting convention (docs/math.md's introduction): `` `file: Name` (`code`) ``,
`` `file: Name`, `code` ``, `` `file: Name` returns `code` ``, `` `code` in `file: Name` ``.
"""

from __future__ import annotations

import ast
import re
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REF = re.compile(r"`(backprop/[\w/]+\.py): ([A-Za-z_][\w.]*)`")
REF_TEXT = re.compile(r"backprop/[\w/]+\.py: [A-Za-z_][\w.]*")
PATH = re.compile(r"`((?:backprop|backends|tests|docs|configs)/[\w/]+\.(?:py|md|toml))`")
FENCE = re.compile(r"^```.*?^```$", flags=re.S | re.M)
SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", flags=re.S)
# What joins a reference and the code line quoted from it: after it ", " / " (" / " returns ",
# before it " in ".
QUOTED_AFTER = re.compile(r",\s+|\s+\(|\s+returns\s+")
QUOTED_BEFORE = re.compile(r"\s+in\s+")


def references(pages: list[Path], pattern: re.Pattern) -> list[tuple[str, ...]]:
    """``(page name, *groups)`` of every match of ``pattern`` on the pages."""
    return sorted(
        {(page.name, *m.groups()) for page in pages for m in pattern.finditer(page.read_text())}
    )


def spans(page: Path) -> tuple[list[tuple[int, int, str]], str]:
    """The page's inline code spans outside fenced blocks, ``(start, end, content)``, and the
    text they index (fenced blocks replaced by a line of their own)."""
    text = FENCE.sub(lambda m: "\n" + "#" * 3 + "\n", page.read_text(encoding="utf-8"))
    return [(m.start(), m.end(), m.group(2).strip()) for m in SPAN.finditer(text)], text


def quotes(page: Path) -> list[tuple[str, str, str]]:
    """``(path, name, code)`` for every code line the page quotes next to a reference."""
    found_spans, text = spans(page)
    found = []
    for (_, e0, c0), (s1, _, c1) in pairwise(found_spans):
        between = text[e0:s1]
        ref0, ref1 = REF_TEXT.fullmatch(c0), REF_TEXT.fullmatch(c1)
        if ref0 and not PATH.fullmatch(f"`{c1}`") and not c1.startswith("backprop/"):
            if QUOTED_AFTER.fullmatch(between):
                found.append((*c0.split(": "), c1))
        if ref1 and not c0.startswith("backprop/") and QUOTED_BEFORE.fullmatch(between):
            found.append((*c1.split(": "), c0))
    return found


def defined_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Classes, functions and assigned names of a module or class body -> their nodes."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def definition(page: str, path: str, name: str) -> tuple[ast.stmt, str]:
    """The node of ``name`` ("A.b": b written in A's body) in ``path``, and the file's text."""
    file = ROOT / path
    assert file.is_file(), f"docs/{page} points at {path}, which does not exist"
    source = file.read_text(encoding="utf-8")
    body: list[ast.stmt] = ast.parse(source).body
    node = None
    for part in name.split("."):
        names = defined_names(body)
        assert part in names, f"docs/{page}: {path} defines no {name} (no {part!r})"
        node = names[part]
        body = getattr(node, "body", [])
    return node, source


def code_lines(node: ast.stmt, source: str) -> list[str]:
    """The definition's source lines without its docstring, whitespace collapsed."""
    body = getattr(node, "body", [])
    doc = range(0)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        doc = range(body[0].lineno, body[0].end_lineno + 1)
    lines = source.splitlines()
    return [
        " ".join(lines[i - 1].split())
        for i in range(node.lineno, node.end_lineno + 1)
        if i not in doc
    ]
