"""docs/layers.md cannot drift from the code.

The "Write your own layer" listing is exactly the source of `backprop.layers.LayerNorm`; every
`backprop/...: Name` reference on the page names a definition that exists; every code line the
page quotes next to a reference (the convention of docs/math.md: `` `file: Name` (`code`) ``,
`` `file: Name`, `code` ``, `` `file: Name` returns `code` ``, `` `code` in `file: Name` ``) is
a line of that definition; and every shipped layer's module is pointed at with quoted lines.
Plain text and `ast` only: fast.
"""

from __future__ import annotations

import ast
import inspect
import re
from itertools import pairwise
from pathlib import Path

import pytest

from backprop.layers import LAYERS, LayerNorm

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "layers.md"
TEXT = PAGE.read_text(encoding="utf-8")

_REF = re.compile(r"backprop/[\w/]+\.py: [A-Za-z_][\w.]*")
_PATH = re.compile(r"(?:backprop|backends|tests|docs|configs)/[\w/]+\.(?:py|md|toml)")
_FENCE = re.compile(r"^```.*?^```$", flags=re.S | re.M)
_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", flags=re.S)
# What joins a reference and the code quoted from it: after it ", " / " (" / " returns ",
# before it " in " (as in docs/math.md, checked by tests/test_worked_example.py).
_QUOTED_AFTER = re.compile(r",\s+|\s+\(|\s+returns\s+")
_QUOTED_BEFORE = re.compile(r"\s+in\s+")


def _spans() -> list[tuple[int, int, str]]:
    """Inline code spans outside fenced blocks: ``(start, end, content)`` in `_PROSE`."""
    return [(m.start(), m.end(), m.group(2).strip()) for m in _SPAN.finditer(_PROSE)]


_PROSE = _FENCE.sub(lambda m: "\n###\n", TEXT)
SPANS = _spans()
REFS = sorted({tuple(c.split(": ")) for _, _, c in SPANS if _REF.fullmatch(c)})


def _quotes() -> list[tuple[str, str, str]]:
    """``(path, name, code)`` for every code line quoted next to a reference."""
    found = []
    for (_, e0, c0), (s1, _, c1) in pairwise(SPANS):
        between = _PROSE[e0:s1]
        if _REF.fullmatch(c0) and not c1.startswith("backprop/") and not _PATH.fullmatch(c1):
            if _QUOTED_AFTER.fullmatch(between):
                found.append((*c0.split(": "), c1))
        if _REF.fullmatch(c1) and not c0.startswith("backprop/"):
            if _QUOTED_BEFORE.fullmatch(between):
                found.append((*c1.split(": "), c0))
    return found


QUOTES = _quotes()


def _definition(path: str, name: str) -> tuple[ast.AST, str]:
    """The node of ``name`` ("A.b": b written in A's body) in ``path``, and the file's text."""
    file = ROOT / path
    assert file.is_file(), f"docs/layers.md points at {path}, which does not exist"
    source = file.read_text(encoding="utf-8")
    body: list[ast.stmt] = ast.parse(source).body
    node: ast.AST | None = None
    for part in name.split("."):
        names = {}
        for stmt in body:
            if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names[stmt.name] = stmt
            elif isinstance(stmt, ast.Assign):
                names.update({t.id: stmt for t in stmt.targets if isinstance(t, ast.Name)})
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                names[stmt.target.id] = stmt
        assert part in names, f"docs/layers.md: {path} defines no {name} (no {part!r})"
        node = names[part]
        body = getattr(node, "body", [])
    return node, source


def _code_lines(node: ast.AST, source: str) -> list[str]:
    """The definition's lines without its docstring, whitespace collapsed."""
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


def test_layernorm_listing_is_the_class_source():
    blocks = re.findall(r"^```python\n(.*?)^```$", TEXT, flags=re.S | re.M)
    listed = [b for b in blocks if "class LayerNorm(" in b]
    assert len(listed) == 1, "docs/layers.md must list class LayerNorm in one ```python block"
    assert listed[0] == inspect.getsource(LayerNorm), (
        "the LayerNorm listing in docs/layers.md differs from backprop/layers/layernorm.py; "
        "paste the class source (inspect.getsource(LayerNorm)) into the page again"
    )


def test_every_reference_is_well_formed():
    """A reference broken over two lines, or misspelt, would escape the checks below."""
    bad = [c for _, _, c in SPANS if re.match(r"backprop/\S*\.py:", c) and not _REF.fullmatch(c)]
    assert not bad, f"docs/layers.md: malformed references {bad} (want `backprop/x.py: Name`)"


@pytest.mark.parametrize(("path", "name"), REFS, ids=[f"{p}:{n}" for p, n in REFS])
def test_reference_resolves(path, name):
    _definition(path, name)


@pytest.mark.parametrize(
    ("path", "name", "code"), QUOTES, ids=[f"{p}:{n}:{i}" for i, (p, n, _) in enumerate(QUOTES)]
)
def test_quoted_code_is_in_the_named_definition(path, name, code):
    lines = _code_lines(*_definition(path, name))
    code = " ".join(code.split())
    assert any(code in line for line in lines), (
        f"docs/layers.md quotes `{code}` from {path}: {name}, whose code has no such line"
    )


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_shipped_layer_is_derived_with_quoted_code(name):
    """Each registered layer of backprop.layers has quoted lines from its own class."""
    cls = LAYERS.get(name)
    if not cls.__module__.startswith("backprop.layers."):
        pytest.skip(f"{cls.__qualname__} is registered by {cls.__module__}, not shipped")
    path = cls.__module__.replace(".", "/") + ".py"
    quoted = [q for q in QUOTES if q[0] == path and q[1].split(".")[0] == cls.__name__]
    assert quoted, f"docs/layers.md quotes no line of {path}: {cls.__name__}"


def test_file_references_exist():
    missing = sorted({p for _, _, c in SPANS for p in _PATH.findall(c) if not (ROOT / p).exists()})
    assert not missing, f"docs/layers.md mentions files that do not exist: {missing}"
