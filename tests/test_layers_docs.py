"""docs/layers.md cannot drift from the code.

The "Write your own layer" listing is exactly the source of `backprop.nn.layers.LayerNorm`, and
every shipped layer's class has code lines quoted on the page (its derivation points at the
lines doing it). That every reference on the page resolves and every quoted line is in the named
definition is checked with docs/math.md's by tests/test_worked_example.py (shared parsing in
tests/doc_pointers.py).
"""

from __future__ import annotations

import inspect
import re

import doc_pointers as dp
import pytest

from backprop.nn.layers import LAYERS, LayerNorm

PAGE = dp.ROOT / "docs" / "layers.md"
TEXT = PAGE.read_text(encoding="utf-8")
QUOTES = dp.quotes(PAGE)


def test_layernorm_listing_is_the_class_source():
    blocks = re.findall(r"^```python\n(.*?)^```$", TEXT, flags=re.S | re.M)
    listed = [b for b in blocks if "class LayerNorm(" in b]
    assert len(listed) == 1, "docs/layers.md must list class LayerNorm in one ```python block"
    assert listed[0] == inspect.getsource(LayerNorm), (
        "the LayerNorm listing in docs/layers.md differs from backprop/nn/layers/layernorm.py; "
        "paste the class source (inspect.getsource(LayerNorm)) into the page again"
    )


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_shipped_layer_is_derived_with_quoted_code(name):
    """Each registered layer of backprop.nn.layers has quoted lines from its own class."""
    cls = LAYERS.get(name)
    if not cls.__module__.startswith("backprop.nn.layers."):
        pytest.skip(f"{cls.__qualname__} is registered by {cls.__module__}, not shipped")
    path = cls.__module__.replace(".", "/") + ".py"
    quoted = [q for q in QUOTES if q[0] == path and q[1].split(".")[0] == cls.__name__]
    assert quoted, f"docs/layers.md quotes no line of {path}: {cls.__name__}"
