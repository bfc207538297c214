"""Small data and parameter helpers shared by the `backprop.fit` tests."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def blobs(
    n_per_class: int = 20,
    n_classes: int = 3,
    n_features: int = 4,
    spread: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: X (N, n_features) float64 and integer labels (N,), classes in blocks."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 2.0, (n_classes, n_features))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[labels] + spread * rng.normal(size=(labels.size, n_features))
    return X, labels


def classifier(sizes=(4, 16, 3), hidden="tanh", **kwargs) -> bp.MLP:
    """A softmax / cross-entropy MLP."""
    return bp.MLP(list(sizes), hidden=hidden, output="softmax", loss="cross_entropy", **kwargs)


def host_params(backend, params) -> list[dict[str, np.ndarray]]:
    """A host copy of ``params`` (so later in-place writes, if any, could not change it)."""
    return [{k: np.array(backend.to_numpy(v), copy=True) for k, v in p.items()} for p in params]


def params_log() -> tuple[bp.LambdaCallback, list]:
    """A callback storing a host copy of ``run.params`` at the end of every epoch, and the list."""
    snapshots: list = []

    def store(run) -> None:
        snapshots.append(host_params(run.backend, run.params))

    return bp.LambdaCallback(on_epoch_end=store), snapshots


def assert_params_equal(actual, expected) -> None:
    """Bitwise equality of two host parameter lists."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        for key in ("W", "b"):
            np.testing.assert_array_equal(a[key], e[key], err_msg=f"layer {i} {key}")


def assert_params_close(actual, expected, *, rtol: float, atol: float = 0.0) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        for key in ("W", "b"):
            np.testing.assert_allclose(
                a[key], e[key], rtol=rtol, atol=atol, err_msg=f"layer {i} {key}"
            )


def float64_or_skip(backend) -> str:
    if not backend.supports_dtype("float64"):
        pytest.skip(f"{backend.name} on {backend.device_name} has no float64")
    return "float64"
