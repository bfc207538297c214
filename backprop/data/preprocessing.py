"""Features fitted on the training rows, applied the same way to every later row: z-score
scaling (`Standardizer`), and text as bag-of-words vectors or token ids (`BagOfWords`).

Host-only module: NumPy on the CPU, before data is moved to a backend. float64 throughout, except
token ids (int64).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .checks import DataError, host_array

__all__ = ["BagOfWords", "Standardizer"]


class Standardizer:
    """z-score scaling: ``(X - mean) / scale`` per column, with ``scale`` the standard deviation
    (``ddof=0``) of the rows given to `fit`.

    Sequences ``(N, ..., C)`` (e.g. signals (N, length, channels)) are scaled per channel, the
    last axis: one mean and scale per channel, over every row and position, so a signal keeps
    its shape over time and a model sees the same scaling at every position.

    A column whose standard deviation is zero (or within rounding of zero: at most
    ``10 * eps * max(1, |mean|)``) gets ``scale = 1.0``, so constant columns become 0, not NaN.
    Fit on the training rows only, then transform the validation and test rows with the same
    numbers. ``to_dict``/``from_dict`` round-trip through JSON.

    >>> s = Standardizer().fit([[0.0, 5.0], [2.0, 5.0]])
    >>> s.transform([[1.0, 5.0]]).tolist()
    [[0.0, 0.0]]
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: Any) -> Standardizer:
        x = _matrix("Standardizer.fit", X)
        x = x.reshape(-1, x.shape[-1])  # (N, ..., C) -> (N * ..., C): per channel
        mean, std = x.mean(axis=0), x.std(axis=0)
        tiny = 10.0 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
        self.mean, self.scale = mean, np.where(std > tiny, std, 1.0)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """(N, d) -> (N, d) float64 ``(X - mean) / scale``; (N, ..., C) per channel."""
        return (self._columns("transform", X) - self.mean) / self.scale

    def inverse_transform(self, X: Any) -> np.ndarray:
        """(N, d) -> (N, d) float64 ``X * scale + mean``: back to the original units;
        (N, ..., C) per channel."""
        return self._columns("inverse_transform", X) * self.scale + self.mean

    def fit_transform(self, X: Any) -> np.ndarray:
        return self.fit(X).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"kind": "standardizer", "mean": [...], "scale": [...]}``."""
        self._check_fitted("to_dict")
        return {"kind": "standardizer", "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Standardizer:
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                "Standardizer.from_dict expected a dict with numeric lists 'mean' and 'scale' "
                f"(as written by to_dict); reading it failed with {type(exc).__name__}: {exc}"
            ) from None
        ok = mean.ndim == 1 and mean.shape == scale.shape and mean.size > 0
        if not ok or not np.isfinite(mean).all() or not (np.isfinite(scale) & (scale > 0)).all():
            raise DataError(
                "Standardizer.from_dict expected 'mean' and 'scale' of the same non-zero length, "
                f"finite, with every scale > 0; received shapes {mean.shape} and {scale.shape}; "
                "pass the dict that to_dict wrote"
            )
        out = cls()
        out.mean, out.scale = mean, scale
        return out

    def _check_fitted(self, where: str) -> None:
        if self.mean is None:
            raise DataError(
                f"Standardizer.{where} was called before fit; call fit(X_train) first, or "
                "rebuild it with Standardizer.from_dict(saved)"
            )

    def _columns(self, where: str, X: Any) -> np.ndarray:
        self._check_fitted(where)
        x = _matrix(f"Standardizer.{where}", X)
        if x.shape[-1] != self.mean.shape[0]:
            raise DataError(
                f"Standardizer.{where} received {x.shape[-1]} columns, but it was fitted on "
                f"{self.mean.shape[0]}; pass data with the same columns as the training rows"
            )
        return x


def _matrix(where: str, X: Any) -> np.ndarray:
    """X as a finite float64 (N, d) or (N, ..., C) array with N >= 1, or a DataError saying
    what is wrong."""
    x = host_array(f"{where}: X", X)
    if x.dtype.kind not in "biuf" or x.ndim < 2 or x.size == 0:
        raise DataError(
            f"{where} expected a numeric 2-D array (N, features) with N >= 1 (or (N, ..., "
            f"channels), scaled per channel), received dtype {x.dtype} and shape {x.shape}; "
            "reshape one column with X[:, None]"
        )
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataError(
            f"{where} received NaN or infinite values (first in row {row}); expected finite "
            "numbers: drop or impute them first"
        )
    return x


class BagOfWords:
    """Sentences -> binary word-presence vectors (N, V) float64 over a fixed, sorted vocabulary
    (`transform`), or -> rows of token ids (N, T) int64 in word order (`token_ids`, the input of
    an ``EmbeddingBag`` layer); a word's id is its column in the vectors.

    Tokens: the sentence lowercased, then runs of letters, digits and apostrophes (``[a-z0-9']+``)
    with leading/trailing apostrophes removed; "What's up?" -> ``["what's", "up"]``. No stemming.
    Words not in the vocabulary are ignored by `transform` and `token_ids`. ``to_dict``/
    ``from_dict`` round-trip through JSON so that a trained run can vectorize new sentences the
    same way.
    """

    PAD = -1  # the token id that pads a row of `token_ids`

    _TOKEN = re.compile(r"[a-z0-9']+")

    def __init__(self, vocabulary: Sequence[str] | None = None) -> None:
        self.vocabulary: list[str] | None = None
        self._index: dict[str, int] = {}
        if vocabulary is not None:
            self._set_vocabulary(vocabulary)

    @classmethod
    def tokenize(cls, sentence: str) -> list[str]:
        """The word tokens of one sentence, in order (see the class docstring)."""
        words = (w.strip("'") for w in cls._TOKEN.findall(sentence.lower()))
        return [w for w in words if w]

    def fit(self, sentences: Sequence[str]) -> BagOfWords:
        """Build the vocabulary: every token of ``sentences``, sorted."""
        words = {w for s in _check_sentences(sentences) for w in self.tokenize(s)}
        if not words:
            raise DataError(
                "BagOfWords.fit found no words in the sentences; expected text with letters or "
                "digits; check that the right column or list was passed"
            )
        self._set_vocabulary(sorted(words))
        return self

    def transform(self, sentences: Sequence[str]) -> np.ndarray:
        """(N, V) float64: 1.0 where vocabulary word v occurs in sentence n, else 0.0."""
        if self.vocabulary is None:
            raise DataError(
                "BagOfWords.transform was called before fit; call fit(sentences) or build it "
                "from a saved vocabulary with BagOfWords.from_dict(...)"
            )
        sentences = _check_sentences(sentences)
        out = np.zeros((len(sentences), len(self.vocabulary)))
        for n, sentence in enumerate(sentences):
            cols = [self._index[w] for w in self.tokenize(sentence) if w in self._index]
            out[n, cols] = 1.0
        return out

    def fit_transform(self, sentences: Sequence[str]) -> np.ndarray:
        return self.fit(sentences).transform(sentences)

    def token_ids(self, sentences: Sequence[str], length: int | None = None) -> np.ndarray:
        """(N, T) int64: row n holds the vocabulary index of each known word of sentence n, in
        order (repeats kept), then `PAD` (-1) up to T. T is ``length``, or by default the
        longest sentence's number of known words (at least 1). A sentence with more known words
        than ``length`` keeps its first ``length``: a model trained on T ids per row takes
        exactly T, so pass its T for new sentences.

        >>> BagOfWords(["a", "b", "c"]).token_ids(["c a c", "b, x", ""]).tolist()
        [[2, 0, 2], [1, -1, -1], [-1, -1, -1]]
        """
        if self.vocabulary is None:
            raise DataError(
                "BagOfWords.token_ids was called before fit; call fit(sentences) or build it "
                "from a saved vocabulary with BagOfWords.from_dict(...)"
            )
        rows = [
            [self._index[w] for w in self.tokenize(s) if w in self._index]
            for s in _check_sentences(sentences)
        ]
        if length is None:
            length = max([1, *map(len, rows)])
        elif isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise DataError(
                f"BagOfWords.token_ids: length must be an int >= 1, received {length!r}"
            )
        out = np.full((len(rows), length), self.PAD, dtype=np.int64)
        for n, ids in enumerate(rows):
            out[n, : min(len(ids), length)] = ids[:length]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"kind": "bag_of_words", "vocabulary": [...]}``."""
        return {"kind": "bag_of_words", "vocabulary": list(self.vocabulary or [])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BagOfWords:
        vocabulary = data.get("vocabulary") if isinstance(data, dict) else None
        if not isinstance(vocabulary, list) or not vocabulary:
            raise DataError(
                "BagOfWords.from_dict expected a dict with a non-empty 'vocabulary' list (as "
                f"written by to_dict), received {type(data).__name__} {str(data)[:80]}"
            )
        return cls(vocabulary)

    def _set_vocabulary(self, vocabulary: Sequence[str]) -> None:
        words = list(vocabulary)
        if not all(isinstance(w, str) and w for w in words) or len(set(words)) != len(words):
            raise DataError(
                "a BagOfWords vocabulary must be distinct non-empty strings, received "
                f"{str(words)[:80]}; build it with fit(sentences)"
            )
        self.vocabulary, self._index = words, {w: i for i, w in enumerate(words)}


def _check_sentences(sentences: Any) -> list[str]:
    """``sentences`` as a list of strings (any iterable of them; one string alone is refused)."""
    ok = not isinstance(sentences, str) and hasattr(sentences, "__iter__")
    items = list(sentences) if ok else []
    if not ok or not all(isinstance(s, str) for s in items):
        raise DataError(
            "BagOfWords expects a list of sentences (strings), received "
            f"{type(sentences).__name__}; wrap a single sentence in a list: [sentence]"
        )
    return items
