"""Host-side (NumPy) randomness and constants: the generator behind initial weights (each
layer's ``init`` draws from it), batch orders and dropout masks. Host-only module.

Random numbers are not part of the Array API standard, so they are drawn with
``numpy.random.Generator`` in float64 and then moved to the backend: the same seed gives the
same numbers on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["arange", "dropout_masks", "np_rng", "ones", "take_rows", "zeros"]


def np_rng(seed: int) -> np.random.Generator:
    """The host generator every random draw of a run comes from."""
    return np.random.default_rng(seed)


def arange(n: int) -> np.ndarray:
    """Row indices 0..n-1 on the host (int64): an unshuffled order, a range of rows."""
    return np.arange(n)


def zeros(shape: tuple[int, ...]) -> np.ndarray:
    """float64 zeros on the host (biases, shifts)."""
    return np.zeros(shape)


def ones(shape: tuple[int, ...]) -> np.ndarray:
    """float64 ones on the host (scales)."""
    return np.ones(shape)


def dropout_masks(
    rng: np.random.Generator,
    n_rows: int,
    shapes: Sequence[int | tuple[int, ...]],
    rates: Sequence[float],
) -> list[np.ndarray | None]:
    """Inverted-dropout masks for one batch: per dropout layer, (n_rows, *shape) float64 with
    0 where a unit is dropped (probability ``rate``) and 1/(1-rate) where kept, so the expected
    output is unchanged; None for a layer with rate 0 (no draw, no product)."""
    masks: list[np.ndarray | None] = []
    for shape, rate in zip(shapes, rates, strict=True):
        if rate:
            keep = rng.random((n_rows, *np.atleast_1d(shape).tolist())) >= rate
            masks.append(keep * (1.0 / (1.0 - rate)))
        else:
            masks.append(None)
    return masks


def take_rows(values: object, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a host array or list (e.g. sample weights after a validation split)."""
    return np.asarray(values)[idx]
