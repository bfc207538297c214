"""docs/worked_example.md cannot drift from the code.

Every number printed on the page is recomputed on every backend with the library's own
functions (docs/make_worked_example.py's `quantities`: `Sequential.backprop`, `Dense.forward`,
`Dense.backward_z`, `SGD.update`, ...) and compared to the printed precision; the same
quantities come from an independent plain-NumPy recomputation below; `backprop.fit` for one
epoch of configs/xor.toml lands on the page's updated weights; the page is exactly what the
script generates; every `backprop/...: Name` reference in docs/math.md and docs/worked_example.md
names a definition written in that file (a method in the class body that defines it, not one
that inherits it); and every code line quoted next to a reference (`` `file: Name`, `code` ``,
`` `file: Name` (`code` ``, `` `file: Name` returns `code` `` or `` `code` in `file: Name` ``)
is in that definition's code, docstring excluded.
"""

from __future__ import annotations

import ast
import decimal
import functools
import importlib.util
import re
import sys
from itertools import pairwise
from pathlib import Path

import doc_pointers as dp
import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import eps, to_host

import backprop as bp
from backprop.data import datasets

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "docs" / "math.md",
    ROOT / "docs" / "worked_example.md",
    ROOT / "docs" / "layers.md",
]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "make_worked_example", ROOT / "docs" / "make_worked_example.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make = _load_script()
CFG = make.load_config()
DTYPE = CFG["dtype"]
# Other backends sum in other orders: a few ulps per operation, far below the printed digits.
# Against the NumPy oracle allow 1e3 eps relative, as tests/test_fit.py does across backends.
RTOL = 1e3 * eps(DTYPE)


# -- the page, parsed ----------------------------------------------------------------------------
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_ENTRY = re.compile(r"^(\w+) = (.*)$")


def _half_unit(token: str) -> float:
    """Half a unit in the last printed digit; 0 for an integer, which the page prints exactly."""
    if not any(c in token for c in ".eE"):
        return 0.0
    return 0.5 * 10.0 ** decimal.Decimal(token).as_tuple().exponent


def _parse_entry(name: str, text: str) -> tuple[np.ndarray, np.ndarray]:
    shape = np.shape(ast.literal_eval(text))
    tokens = _NUMBER.findall(text)
    values = np.array([float(t) for t in tokens]).reshape(shape)
    halves = np.array([_half_unit(t) for t in tokens]).reshape(shape)
    return values, halves


def parse_numbers(text: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (printed values, half units)`` from the ```text blocks of the generated part."""
    section = text[text.index(make.BEGIN) : text.index(make.END)]
    entries: dict[str, list[str]] = {}
    for block in re.findall(r"^```text\n(.*?)^```$", section, flags=re.S | re.M):
        current = None
        for line in block.splitlines():
            match = _ENTRY.match(line)
            if match:
                current = match.group(1)
                assert current not in entries, f"{current} printed twice"
                entries[current] = [match.group(2)]
            else:
                assert current is not None, f"stray line {line!r}"
                entries[current].append(line.strip())
    return {name: _parse_entry(name, " ".join(parts)) for name, parts in entries.items()}


PAGE_TEXT = PAGES[1].read_text(encoding="utf-8")
PRINTED = parse_numbers(PAGE_TEXT)


def assert_printed(name: str, actual: np.ndarray) -> None:
    """``actual`` rounds to what the page prints for ``name`` (plus a few eps of slack, so a
    value within ulps of a rounding boundary on another backend does not fail)."""
    printed, half = PRINTED[name]
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == printed.shape, (name, actual.shape, printed.shape)
    tol = half + 16 * eps(DTYPE) * np.maximum(np.abs(printed), 1.0)
    bad = np.abs(actual - printed) > tol
    assert not bad.any(), f"{name}: computed {actual[bad]} but the page prints {printed[bad]}"


# -- an independent recomputation in plain NumPy --------------------------------------------------
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _sigmoid_prime(z):
    """The quotient-rule form e^-z / (1 + e^-z)^2, not the library's s(1 - s)."""
    return np.exp(-z) / (1.0 + np.exp(-z)) ** 2


@functools.cache
def oracle() -> dict[str, np.ndarray]:
    """The worked step from the definitions, float64, sharing no code with backprop."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    rng = np.random.default_rng(CFG["seed"])  # Glorot-uniform, layer by layer, zero biases
    sizes = [2, *CFG["hidden_sizes"], 1]
    W1, W2 = (rng.uniform(-_glorot(i, o), _glorot(i, o), (i, o)) for i, o in pairwise(sizes))
    b1, b2 = np.zeros(sizes[1]), np.zeros(sizes[2])
    v = dict(X=X, Y=Y, W1=W1, b1=b1, W2=W2, b2=b2)
    v["z1"] = X @ W1 + b1
    v["a1"] = _sigmoid(v["z1"])
    v["z2"] = v["a1"] @ W2 + b2
    v["a2"] = _sigmoid(v["z2"])
    n, k = Y.shape
    v["J"] = np.sum((v["a2"] - Y) ** 2) / (2 * n * k)
    v["err"] = v["a2"] - Y
    v["dJ_da2"] = v["err"] / (n * k)
    v["fprime2"] = _sigmoid_prime(v["z2"])
    v["delta2"] = v["dJ_da2"] * v["fprime2"]
    v["dW2"] = sum(np.outer(v["a1"][r], v["delta2"][r]) for r in range(n))
    v["db2"] = v["delta2"].sum(axis=0)
    v["dJ_da1"] = v["delta2"] @ W2.T
    v["fprime1"] = _sigmoid_prime(v["z1"])
    v["delta1"] = v["dJ_da1"] * v["fprime1"]
    v["dW1"] = sum(np.outer(X[r], v["delta1"][r]) for r in range(n))
    v["db1"] = v["delta1"].sum(axis=0)
    lr = CFG["lr"]
    for p in ("W1", "b1", "W2", "b2"):
        v[f"{p}_new"] = v[p] - lr * v[f"d{p}"]
    a2_new = _sigmoid(_sigmoid(X @ v["W1_new"] + v["b1_new"]) @ v["W2_new"] + v["b2_new"])
    v["J_new"] = np.sum((a2_new - Y) ** 2) / (2 * n * k)
    return v


def _glorot(n_in: int, n_out: int) -> float:
    return float(np.sqrt(6.0 / (n_in + n_out)))


# -- the library on every backend -----------------------------------------------------------------
_LIBRARY: dict[str, dict] = {}


def library(backend) -> dict:
    """The page's quantities computed by the library on ``backend`` (once per backend)."""
    if not backend.supports_dtype(DTYPE):
        pytest.skip(f"{backend.name} on {backend.device_name} has no {DTYPE}")
    if backend.name not in _LIBRARY:
        _LIBRARY[backend.name] = make.quantities(backend, CFG)
    return _LIBRARY[backend.name]


def test_page_prints_every_quantity_once():
    assert list(PRINTED) == make.NAMES


@pytest.mark.parametrize("name", make.NAMES)
def test_library_matches_page(backend, name):
    value = library(backend)[name]
    assert array_namespace(value) is array_namespace(backend.asarray([0.0]))
    assert str(value.dtype).endswith(DTYPE), (name, value.dtype)
    assert_printed(name, to_host(backend, value))


@pytest.mark.parametrize("name", make.NAMES)
def test_library_matches_numpy_oracle(backend, name):
    expected = oracle()[name]
    actual = to_host(backend, library(backend)[name])
    atol = RTOL * max(float(np.abs(expected).max()), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=name)


@pytest.mark.parametrize("name", make.NAMES)
def test_numpy_oracle_matches_page(name):
    assert_printed(name, oracle()[name])


def test_fit_first_epoch_lands_on_the_page(backend):
    """The page's step is the first step of `backprop.fit` with configs/xor.toml."""
    library(backend)  # skips where the dtype is missing
    X, Y = datasets.make_xor()
    model = make.make_model(CFG)
    result = bp.fit(
        model,
        X,
        Y,
        optimizer=bp.SGD(lr=CFG["lr"]),
        backend=backend,
        epochs=1,
        batch_size=CFG["batch_size"],
        seed=CFG["seed"],
        shuffle=CFG["shuffle"],
        dtype=DTYPE,
        verbose=0,
    )
    for i, p in enumerate(result.params, start=1):
        for key in ("W", "b"):
            name = f"{key}{i}_new"
            actual = to_host(backend, p[key])
            assert_printed(name, actual)
            expected = to_host(backend, library(backend)[name])
            np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL, err_msg=name)
    assert_printed("J", result.history["loss"][0])  # the epoch's loss is the step's J


def test_page_is_what_the_script_generates():
    regenerated = make.update_page(PAGE_TEXT, make.render(cfg=CFG))
    assert regenerated == PAGE_TEXT, "stale page: run python docs/make_worked_example.py"


def test_python_snippet_on_the_page_reproduces_the_numbers():
    code = re.search(r"^```python\n(.*?)^```$", PAGE_TEXT, flags=re.S | re.M).group(1)
    scope: dict = {}
    exec(code, scope)
    assert_printed("J", scope["J"])
    assert_printed("delta1", scope["deltas"][0])
    for i, p in enumerate(scope["new_params"], start=1):
        assert_printed(f"W{i}_new", p["W"])
        assert_printed(f"b{i}_new", p["b"])


def test_script_refuses_a_config_it_does_not_describe(tmp_path):
    text = (ROOT / "configs" / "xor.toml").read_text(encoding="utf-8")
    changed = tmp_path / "xor.toml"
    changed.write_text(text.replace('hidden = "sigmoid"', 'hidden = "tanh"'), encoding="utf-8")
    with pytest.raises(ValueError, match="model.hidden = 'sigmoid', received 'tanh'"):
        make.load_config(changed)


# -- code references -----------------------------------------------------------------------------
def _quote_cases() -> list:
    return [
        pytest.param(page.name, path, name, code, id=f"{page.name}-{name}-{i}")
        for page in PAGES
        for i, (path, name, code) in enumerate(dp.quotes(page))
    ]


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_pages_point_at_code(page):
    refs = [r for r in dp.references(PAGES, dp.REF) if r[0] == page]
    assert len(refs) >= 10, f"docs/{page} names only {len(refs)} `backprop/...: Name` functions"
    quotes = dp.quotes(ROOT / "docs" / page)
    assert len(quotes) >= 10, f"docs/{page} quotes only {len(quotes)} lines next to references"


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_every_reference_is_well_formed(page):
    """A reference broken over two lines, or misspelt, would escape the checks below."""
    spans, _ = dp.spans(ROOT / "docs" / page)
    bad = [
        c for _, _, c in spans if re.match(r"backprop/\S*\.py:", c) and not dp.REF_TEXT.fullmatch(c)
    ]
    assert not bad, f"docs/{page}: malformed references {bad} (want `backprop/x.py: Name`)"


@pytest.mark.parametrize(("page", "path", "name"), dp.references(PAGES, dp.REF))
def test_code_reference_resolves(page, path, name):
    dp.definition(page, path, name)


@pytest.mark.parametrize(("page", "path", "name", "code"), _quote_cases())
def test_quoted_code_is_in_the_named_definition(page, path, name, code):
    lines = dp.code_lines(*dp.definition(page, path, name))
    code = " ".join(code.split())
    assert any(code in line for line in lines), (
        f"docs/{page} quotes `{code}` from {path}: {name}, whose code has no such line"
    )


@pytest.mark.parametrize(("page", "path"), dp.references(PAGES, dp.PATH))
def test_file_reference_exists(page, path):
    assert (ROOT / path).is_file(), f"docs/{page} mentions {path}, which does not exist"
