"""Small datasets generated or loaded on the host (NumPy), no download needed.

Host-only module. Each loader returns ``(X, Y)`` float64 arrays, Y one-hot for classification.
"""

from __future__ import annotations

import numpy as np

from .data import DataError, one_hot

__all__ = ["load_digits", "make_spirals", "make_xor", "train_test_split"]


def make_xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points; Y (4, 1) in {0, 1}."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([[0.0], [1.0], [1.0], [0.0]])


def make_spirals(n_per_class: int = 100, turns: float = 1.25, noise: float = 0.1, seed: int = 0):
    """Two interleaved spirals: X (2n, 2), Y one-hot (2n, 2). Not linearly separable."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * turns * 2.0 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2.0 * np.pi)
    X = np.concatenate([arm, -arm]) + noise * rng.normal(size=(2 * n_per_class, 2)) / 5.0
    labels = np.repeat(np.arange(2), n_per_class)
    return X, one_hot(labels, 2)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), pixels scaled to [0, 1].

    Needs the ``sklearn`` extra: ``pip install 'backprop-xp[sklearn]'``.
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as exc:
        raise DataError(
            f"the digits dataset ships with scikit-learn, which is not installed ({exc}); "
            "install it with: pip install 'backprop-xp[sklearn]'"
        ) from None
    bunch = _load()
    return bunch.data / 16.0, one_hot(bunch.target.astype(np.int64), 10)


def train_test_split(X: np.ndarray, Y: np.ndarray, test_fraction: float = 0.25, seed: int = 0):
    """Shuffle rows with ``seed`` and split: ``(X_train, Y_train, X_test, Y_test)``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), received {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = max(1, round(test_fraction * X.shape[0]))
    test, train = order[:n_test], order[n_test:]
    return X[train], Y[train], X[test], Y[test]
