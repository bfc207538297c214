"""Issue 15's data messages: the gradient check at ReLU kinks, class labels inferred from their
values, the delimiter hint, dataset options, SciPy sparse and pandas inputs, bad arrays through
`fit`, and the README's held-out row counts."""

from __future__ import annotations

import pathlib
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop as bp
from backprop.app import cli
from backprop.app.config import config_from_dict
from backprop.app.experiment import prepare_dataset
from backprop.data import datasets as ds
from backprop.data.checks import DataError
from backprop.data.labels import decode_labels, encode_labels, encode_targets
from backprop.nn import activations

ROOT = pathlib.Path(__file__).parent.parent
XOR = ROOT / "configs" / "xor.toml"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def prepared_with(data: dict, output: str, loss: str):
    model = {"hidden_sizes": [3], "hidden": "tanh", "output": output, "loss": loss}
    return prepare_dataset(config_from_dict({"data": data, "model": model}))


# -- gradcheck at kinks ----------------------------------------------------------------------------
def test_cli_gradcheck_of_a_relu_xor_is_ok_and_counts_the_rows(capsys):
    """All-zero input row + zero biases sat exactly on the ReLU kink: a false FAILED before.
    (Every backend: `test_gradcheck_leaves_out_elements_at_a_kink`.)"""
    code, out, err = run_cli(capsys, "gradcheck", XOR, "--set", "model.hidden=relu")
    assert code == 0, out + err
    assert ": ok" in out
    assert "4 rows of xor" in out  # min(--rows 8, the 4 rows there are)


def test_cli_gradcheck_of_a_relu_xor_still_catches_a_wrong_relu_derivative(capsys, monkeypatch):
    relu = activations.get_activation("relu")
    right = type(relu).derivative
    monkeypatch.setattr(
        type(relu), "derivative", lambda self, xp, z, a: 1.1 * right(self, xp, z, a)
    )
    code, out, _ = run_cli(capsys, "gradcheck", XOR, "--set", "model.hidden=relu")
    assert code == 1 and "FAILED" in out


def _relu_xor(backend):
    model = bp.MLP([2, 2, 1], hidden="relu", output="sigmoid", loss="mse")
    params = model.init(seed=0, backend=backend, dtype="float64")  # zero biases: on the kink
    X, Y = ds.make_xor()
    return model, params, backend.asarray(X, "float64"), backend.asarray(Y, "float64")


def test_gradcheck_leaves_out_elements_at_a_kink(backend):
    model, params, X, Y = _relu_xor(backend)
    result = bp.gradcheck(model.loss_and_grad, params, X, Y, loss=backend.compile(model.loss))
    assert result.ok, str(result)
    assert result.kinks == {"[0].b": 2}  # the row (0, 0) puts both hidden units on the corner
    assert "within h of a kink" in str(result)


@pytest.mark.parametrize("offset", [False, True], ids=["zero biases, on the kink", "offset"])
@pytest.mark.parametrize(
    "planted",
    [
        pytest.param(lambda g: g * 1.01, id="bias gradient off by 1%"),
        pytest.param(lambda g: g + 1e-4, id="bias gradient off by 1e-4"),
    ],
)
def test_gradcheck_at_a_kink_still_fails_a_wrong_gradient(backend, planted, offset):
    """A wrong derivative matches neither one-sided derivative, so it is not taken for a kink."""
    model, params, X, Y = _relu_xor(backend)
    if offset:
        params = bp.nn.gradcheck.offset_biases(params, seed=3)

    def wrong(p, x, y):
        value, grads = model.loss_and_grad(p, x, y)
        grads[0]["b"] = planted(grads[0]["b"])
        return value, grads

    result = bp.gradcheck(wrong, params, X, Y, loss=backend.compile(model.loss))
    assert not result.ok and result.errors["[0].b"] > 1e-3, str(result)


def test_offset_biases_is_seeded_and_moves_only_biases(backend):
    _, params, _, _ = _relu_xor(backend)
    a = bp.nn.gradcheck.offset_biases(params, seed=1)
    b = bp.nn.gradcheck.offset_biases(params, seed=1)
    for p, q, r in zip(params, a, b, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(q["W"]), backend.to_numpy(p["W"]))
        np.testing.assert_array_equal(backend.to_numpy(q["b"]), backend.to_numpy(r["b"]))
        assert np.all(backend.to_numpy(q["b"]) != 0.0)


# -- class labels ------------------------------------------------------------------------------
def _csv_config(tmp_path, labels: list[str], output="softmax", loss="cross_entropy", **data):
    rows = "".join(f"{i % 2},{i // 2 % 2},{y}\n" for i, y in enumerate(labels))
    path = write(tmp_path, "d.csv", "a,b,y\n" + rows)
    return prepared_with({"name": "csv", "path": str(path), "target": "y"} | data, output, loss)


def test_float_labels_from_a_csv_build_a_two_unit_softmax(tmp_path):
    data = _csv_config(tmp_path, ["0.0", "1.0", "1.0", "0.0"])
    assert data.n_out == 2 and "classes" not in data.preprocessing
    assert data.y_train.dtype == np.int64


def test_labels_not_0_to_k_are_encoded_and_the_classes_stored(tmp_path):
    data = _csv_config(tmp_path, ["0", "1000", "1000", "0", "1000"], test_fraction=0.0)
    assert data.n_out == 2  # not a 1001-unit softmax
    assert data.preprocessing["classes"] == [0, 1000]
    assert data.y_train.tolist() == [0, 1, 1, 0, 1]


def test_text_labels_in_a_csv_are_classes(tmp_path):
    data = _csv_config(tmp_path, ["cat", "dog", " dog", "bird", "cat", "dog"], test_fraction=0.0)
    assert data.n_out == 3 and data.preprocessing["classes"] == ["bird", "cat", "dog"]
    assert data.y_train.tolist() == [1, 2, 2, 0, 1, 2]


def test_two_text_labels_with_a_sigmoid_become_a_0_1_column(tmp_path):
    data = _csv_config(
        tmp_path, ["no", "yes", "yes", "no"], "sigmoid", "binary_cross_entropy", test_fraction=0
    )
    assert data.n_out == 1 and data.preprocessing["classes"] == ["no", "yes"]
    assert data.y_train[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_xor_with_a_softmax_gets_two_units(capsys, tmp_path):
    data = prepared_with({"name": "xor", "test_fraction": 0.0}, "softmax", "cross_entropy")
    assert data.n_out == 2 and data.y_train.tolist() == [0, 1, 1, 0]
    code, out, err = run_cli(
        capsys, "train", XOR, "--set", "model.output=softmax", "--set", "model.loss=cross_entropy",
        "--set", "training.epochs=2", "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    assert "2 outputs" in out


def test_one_class_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"single class \(1, all 4 rows\).*one unit.*sigmoid"):
        _csv_config(tmp_path, ["1", "1", "1", "1"])


def test_a_one_unit_softmax_in_fit_is_refused():
    model = bp.MLP([2, 3, 1], hidden="tanh", output="softmax", loss="cross_entropy")
    X, Y = ds.make_xor()
    with pytest.raises(DataError, match="softmax output has 1 unit.*output='sigmoid'"):
        bp.fit(model, X, Y, epochs=1, verbose=0)


def test_fit_takes_class_indices_below_the_units_only():
    model = bp.MLP([2, 3, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    with pytest.raises(DataError, match=r"outside the allowed range \[0, 2\).*1000"):
        bp.fit(model, ds.make_xor()[0], np.array([0, 1000, 1000, 0]), epochs=1, verbose=0)


def test_text_targets_with_a_regression_output_are_refused(tmp_path):
    with pytest.raises(DataError, match="targets are text.*'cat'.*softmax"):
        _csv_config(tmp_path, ["cat", "dog", "dog", "cat"], "identity", "mse")


def test_non_integral_labels_for_a_softmax_are_refused():
    with pytest.raises(DataError, match=r"non-integer values such as 0\.5 \(row 1\).*identity"):
        encode_targets(np.array([0.0, 0.5, 1.0]), "softmax", "cross_entropy")


def test_encode_and_decode_labels_of_new_rows():
    classes = ["bird", "cat", "dog"]
    index = encode_labels(np.array(["dog", "bird"]), classes, "softmax")
    assert index.tolist() == [2, 0] and decode_labels(index, classes).tolist() == ["dog", "bird"]
    assert encode_labels(np.array([1000.0, 0.0]), [0, 1000], "softmax").tolist() == [1, 0]
    assert encode_labels(np.array([1.0, 0.0]), None, "softmax").dtype == np.int64
    with pytest.raises(DataError, match="not trained on: 'fish'"):
        encode_labels(np.array(["fish"]), classes, "softmax")


def test_text_in_a_feature_column_names_the_column_and_how_to_leave_it_out(tmp_path):
    path = write(tmp_path, "f.csv", "a,color,b,y\n0,red,0,0\n0,blue,1,1\n1,red,1,0\n")
    with pytest.raises(
        DataError, match=r"column 'color' holds 'red'.*data.features = \[\"a\", \"b\"\]"
    ):
        ds.load_csv(path, target="y")


def test_a_target_column_mixing_numbers_and_text_is_refused(tmp_path):
    path = write(tmp_path, "m.csv", "a,b,y\n0,0,cat\n0,1,n/a\n1,1,3\n")
    with pytest.raises(DataError, match="mixes numbers .line 4: '3'. and text"):
        ds.load_csv(path, target="y")


# -- the delimiter ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sep", "shown"), [(";", 'data.delimiter = ";"'), ("\t", 'data.delimiter = "\\t"')]
)
def test_a_file_separated_otherwise_suggests_data_delimiter(tmp_path, sep, shown):
    path = write(tmp_path, "s.csv", sep.join("aby") + "\n" + "0;1;0\n1;0;1\n".replace(";", sep))
    with pytest.raises(DataError) as info:
        ds.load_csv(path, target="y")
    assert shown in str(info.value) and "--set" in str(info.value)
    X, y = ds.load_csv(path, target="y", delimiter=sep)
    assert X.shape == (2, 2) and y.tolist() == [0, 1]


# -- dataset options ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        ("spirals", {"n_per_class": -5}, "n_per_class must be an integer >= 1, received -5"),
        ("spirals", {"seed": -1}, "seed must be an integer >= 0, received -1"),
        ("spirals", {"turns": 0}, r"turns must be a finite number > 0, received 0 \(allowed"),
        ("spirals", {"noise": 1e308}, r"noise must be .*received 1e\+308 \(allowed: \[0, 100\]"),
        ("moons", {"seed": -3}, "seed must be an integer >= 0"),
        ("waveforms", {"n_samples": 10**6, "length": 10**4}, "n_samples \\* length"),
        ("npz", {"path": 3}, "path must be a path to a file"),
        ("npz", {"path": "a\0b"}, "path must be a path to a file"),
        ("csv", {"path": "x.csv", "target": "y", "delimiter": "\n"}, "data.delimiter must be"),
    ],
)
def test_bad_dataset_options_name_the_option_value_and_range(name, options, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        ds.load_dataset(name, **options)
    assert "data." in str(info.value)


def test_a_split_that_leaves_no_training_rows_names_test_fraction_and_counts():
    with pytest.raises(DataError, match=r"test_fraction = 0.9 holds out 4 of the 4 row.*0 for"):
        prepared_with({"name": "xor", "test_fraction": 0.9}, "sigmoid", "mse")


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), -1),
    st.integers(0, 40),
    st.integers(10**7, 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-3, 3),
    st.text(max_size=4),
    st.lists(st.text(max_size=3), max_size=3),
    st.sampled_from(["y", "a", "X", ";"]),
)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("options")
    (folder / "d.csv").write_text("a,b,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    np.savez(folder / "d.npz", X=np.eye(4, 2), y=np.arange(4))
    np.save(folder / "d.npy", np.eye(4, 2))
    return [str(folder / "d.csv"), str(folder / "d.npz"), str(folder / "d.npy"), str(folder)]


@pytest.mark.parametrize("name", [n for n in ds.DATASETS if ds.dataset_parameters(n)])
@FUZZ
@given(data=st.data())
def test_random_dataset_options_load_or_raise_a_data_error(name, data, data_files):
    """Every option of every dataset with options: success or one DataError, nothing else."""
    values = st.one_of(_VALUES, st.sampled_from(data_files))
    keys = data.draw(st.lists(st.sampled_from(list(ds.dataset_parameters(name))), unique=True))
    options = {k: data.draw(values, label=k) for k in keys}
    try:
        ds.load_dataset(name, **options)
    except DataError as exc:
        assert str(exc)


# -- SciPy sparse and pandas -------------------------------------------------------------------
def _classifier():
    return bp.MLP([2, 3, 2], hidden="tanh", output="softmax", loss="cross_entropy")


def test_a_scipy_sparse_matrix_asks_for_toarray():
    sparse = pytest.importorskip("scipy.sparse", reason="scipy is not installed")
    X = sparse.csr_matrix(np.eye(4, 2))
    with pytest.raises(DataError, match=r"SciPy sparse matrix \(csr_matrix.*X.toarray\(\)"):
        bp.fit(_classifier(), X, np.array([0, 1, 0, 1]), epochs=1, verbose=0)


def test_pandas_missing_values_are_called_missing_with_their_column():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    X = pd.DataFrame({"a": pd.array([1, None, 3, 4], dtype="Int64"), "b": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match=r"1 missing value.*\['a'\], first in row 1"):
        bp.fit(_classifier(), X, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    flags = pd.Series(pd.array([True, None, False, True], dtype="boolean"), name="flag")
    with pytest.raises(DataError, match=r"missing value.*\['flag'\]"):
        bp.check_training_data(np.ones((4, 2)), flags)
    whole = X.fillna(0)  # nullable Int64 without NA: numbers, trains
    bp.fit(_classifier(), whole, np.array([0, 1, 0, 1]), epochs=1, verbose=0)


# -- bad arrays through fit --------------------------------------------------------------------
def _bad_array(draw, n: int, width: int):
    kinds = "ok nan inf huge shape object empty ragged list int bool text 3d scalar none sparse"
    kind = draw(st.sampled_from(kinds.split()))
    a = np.random.default_rng(draw(st.integers(0, 9))).normal(size=(n, width))
    if kind in ("nan", "inf"):
        a[draw(st.integers(0, n - 1)), 0] = np.nan if kind == "nan" else -np.inf
    made = {
        "huge": lambda: a * draw(st.sampled_from([1e39, 1e300])),
        "shape": lambda: np.ones((draw(st.integers(0, 7)), draw(st.integers(0, 4)))),
        "object": lambda: np.array([object()] * n, dtype=object),
        "empty": lambda: np.zeros((0, width)),
        "ragged": lambda: [[1.0, 2.0], [1.0]],
        "list": lambda: a.tolist(),
        "int": lambda: (a * 3).astype(np.int64),
        "bool": lambda: a > 0,
        "text": lambda: np.full((n, width), "a"),
        "3d": lambda: a[:, :, None],
        "scalar": lambda: np.float64(3.0),
        "none": lambda: None,
        "sparse": lambda: _sparse(a),
    }
    return made[kind]() if kind in made else a


def _sparse(a):
    try:
        from scipy import sparse
    except ImportError:
        return a
    return sparse.csr_matrix(a)


@st.composite
def _fit_case(draw):
    n = 6
    output = draw(st.sampled_from(["softmax", "sigmoid", "identity"]))
    X = _bad_array(draw, n, 2)
    labels = {
        "labels": lambda: np.array([0, 1, 2, 0, 1, 2]),
        "out of range": lambda: np.array([0, 1, 1000, 2, 0, -1]),
        "floats": lambda: np.linspace(-1.0, 2.0, n),
        "nan labels": lambda: np.array([0, 1, np.nan, 2, 0, 1]),
        "short": lambda: np.array([0, 1, 2]),
        "one-hot": lambda: np.eye(3)[[0, 1, 2, 0, 1, 2]],
    }
    pick = draw(st.sampled_from([*labels, "array"]))
    Y = labels[pick]() if pick in labels else _bad_array(draw, n, 3)
    return output, X, Y, draw(st.sampled_from(["float32", "float64"]))


@FUZZ
@given(case=_fit_case())
def test_random_bad_arrays_through_fit_raise_one_clear_error(case):
    """Success, or a DataError/ValueError/TypeError with a message: never IndexError etc.
    Host checks run before any backend is touched, so numpy stands for every backend here."""
    output, X, Y, dtype = case
    loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}
    model = bp.MLP([2, 4, 1 if output == "sigmoid" else 3], output=output, loss=loss[output])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an overflow warning is not a message either
            bp.fit(model, X, Y, epochs=1, batch_size=4, verbose=0, dtype=dtype)
    except (ValueError, TypeError) as exc:  # DataError is a ValueError
        assert str(exc)


# -- the README's numbers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "rows", "shown"),
    [
        ("digits", 1797, "1797 images, {} held out"),
        ("breast_cancer", 569, "569 tumours, {} held out"),
        ("diabetes", 442, "442 patients, {} held out"),
    ],
)
def test_readme_and_configs_give_the_held_out_rows_the_split_makes(config, rows, shown):
    """The runs print round(test_fraction * N) test rows: the README's table must say the same."""
    readme = (ROOT / "README.md").read_text()
    text = (ROOT / "configs" / f"{config}.toml").read_text()
    fraction = float(re.search(r"^test_fraction = ([0-9.]+)", text, re.M).group(1))
    held = len(ds.train_test_split(np.zeros((rows, 1)), np.zeros((rows, 1)), fraction)[2])
    assert shown.format(held) in readme
    for claim in re.findall(r"(\d+) held-out", text):
        assert int(claim) == held


def test_huge_sample_weights_keep_their_ratios():
    """Weights near the float64 maximum overflowed the sum: every weight became 0 and the run
    trained on nothing, silently. Only the ratios matter, so they are kept."""
    from backprop.data.weights import compute_sample_weight

    y = np.zeros((40, 1))
    w = compute_sample_weight(y, sample_weight=[1e308] * 20 + [1e307] * 20)
    np.testing.assert_allclose(w, [20 / 11] * 20 + [2 / 11] * 20, rtol=1e-12)
    assert np.isfinite(w).all() and w.mean() == pytest.approx(1.0)
