"""No input array is ever modified: read-only NumPy inputs, and value snapshots on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _setup(backend, momentum):
    model = bp.MLP([3, 5, 2], hidden="tanh", output="softmax", loss="cross_entropy", alpha=0.1)
    opt = bp.SGD(lr=0.1, momentum=momentum, nesterov=momentum > 0)
    params = model.init(seed=0, backend=backend, dtype="float64")
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.normal(size=(4, 3)), "float64")
    Y = backend.asarray(bp.one_hot(rng.integers(0, 2, 4), 2), "float64")
    return model, opt, params, opt.init(params), X, Y


def _snapshot(backend, tree):
    return [backend.to_numpy(leaf).copy() for leaf in bp.tree_leaves(tree)]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_step_does_not_modify_inputs(backend, momentum):
    model, opt, params, state, X, Y = _setup(backend, momentum)
    before = _snapshot(backend, [params, state, X, Y])
    step = bp.make_step(model, opt, backend)
    new_params, new_state, _ = step(params, state, X, Y)
    new_params, new_state, _ = step(new_params, new_state, X, Y)
    after = _snapshot(backend, [params, state, X, Y])
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(backend.to_numpy(new_params[0]["W"]), before[0])


def test_read_only_numpy_inputs_are_accepted():
    """Any hidden in-place write (``+=`` on a parameter, a masked assignment) would raise here."""
    import backends

    be = backends.get_backend("numpy")
    model, opt, params, state, X, Y = _setup(be, 0.9)
    for leaf in bp.tree_leaves([params, state, X, Y]):
        leaf.flags.writeable = False
    step = bp.make_step(model, opt, be)
    new_params, _new_state, loss = step(params, state, X, Y)
    assert np.isfinite(float(loss))
    model.predict(new_params, X)
    bp.gradcheck(model.loss_and_grad, params, X, Y)


def test_only_host_only_modules_import_an_array_library():
    """The Array-API-only rule: a module of backprop/ that imports numpy, cupy, jax or torch
    must say it is host-only (data loading, RNG, files); the math never does."""
    import ast
    import pathlib

    libraries = {"numpy", "cupy", "jax", "jaxlib", "torch"}
    root = pathlib.Path(bp.__file__).parent
    importing = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n.split(".")[0] in libraries for n in names):
                importing.add(path.relative_to(root).as_posix())
                doc = (ast.get_docstring(tree) or "").lower()
                assert "host-only" in doc or "host only" in doc, path
    # The math (every module of nn/) and training's math-facing modules never import one.
    training_math = {
        "training/fit.py",
        "training/step.py",
        "training/train.py",
        "training/metrics.py",
        "training/evaluation.py",
    }
    assert not importing & training_math
    assert not any(m.startswith(("nn/", "training/optimizers/")) for m in importing)
    assert {"data/_host.py", "data/checks.py"} <= importing  # the check sees real imports
