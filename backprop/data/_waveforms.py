"""The "waveforms" dataset: which of four shapes a noisy 1-D signal holds.

Host-only module (NumPy), generated from a seed, nothing downloaded; `backprop.datasets` registers
it as "waveforms". Each row is one window of ``length`` samples of a periodic signal,

    x[t] = amplitude * shape(frac(cycles * t / length + phase)) + noise * N(0, 1),  t = 0..length-1

with ``shape`` one of `WAVEFORMS` (label = its index) on one period ``u`` in [0, 1), each with
mean 0 and peak 1 over a period: sine ``sin(2 pi u)``, square ``+1`` then ``-1``, triangle
``4 |u - 1/2| - 1``, sawtooth ``2u - 1``. Per row: ``cycles`` ~ U(1.5, 4) periods in the window
(16 to 43 samples per period at length 64), ``phase`` ~ U(0, 1) of a period, ``amplitude`` ~
U(0.5, 1.5). The class is in the shape alone: frequency, phase and amplitude vary within every
class, so neither a single sample nor the signal's scale tells them apart, and a model has to
look at a neighbourhood (a convolution) rather than at fixed positions.

Draw order from ``numpy.random.default_rng(seed)``: the labels (a permutation of ``arange(n) %
4``, so the classes are balanced to within one row), then cycles, phase, amplitude, then the
noise (n, length): the same seed gives the same data on every run and machine.
"""

from __future__ import annotations

import numpy as np

from ._options import NOISE_MAX, check_int, check_number, check_seed
from .checks import DataError, one_hot

__all__ = ["WAVEFORMS", "make_waveforms"]

WAVEFORMS: tuple[str, ...] = ("sine", "square", "triangle", "sawtooth")
_MAX_VALUES = 2 * 10**7  # n_samples * length: 160 MB per float64 array, four of them at once


def _shape(kind: str, u: np.ndarray) -> np.ndarray:
    """One period of ``kind`` at phase ``u`` in [0, 1): mean 0, values in [-1, 1]."""
    if kind == "sine":
        return np.sin(2.0 * np.pi * u)
    if kind == "square":
        return np.where(u < 0.5, 1.0, -1.0)
    if kind == "triangle":
        return 4.0 * np.abs(u - 0.5) - 1.0
    return 2.0 * u - 1.0  # sawtooth


def make_waveforms(
    n_samples: int = 1200, length: int = 64, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy periodic signals: X (n_samples, length, 1) float64, Y one-hot (n_samples, 4) over
    `WAVEFORMS` (sine, square, triangle, sawtooth); ``noise``: the standard deviation of the
    added Gaussian noise (the signal's peak is 0.5 to 1.5). See the module docstring.

    Not standardized: every signal is centred on 0 with a peak of about 1 by construction, so
    the values are already on the scale a network wants (``[data] standardize = true`` scales
    per channel if asked).

    ``n_samples`` in [1, 10**6], ``length`` in [8, 65536] (their product at most 2 * 10**7),
    ``noise`` in [0, 100], ``seed`` >= 0; anything else raises `DataError`.
    """
    n_samples = check_int("waveforms", "n_samples", n_samples, 1, 10**6)
    length = check_int("waveforms", "length", length, 8, 65_536)
    if n_samples * length > _MAX_VALUES:
        raise DataError(
            f"dataset 'waveforms': n_samples * length = {n_samples} * {length} = "
            f"{n_samples * length:,} values, expected at most {_MAX_VALUES:,} (the generator "
            "holds a few arrays of that size in memory); lower data.n_samples or data.length"
        )
    noise = check_number("waveforms", "noise", noise, 0.0, NOISE_MAX)
    rng = np.random.default_rng(check_seed("waveforms", seed))
    labels = rng.permutation(np.arange(n_samples) % len(WAVEFORMS)).astype(np.int64)
    cycles = rng.uniform(1.5, 4.0, n_samples)
    phase = rng.uniform(0.0, 1.0, n_samples)
    amplitude = rng.uniform(0.5, 1.5, n_samples)
    u = (cycles[:, None] * np.arange(length) / length + phase[:, None]) % 1.0
    clean = np.empty((n_samples, length))
    for k, kind in enumerate(WAVEFORMS):
        rows = labels == k
        clean[rows] = _shape(kind, u[rows])
    X = amplitude[:, None] * clean + noise * rng.normal(size=(n_samples, length))
    return X[:, :, None], one_hot(labels, len(WAVEFORMS))
