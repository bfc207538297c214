"""Small datasets generated or loaded on the host (NumPy), no download needed, and user files.

Host-only module. Built-in loaders return ``(X, Y)`` with Y float64, one-hot for
classification; X is float64 features (N, d), except "intents_tokens" (int64 token ids (N, T),
-1 pads, for an ``EmbeddingBag`` model) and "waveforms" (float64 signals (N, length, 1), for
``Conv1D``). `load_npz` and `load_csv` keep integer class labels as int64 and text class names
as strings (`backprop.data.labels` encodes both for a config); `load_npy` too, with X
memory-mapped, never read whole (`backprop.data.npyfiles`). `DATASETS` names every
loader; `load_dataset` calls one by name with checked options (what a config does).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._intents_corpus import INTENTS
from ._options import NOISE_MAX, check_int, check_number, check_seed
from ._waveforms import WAVEFORMS, make_waveforms
from .checks import DataError, one_hot
from .files import _did_you_mean, load_csv, load_npz
from .npyfiles import load_npy, select_rows
from .preprocessing import BagOfWords

__all__ = [
    "DATASETS",
    "WAVEFORMS",
    "BagOfWords",
    "Dataset",
    "dataset_parameters",
    "intent_vectorizer",
    "intents_corpus",
    "load_breast_cancer",
    "load_csv",
    "load_dataset",
    "load_diabetes",
    "load_digits",
    "load_intent_tokens",
    "load_intents",
    "load_npy",
    "load_npz",
    "make_moons",
    "make_spirals",
    "make_waveforms",
    "make_xor",
    "token_ids",
    "train_test_split",
]


def make_xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points; Y (4, 1) in {0, 1}."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([[0.0], [1.0], [1.0], [0.0]])


def make_spirals(n_per_class: int = 100, turns: float = 1.25, noise: float = 0.1, seed: int = 0):
    """Two interleaved spirals: X (2n, 2), Y one-hot (2n, 2). Not linearly separable.

    ``n_per_class`` in [1, 10**6], ``turns`` in (0, 100], ``noise`` (std, before /5) in
    [0, 100], ``seed`` >= 0; anything else raises `DataError`.
    """
    n_per_class = check_int("spirals", "n_per_class", n_per_class, 1, 10**6)
    turns = check_number("spirals", "turns", turns, 0.0, 100.0, low_open=True)
    noise = check_number("spirals", "noise", noise, 0.0, NOISE_MAX)
    rng = np.random.default_rng(check_seed("spirals", seed))
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * turns * 2.0 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2.0 * np.pi)
    X = np.concatenate([arm, -arm]) + noise * rng.normal(size=(2 * n_per_class, 2)) / 5.0
    labels = np.repeat(np.arange(2), n_per_class)
    return X, one_hot(labels, 2)


def make_moons(n_samples: int = 200, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles: X (n, 2), Y one-hot (n, 2); class 0 has the extra point
    when ``n_samples`` is odd. Angles are uniform on [0, pi], plus Gaussian ``noise`` (std).

    Class 0 is the upper arc ``(cos t, sin t)``; class 1 the lower ``(1 - cos t, 0.5 - sin t)``.
    ``n_samples`` in [2, 2 * 10**6], ``noise`` in [0, 100], ``seed`` >= 0 (else `DataError`).
    """
    n_samples = check_int("moons", "n_samples", n_samples, 2, 2 * 10**6)
    noise = check_number("moons", "noise", noise, 0.0, NOISE_MAX)
    rng = np.random.default_rng(check_seed("moons", seed))
    n0 = (n_samples + 1) // 2
    t = rng.uniform(0.0, np.pi, n_samples)
    upper = np.stack([np.cos(t[:n0]), np.sin(t[:n0])], axis=1)
    lower = np.stack([1.0 - np.cos(t[n0:]), 0.5 - np.sin(t[n0:])], axis=1)
    X = np.concatenate([upper, lower]) + noise * rng.normal(size=(n_samples, 2))
    labels = (np.arange(n_samples) >= n0).astype(np.int64)
    return X, one_hot(labels, 2)


def _sklearn_datasets(what: str) -> Any:
    """``sklearn.datasets``, or a DataError saying which extra to install for ``what``."""
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise DataError(
            f"the {what} dataset ships with scikit-learn, which is not installed ({exc}); "
            "install it with: pip install 'backprop-xp[sklearn]'"
        ) from None
    return datasets


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), pixels scaled to [0, 1].

    Needs the ``sklearn`` extra: ``pip install 'backprop-xp[sklearn]'``.
    """
    bunch = _sklearn_datasets("digits").load_digits()
    return bunch.data / 16.0, one_hot(bunch.target.astype(np.int64), 10)


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled Wisconsin breast cancer set: X (569, 30) raw features (not scaled:
    standardize them), Y (569, 1) float64 with **1.0 = malignant**, 0.0 = benign, for a sigmoid
    output and binary cross-entropy. scikit-learn's own target is the reverse (0 = malignant).

    Needs the ``sklearn`` extra: ``pip install 'backprop-xp[sklearn]'``.
    """
    bunch = _sklearn_datasets("breast_cancer").load_breast_cancer()
    return np.asarray(bunch.data, np.float64), (bunch.target == 0).astype(np.float64)[:, None]


def load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled diabetes regression set: X (442, 10) as scikit-learn ships it
    (each column mean-centred and scaled to unit norm), Y (442, 1) float64 raw targets (disease
    progression after one year, 25 to 346).

    Needs the ``sklearn`` extra: ``pip install 'backprop-xp[sklearn]'``.
    """
    bunch = _sklearn_datasets("diabetes").load_diabetes()
    return np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.float64)[:, None]


def intents_corpus() -> tuple[list[str], np.ndarray, list[str]]:
    """The project's own intents corpus: ``(sentences, labels int64 (N,), intent_names)``;
    ``labels[n]`` indexes ``intent_names``. 8 intents, 20 sentences each."""
    names = list(INTENTS)
    sentences = [s for name in names for s in INTENTS[name]]
    labels = np.repeat(np.arange(len(names)), [len(INTENTS[n]) for n in names])
    return sentences, labels.astype(np.int64), names


def intent_vectorizer() -> BagOfWords:
    """The `BagOfWords` that `load_intents` uses, fitted on the whole corpus: its vocabulary is
    the corpus's words, fixed and deterministic. Save ``to_dict()`` with a run to vectorize new
    sentences later."""
    return BagOfWords().fit(intents_corpus()[0])


def load_intents() -> tuple[np.ndarray, np.ndarray]:
    """Intent classification from text: X (160, V) bag-of-words, Y one-hot (160, 8).
    See `intents_corpus` for the sentences and class names, `intent_vectorizer` for X's columns.
    """
    sentences, labels, names = intents_corpus()
    return intent_vectorizer().transform(sentences), one_hot(labels, len(names))


def load_intent_tokens() -> tuple[np.ndarray, np.ndarray]:
    """The intents corpus as token ids, for an ``EmbeddingBag`` model: X (160, T) int64, row n
    the vocabulary indices of sentence n's words in order, padded with -1 to the longest
    sentence (T words); Y one-hot (160, 8). The same rows in the same order as `load_intents`
    (so a split with the same seed holds out the same sentences), and the same vocabulary: id v
    is column v of its bag-of-words X, ``intent_vectorizer().vocabulary[v]``. The ids are labels,
    not magnitudes: never standardize them (`backprop.experiment.prepare_dataset` skips
    integer inputs).
    """
    sentences, labels, names = intents_corpus()
    return intent_vectorizer().token_ids(sentences), one_hot(labels, len(names))


def token_ids(
    sentences: Sequence[str],
    vocabulary: BagOfWords | Sequence[str] | None = None,
    length: int | None = None,
) -> np.ndarray:
    """Sentences -> token ids (N, T) int64, -1 padding (`BagOfWords.token_ids`), over
    ``vocabulary``: a fitted `BagOfWords` (e.g. `intent_vectorizer`), a list of words, or None
    to build it from ``sentences``. Pass the trained model's T as ``length`` for new sentences."""
    if vocabulary is None:
        sentences = list(sentences) if not isinstance(sentences, str) else sentences
        vectorizer = BagOfWords().fit(sentences)
    elif isinstance(vocabulary, BagOfWords):
        vectorizer = vocabulary
    else:
        vectorizer = BagOfWords(vocabulary)
    return vectorizer.token_ids(sentences, length)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named loader. ``task``: "classification" or "regression"; "any" for user files, whose
    targets decide (integer labels or one-hot for classification, real values for regression)."""

    name: str
    loader: Callable[..., tuple[np.ndarray, np.ndarray]]
    description: str
    task: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("xor", make_xor, "the four XOR points, Y (4, 1) 0/1", "classification"),
        Dataset("spirals", make_spirals, "two interleaved spirals, 2 classes", "classification"),
        Dataset("moons", make_moons, "two interleaving half circles, 2 classes", "classification"),
        Dataset("digits", load_digits, "8x8 handwritten digits, 10 classes", "classification"),
        Dataset(
            "breast_cancer", load_breast_cancer, "30 features, Y 1 = malignant", "classification"
        ),
        Dataset("diabetes", load_diabetes, "10 features, disease progression", "regression"),
        Dataset("intents", load_intents, "bag-of-words sentences, 8 intents", "classification"),
        Dataset(
            "intents_tokens",
            load_intent_tokens,
            "token ids of the intents, -1 pads",
            "classification",
        ),
        Dataset(
            "waveforms", make_waveforms, "noisy 1-D signals (N, 64, 1), 4 shapes", "classification"
        ),
        Dataset("npz", load_npz, "named arrays X, y from an .npz file", "any"),
        Dataset("csv", load_csv, "columns of a CSV file with a header", "any"),
        Dataset("npy", load_npy, "features, targets .npy files, memory-mapped", "any"),
    )
}


def _dataset(name: Any) -> Dataset:
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    raise DataError(
        f"unknown dataset {name!r}; {_did_you_mean(str(name), list(DATASETS))}"
        f"expected one of {sorted(DATASETS)} (data.name)"
    )


def dataset_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters of dataset ``name``'s loader; required ones (``path``, ``target``)
    have ``default is inspect.Parameter.empty``."""
    params = inspect.signature(_dataset(name).loader).parameters
    return {k: v for k, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)}


def load_dataset(name: str, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """``DATASETS[name].loader(**options)``, after checking the option names (DataError)."""
    params = dataset_parameters(name)
    accepted = sorted(params) or "none"
    unknown = sorted(set(options) - set(params))
    missing = [k for k, v in params.items() if v.default is v.empty and k not in options]
    if unknown or missing:
        problem = (
            f"unknown option(s) {unknown}; {_did_you_mean(unknown[0], list(params))}"
            if unknown
            else f"missing option(s) {missing}; "
        )
        required = [k for k, v in params.items() if v.default is v.empty] or "none"
        raise DataError(
            f"dataset {name!r}: {problem}it accepts {accepted} (required: {required}); "
            "set them under [data] in the config"
        )
    return DATASETS[name].loader(**options)


def train_test_split(X: np.ndarray, Y: np.ndarray, test_fraction: float = 0.25, seed: int = 0):
    """Shuffle rows with ``seed`` and split: ``(X_train, Y_train, X_test, Y_test)``.

    The test part has ``max(1, round(test_fraction * N))`` rows; a split that leaves no training
    row (few rows, a large fraction) raises `DataError` with the counts. Memory-mapped X (the
    ``npy`` dataset) stays on disk: its parts are `backprop.data.npyfiles.MappedRows`.
    """
    if isinstance(test_fraction, bool) or not 0.0 < test_fraction < 1.0:
        raise DataError(
            f"test_fraction must be a number in (0, 1), received {test_fraction!r}; set "
            "data.test_fraction to e.g. 0.25, or to 0 to train and evaluate on every row"
        )
    n = X.shape[0]
    n_test = max(1, round(test_fraction * n))
    if n - n_test < 1:
        raise DataError(
            f"data.test_fraction = {test_fraction!r} holds out {n_test} of the {n} row(s), "
            f"leaving {n - n_test} for training; expected at least one training and one test "
            + (
                f"row: lower data.test_fraction (below {(n - 0.5) / n:.3g})"
                if n > 1
                else "row, but the dataset has 1"
            )
            + ", or set it to 0 to train and evaluate on every row"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return select_rows(X, train), Y[train], select_rows(X, test), Y[test]
