"""Datasets (generated, bundled with scikit-learn, the intents corpus as vectors and as token
ids, the waveform signals, user .npz/.csv files), the dataset registry, `prepare_dataset` on
integer and sequence inputs, and the host-side preprocessing (Standardizer, BagOfWords)."""

from __future__ import annotations

import inspect
import json
import pathlib
import sys

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import numpy as np
import pytest

import backprop as bp
from backprop.app.config import config_from_dict
from backprop.app.experiment import prepare_dataset
from backprop.data import DataError
from backprop.data import datasets as ds
from backprop.data.preprocessing import BagOfWords, Standardizer

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"

# ---------------------------------------------------------------- generated datasets


def test_xor_and_spirals_unchanged():
    X, Y = ds.make_xor()
    assert X.shape == (4, 2) and Y.tolist() == [[0.0], [1.0], [1.0], [0.0]]
    X, Y = ds.make_spirals(10, seed=3)
    assert X.shape == (20, 2) and Y.shape == (20, 2) and Y.sum(axis=0).tolist() == [10.0, 10.0]


@pytest.mark.parametrize("n", [2, 7, 200])
def test_moons_shapes_and_labels(n):
    X, Y = ds.make_moons(n, seed=1)
    assert X.shape == (n, 2) and Y.shape == (n, 2)
    assert X.dtype == Y.dtype == np.float64
    assert set(np.unique(Y)) <= {0.0, 1.0} and np.all(Y.sum(axis=1) == 1.0)
    assert Y[:, 0].sum() == (n + 1) // 2  # class 0 takes the extra point


def test_moons_seeded():
    a, b, c = ds.make_moons(50, seed=0), ds.make_moons(50, seed=0), ds.make_moons(50, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_moons_without_noise_lie_on_their_arcs():
    X, Y = ds.make_moons(40, noise=0.0)
    upper, lower = X[Y[:, 0] == 1], X[Y[:, 1] == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    assert (upper[:, 1] >= 0).all() and (lower[:, 1] <= 0.5).all()


def test_moons_are_separable_ish():
    """Leave-one-out 1-nearest-neighbour gets nearly everything right: the classes are two
    coherent arcs, not one cloud."""
    X, Y = ds.make_moons(200, noise=0.1, seed=0)
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) + np.diag(np.full(200, np.inf))
    labels = Y.argmax(1)
    assert (labels[d.argmin(1)] == labels).mean() >= 0.95


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"n_samples": 1}, "n_samples must be an integer >= 2, received 1"),
        ({"n_samples": 2.5}, "n_samples must be an integer >= 2"),
        ({"n_samples": True}, "n_samples must be an integer >= 2"),
        ({"noise": -0.1}, "noise must be a finite number >= 0, received -0.1"),
        ({"noise": float("nan")}, "noise must be a finite number >= 0"),
    ],
)
def test_moons_argument_errors(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        ds.make_moons(**kwargs)


# ---------------------------------------------------------------- scikit-learn's bundled sets


def test_breast_cancer_is_flipped_to_malignant_1():
    sk = pytest.importorskip("sklearn.datasets")
    X, Y = ds.load_breast_cancer()
    bunch = sk.load_breast_cancer()
    assert X.shape == (569, 30) and Y.shape == (569, 1)
    assert X.dtype == Y.dtype == np.float64
    np.testing.assert_array_equal(X, bunch.data)  # raw, not scaled
    np.testing.assert_array_equal(Y[:, 0], 1.0 - bunch.target)
    assert list(bunch.target_names) == ["malignant", "benign"] and Y.sum() == 212


def test_diabetes_and_digits():
    pytest.importorskip("sklearn")
    X, Y = ds.load_diabetes()
    assert X.shape == (442, 10) and Y.shape == (442, 1) and Y.dtype == np.float64
    assert 25.0 <= Y.min() and Y.max() <= 346.0
    X, Y = ds.load_digits()
    assert X.shape == (1797, 64) and Y.shape == (1797, 10) and 0.0 <= X.min() <= X.max() <= 1.0


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "diabetes"])
def test_sklearn_loaders_explain_the_missing_extra(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    with pytest.raises(
        DataError, match=rf"the {name} dataset ships with scikit-learn.*\[sklearn\]"
    ):
        ds.load_dataset(name)


# ---------------------------------------------------------------- text: BagOfWords and intents


def test_bag_of_words_on_known_sentences():
    assert BagOfWords.tokenize("What's the WEATHER, 'Tom'? 42!") == [
        "what's",
        "the",
        "weather",
        "tom",
        "42",
    ]
    bow = BagOfWords().fit(["b a", "c a, a"])
    assert bow.vocabulary == ["a", "b", "c"]
    out = bow.transform(["a a unknown", "C b", ""])
    assert out.dtype == np.float64
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert bow.transform(s for s in ["c"]).tolist() == [[0.0, 0.0, 1.0]]  # any iterable
    again = BagOfWords.from_dict(json.loads(json.dumps(bow.to_dict())))
    np.testing.assert_array_equal(again.transform(["c a"]), bow.transform(["c a"]))


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: BagOfWords().transform(["a"]), "before fit; call fit"),
        (lambda: BagOfWords().fit("hello there"), r"wrap a single sentence in a list"),
        (lambda: BagOfWords().fit(["?!", ""]), "found no words"),
        (lambda: BagOfWords().fit(["ok", 3]), "list of sentences"),
        (lambda: BagOfWords.from_dict({"vocab": ["a"]}), "non-empty 'vocabulary' list"),
        (lambda: BagOfWords(["a", "a"]), "distinct non-empty strings"),
    ],
)
def test_bag_of_words_errors(call, fragment):
    with pytest.raises(DataError, match=fragment):
        call()


def test_intents_corpus_and_vectors():
    sentences, labels, names = ds.intents_corpus()
    assert len(names) == 8 and names[0] == "greeting" and "set_alarm" in names
    assert len(sentences) == labels.shape[0] == 160 and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [20] * 8
    assert len(set(sentences)) == len(sentences)  # no duplicate sentences
    vec = ds.intent_vectorizer()
    assert vec.vocabulary == sorted(vec.vocabulary) == ds.intent_vectorizer().vocabulary
    X, Y = ds.load_intents()
    assert X.shape == (160, len(vec.vocabulary)) and Y.shape == (160, 8)
    assert set(np.unique(X)) == {0.0, 1.0} and (X.sum(axis=1) > 0).all()
    np.testing.assert_array_equal(Y.argmax(1), labels)


def test_intents_learnable_by_a_small_sigmoid_network():
    X, Y = ds.load_intents()
    x_train, y_train, x_test, y_test = ds.train_test_split(X, Y, 0.25, seed=0)
    model = bp.MLP([X.shape[1], 32, 8], hidden="sigmoid", output="softmax", loss="cross_entropy")
    opt = bp.optimizers.Adam(lr=0.01)
    result = bp.fit(
        model,
        x_train,
        y_train,
        optimizer=opt,
        epochs=100,
        batch_size=16,
        dtype="float64",
        verbose=0,
    )
    predicted = np.asarray(model.predict(result.params, x_test)).argmax(1)
    assert (predicted == y_test.argmax(1)).mean() >= 0.85


# ---------------------------------------------------------------- text: token ids


def test_token_ids_on_known_sentences():
    bow = BagOfWords(["a", "b", "c"])
    ids = bow.token_ids(["c a c", "B, x!", "", "x y"])
    assert ids.dtype == np.int64 and BagOfWords.PAD == -1
    assert ids.tolist() == [[2, 0, 2], [1, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    assert bow.token_ids(["a b c a"], length=2).tolist() == [[0, 1]]  # truncated
    assert bow.token_ids(["b"], length=3).tolist() == [[1, -1, -1]]
    assert bow.token_ids(["x"]).shape == (1, 1)  # at least one column
    # the module-level helper: a BagOfWords, a word list, or fitted on the sentences themselves
    np.testing.assert_array_equal(ds.token_ids(["c a"], bow), [[2, 0]])
    np.testing.assert_array_equal(ds.token_ids(["c a"], ["c", "a"], length=3), [[0, 1, -1]])
    np.testing.assert_array_equal(ds.token_ids(["b a", "a"]), [[1, 0], [0, -1]])
    np.testing.assert_array_equal(ds.token_ids(s for s in ["b a", "a"]), [[1, 0], [0, -1]])


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: BagOfWords().token_ids(["a"]), "token_ids was called before fit"),
        (lambda: BagOfWords(["a"]).token_ids("a b"), "wrap a single sentence in a list"),
        (lambda: BagOfWords(["a"]).token_ids(["a"], length=0), "length must be an int >= 1"),
        (lambda: BagOfWords(["a"]).token_ids(["a"], length=2.0), "received 2.0"),
    ],
)
def test_token_ids_errors(call, fragment):
    with pytest.raises(DataError, match=fragment):
        call()


def test_intent_tokens_are_the_corpus_words_in_order():
    sentences, labels, _ = ds.intents_corpus()
    vocabulary = ds.intent_vectorizer().vocabulary
    X, Y = ds.load_dataset("intents_tokens")
    longest = max(len(BagOfWords.tokenize(s)) for s in sentences)
    assert X.shape == (160, longest) and X.dtype == np.int64
    assert Y.shape == (160, 8) and Y.dtype == np.float64
    np.testing.assert_array_equal(Y.argmax(1), labels)
    assert X.min() == -1 and X.max() < len(vocabulary)
    for row, sentence in zip(X, sentences, strict=True):
        words = BagOfWords.tokenize(sentence)  # every corpus word is in the vocabulary
        assert [vocabulary[i] for i in row[: len(words)]] == words
        assert (row[len(words) :] == -1).all()  # padding only at the end
    assert (X[:, 0] >= 0).all()  # no empty sentence
    assert (X == -1).any(axis=1).sum() > 100  # most rows are padded


def test_intent_tokens_match_the_bag_of_words_rows_and_split():
    """Same rows, same order, same vocabulary as "intents": a split with one seed holds out the
    same sentences, and each row's ids are exactly its bag-of-words columns."""
    X_bow, Y_bow = ds.load_intents()
    X_ids, Y_ids = ds.load_intent_tokens()
    np.testing.assert_array_equal(Y_ids, Y_bow)
    rebuilt = np.zeros_like(X_bow)
    for n, row in enumerate(X_ids):
        rebuilt[n, row[row >= 0]] = 1.0
    np.testing.assert_array_equal(rebuilt, X_bow)
    a = ds.train_test_split(X_bow, Y_bow, 0.25, seed=0)
    b = ds.train_test_split(X_ids, Y_ids, 0.25, seed=0)
    np.testing.assert_array_equal(b[3], a[3])
    rebuilt_test = np.zeros_like(a[2])
    for n, row in enumerate(b[2]):
        rebuilt_test[n, row[row >= 0]] = 1.0
    np.testing.assert_array_equal(rebuilt_test, a[2])


def test_prepare_dataset_never_standardizes_token_ids():
    cfg = config_from_dict({"data": {"name": "intents_tokens", "standardize": True}})
    data = prepare_dataset(cfg)
    X, Y = ds.load_intent_tokens()
    x_train, _, x_test, y_test = ds.train_test_split(X, Y, 0.25, seed=cfg.training.seed)
    assert data.x_train.dtype == data.x_test.dtype == np.int64
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert "features" not in data.preprocessing
    assert data.n_in == X.shape[1] and type(data.n_in) is int and data.n_out == 8
    bow = prepare_dataset(config_from_dict({"data": {"name": "intents"}}))
    np.testing.assert_array_equal(data.y_test, bow.y_test)  # the same held-out sentences


def test_intents_embedding_config_fits_the_vocabulary():
    """The shipped EmbeddingBag config's table has one row per vocabulary word: a corpus edit
    that grows the vocabulary must update it."""
    raw = tomllib.loads((CONFIGS / "intents_embedding.toml").read_text(encoding="utf-8"))
    assert raw["data"]["name"] == "intents_tokens"
    first = raw["model"]["layers"][0]
    assert first["type"] == "embedding_bag"
    assert first["vocab_size"] == len(ds.intent_vectorizer().vocabulary)


# ---------------------------------------------------------------- waveforms


def test_waveforms_shapes_labels_and_balance():
    X, Y = ds.load_dataset("waveforms")
    assert X.shape == (1200, 64, 1) and Y.shape == (1200, 4)
    assert X.dtype == Y.dtype == np.float64 and np.isfinite(X).all()
    assert set(np.unique(Y)) == {0.0, 1.0} and (Y.sum(axis=1) == 1.0).all()
    assert Y.sum(axis=0).tolist() == [300.0] * 4
    assert ds.WAVEFORMS == ("sine", "square", "triangle", "sawtooth")
    assert abs(X.mean()) < 0.05 and 0.5 < X.std() < 1.2  # centred, about unit scale
    X, Y = ds.make_waveforms(n_samples=7, length=16, seed=3)
    assert X.shape == (7, 16, 1) and Y.shape == (7, 4)
    assert sorted(Y.sum(axis=0).tolist()) == [1.0, 2.0, 2.0, 2.0]  # within one row


def test_waveforms_seeded():
    a, b = ds.make_waveforms(50, seed=0), ds.make_waveforms(50, seed=0)
    c = ds.make_waveforms(50, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    np.testing.assert_array_equal(ds.load_dataset("waveforms", n_samples=50)[0], a[0])


def test_waveforms_without_noise_have_their_shapes():
    X, Y = ds.make_waveforms(400, noise=0.0, seed=2)
    x, labels = X[:, :, 0], Y.argmax(1)
    peak = np.abs(x).max(axis=1)
    assert (peak <= 1.5 + 1e-12).all() and (peak >= 0.4).all()
    square = x[labels == 1]  # only +a and -a
    np.testing.assert_allclose(np.abs(square), np.abs(square[:, :1]) * np.ones_like(square))
    for row in x[labels == 3]:  # sawtooth: one constant rise, then drops
        d = np.diff(row)
        np.testing.assert_allclose(d[d > 0], d[d > 0].max(), rtol=1e-9)
        assert 1 <= (d < 0).sum() <= 4
    for row in x[labels == 2]:  # triangle: one constant slope, up or down, except at kinks
        d = np.abs(np.diff(row))
        assert np.isclose(d, np.median(d), rtol=1e-9).mean() >= 0.75
    for row in x[labels == 0]:  # sine: the slope changes all the time
        d = np.abs(np.diff(row))
        assert np.isclose(d, np.median(d), rtol=1e-6).mean() < 0.2


def test_waveforms_noise_is_gaussian_with_the_given_std():
    clean, _ = ds.make_waveforms(300, noise=0.0, seed=5)
    noisy, _ = ds.make_waveforms(300, noise=0.4, seed=5)
    residual = noisy - clean  # same draws up to the noise, which is drawn last
    assert abs(residual.mean()) < 0.01 and residual.std() == pytest.approx(0.4, rel=0.02)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"n_samples": 0}, "n_samples must be an integer >= 1, received 0"),
        ({"n_samples": 10.0}, "n_samples must be an integer >= 1"),
        ({"length": 4}, "length must be an integer >= 8, received 4"),
        ({"length": True}, "length must be an integer >= 8"),
        ({"noise": -1.0}, "noise must be a finite number >= 0, received -1.0"),
        ({"noise": float("inf")}, "noise must be a finite number >= 0"),
    ],
)
def test_waveforms_argument_errors(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        ds.make_waveforms(**kwargs)


def test_prepare_dataset_on_signals():
    raw = {"name": "waveforms", "n_samples": 200, "length": 32}
    data = prepare_dataset(config_from_dict({"data": raw}))
    assert data.n_in == (32, 1) and data.n_out == 4 and not data.preprocessing
    assert data.x_train.shape == (150, 32, 1) and data.x_test.shape == (50, 32, 1)
    scaled = prepare_dataset(config_from_dict({"data": {**raw, "standardize": True}}))
    assert scaled.n_in == (32, 1) and scaled.x_train.shape == (150, 32, 1)
    np.testing.assert_allclose(scaled.x_train.mean(), 0.0, atol=1e-12)  # one channel
    np.testing.assert_allclose(scaled.x_train.std(), 1.0, rtol=1e-12)
    features = scaled.preprocessing["features"]
    assert len(features["mean"]) == len(features["scale"]) == 1
    np.testing.assert_allclose(
        scaled.x_test, (data.x_test - features["mean"][0]) / features["scale"][0], rtol=1e-12
    )


# ---------------------------------------------------------------- user files: .npz


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 3)).astype(np.float32)
    np.savez(tmp_path / "ints.npz", X=X, y=np.arange(6, dtype=np.int32) % 3)
    x, y = ds.load_npz(tmp_path / "ints.npz")
    assert x.dtype == np.float64 and y.dtype == np.int64 and y.shape == (6,)
    np.testing.assert_array_equal(x, X.astype(np.float64))
    np.savez(tmp_path / "named.npz", inputs=X, targets=rng.normal(size=(6, 2)))
    x, y = ds.load_dataset("npz", path=str(tmp_path / "named.npz"), x="inputs", y="targets")
    assert x.shape == (6, 3) and y.shape == (6, 2) and y.dtype == np.float64


def _write_bad_npz(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    good = tmp_path / "good.npz"
    np.savez(good, X=np.ones((4, 2)), y=np.arange(4))
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:100])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("X,y\n1,2\n")
    elif kind == "objects":
        np.savez(path, X=np.array([[1, "a"]], dtype=object), y=np.arange(1))
    elif kind == "npy":
        np.save(tmp_path / "one.npy", np.ones((4, 2)))
        (tmp_path / "one.npy").rename(path)
    return path


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("truncated", "is not a readable .npz file"),
        ("empty", "is not a readable .npz file"),
        ("text", "is not a readable .npz file"),
        ("objects", "holding Python objects"),
        ("npy", "holds a single .npy array, expected an .npz archive"),
    ],
)
def test_npz_unreadable_files(tmp_path, kind, fragment):
    with pytest.raises(DataError, match=fragment):
        ds.load_npz(_write_bad_npz(tmp_path, kind))


X4 = np.ones((4, 2))


@pytest.mark.parametrize(
    "arrays, kwargs, fragments",
    [
        (
            {"X": X4, "y": np.arange(4)},
            {"y": "labels"},
            ["no array named 'labels'", "['X', 'y']", "data.y"],
        ),
        ({"X": X4, "y": np.arange(4)}, {"x": "inputs"}, ["no array named 'inputs'", "data.x"]),
        ({"X": np.ones(4), "y": np.arange(4)}, {}, ["array 'X' must be", "2-D", "shape (4,)"]),
        ({"X": np.array([["a", "b"]] * 4), "y": np.arange(4)}, {}, ["numeric", "dtype <U1"]),
        ({"X": X4, "y": np.ones((4, 1, 1))}, {}, ["array 'y' must be", "1-D (N,) or 2-D"]),
        ({"X": X4, "y": np.arange(3)}, {}, ["has 4 rows but", "has 3"]),
        (
            {"X": np.array([[0, 1], [np.nan, 1], [np.inf, np.nan], [0, 0]]), "y": np.arange(4)},
            {},
            ["holds 3 NaN or infinite value(s), the first in row 1"],
        ),
        ({"X": X4, "y": np.array([0, 1, np.inf, 0])}, {}, ["'y' holds 1 NaN", "row 2"]),
    ],
)
def test_npz_content_errors(tmp_path, arrays, kwargs, fragments):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as info:
        ds.load_npz(tmp_path / "d.npz", **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_files(tmp_path):
    for name in ("npz", "csv"):
        options = {"path": tmp_path / "nope"} | ({"target": "y"} if name == "csv" else {})
        with pytest.raises(DataError, match="'.*nope' does not exist.*data.path"):
            ds.load_dataset(name, **options)
    with pytest.raises(DataError, match="is a directory"):
        ds.load_npz(tmp_path)


# ---------------------------------------------------------------- user files: CSV


def _csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_round_trip(tmp_path):
    path = _csv(tmp_path, "a,b,label,note\n1,2.5,0,x\n\n3,-4e1,2,y\n5, 6 ,1,\n")
    X, y = ds.load_csv(path, "label", features=["a", "b"])
    assert X.tolist() == [[1.0, 2.5], [3.0, -40.0], [5.0, 6.0]] and X.dtype == np.float64
    assert y.tolist() == [0, 2, 1] and y.dtype == np.int64
    X, Y = ds.load_csv(path, ["a", "label"], features="b")
    assert X.shape == (3, 1) and Y.shape == (3, 2) and Y.dtype == np.float64


def test_csv_float_target_delimiter_and_bom(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("\ufeffx;y;t\n1;2;0.5\n3;4;1\n", encoding="utf-8")
    X, t = ds.load_dataset("csv", path=str(path), target="t", delimiter=";")
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert t.dtype == np.float64 and t.shape == (2,) and t.tolist() == [0.5, 1.0]


@pytest.mark.parametrize(
    "text, kwargs, fragments",
    [
        ("", {}, ["is empty", "header row"]),
        ("\n\n", {}, ["is empty"]),
        ("a,a,y\n1,2,3\n4,5,6\n", {}, ["duplicate or empty column names ['a']", "rename"]),
        (
            "a,b,y\n1,2,3\n4,5,6\n",
            {"target": "Y"},
            ["no column 'Y'", "did you mean 'y'?", "['a', 'b', 'y']"],
        ),
        ("a,b,y\n1,2,3\n4,5,6\n", {"features": ["a", "c"]}, ["no column 'c'", "data.features"]),
        ("a,b,y\n1,2,3\n4,x1,6\n", {}, ["line 3, column 'b' holds 'x1', which is not a number"]),
        ("a,b,y\n1,2,3\n4, ,6\n", {}, ["line 3, column 'b' is empty"]),
        ("a,b,y\n1,2,3\n4,5,nan\n", {}, ["line 3, column 'y' holds 'nan'", "finite"]),
        ("a,b,y\n1,-inf,3\n4,5,6\n", {}, ["line 2, column 'b' holds '-inf'"]),
        ("a,b,y\n1,2,3\n4,5\n", {}, ["line 3 has 2 cells, expected 3", "data.delimiter"]),
        ("a,b,y\n1,2,3\n", {}, ["has 1 data row(s), expected at least 2"]),
        ("a,b,y\n", {}, ["has 0 data row(s)"]),
        ("a,b,y\n1,2,3\n4,5,6\n", {"features": ["a", "y"]}, ["none in both", "target ['y']"]),
        ("a,b,y\n1,2,3\n4,5,6\n", {"target": 2}, ["must be strings, received 2"]),
        ("a,b,y\n1,2,3\n4,5,6\n", {"delimiter": ";;"}, ["one character", "';;'"]),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, fragments):
    options = {"target": "y"} | kwargs
    with pytest.raises(DataError) as info:
        ds.load_csv(_csv(tmp_path, text), **options)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,y\n1,\xe9\n2,3\n".encode("latin-1"))
    with pytest.raises(DataError, match="could not be read as UTF-8 CSV"):
        ds.load_csv(path, "y")


def test_csv_ignores_bad_cells_in_unused_columns(tmp_path):
    X, y = ds.load_csv(_csv(tmp_path, "id,a,y\nfirst,1,0\n,2,1\n"), "y", features=["a"])
    assert X.tolist() == [[1.0], [2.0]] and y.tolist() == [0, 1]


# ---------------------------------------------------------------- registry


def test_registry_names_and_tasks():
    assert set(ds.DATASETS) == {
        "xor", "spirals", "moons", "digits", "breast_cancer", "diabetes", "intents",
        "intents_tokens", "waveforms", "npz", "csv", "npy",
    }  # fmt: skip
    assert {d.task for d in ds.DATASETS.values()} == {"classification", "regression", "any"}
    assert ds.DATASETS["diabetes"].task == "regression"
    with pytest.raises(AttributeError):
        ds.DATASETS["xor"].name = "other"  # frozen


def test_dataset_parameters():
    moons = ds.dataset_parameters("moons")
    assert {k: p.default for k, p in moons.items()} == {"n_samples": 200, "noise": 0.1, "seed": 0}
    csv_params = ds.dataset_parameters("csv")
    assert csv_params["path"].default is inspect.Parameter.empty
    assert csv_params["target"].default is inspect.Parameter.empty
    assert csv_params["features"].default is None and csv_params["delimiter"].default == ","
    assert ds.dataset_parameters("xor") == {}


def test_load_dataset_passes_options():
    X, Y = ds.load_dataset("moons", n_samples=11, seed=4)
    np.testing.assert_array_equal(X, ds.make_moons(11, seed=4)[0])
    assert Y.shape == (11, 2)


@pytest.mark.parametrize(
    "name, options, fragments",
    [
        ("moon", {}, ["unknown dataset 'moon'", "did you mean 'moons'?", "'xor'", "data.name"]),
        ("moons", {"n": 5}, ["unknown option(s) ['n']", "['n_samples', 'noise', 'seed']"]),
        ("moons", {"nois": 0.2}, ["['nois']; did you mean 'noise'?"]),
        (["xor"], {}, ["unknown dataset ['xor']"]),
        ("xor", {"seed": 1}, ["unknown option(s) ['seed']", "accepts none"]),
        (
            "csv",
            {"path": "a.csv"},
            ["missing option(s) ['target']", "required: ['path', 'target']"],
        ),
        ("npz", {}, ["missing option(s) ['path']"]),
    ],
)
def test_load_dataset_errors(name, options, fragments):
    with pytest.raises(DataError) as info:
        ds.load_dataset(name, **options)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_train_test_split_unchanged():
    X, Y = np.arange(20.0).reshape(10, 2), np.arange(10)
    x_train, y_train, x_test, y_test = ds.train_test_split(X, Y, 0.3, seed=0)
    assert x_train.shape == (7, 2) and x_test.shape == (3, 2)
    assert sorted([*y_train, *y_test]) == list(range(10))
    np.testing.assert_array_equal(x_test[:, 0] / 2, y_test)


# ---------------------------------------------------------------- Standardizer


def test_standardizer_round_trip_and_constant_column():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(3.0, 2.0, 50), np.full(50, 7.0), rng.integers(0, 5, 50)])
    s = Standardizer().fit(X)
    Z = s.transform(X)
    assert Z.dtype == np.float64 and np.isfinite(Z).all()
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), [1.0, 0.0, 1.0], atol=1e-12)
    assert s.scale[1] == 1.0
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    again = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(again.transform(X[:5]), Z[:5])


def test_standardizer_scales_sequences_per_channel():
    rng = np.random.default_rng(1)
    X = rng.normal([1.0, -3.0, 0.0], [2.0, 0.5, 0.0], size=(20, 7, 3))  # channel 2 constant
    s = Standardizer().fit(X)
    np.testing.assert_allclose(s.mean, X.reshape(-1, 3).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.scale[:2], X.reshape(-1, 3)[:, :2].std(axis=0), rtol=1e-12)
    assert s.scale[2] == 1.0
    Z = s.transform(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(Z.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.reshape(-1, 3).std(axis=0), [1.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    again = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(again.transform(X[:2]), Z[:2])
    with pytest.raises(DataError, match="received 2 columns, but it was fitted on 3"):
        s.transform(np.ones((4, 7, 2)))
    with pytest.raises(DataError, match=r"\(first in row 3\)"):
        Standardizer().fit(np.where(np.arange(20)[:, None, None] == 3, np.nan, X))


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: Standardizer().transform(np.ones((2, 2))), "before fit"),
        (lambda: Standardizer().fit(np.ones((4, 3))).transform(np.ones((2, 2))), "received 2 col"),
        (lambda: Standardizer().fit(np.ones(4)), r"2-D array \(N, features\).*shape \(4,\)"),
        (lambda: Standardizer().fit([[1.0], [np.nan]]), r"infinite values \(first in row 1\)"),
        (lambda: Standardizer.from_dict({"mean": [0.0]}), "'mean' and 'scale'"),
        (lambda: Standardizer.from_dict({"mean": [0.0], "scale": [0.0]}), "every scale > 0"),
    ],
)  # fmt: skip
def test_standardizer_errors(call, fragment):
    with pytest.raises(DataError, match=fragment):
        call()
