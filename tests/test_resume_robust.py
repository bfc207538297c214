"""Resuming survives bad files and bad arguments (issue 15).

A file that cannot continue a run (a run directory's model.npz, a checkpoint with an edited
header) raises `CheckpointError` saying why, never a KeyError or TypeError (a hypothesis property
over random edits of a real checkpoint's meta); the history is stored as arrays, exactly, and
checkpoints written before that still resume; checkpoint files follow the umask and a save sweeps
the temporary files a killed save left; NumPy integers and dtypes, a single callback, params
without a key, inputs without rows and an infinite alpha get clear answers.
"""

from __future__ import annotations

import copy
import math
import os
import pathlib
import shutil
import struct
import tempfile

import numpy as np
import pytest
from conftest import backend_or_skip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backends
import backprop as bp
from backprop.data import datasets
from backprop.nn.model import dtype_name
from backprop.training import checkpoint
from backprop.training.history import History

X, Y = datasets.make_spirals(n_per_class=20, seed=0)  # 40 rows, 2 classes
BATCH, SEED = 10, 3


def _model(alpha: float = 0.0) -> bp.MLP:
    return bp.MLP([2, 5, 2], hidden="tanh", output="softmax", loss="cross_entropy", alpha=alpha)


def _callbacks(directory: pathlib.Path) -> list[bp.Callback]:
    return [bp.ModelCheckpoint(directory, monitor="loss"), bp.EarlyStopping("loss", patience=5)]


def _fit(epochs: int, directory: pathlib.Path, backend="numpy", **kwargs) -> bp.FitResult:
    """SGD with momentum and a stateful schedule, checkpointing into ``directory``."""
    kwargs = {
        "optimizer": bp.SGD(lr=0.1, momentum=0.9),
        "schedule": bp.get_schedule("reduce_on_plateau", monitor="loss", patience=1),
        "batch_size": BATCH,
        "seed": SEED,
        "verbose": 0,
        "callbacks": _callbacks(directory),
        **kwargs,
    }
    return bp.fit(_model(), X, Y, backend=backend, epochs=epochs, **kwargs)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> pathlib.Path:
    """A real 2-epoch last.npz (its history stored as arrays)."""
    directory = tmp_path_factory.mktemp("saved")
    _fit(2, directory)
    return directory / "last.npz"


def _rewrite(source: pathlib.Path, target: pathlib.Path, edit_meta=None, edit_trees=None):
    """``source`` with its meta and trees edited, written to ``target`` by save_checkpoint."""
    ckpt = checkpoint.load_checkpoint(source)
    meta, trees = copy.deepcopy(ckpt.meta), dict(ckpt.trees)
    host = {"history": trees.pop("history")} if "history" in trees else None
    if edit_meta:
        edit_meta(meta)
    if edit_trees:
        edit_trees(trees)
    checkpoint.save_checkpoint(target, trees, meta, None, host)
    return target


# -- 1. a file that cannot resume says why ------------------------------------------------------
def test_a_model_file_is_not_a_training_checkpoint(saved, tmp_path):
    """What `backprop train` writes as model.npz: params, model spec, config, dtype."""
    meta = checkpoint.load_checkpoint(saved).meta
    model_file = tmp_path / "model.npz"
    params = checkpoint.load_checkpoint(saved).trees["params"]
    checkpoint.save_checkpoint(
        model_file, {"params": params}, {"model": meta["model"], "config": None, "dtype": "float32"}
    )
    with pytest.raises(bp.CheckpointError, match="is a model file") as info:
        _fit(3, tmp_path, resume=model_file)
    message = str(info.value)
    assert str(model_file) in message and str(tmp_path / "last.npz") in message
    assert "params=load_checkpoint(" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def _set(path: tuple, value):
    def edit(tree):
        for key in path[:-1]:
            tree = tree[key]
        tree[path[-1]] = value

    return edit


def _delete(path: tuple):
    def edit(tree):
        for key in path[:-1]:
            tree = tree[key]
        del tree[path[-1]]

    return edit


def _drop_bias(trees):
    trees["params"] = [{"W": layer["W"]} for layer in trees["params"]]


def _drop_velocity(trees):
    trees["opt_state"] = {}


EDITS = {
    "no-position": (_delete(("position",)), None, r"it lacks \['position'\]"),
    "epoch-str": (_set(("position", "epoch"), "2"), None, r"position\['epoch'\] is '2' \(str\)"),
    "step-negative": (_set(("position", "step"), -1), None, r"position\['step'\] is -1"),
    "rng-garbage": (_set(("rng", "order", "state"), "x"), None, r"rng\['order'\] is not a PCG64"),
    "rng-keys": (_delete(("rng", "dropout")), None, r"its rng states are \['order'\]"),
    "fit-not-dict": (_set(("fit",), [20]), None, r"'fit' is \[20\] \(list\); expected a JSON"),
    "callbacks-not-list": (_set(("callbacks",), {}), None, r"'callbacks' is \{\} \(dict\)"),
    "callback-entry": (_set(("callbacks", 0), "x"), None, r"callbacks\[0\] is 'x'"),
    "callback-state": (
        _set(("callbacks", 1, "state", "best"), "low"),
        None,
        r"callbacks\[1\]\['state'\]\['best'\] is 'low' \(str\); expected a number",
    ),
    "callback-state-key": (
        _delete(("callbacks", 1, "state", "wait")),
        None,
        r"callbacks\[1\]\['state'\] is .* expected a JSON object with keys \['best', ",
    ),
    "schedule-state": (
        _set(("schedule_state", "scale"), None),
        None,
        r"schedule_state\['scale'\] is None \(NoneType\); expected a number",
    ),
    "history-layout": (
        _set(("history", "columns"), "loss"),
        None,
        r"its history is malformed \(the history layout should be",
    ),
    "history-epochs": (
        _set(("history", "epochs"), 1),
        None,
        r"history's column arrays should hold 1 numbers each",
    ),
    "stop-reason": (_set(("stop_reason",), 5), None, r"'stop_reason' is 5"),
    "params-no-bias": (None, _drop_bias, r"do not fit the model: params\[0\] lacks key 'b'"),
    "opt-state": (None, _drop_velocity, r"opt_state should be a dict with keys \['velocity'\]"),
}


@pytest.mark.parametrize(("edit_meta", "edit_trees", "match"), EDITS.values(), ids=EDITS.keys())
def test_an_edited_checkpoint_says_what_is_wrong(saved, edit_meta, edit_trees, match, tmp_path):
    path = _rewrite(saved, tmp_path / "last.npz", edit_meta, edit_trees)
    before = path.read_bytes()
    with pytest.raises(bp.CheckpointError, match=match) as info:
        _fit(3, tmp_path, resume=path)
    assert str(path) in str(info.value) and "cannot be resumed" in str(info.value)
    assert path.read_bytes() == before


def _paths(tree, prefix=(), depth=4):
    """Every key path into ``tree`` (dict keys, list indices) down to ``depth`` levels."""
    if depth == 0 or not isinstance(tree, (dict, list)):
        return []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    out = []
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key), depth - 1)
    return out


WRONG = [None, True, "x", [], {}, 7, 1.5]  # 7 replaces non-numbers only (a scale of 7 diverges)


def _has(parent, key) -> bool:
    if isinstance(parent, dict):
        return key in parent
    return isinstance(parent, list) and isinstance(key, int) and key < len(parent)


def _apply(meta: dict, path: tuple, choice: int) -> None:
    """Delete (choice 0) or retype the value at ``path`` (skipped once an edit removed it)."""
    parent = meta
    for key in path[:-1]:
        if not _has(parent, key):
            return
        parent = parent[key]
    key = path[-1]
    if not _has(parent, key):
        return
    value = parent[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    options = [w for w in WRONG if type(w) is not type(value) and not (number and w == 7)]
    if choice == 0:
        del parent[key]
    else:
        parent[key] = copy.deepcopy(options[choice % len(options)])


@pytest.fixture(scope="module")
def meta_paths(saved):
    return _paths(checkpoint.load_checkpoint(saved).meta)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 6)), min_size=1, max_size=3))
def test_any_edited_header_resumes_or_raises_checkpoint_error(saved, meta_paths, edits):
    """Delete or retype up to three keys anywhere in a real last.npz's meta: resuming either
    works or raises `CheckpointError`, never another exception."""
    with tempfile.TemporaryDirectory() as name:
        directory = pathlib.Path(name)
        edited = [meta_paths[i % len(meta_paths)] for i, _ in edits]

        def edit(meta):
            for path, (_, choice) in zip(edited, edits, strict=True):
                _apply(meta, path, choice)

        path = _rewrite(saved, directory / "last.npz", edit)
        try:
            _fit(3, directory, resume=path)
        except bp.CheckpointError as exc:
            assert str(path) in str(exc)


# -- 2. the history as arrays -------------------------------------------------------------------
def _bits(value):
    return struct.pack("<d", value) if isinstance(value, float) else (type(value), value)


def _exact(history: History):
    """Everything that must survive: key order, types, float bits (NaN, -0.0)."""
    return (
        [[(k, _bits(v)) for k, v in r.items()] for r in history.records],
        [_bits(v) for v in history.step_losses],
    )


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e-310])
COLUMNS = ["epoch", "loss", "val_loss", "lr", "grad_norm/0", ""]


@st.composite
def histories(draw) -> History:
    n = draw(st.integers(0, 5))
    present = [draw(st.lists(st.sampled_from(COLUMNS), unique=True)) for _ in range(n)]
    ints = draw(st.sets(st.sampled_from(COLUMNS)))
    records = [
        {c: draw(st.integers(-(2**63), 2**63 - 1)) if c in ints else draw(FLOATS) for c in columns}
        for columns in present
    ]
    steps = draw(st.lists(FLOATS | st.floats(width=32), max_size=6))
    return History(records, steps)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(history=histories())
def test_history_arrays_round_trip_exactly(history):
    stored = history.to_arrays()
    columns = history.columns
    in_order = all(list(r) == [c for c in columns if c in r] for r in history.records)
    assert (stored is None) == (not in_order)  # records in another key order keep JSON
    if stored is None:
        return
    layout, tree = stored
    with tempfile.TemporaryDirectory() as name:  # through a file, as a checkpoint stores it
        path = checkpoint.save_checkpoint(
            pathlib.Path(name) / "h.npz", {}, {"h": layout}, None, {"h": tree}
        )
        ckpt = checkpoint.load_checkpoint(path, backends.get_backend("numpy"), "float32")
    again = History.from_arrays(ckpt.meta["h"], ckpt.trees["h"])
    assert _exact(again) == _exact(history)


def test_a_history_arrays_cannot_hold_uses_json(tmp_path):
    """A value that is neither float nor int (a callback's note) keeps the JSON history."""
    history = History([{"epoch": 1, "loss": 0.5, "note": "warm"}], [0.25])
    assert history.to_arrays() is None

    def note(run):
        run.history.records[-1]["note"] = "warm"

    callbacks = [*_callbacks(tmp_path), bp.LambdaCallback(on_epoch_end=note)]
    _fit(2, tmp_path, callbacks=callbacks)
    ckpt = bp.load_checkpoint(tmp_path / "last.npz")
    assert "history" not in ckpt.trees and ckpt.meta["history"]["records"][0]["note"] == "warm"
    callbacks = [*_callbacks(tmp_path), bp.LambdaCallback(on_epoch_end=note)]
    resumed = _fit(3, tmp_path, callbacks=callbacks, resume=tmp_path / "last.npz")
    assert [r["note"] for r in resumed.history.records] == ["warm"] * 3


def test_old_checkpoints_with_a_json_history_resume_bit_identical(saved, tmp_path):
    """A last.npz written before the arrays (history as JSON in meta) continues as before."""
    ckpt = checkpoint.load_checkpoint(saved)
    old = History.from_checkpoint(ckpt).to_dict()
    _rewrite(saved, tmp_path / "last.npz", _set(("history",), old))
    trees = checkpoint.load_checkpoint(tmp_path / "last.npz").trees
    trees.pop("history")
    meta = checkpoint.load_checkpoint(tmp_path / "last.npz").meta
    checkpoint.save_checkpoint(tmp_path / "last.npz", trees, meta)  # without the arrays
    resumed = _fit(4, tmp_path, resume=tmp_path / "last.npz")
    straight = _fit(4, tmp_path / "straight")
    assert resumed.history.step_losses == straight.history.step_losses
    wall = ("time", "samples_per_s")
    strip = [[(k, v) for k, v in r.items() if k not in wall] for r in resumed.history.records]
    assert strip == [
        [(k, v) for k, v in r.items() if k not in wall] for r in straight.history.records
    ]


def test_the_history_costs_at_most_8_bytes_a_step(tmp_path):
    """Step losses were JSON text (~20 bytes each); now float64 (float32 when exact)."""
    rng = np.random.default_rng(0)
    sizes = []
    for steps in (1000, 3000):
        losses = rng.random(steps).tolist()  # float64 values: the worst case
        history = History([{"epoch": 1, "loss": 0.5}], losses)
        layout, tree = history.to_arrays()
        path = tmp_path / f"{steps}.npz"
        checkpoint.save_checkpoint(path, {}, {"history": layout}, None, {"history": tree})
        sizes.append(path.stat().st_size)
    assert sizes[1] - sizes[0] <= 8 * 2000 + 64
    single = History([], np.float32(rng.random(1000)).tolist()).to_arrays()[1]
    assert single["step_losses"].dtype == np.float32  # a float32 run's losses: 4 bytes each


# -- 3. file modes and stale temporary files --------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoint_files_follow_the_umask(umask, tmp_path):
    old = os.umask(umask)
    try:
        path = checkpoint.save_checkpoint(tmp_path / "c.npz", {"a": np.zeros(2)}, {})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_a_save_removes_its_own_stale_temporary_files(tmp_path):
    """What a kill -9 during a save leaves: ``.last.npz.XXXXXXXX.tmp``. The next successful
    save of last.npz removes those, and nothing else."""
    stale = [".last.npz.abcd_123.tmp", ".last.npz.zz9yy8xx.tmp"]
    others = [
        ".best.npz.abcd1234.tmp",  # another file's
        ".last.npz.abc.tmp",  # not mkstemp's pattern
        ".last.npz.abcd1234.tmp.keep",
        "last.npz.abcd1234.tmp",
        ".last.npz.ABCD1234.tmp",
        "notes.tmp",
    ]
    for name in stale + others:
        (tmp_path / name).write_bytes(b"partial")
    with pytest.raises(bp.CheckpointError):  # a failed save removes nothing
        checkpoint.save_checkpoint(tmp_path / "last.npz", {"a": np.zeros(2)}, {"x": object()})
    assert {p.name for p in tmp_path.iterdir()} == set(stale + others)
    checkpoint.save_checkpoint(tmp_path / "last.npz", {"a": np.zeros(2)}, {})
    assert {p.name for p in tmp_path.iterdir()} == {"last.npz", *others}


# -- 4. arguments: clear answers ------------------------------------------------------------------
BACKEND_NAMES = ["numpy", "jax", "torch", "array_api_strict"]


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_numpy_integers_are_accepted(name, tmp_path):
    be = backend_or_skip(name)
    kwargs = {"backend": be, "verbose": 0, "batch_size": BATCH, "validation_split": 0.25}
    plain = bp.fit(_model(), X, Y, epochs=2, seed=SEED, **kwargs)
    kwargs.update(batch_size=np.int32(BATCH), validation_split=np.float32(0.25))
    saver = bp.ModelCheckpoint(tmp_path, monitor="loss")
    numpy = bp.fit(
        _model(), X, Y, epochs=np.int64(2), seed=np.uint8(SEED), callbacks=[saver], **kwargs
    )
    assert numpy.history.step_losses == plain.history.step_losses
    fit_settings = bp.load_checkpoint(tmp_path / "last.npz").meta["fit"]
    assert type(fit_settings["batch_size"]) is int and type(fit_settings["seed"]) is int


@pytest.mark.parametrize("value", [True, np.float64(2.0), 2.0, np.int64(0)])
def test_epochs_that_are_not_positive_integers_are_refused(value):
    with pytest.raises(ValueError, match=r"fit: epochs must be an int >= 1"):
        bp.fit(_model(), X, Y, epochs=value, verbose=0)


def test_a_single_callback_is_accepted():
    stop = bp.EarlyStopping("loss", patience=0, min_delta=10.0)
    result = bp.fit(_model(), X, Y, epochs=5, verbose=0, callbacks=stop)
    assert result.epochs == 2 and result.stop_reason.startswith("early stopping")


@pytest.mark.parametrize(
    ("callbacks", "match"),
    [
        (5, r"callbacks must be a list of Callback objects, received 5 \(int\)"),
        ([bp.EarlyStopping("loss"), "x"], r"callbacks\[1\] is 'x' \(str\), not a callback"),
        (bp.EarlyStopping, r"callbacks\[0\] is the class EarlyStopping, not an instance"),
    ],
)
def test_callbacks_that_are_not_callbacks_are_refused(callbacks, match):
    with pytest.raises(TypeError, match=match):
        bp.fit(_model(), X, Y, epochs=1, verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_params_without_a_key_name_the_layer_and_the_key(name):
    be = backend_or_skip(name)
    model = _model()
    params = model.init(seed=0, backend=be)
    x, y = be.asarray(X[:4], "float32"), be.asarray(Y[:4], "float32")
    no_bias = [params[0], {"W": params[1]["W"]}]
    expected = (
        r"params\[1\] lacks key 'b' \(it has W \(5, 2\)\); this model expects W \(5, 2\), "
        r"b \(2,\) \(layer 1: dense"
    )
    with pytest.raises(ValueError, match=expected):
        model.loss_and_grad(no_bias, x, y)
    extra = [params[0], {**params[1], "c": params[1]["b"]}]
    with pytest.raises(ValueError, match=r"params\[1\] has unexpected key 'c' \(it has W"):
        model.predict(extra, x)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_a_loss_over_no_rows_is_refused(name):
    be = backend_or_skip(name)
    model = _model(alpha=0.1)
    params = model.init(seed=0, backend=be)
    x, y = be.asarray(np.zeros((0, 2)), "float32"), be.asarray(np.zeros((0, 2)), "float32")
    for call in (model.loss_and_grad, model.loss):
        with pytest.raises(ValueError, match=r"X has no rows \(shape \(0, 2\)\)"):
            call(params, x, y)
    assert model.predict(params, x).shape == (0, 2)  # predicting nothing is fine


@pytest.mark.parametrize("alpha", [math.inf, -math.inf, math.nan, -0.5, np.float64(np.inf)])
def test_alpha_must_be_finite_and_non_negative(alpha):
    expected = r"alpha must be a real number >= 0, received .*; the L2 penalty .* needs a finite"
    with pytest.raises(ValueError, match=expected):
        _model(alpha=alpha)
    with pytest.raises(ValueError, match=expected):
        bp.Sequential([bp.Dense(2)], input_shape=2, alpha=alpha)


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.dtype("float64"), np.float32, "float32"])
def test_numpy_dtypes_are_accepted_by_init(name, dtype):
    be = backend_or_skip(name)
    expected = np.dtype(dtype).name
    if not be.supports_dtype(expected):
        pytest.skip(f"{name} on {be.device_name} has no {expected}")
    assert dtype_name(_model().init(seed=0, backend=be, dtype=dtype)) == expected


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_numpy_dtypes_are_accepted_by_fit(name):
    """Needs fit to normalise its dtype (``float_dtype_name``) before the data moves."""
    be = backend_or_skip(name)
    kwargs = {"batch_size": BATCH, "validation_split": 0.25, "seed": SEED, "verbose": 0}
    result = bp.fit(_model(), X, Y, backend=be, dtype=np.float32, epochs=2, **kwargs)
    assert dtype_name(result.params) == "float32" and np.isfinite(result.history["loss"]).all()


@pytest.mark.parametrize("dtype", [np.int32, float, object()])
def test_other_dtypes_are_refused_naming_the_accepted_ones(dtype):
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float64'\]"):
        _model().init(dtype=dtype)


def test_a_copied_run_directory_resumes_from_its_last_checkpoint(saved, tmp_path):
    """The sanity check the edits are measured against: the unedited file resumes."""
    shutil.copyfile(saved, tmp_path / "last.npz")
    assert _fit(3, tmp_path, resume=tmp_path / "last.npz").epochs == 3
