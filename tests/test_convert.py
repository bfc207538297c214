"""CSV -> .npy (`backprop.data.convert`, ``backprop convert-csv``) and the ``npy`` config
dataset (`backprop.data.npyfiles`): the converter gives load_csv's numbers, in chunks, atomically;
a config trains on memory-mapped files with the numbers of the same data as .npz/.csv."""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.app import cli, experiment
from backprop.app.config import ConfigError, config_from_dict, load_config, tomllib
from backprop.data.checks import DataError
from backprop.data.convert import csv_to_npy
from backprop.data.files import load_csv
from backprop.data.npyfiles import MappedRows, fit_standardizer, load_npy
from backprop.data.preprocessing import Standardizer

EPS64 = float(np.finfo(np.float64).eps)


def write_csv(path: pathlib.Path, rows: list[list[object]], header: list[str] | None) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)


def table(n: int = 10, seed: int = 0, labels: str = "int") -> tuple[list[list[object]], list]:
    """n rows of 3 real features (as repr strings) and a target (int labels, reals or names)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-3, 4, (n, 3))
    k = rng.integers(0, 3, n)
    target = {"int": k.tolist(), "float": (k + 0.5).tolist(), "text": [f"c{v}" for v in k]}
    return [[*map(repr, x.tolist()), t] for x, t in zip(X, target[labels], strict=True)], [
        "a",
        "b",
        "c",
        "label",
    ]


def listing(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- the converter ------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", ["int", "float", "text"])
@pytest.mark.parametrize("chunk_rows", [3, 1000])
def test_the_files_hold_load_csvs_arrays_bit_for_bit(tmp_path, labels, chunk_rows):
    rows, header = table(labels=labels)
    write_csv(tmp_path / "d.csv", rows, header)
    X, Y = load_csv(tmp_path / "d.csv", "label")
    info = csv_to_npy(tmp_path / "d.csv", tmp_path / "f64", dtype="float64", chunk_rows=chunk_rows)
    x, y = np.load(info["features"]), np.load(info["targets"])
    assert x.dtype == np.float64 and x.tobytes() == X.tobytes()
    kind = {"int": "integer", "float": "float", "text": "text"}[labels]
    assert info["target_kind"] == kind and info["rows"] == 10 and info["columns"] == 3
    assert y.dtype == Y.dtype and np.array_equal(y, Y)
    info = csv_to_npy(tmp_path / "d.csv", tmp_path / "f32", chunk_rows=chunk_rows)
    x32, y32 = np.load(info["features"]), np.load(info["targets"])
    assert x32.dtype == np.float32 and x32.tobytes() == X.astype(np.float32).tobytes()
    want = Y.astype(np.float32) if labels == "float" else Y
    assert y32.dtype == want.dtype and np.array_equal(y32, want)


def test_chunk_size_does_not_change_the_files(tmp_path):
    rows, header = table(10)
    write_csv(tmp_path / "d.csv", rows, header)
    for chunk in (1, 3, 1000):
        csv_to_npy(tmp_path / "d.csv", tmp_path / str(chunk), chunk_rows=chunk)
    for name in ("x.npy", "y.npy"):
        first = (tmp_path / "1" / name).read_bytes()
        assert (
            first == (tmp_path / "3" / name).read_bytes() == (tmp_path / "1000" / name).read_bytes()
        )


CELL = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from([" 1.5 ", "+2", "-0.0", "1e-310", "1_000", "٣", "0.1e1", ".5", "5."]),
)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(cells=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=2, max_size=8))
def test_any_numbers_give_load_csvs_values(tmp_path_factory, cells):
    folder = tmp_path_factory.mktemp("cells")
    rows = [[*r, i % 2] for i, r in enumerate(cells)]
    write_csv(folder / "d.csv", rows, ["a", "b", "c", "y"])
    X, _ = load_csv(folder / "d.csv", "y")
    info = csv_to_npy(folder / "d.csv", folder, dtype="float64", chunk_rows=3)
    assert np.load(info["features"]).tobytes() == X.tobytes()


def test_a_file_without_a_header_row(tmp_path):
    rows, header = table(6, labels="text")
    write_csv(tmp_path / "h.csv", rows, header)
    write_csv(tmp_path / "n.csv", rows, None)
    with_header = csv_to_npy(tmp_path / "h.csv", tmp_path / "h")
    without = csv_to_npy(tmp_path / "n.csv", tmp_path / "n")
    assert with_header["header"] and not without["header"]
    assert without["feature_names"] == ["0", "1", "2"] and without["target"] == "3"
    for key in ("features", "targets"):
        assert np.array_equal(np.load(with_header[key]), np.load(without[key]))
    # the target chosen by number (negative: from the end), or by name
    rows, header = table(6, labels="int")
    write_csv(tmp_path / "h.csv", rows, header)
    write_csv(tmp_path / "n.csv", rows, None)
    by_number = csv_to_npy(tmp_path / "n.csv", tmp_path / "k", target="0", dtype="float64")
    assert by_number["feature_names"] == ["1", "2", "3"] and by_number["target_kind"] == "float"
    by_name = csv_to_npy(tmp_path / "h.csv", tmp_path / "b", target="a", dtype="float64")
    assert by_name["feature_names"] == ["b", "c", "label"]
    last = csv_to_npy(tmp_path / "h.csv", tmp_path / "l", target=-1)
    assert last["target"] == "label" and last["target_kind"] == "integer"
    for key in ("features", "targets"):
        assert np.array_equal(np.load(by_name[key]), np.load(by_number[key]))


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            lambda r: r[5].__setitem__(1, "oops"),
            ["line 7, column 'b' holds 'oops'", "not a number"],
        ),
        (lambda r: r[5].__setitem__(0, ""), ["line 7, column 'a' is empty"]),
        (lambda r: r[5].__setitem__(2, "nan"), ["line 7, column 'c' holds 'nan'", "finite"]),
        (lambda r: r[5].__setitem__(3, "inf"), ["line 7, column 'label' holds 'inf'", "finite"]),
        (lambda r: r[5].append("9"), ["line 7 has 5 cells, expected 4", "--delimiter"]),
        (lambda r: r[5].__setitem__(3, "cat"), ["mixes numbers", "line 7: 'cat'"]),
    ],
    ids=["text", "empty", "nan", "inf-target", "cells", "mixed-target"],
)
def test_a_bad_row_is_named_and_leaves_no_output(tmp_path, edit, fragments):
    rows, header = table(10)
    edit(rows)  # data row 5 is line 7 (after the header)
    write_csv(tmp_path / "d.csv", rows, header)
    out = tmp_path / "out"
    with pytest.raises(DataError) as info:
        csv_to_npy(tmp_path / "d.csv", out, chunk_rows=3)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert "d.csv" in str(info.value)
    assert listing(out) == []  # no x.npy, y.npy, nor a temporary file


def test_existing_files_are_kept_unless_overwrite(tmp_path):
    rows, header = table(4)
    write_csv(tmp_path / "d.csv", rows, header)
    csv_to_npy(tmp_path / "d.csv", tmp_path)
    before = (tmp_path / "x.npy").read_bytes()
    write_csv(tmp_path / "d.csv", table(5, seed=1)[0], header)
    with pytest.raises(FileExistsError, match=r"x\.npy.*already exist.*--overwrite"):
        csv_to_npy(tmp_path / "d.csv", tmp_path)
    assert (tmp_path / "x.npy").read_bytes() == before
    assert csv_to_npy(tmp_path / "d.csv", tmp_path, overwrite=True)["rows"] == 5
    assert listing(tmp_path) == ["d.csv", "x.npy", "y.npy"]


@pytest.mark.parametrize("change", ["1,2,3,4\n", "1,2\n"], ids=["a-row-more", "a-short-row"])
def test_a_file_that_changes_between_the_readings(tmp_path, monkeypatch, change):
    from backprop.data import convert

    write_csv(tmp_path / "d.csv", *table(10))
    scan = convert._Layout.scan

    def scan_then_append(*args):
        layout = scan(*args)
        with open(tmp_path / "d.csv", "a") as f:
            f.write(change)
        return layout

    monkeypatch.setattr(convert._Layout, "scan", staticmethod(scan_then_append))
    with pytest.raises(DataError, match="changed while being converted"):
        csv_to_npy(tmp_path / "d.csv", tmp_path, chunk_rows=4)
    assert listing(tmp_path) == ["d.csv"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"chunk_rows": 0}, "chunk_rows must be an integer >= 1"),
        ({"dtype": "float16"}, "dtype must be one of ['float32', 'float64']"),
        ({"target": "lable"}, "has no column 'lable'; did you mean 'label'?"),
        ({"target": 9}, "a column number from 0 to 3"),
        ({"targets_name": "x.npy"}, "two different plain file names"),
    ],
)
def test_bad_options(tmp_path, options, fragment):
    write_csv(tmp_path / "d.csv", *table(4))
    with pytest.raises(DataError) as info:
        csv_to_npy(tmp_path / "d.csv", tmp_path / "out", **options)
    assert fragment in str(info.value)
    assert listing(tmp_path / "out") == []


def test_the_command_converts_and_prints_the_config_table(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", *table(10))
    out = tmp_path / "out"
    code = cli.main(["convert-csv", str(tmp_path / "d.csv"), str(out), "--chunk-rows", "3"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote 10 rows x 3 features (float32) to {out / 'x.npy'}" in printed
    table_text = printed[printed.index("[data]") :]
    assert tomllib.loads(table_text)["data"] == {
        "name": "npy",
        "features": str(out / "x.npy"),
        "targets": str(out / "y.npy"),
    }
    again = cli.main(["convert-csv", str(tmp_path / "d.csv"), str(out)])
    assert again == 2 and "--overwrite" in capsys.readouterr().err
    argv = ["convert-csv", str(tmp_path / "d.csv"), str(out), "--overwrite", "--dtype", "float64"]
    code = cli.main(argv)
    assert code == 0 and np.load(out / "x.npy").dtype == np.float64
    code = cli.main(["convert-csv", str(tmp_path / "missing.csv"), str(out)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_an_io_failure_exits_1_and_leaves_no_output(tmp_path, capsys, monkeypatch):
    from backprop.data import convert

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    write_csv(tmp_path / "d.csv", *table(4))
    monkeypatch.setattr(convert.os, "replace", full_disk)
    code = cli.main(["convert-csv", str(tmp_path / "d.csv"), str(tmp_path / "out")])
    assert code == 1 and "No space left on device" in capsys.readouterr().err
    assert listing(tmp_path / "out") == []


# -- the npy dataset -----------------------------------------------------------------------------
MODEL = {"hidden_sizes": [5], "hidden": "tanh", "output": "softmax", "loss": "cross_entropy"}


@pytest.fixture
def project(tmp_path):
    """The same 40 rows as x.npy/y.npy, d.npz and d.csv (float64, integer labels)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 2] > -1.0)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    rows = [[*map(repr, r), t] for r, t in zip(X.tolist(), y.tolist(), strict=True)]
    write_csv(tmp_path / "d.csv", rows, ["a", "b", "c", "label"])
    return tmp_path


DATA = {
    "npy": {"name": "npy", "features": "x.npy", "targets": "y.npy"},
    "npz": {"name": "npz", "path": "d.npz"},
    "csv": {"name": "csv", "path": "d.csv", "target": "label"},
}


def write_config(folder: pathlib.Path, data: dict, **extra) -> pathlib.Path:
    lines = ["[data]", *(f"{k} = {json.dumps(v)}" for k, v in {**data, **extra}.items())]
    lines += ["[model]", *(f"{k} = {json.dumps(v)}" for k, v in MODEL.items())]
    lines += ["[training]", "epochs = 2", "batch_size = 8"]
    path = folder / f"{data['name']}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_npy_paths_are_relative_to_the_config_file(project, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    cfg = load_config(write_config(project, DATA["npy"]))
    assert cfg.data.options["features"] == str(project / "x.npy")
    assert cfg.data.options["targets"] == str(project / "y.npy")


@pytest.mark.parametrize(
    "extra",
    [{"test_fraction": 0.0}, {"test_fraction": 0.25}, {"test_fraction": 0.25, "standardize": True}],
    ids=["all-rows", "split", "split-standardized"],
)
def test_a_npy_config_trains_like_the_same_data_as_npz_and_csv(project, capsys, extra):
    """Through the command line; bit for bit without standardize (the same rows, the same batch
    order); standardized, the statistics are summed over chunks of rows: equal to rounding."""
    losses = {}
    for name, data in DATA.items():
        run = project / f"run-{name}"
        argv = [
            "train",
            str(write_config(project, data, **extra)),
            "--quiet",
            "--run-dir",
            str(run),
        ]
        code = cli.main(argv)
        assert code == 0, capsys.readouterr().err
        history = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
        losses[name] = [float(row["loss"]) for row in history]
        assert len(losses[name]) == 2
    assert losses["npz"] == losses["csv"]
    if "standardize" in extra:
        np.testing.assert_allclose(losses["npy"], losses["npz"], rtol=1e-6)  # float32 training
    else:
        assert losses["npy"] == losses["npz"]


def test_a_split_keeps_the_features_on_disk(project):
    cfg = config_from_dict(
        {"data": {**DATA["npy"], "standardize": True}, "model": MODEL}, base_dir=project
    )
    data = experiment.prepare_dataset(cfg)
    assert isinstance(data.x_train, MappedRows) and isinstance(data.x_test, MappedRows)
    assert isinstance(data.x_train.base, np.memmap)
    ref = experiment.prepare_dataset(
        config_from_dict(
            {"data": {**DATA["npz"], "standardize": True}, "model": MODEL}, base_dir=project
        )
    )
    assert (len(data.x_train), len(data.x_test)) == (30, 10) and data.n_in == 3
    np.testing.assert_array_equal(data.y_train, ref.y_train)
    np.testing.assert_allclose(np.asarray(data.x_train), ref.x_train, rtol=0, atol=1e-13)
    np.testing.assert_allclose(data.x_test[2:5], ref.x_test[2:5], rtol=0, atol=1e-13)
    mean, scale = (np.asarray(data.preprocessing["features"][k]) for k in ("mean", "scale"))
    expected = Standardizer().fit(np.load(project / "d.npz")["X"][_train_rows(cfg)])
    np.testing.assert_allclose(mean, expected.mean, rtol=20 * EPS64, atol=20 * EPS64)
    np.testing.assert_allclose(scale, expected.scale, rtol=20 * EPS64)


def _train_rows(cfg) -> np.ndarray:
    order = np.random.default_rng(cfg.training.seed).permutation(40)
    return order[round(0.25 * 40) :]


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_statistics_equal_the_standardizers(tmp_path, monkeypatch, chunk):
    from backprop.data import npyfiles

    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4)) * [1.0, 1e3, 1e-3, 0.0] + [0.0, 1e6, 1.0, 7.0]
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr(npyfiles, "CHUNK_BYTES", chunk * 4 * 8)
    rows = MappedRows(np.load(tmp_path / "x.npy", mmap_mode="r"), rng.permutation(50)[:33])
    got, want = fit_standardizer(rows), Standardizer().fit(X[rows.index])
    np.testing.assert_allclose(got.mean, want.mean, rtol=50 * EPS64)
    np.testing.assert_allclose(got.scale, want.scale, rtol=1e-9)  # std of 1e6 + N(0, 1e3)
    assert got.scale[3] == want.scale[3] == 1.0  # a constant column


def test_mapped_rows_read_the_selected_rows(tmp_path):
    X = np.arange(24.0).reshape(8, 3)
    np.save(tmp_path / "x.npy", X)
    rows = MappedRows(np.load(tmp_path / "x.npy", mmap_mode="r"), [5, 1, 7, 2])
    assert rows.shape == (4, 3) and len(rows) == 4 and rows.dtype == np.float64
    np.testing.assert_array_equal(rows.rows([3, 0, 0]), X[[2, 5, 5]])
    np.testing.assert_array_equal(rows[1:3], X[[1, 7]])
    np.testing.assert_array_equal(rows[-1], X[2])
    np.testing.assert_array_equal(rows.read(2, 10), X[[7, 2]])
    np.testing.assert_array_equal(rows.select([1, 0])[:], X[[1, 5]])
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        rows.rows([4])


@pytest.mark.parametrize(
    ("files", "fragments"),
    [
        ({"features": None}, ["data.features", "does not exist"]),
        ({"targets": np.zeros((40, 2, 1))}, ["data.targets", "1-D (N,) or 2-D", "(40, 2, 1)"]),
        ({"targets": np.zeros(39)}, ["has 40 rows but data.targets", "has 39"]),
        ({"features": np.zeros(40)}, ["data.features", "2-D (N, features)", "(40,)"]),
        ({"features": "text"}, ["data.features", "not a readable .npy file"]),
        ({"features": np.array([[1.0], [np.nan]] * 20)}, ["20 NaN or infinite", "first in row 1"]),
        ({"targets": np.array([None] * 40)}, ["data.targets", "not a readable .npy"]),
        ({"targets": "npz"}, ["data.targets", "is an .npz archive"]),
    ],
    ids=["missing", "3-D-targets", "rows", "1-D-features", "text-file", "nan", "objects", "npz"],
)
def test_bad_npy_files_are_named_with_their_key(project, capsys, files, fragments):
    for key, value in files.items():
        path = project / {"features": "x.npy", "targets": "y.npy"}[key]
        if value is None:
            path.unlink()
        elif isinstance(value, str) and value == "text":
            path.write_text("1,2,3\n")
        elif isinstance(value, str):
            with open(path, "wb") as f:
                np.savez(f, X=np.zeros((40, 3)))
        else:
            np.save(path, value, allow_pickle=True)
    code = cli.main(["train", str(write_config(project, DATA["npy"])), "--no-save", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_npy_options_are_checked_with_the_config(project):
    with pytest.raises(ConfigError, match=r"\[data\] \(dataset 'npy'\) targets: required key"):
        config_from_dict({"data": {"name": "npy", "features": "x.npy"}}, base_dir=project)
    with pytest.raises(DataError, match=r"features must be a path to a \.npy file"):
        load_npy(3, "y.npy")


def _mapped_file_mb() -> float:
    """RssFile: the resident pages of files mapped into this process."""
    status = pathlib.Path("/proc/self/status")
    if not status.exists():
        pytest.skip("reads RssFile from /proc/self/status (Linux only)")
    line = next((s for s in status.read_text().splitlines() if s.startswith("RssFile:")), None)
    if line is None:
        pytest.skip("this kernel's /proc/self/status has no RssFile line")
    return int(line.split()[1]) / 1024


def test_whole_file_passes_do_not_map_the_file(tmp_path, monkeypatch):
    """The NaN check, the statistics and the rows of a split read 64 MB of features with
    ``pread``: the file's pages are not mapped into the process (reading through the memmap
    would add ~64 MB of resident file pages). The file stands for one beyond the size
    `NpyRows` maps (MAP_BYTES, lowered here to 16 MiB)."""
    from backprop.data import _npyrows

    monkeypatch.setattr(_npyrows, "MAP_BYTES", 16 << 20)
    path = tmp_path / "x.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**20, 8)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for i in range(8):
            f.write(np.full((2**17, 8), float(i)).data)
    np.save(tmp_path / "y.npy", np.zeros(2**20))
    before = _mapped_file_mb()
    X, _ = load_npy(path, tmp_path / "y.npy")
    scaler = fit_standardizer(X)
    rows = MappedRows(X, np.random.default_rng(0).permutation(len(X)), scaler)
    total = sum(float(rows.rows(np.arange(i, i + 2**15)).sum()) for i in range(0, len(X), 2**15))
    grown = _mapped_file_mb() - before
    assert isinstance(X, np.memmap) and np.allclose(scaler.mean, 3.5) and abs(total) < 1e-6
    assert grown < 8, f"{grown:.0f} MB of the file were mapped into the process"


def test_gradcheck_and_evaluate_take_a_npy_config(project, capsys):
    config = write_config(project, DATA["npy"], standardize=True)
    assert cli.main(["gradcheck", str(config), "--rows", "4"]) == 0
    assert "4 rows of npy" in capsys.readouterr().out
    run = project / "run"
    assert cli.main(["train", str(config), "--quiet", "--run-dir", str(run)]) == 0
    test = json.loads((run / "manifest.json").read_text())["result"]["test"]
    assert cli.main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "npy, its 10 held-out test rows" in out and f"{test['accuracy']:.2%}" in out


def test_npy_and_npz_train_alike_on_every_backend(project, backend):
    """A held-out split of memory-mapped rows gives the losses of the same rows in memory."""
    results = {}
    for name in ("npy", "npz"):
        raw = {"data": DATA[name], "model": MODEL, "training": {"epochs": 2, "batch_size": 8}}
        cfg = config_from_dict(raw, base_dir=project)
        result = experiment.train_config(cfg, backend=backend.name, save=False, verbose=0)
        results[name] = [*result.fit.history["loss"], *result.test.values()]
    if backend.name == "numpy":
        assert results["npy"] == results["npz"]
    else:  # JAX's in-memory epoch and the source path's steps round differently (< 1 ulp seen)
        np.testing.assert_allclose(results["npy"], results["npz"], rtol=8 * np.finfo("f4").eps)
