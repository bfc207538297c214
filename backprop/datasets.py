"""Small datasets generated or loaded on the host (NumPy), no download needed, and user files.

Host-only module. Built-in loaders return ``(X, Y)`` with Y float64, one-hot for
classification; X is float64 features (N, d), except "intents_tokens" (int64 token ids (N, T),
-1 pads, for an ``EmbeddingBag`` model) and "waveforms" (float64 signals (N, length, 1), for
``Conv1D``). `load_npz` and `load_csv` keep integer class labels as int64. `DATASETS` names every
loader; `load_dataset` calls one by name with checked options (what a config does).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import inspect
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._intents_corpus import INTENTS
from ._waveforms import WAVEFORMS, make_waveforms
from .data import DataError, one_hot
from .data_preprocessing import BagOfWords

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
    """Two interleaved spirals: X (2n, 2), Y one-hot (2n, 2). Not linearly separable."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * turns * 2.0 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2.0 * np.pi)
    X = np.concatenate([arm, -arm]) + noise * rng.normal(size=(2 * n_per_class, 2)) / 5.0
    labels = np.repeat(np.arange(2), n_per_class)
    return X, one_hot(labels, 2)


def make_moons(n_samples: int = 200, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles: X (n, 2), Y one-hot (n, 2); class 0 has the extra point
    when ``n_samples`` is odd. Angles are uniform on [0, pi], plus Gaussian ``noise`` (std).

    Class 0 is the upper arc ``(cos t, sin t)``; class 1 the lower ``(1 - cos t, 0.5 - sin t)``.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise DataError(f"make_moons: n_samples must be an integer >= 2, received {n_samples!r}")
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0.0 <= noise < np.inf:
        raise DataError(f"make_moons: noise must be a finite number >= 0, received {noise!r}")
    rng = np.random.default_rng(seed)
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


def _existing_file(path: Any, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        problem = "is a directory" if p.is_dir() else "does not exist"
        raise DataError(
            f"{what} file {str(p)!r} {problem} (resolved to {str(p.resolve())!r}); expected a "
            "path to an existing file: check data.path"
        )
    return p


def load_npz(path: str | Path, x: str = "X", y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` (N, d) and ``y`` (N,) or (N, k) from a NumPy ``.npz`` file (no pickles).

    Returns X float64, and Y as integer labels int64 or float64 values, as stored. Write such a
    file with ``np.savez(path, X=X, y=y)``.
    """
    p = _existing_file(path, ".npz")
    try:  # our own handle: np.load leaks the one it opens when the archive is corrupt
        with open(p, "rb") as handle:
            npz = np.load(handle, allow_pickle=False)
            if isinstance(npz, np.ndarray):
                raise DataError(
                    f"{str(p)!r} holds a single .npy array, expected an .npz archive of named "
                    "arrays; write one with np.savez(path, X=X, y=y)"
                )
            for key, name in (("data.x", x), ("data.y", y)):
                if name not in npz.files:
                    raise DataError(
                        f"{str(p)!r} has no array named {name!r}; it holds {sorted(npz.files)}; "
                        f"set {key} to one of those names"
                    )
            X, Y = npz[x], npz[y]
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{str(p)!r} is not a readable .npz file (corrupt, truncated, not a zip archive, or "
            f"holding Python objects): {str(exc)[:160]}; write it with np.savez(path, X=X, y=y)"
        ) from None
    return _checked_xy(X, Y, f"{str(p)!r}: array {x!r}", f"{str(p)!r}: array {y!r}")


def _checked_xy(X: np.ndarray, Y: np.ndarray, xname: str, yname: str):
    """X (N, d) numeric -> float64; Y (N,) or (N, k) numeric -> int64 if integer, else float64."""
    for arr, name, dims in ((X, xname, (2,)), (Y, yname, (1, 2))):
        if arr.dtype.kind not in "biuf" or arr.ndim not in dims or arr.shape[0] == 0:
            want = "2-D (N, features)" if dims == (2,) else "1-D (N,) or 2-D (N, k)"
            raise DataError(
                f"{name} must be a non-empty numeric {want} array, received dtype {arr.dtype} "
                f"and shape {arr.shape}; save numbers with that shape"
            )
        bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(arr.shape[0], -1).any(axis=1))[0])
            raise DataError(
                f"{name} holds {int(bad.sum())} NaN or infinite value(s), the first in row {row}; "
                "expected finite numbers: drop or impute those rows"
            )
    if X.shape[0] != Y.shape[0]:
        raise DataError(
            f"{xname} has {X.shape[0]} rows but {yname} has {Y.shape[0]}; expected one target "
            "row per input row"
        )
    ydtype = np.int64 if Y.dtype.kind in "biu" else np.float64
    return np.asarray(X, np.float64), np.asarray(Y, ydtype)


def load_csv(
    path: str | Path,
    target: str | Sequence[str],
    features: Sequence[str] | None = None,
    delimiter: str = ",",
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns of a CSV file with a header row: X (N, d) float64 from ``features``
    (default: every column but the targets), Y from ``target``.

    One target column of integers (as written: ``3``, not ``3.0``) gives int64 class labels (N,);
    otherwise float64 (N,), or (N, k) for a list of k target columns. Blank lines are skipped;
    every cell that is used must be a finite number (columns not used may hold anything).
    """
    p = _existing_file(path, "CSV")
    targets = list(target) if isinstance(target, list | tuple) else [target]
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DataError(f"data.delimiter must be one character such as ',', received {delimiter!r}")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            header, rows = _read_csv(csv.reader(f, delimiter=delimiter), p)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{str(p)!r} could not be read as UTF-8 CSV ({exc}); expected a text file with "
            f"{delimiter!r}-separated cells: check the file and data.delimiter"
        ) from None
    if features is None:
        chosen = [c for c in header if c not in targets]
    else:
        chosen = list(features) if isinstance(features, list | tuple) else [features]
    for name in [*targets, *chosen]:
        if not isinstance(name, str):
            raise DataError(
                f"column names in data.target and data.features must be strings, received "
                f'{name!r}; write the header name, e.g. target = "label"'
            )
        if name not in header:
            raise DataError(
                f"{str(p)!r} has no column {name!r}; {_did_you_mean(name, header)}its columns "
                f"are {header}; check data.target and data.features"
            )
    if set(targets) & set(chosen) or not chosen or not targets:
        raise DataError(
            f"{str(p)!r}: expected at least one target and one feature column, none in both; "
            f"received target {targets} and features {chosen}; fix data.target/data.features"
        )
    X = _numeric_columns(p, header, rows, chosen)
    Y = _numeric_columns(p, header, rows, targets)
    if len(targets) > 1:
        return X, Y
    whole = all(re.fullmatch(r"\s*[+-]?\d+\s*", r[header.index(targets[0])]) for _, r in rows)
    return X, Y[:, 0].astype(np.int64) if whole else Y[:, 0]


def _read_csv(reader: Any, p: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (names stripped) and the data rows with their line numbers in the file."""
    rows = [(reader.line_num, row) for row in reader if row]
    if not rows:
        raise DataError(f"{str(p)!r} is empty; expected a header row of column names, then data")
    header = [c.strip() for c in rows[0][1]]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        raise DataError(
            f"{str(p)!r}: the header row {header} has duplicate or empty column names "
            f"{dupes or ['']}; expected one distinct name per column: rename them"
        )
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(
                f"{str(p)!r} line {line} has {len(row)} cells, expected {len(header)} (one per "
                "header column); fix that row, or set data.delimiter if it is not a comma"
            )
    if len(rows) < 3:
        raise DataError(
            f"{str(p)!r} has {len(rows) - 1} data row(s), expected at least 2; check that the "
            "file is complete"
        )
    return header, rows[1:]


def _numeric_columns(p: Path, header: list[str], rows: list, names: list[str]) -> np.ndarray:
    cols = [header.index(n) for n in names]
    out = np.empty((len(rows), len(cols)))
    for i, (line, row) in enumerate(rows):
        for j, c in enumerate(cols):
            cell = row[c].strip()
            try:
                out[i, j] = value = float(cell)
            except ValueError:
                what = "is empty" if not cell else f"holds {cell!r}, which is not a number"
                raise DataError(
                    f"{str(p)!r} line {line}, column {header[c]!r} {what}; expected a number: "
                    "fix or drop that row, or leave the column out of data.features"
                ) from None
            if not np.isfinite(value):
                raise DataError(
                    f"{str(p)!r} line {line}, column {header[c]!r} holds {cell!r}; expected a "
                    "finite number: drop or impute that row"
                )
    return out


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
        Dataset("csv", load_csv, "numeric columns of a CSV file with a header", "any"),
    )
}


def _did_you_mean(name: str, names: list[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``names`` (ignoring case), or ``""``."""
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1)
    return f"did you mean {lower[close[0]]!r}? " if close else ""


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
    """Shuffle rows with ``seed`` and split: ``(X_train, Y_train, X_test, Y_test)``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), received {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = max(1, round(test_fraction * X.shape[0]))
    test, train = order[:n_test], order[n_test:]
    return X[train], Y[train], X[test], Y[test]
