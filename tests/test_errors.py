"""Bad input gets a clear error naming the problem and what is allowed."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


@pytest.fixture
def model():
    return bp.MLP([3, 4, 2], hidden="tanh", output="softmax", loss="cross_entropy")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loss": "hinge"}, bp.UnknownNameError, r"unknown loss 'hinge': expected one of \["),
        ({"output": "softmx"}, bp.UnknownNameError, "did you mean 'softmax'"),
        (
            {"output": "identity", "loss": "cross_entropy"},
            ValueError,
            r"loss 'cross_entropy' needs output activation in \['softmax'\], "
            r"received output='identity'",
        ),
        (
            {"output": "softmax", "loss": "binary_cross_entropy"},
            ValueError,
            r"needs output activation in \['sigmoid'\]",
        ),
        ({"hidden": ["tanh"]}, ValueError, "hidden has 1 activations but sizes .* has 2 hidden"),
        ({"alpha": -1.0}, ValueError, "alpha must be a real number >= 0, received -1.0"),
    ],
)
def test_bad_model_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        bp.MLP([3, 4, 4, 2], **kwargs)


@pytest.mark.parametrize("sizes", [[3], [3, 0, 2], [3, 2.5, 2], [3, True, 2]])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must list at least two positive ints"):
        bp.MLP(sizes)


def test_shape_errors_are_static_and_clear(backend, model):
    params = model.init(seed=0, backend=backend)
    x_ok, y_ok = backend.asarray(np.zeros((5, 3))), backend.asarray(np.zeros((5, 2)))
    with pytest.raises(
        ValueError, match=r"X must have shape \(N, 3\) \(n_in = 3\), received \(5, 4\)"
    ):
        model.loss_and_grad(params, backend.asarray(np.zeros((5, 4))), y_ok)
    with pytest.raises(
        ValueError, match=r"Y must have shape \(N, 2\) \(n_out = 2\), received \(5, 3\)"
    ):
        model.loss_and_grad(params, x_ok, backend.asarray(np.zeros((5, 3))))
    with pytest.raises(ValueError, match="X has 5 rows but Y has 4"):
        model.loss_and_grad(params, x_ok, backend.asarray(np.zeros((4, 2))))
    with pytest.raises(TypeError, match="X has dtype .*float64.* but the parameters are .*float32"):
        model.loss_and_grad(params, backend.asarray(np.zeros((5, 3)), "float64"), y_ok)


def test_input_from_another_backend_is_refused(backend, model):
    if backend.name == "numpy":
        pytest.skip("the other side of this check is numpy itself")
    params = model.init(seed=0, backend=backend)
    with pytest.raises(TypeError, match="X is a numpy.ndarray but the parameters are .*backend"):
        model.predict(params, np.zeros((2, 3), dtype=np.float32))


def test_integer_input_is_refused(backend, model):
    params = model.init(seed=0, backend=backend)
    x_int = backend.xp.zeros((5, 3), dtype=backend.xp.int32, device=backend.device)
    with pytest.raises(TypeError, match="X must have a real floating dtype .* received"):
        model.predict(params, x_int)


def test_params_of_the_wrong_model(backend, model):
    other = bp.MLP([3, 5, 2]).init(seed=0, backend=backend)
    with pytest.raises(ValueError, match=r"params\[0\] has W \(3, 5\).*expects W \(3, 4\)"):
        model.predict(other, backend.asarray(np.zeros((1, 3))))


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (
            np.array([[1.0, np.nan, 0.0]] * 4),
            np.eye(2)[[0, 1, 0, 1]],
            r"X contains 4 NaN or infinite value\(s\), first in row 0",
        ),
        (
            np.ones((4, 3)),
            np.array([[0.0, 1.0]] * 3 + [[np.inf, 0.0]]),
            r"Y contains 1 NaN or infinite value\(s\), first in row 3",
        ),
        (
            np.array([["a", "b", "c"]] * 4),
            np.eye(2)[[0, 1, 0, 1]],
            "X must be numeric .* received dtype <U1",
        ),
        (np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1, 0]], "X has 4 rows but Y has 5"),
        (
            np.eye(2)[[0, 1, 0, 1]],
            np.eye(2)[[0, 1, 0, 1]],
            "X has 2 columns but the model expects 3",
        ),
        (
            np.ones(4),
            np.eye(2)[[0, 1, 0, 1]],
            r"X must be 2-D \(N, features\), received shape \(4,\)",
        ),
    ],
)
def test_bad_training_data(model, X, Y, match):
    X_before = X.copy()
    with pytest.raises(bp.DataError, match=match):
        bp.train(model, bp.SGD(lr=0.1), X, Y, epochs=1)
    np.testing.assert_array_equal(X, X_before)  # the caller's data is untouched


def test_bad_labels_for_one_hot():
    with pytest.raises(bp.DataError, match=r"labels must lie in \[0, 3\), received range \[0, 3\]"):
        bp.one_hot(np.array([0, 1, 3]), 3)
    with pytest.raises(bp.DataError, match="labels must be a 1-D integer array"):
        bp.one_hot(np.array([0.5, 1.0]))


def test_bad_training_arguments(model):
    with pytest.raises(ValueError, match="fit: batch_size must be an int >= 1, received 0"):
        bp.train(model, bp.SGD(lr=0.1), np.ones((4, 3)), np.ones((4, 2)), batch_size=0)
