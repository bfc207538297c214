"""A config's life outside the happy path: the TOML writer round-trips whatever the loader
accepts (hypothesis), relative paths follow the config file, and files that cannot be read,
or nest too deeply, stop with one clear message and the documented exit code."""

from __future__ import annotations

import errno
import os
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop.app import cli
from backprop.app.config import (
    Config,
    ConfigError,
    config_from_dict,
    dump_toml,
    load_config,
    tomllib,
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- generated values ----------------------------------------------------------------------------
# Text with what a writer must escape: quotes, backslashes, newlines and other control characters
# (C0, DEL), non-ASCII letters and digits ("٣" is a digit to str.isdigit), astral characters.
TRICKY = "\"'\\\n\r\t\b\f\x00\x01\x1b\x7f\x85\u2028é٣𝟘 #=[]{}.,"
text = st.text(st.sampled_from(TRICKY) | st.characters(codec="utf-8"), max_size=12)
keys = text | st.sampled_from(["", "1", "٣", "a.b", "a b", "[x]", "true", "inf", "-", "_"])
finite = st.floats(allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.one_of(
    text,
    ints,
    st.floats(allow_nan=False),  # nan != nan, so a round trip cannot compare it
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1.7976931348623157e308, 1e16, 0.1]),
    st.booleans(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(keys, inner, max_size=3)
        | st.lists(st.dictionaries(keys, inner, max_size=3), min_size=1, max_size=3)
    ),
    max_leaves=10,
)
toml_tables = st.dictionaries(keys, toml_values, max_size=5)


@SETTINGS
@given(toml_tables)
def test_dump_toml_round_trips_any_toml_table(table):
    """Everything ``tomllib`` can return (keys and strings with quotes, newlines, control
    characters, unicode digits; large and tiny floats; arrays of tables), written and read
    back, is the same table."""
    assert tomllib.loads(dump_toml(table)) == table


@settings(SETTINGS, max_examples=50)
@given(st.dictionaries(keys, scalars, max_size=3), text)
def test_a_comment_never_breaks_the_file(table, comment):
    """The run's config.toml starts with a comment naming the source file, whose name may hold
    a newline or a control character (which broke the file before: the header was written
    as plain text above the TOML)."""
    written = dump_toml(table, comment=f"resolved config (from {comment})\nrun it again")
    assert written.startswith("# resolved config")
    assert tomllib.loads(written) == table


def test_dump_toml_refuses_what_toml_cannot_hold():
    with pytest.raises(TypeError, match="cannot write the config as TOML"):
        dump_toml({"a": {"x": None}})


# -- generated configs ---------------------------------------------------------------------------
def activation():
    return st.sampled_from(["relu", "tanh", "sigmoid", "identity", "gelu"]) | st.builds(
        lambda s: {"name": "leaky_relu", "slope": s}, st.floats(0, 1)
    )


def dense(units=None):
    units = st.integers(1, 2**40) if units is None else units
    return st.fixed_dictionaries(
        {"type": st.just("dense"), "units": units}, optional={"activation": activation()}
    )


def model():
    huber = st.builds(lambda d: {"name": "huber", "delta": d}, st.floats(1e-300, 1e300))
    shorthand = st.fixed_dictionaries(
        {},
        optional={
            "hidden_sizes": st.lists(st.integers(1, 2**62), max_size=3),
            "hidden": activation(),
            "alpha": st.floats(0, 1e300) | st.just(5e-324),
            "loss": st.just("mse") | huber,
        },
    )
    residual = st.builds(
        lambda block: {"type": "residual", "layers": [{"type": "layer_norm"}, block]},
        dense(st.just(3)),
    )
    layers = st.builds(
        lambda body, last: {"layers": [*body, last], "loss": "mse"},
        st.lists(dense() | residual, max_size=3),
        dense(st.just(1)),
    )
    return shorthand | layers


def data():
    columns = st.lists(text, min_size=1, max_size=2)
    csv = st.fixed_dictionaries(
        {"name": st.just("csv"), "path": text.filter(bool), "target": text | columns},
        optional={"features": columns, "delimiter": text},
    )
    spirals = st.fixed_dictionaries(
        {"name": st.just("spirals")},
        optional={"n_per_class": st.integers(1, 50), "noise": st.floats(0, 1), "seed": ints},
    )
    common = {"test_fraction": st.floats(0, 0.99), "standardize": st.booleans()}
    return st.builds(
        lambda d, c: {**d, **c}, csv | spirals, st.fixed_dictionaries({}, optional=common)
    )


def training():
    labels = st.sampled_from(["0", "1", "٣", "-2", "𝟘"])  # what str.isdigit calls digits
    monitor = text.filter(lambda s: not s.startswith("val_"))  # no validation split
    return st.fixed_dictionaries(
        {},
        optional={
            "epochs": st.integers(1, 2**63),
            "seed": st.integers(0, 2**64),
            "shuffle": st.booleans(),
            "run_dir": text,
            "class_weight": st.just("balanced")
            | st.dictionaries(labels, finite.map(abs), max_size=3),
            "checkpoint": st.fixed_dictionaries({"every": st.integers(0, 99), "monitor": text}),
            "early_stopping": st.fixed_dictionaries({"monitor": monitor}),
        },
    )


configs = st.fixed_dictionaries(
    {"data": data()},
    optional={
        "backend": st.fixed_dictionaries(
            {"coordinator_address": text, "deterministic": st.booleans()}
        ),
        "model": model(),
        "optimizer": st.fixed_dictionaries(
            {"name": st.sampled_from(["sgd", "adam"]), "lr": st.floats(1e-300, 1e300)}
        ),
        "training": training(),
    },
)


@SETTINGS
@given(configs)
def test_resolved_configs_round_trip_through_toml(tmp_path, raw):
    """``load(dump(c)) == c`` for valid configs of every key kind: the TOML tables, the `Config`
    rebuilt from them, and the config file a run writes, read back by `load_config`."""
    cfg = config_from_dict(raw)
    resolved = cfg.to_dict()
    written = dump_toml(resolved, comment=f"resolved config of this run (from {cfg.source})")
    assert tomllib.loads(written) == resolved
    again = config_from_dict(tomllib.loads(written))
    assert again == cfg and again.to_dict() == resolved
    path = tmp_path / "config.toml"
    path.write_text(written, encoding="utf-8")
    assert load_config(path).to_dict() == resolved


# -- paths follow the config file ----------------------------------------------------------------
XOR_CSV = "a,b,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
CSV_CONFIG = """\
[data]
name = "csv"
path = "xor.csv"
target = "y"
test_fraction = 0.0

[model]
hidden_sizes = [4]
hidden = "tanh"
output = "sigmoid"
loss = "binary_cross_entropy"

[training]
epochs = 2
batch_size = 4
"""


@pytest.fixture
def csv_project(tmp_path, monkeypatch):
    """A config and the CSV it names side by side in project/; the current directory elsewhere."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "xor.csv").write_text(XOR_CSV)
    (project / "xor.toml").write_text(CSV_CONFIG)
    monkeypatch.chdir(elsewhere)
    return project


def test_data_path_is_relative_to_the_config_file(csv_project):
    cfg = load_config(csv_project / "xor.toml")
    assert cfg.data.options["path"] == str(csv_project / "xor.csv")
    assert os.path.isabs(cfg.to_dict()["data"]["path"])
    assert cfg.training.run_dir == "runs"  # the output stays where the command runs


def test_a_config_trains_from_another_directory_and_its_saved_config_too(csv_project, capsys):
    """The shipped story of item 5: train a config that names a CSV beside it from elsewhere,
    then run the saved config.toml from a third directory."""
    run = pathlib.Path.cwd() / "run"
    argv = ["train", str(csv_project / "xor.toml"), "--quiet", "--run-dir", str(run)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    saved = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    assert saved["data"]["path"] == str(csv_project / "xor.csv")
    third = csv_project.parent / "third"
    third.mkdir()
    os.chdir(third)  # restored by monkeypatch.chdir's undo
    code = cli.main(["train", str(run / "config.toml"), "--quiet", "--no-save"])
    assert code == 0, capsys.readouterr().err


def test_set_paths_are_relative_to_the_current_directory(csv_project):
    (pathlib.Path.cwd() / "other.csv").write_text(XOR_CSV)
    cfg = load_config(csv_project / "xor.toml", ["data.path=other.csv"])
    assert cfg.data.options["path"] == str(pathlib.Path.cwd() / "other.csv")
    home = load_config(csv_project / "xor.toml", ["data.path=~/x.csv"])
    assert home.data.options["path"] == os.path.expanduser("~/x.csv")


def test_a_dict_config_resolves_against_the_current_directory(csv_project):
    cfg = config_from_dict({"data": {"name": "npz", "path": "d/x.npz"}})
    assert cfg.data.options["path"] == str(pathlib.Path.cwd() / "d" / "x.npz")
    assert config_from_dict(cfg.to_dict()) == cfg


def test_plugin_files_in_imports_are_relative_to_the_config_file(csv_project):
    (csv_project / "roundtrip_plugin_marker.py").write_text("MARKER = 1\n")
    text = 'imports = ["./roundtrip_plugin_marker.py"]\n' + CSV_CONFIG
    (csv_project / "with_plugin.toml").write_text(text)
    cfg = load_config(csv_project / "with_plugin.toml")
    assert cfg.imports == (str(csv_project / "roundtrip_plugin_marker.py"),)


# -- files that cannot be read, and nesting that cannot be followed ------------------------------
def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def assert_config_error(lines: list[str], *expected: str) -> None:
    """Exit-2 shape: ``error: config PATH: N problem(s):`` then one ``  - `` line each."""
    assert lines[0].startswith("error: config "), lines
    assert lines[1:] and all(line.startswith("  - ") for line in lines[1:]), lines
    for text in expected:
        assert text in "\n".join(lines), lines


def _refuse(exc: OSError):
    def read_bytes(self):
        raise exc

    return read_bytes


@pytest.mark.parametrize(
    ("exc", "cls", "expected"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied"),
            "PermissionError",
            "permission denied",
        ),
        (OSError(errno.EIO, "Input/output error"), "OSError", "Input/output error"),
    ],
)
def test_an_unreadable_config_exits_1_with_one_line(
    tmp_path, capsys, monkeypatch, exc, cls, expected
):
    path = tmp_path / "locked.toml"
    path.write_text(CSV_CONFIG)
    monkeypatch.setattr(pathlib.Path, "read_bytes", _refuse(exc))
    code, lines = run_cli(capsys, "train", path, "--no-save")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {cls}: cannot read config {path}: {expected}")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_a_config_without_read_permission_exits_1(tmp_path, capsys):
    path = tmp_path / "locked.toml"
    path.write_text(CSV_CONFIG)
    path.chmod(0)
    code, lines = run_cli(capsys, "train", path, "--no-save")
    assert code == 1 and lines == [lines[0]] and "permission denied" in lines[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is a directory, not a config file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "not a UTF-8 text file (byte 0x89 at offset 0)"),
        (b"[data]\nname = \xe9\n", "not a UTF-8 text file (byte 0xe9 at offset 14)"),
        (b"\x00\x01\x02binary", "not valid TOML: "),
        (b"x = " + b"[" * 900 + b"]" * 900, "nested too deeply for the TOML reader"),
        (b"x = " + b"{a=" * 900 + b"1" + b"}" * 900, "nested too deeply for the TOML reader"),
        (b"[data." + b".".join([b"a"] * 900) + b"]", "data.a.a.a...: nested more than 32 levels"),
    ],
    ids=["directory", "png", "latin-1", "nul", "arrays", "inline-tables", "table-headers"],
)
def test_what_is_not_a_config_exits_2_with_the_reason(tmp_path, capsys, content, expected):
    path = tmp_path / "config.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    code, lines = run_cli(capsys, "train", path, "--no-save")
    assert code == 2
    assert_config_error(lines, expected)


def test_a_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + CSV_CONFIG.replace("xor.csv", "x.csv").encode())
    assert load_config(path).data.name == "csv"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[" * 900 + "]" * 900, "--set data.x=...: the value is nested too deeply"),
        ("[" * 40 + "]" * 40, "data.x[0][0]...: nested more than 32 levels"),
        ("\udcff", "data.x: '\\udcff' is not valid Unicode text"),  # an undecodable argv byte
    ],
    ids=["reader", "walk", "surrogate"],
)
def test_set_values_that_cannot_be_checked_exit_2(capsys, value, expected):
    xor = pathlib.Path(__file__).parent.parent / "configs" / "xor.toml"
    code, lines = run_cli(capsys, "train", xor, "--no-save", "--set", f"data.x={value}")
    assert code == 2
    assert_config_error(lines, expected)


def test_a_cyclic_dict_is_a_config_error_not_a_recursion_error():
    raw: dict = {"data": {"name": "xor"}, "model": {}}
    raw["model"]["loop"] = raw["model"]
    with pytest.raises(ConfigError, match="nested more than 32 levels"):
        config_from_dict(raw)


def test_a_deep_shipped_shape_is_well_within_the_limit():
    """The limit leaves room: a residual block inside a residual block loads."""
    inner = {"type": "residual", "layers": [{"type": "dense", "units": 3}]}
    outer = {"type": "residual", "layers": [inner]}
    raw = {"data": {"name": "xor"}, "model": {"layers": [outer, {"type": "dense", "units": 1}]}}
    raw["model"]["layers"].insert(0, {"type": "dense", "units": 3})
    assert isinstance(config_from_dict(raw), Config)


def test_each_problem_is_one_line_whatever_the_keys_and_file_name_hold():
    """A key or file name with a newline (or another line break) is shown escaped, so the
    message is the header line and one line per problem."""
    raw = {"data": {"name": "xor"}, "training": {"a\nb": 1, "c\u2028d": 2}, "x\ry": {}}
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, source="dir\n/c.toml")
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + len(info.value.problems) == 4, lines
    assert "dir\\n/c.toml" in lines[0]
    assert "[training] 'a\\nb': unknown key" in str(info.value)
