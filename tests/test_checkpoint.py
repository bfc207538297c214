"""Checkpoints: bitwise round trips on every backend and across backends, atomic writes, and a
clear `CheckpointError` for every way a file can be missing, foreign, damaged or too new."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import BACKENDS, backend_or_skip

from backprop.training import checkpoint
from backprop.training.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    check_spec,
    load_checkpoint,
    save_checkpoint,
)

META = {
    "model": {"sizes": [3, 2, 1], "hidden": ["relu"]},
    "rng": {"bit_generator": "PCG64", "state": {"state": 2**100 + 7, "inc": 2**127 - 1}},
    "history": {"loss": [1.5, float("nan"), float("inf"), -float("inf")]},
    "note": "Grüße, 学习率 ✓",
    "epoch": 3,
    "done": False,
    "extra": None,
}


def _host_trees(dtype: str) -> dict:
    rng = np.random.default_rng(0)
    params = [
        {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))},
        {"W": rng.normal(size=(2, 1)), "b": np.array([np.nan])},  # NaN arrays are saved as-is
    ]
    params = [{k: v.astype(dtype) for k, v in layer.items()} for layer in params]
    adam = {"t": np.asarray(7.0, dtype=dtype), "m": params, "v": params[::-1]}
    return {"params": params, "adam": adam, "sgd": {}, "seen": {"n": np.arange(4, dtype=np.int32)}}


def _on(backend, tree):
    if isinstance(tree, dict):
        return {k: _on(backend, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_on(backend, v) for v in tree]
    return backend.asarray(tree, tree.dtype.name)


def _assert_same_tree(loaded, expected_host, backend) -> None:
    """Same structure, dtypes, bits; every array in ``backend``'s namespace (NumPy if None)."""
    if isinstance(expected_host, dict):
        assert isinstance(loaded, dict) and list(loaded) == list(expected_host)
        for k in expected_host:
            _assert_same_tree(loaded[k], expected_host[k], backend)
    elif isinstance(expected_host, list):
        assert isinstance(loaded, list) and len(loaded) == len(expected_host)
        for a, e in zip(loaded, expected_host, strict=True):
            _assert_same_tree(a, e, backend)
    else:
        if backend is None:
            assert isinstance(loaded, np.ndarray)
            host = loaded
        else:
            assert array_namespace(loaded) is array_namespace(backend.asarray([0.0]))
            host = np.asarray(backend.to_numpy(loaded))
        assert host.dtype == expected_host.dtype and host.shape == expected_host.shape
        assert host.tobytes() == expected_host.tobytes()  # bitwise, NaN included


def _assert_meta(meta) -> None:
    assert json.dumps(meta, sort_keys=True) == json.dumps(META, sort_keys=True)
    assert meta["rng"]["state"]["state"] == 2**100 + 7
    assert math.isnan(meta["history"]["loss"][1]) and meta["history"]["loss"][2] == math.inf
    assert meta["note"] == META["note"]


@pytest.fixture(params=BACKENDS)
def target(request):
    """The backend a checkpoint is loaded onto; unusable ones skip with their reason."""
    return backend_or_skip(request.param)


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("load_with", ["numpy arrays", "same backend"])
def test_round_trip(backend, dtype, load_with, tmp_path):
    host = _host_trees(dtype)
    path = save_checkpoint(tmp_path / "run" / "last.npz", _on(backend, host), META, backend)
    assert path == tmp_path / "run" / "last.npz" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["last.npz"]  # no temporary file left
    into = backend if load_with == "same backend" else None
    ckpt = load_checkpoint(path, backend=into)
    assert ckpt.path == path and list(ckpt.trees) == list(host)
    _assert_same_tree(ckpt.trees, host, into)
    _assert_meta(ckpt.meta)


def test_cross_backend(backend, target, dtype, tmp_path):
    if not target.supports_dtype(dtype):
        pytest.skip(f"{target.name} on {target.device_name} has no {dtype}")
    host = _host_trees(dtype)
    path = save_checkpoint(tmp_path / "c.npz", _on(backend, host), META, backend)
    _assert_same_tree(load_checkpoint(path, backend=target).trees, host, target)


def test_dtype_argument_converts_floats_only(backend, tmp_path):
    host = _host_trees("float64")
    path = save_checkpoint(tmp_path / "c.npz", host, META)  # backend=None: NumPy leaves
    trees = load_checkpoint(path, backend=backend, dtype="float32").trees
    expected = _host_trees("float64")
    expected["params"] = [{k: v.astype(np.float32) for k, v in p.items()} for p in host["params"]]
    _assert_same_tree(trees["params"], expected["params"], backend)
    _assert_same_tree(trees["seen"], expected["seen"], backend)  # int32 stays int32


def test_tuples_come_back_as_lists_and_int64_becomes_int32(backend, tmp_path):
    trees = {"pair": (np.ones(2), np.zeros(1)), "count": np.asarray([5, 6], dtype=np.int64)}
    path = save_checkpoint(tmp_path / "c.npz", trees, {"shape": (2, 3)})
    ckpt = load_checkpoint(path, backend=backend)
    assert isinstance(ckpt.trees["pair"], list) and ckpt.meta == {"shape": [2, 3]}
    _assert_same_tree(ckpt.trees["count"], np.asarray([5, 6], dtype=np.int32), backend)
    assert load_checkpoint(path).trees["count"].dtype == np.int64  # backend=None: as saved


def test_numpy_rng_state_resumes_the_same_stream(tmp_path):
    rng = np.random.default_rng(123)
    rng.normal(size=5)
    path = save_checkpoint(tmp_path / "c.npz", {}, {"rng": rng.bit_generator.state})
    resumed = np.random.default_rng()
    resumed.bit_generator.state = load_checkpoint(path).meta["rng"]
    assert resumed.normal(size=3).tobytes() == rng.normal(size=3).tobytes()


def test_int_out_of_int32_range_needs_host_load(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", {"n": np.asarray([2**40])}, {})
    with pytest.raises(CheckpointError, match="outside int32.*backend=None"):
        load_checkpoint(path, backend=backend_or_skip("numpy"))
    assert load_checkpoint(path).trees["n"][0] == 2**40


# -- atomic writes -----------------------------------------------------------------------------
def _fail_savez(file, *args, **kwargs):
    file.write(b"PK\x03\x04 half a checkpoint")
    raise OSError(28, "No space left on device")


def _fail_replace(src, dst):
    raise OSError(13, "Permission denied")


@pytest.mark.parametrize("fail", [_fail_savez, _fail_replace], ids=["savez", "replace"])
def test_failed_save_keeps_old_checkpoint(fail, tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.npz", {"p": np.arange(3.0)}, {"epoch": 1})
    before = path.read_bytes()
    target = (checkpoint.np, "savez") if fail is _fail_savez else (checkpoint.os, "replace")
    monkeypatch.setattr(*target, fail)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*last\.npz.*unchanged"):
        save_checkpoint(path, {"p": np.arange(5.0)}, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
    assert load_checkpoint(path).meta == {"epoch": 1}


# -- save errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trees", "meta", "match"),
    [
        ({"p": [{"W": 1.5}]}, {}, r"leaf 'p/0/W' is a float, not an array"),
        ({"p": {"a/b": np.ones(1)}}, {}, r"dict key 'a/b' under 'p'"),
        ({"p": {3: np.ones(1)}}, {}, r"dict key 3 under 'p'"),
        ({"__meta__": np.ones(1)}, {}, r"tree name '__meta__' cannot be saved"),
        ({"p": np.ones(2, dtype=bool)}, {}, r"leaf 'p' has dtype bool; expected float32"),
        ({}, {"history": {"loss": [np.float32(1.0)]}}, r"meta\['history'\]\['loss'\]\[0\] is"),
        ({}, {"rng": {1: "x"}}, r"meta\['rng'\] has key 1 of type int; JSON keys must be str"),
    ],
    ids=["scalar-leaf", "slash-key", "int-key", "reserved-name", "bool", "np-float", "meta-key"],
)
def test_save_refuses(trees, meta, match, tmp_path):
    with pytest.raises(CheckpointError, match=match):
        save_checkpoint(tmp_path / "c.npz", trees, meta)
    assert list(tmp_path.iterdir()) == []


# -- load errors -------------------------------------------------------------------------------
def _raw(path, header, arrays):
    """A hand-made .npz: ``header`` JSON (None: no header member) plus ``arrays``."""
    if header is not None:
        arrays = {**arrays, "__meta__": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _header(**changes):
    return {"format": FORMAT, "version": VERSION, "trees": {"p": "p"}, "meta": {}, **changes}


def _saved(path):
    return save_checkpoint(path, {"params": [{"W": np.linspace(1.0, 2.0, 4096)}]}, {"epoch": 1})


def _npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    return buffer.getvalue()


def _truncate(path):
    _saved(path)
    os.truncate(path, path.stat().st_size // 2)


def _flip_byte(path):
    _saved(path)
    data = bytearray(path.read_bytes())
    data[data.find(np.linspace(1.0, 2.0, 4096)[2000:2004].tobytes())] ^= 0xFF
    path.write_bytes(bytes(data))


BROKEN = {
    "missing": (lambda p: None, r"does not exist"),
    "directory": (lambda p: p.mkdir(), r"is not a file"),
    "empty": (lambda p: p.write_bytes(b""), r"not a backprop checkpoint \(an empty file\)"),
    "text": (lambda p: p.write_text("hello"), r"not a backprop checkpoint \(not a zip/.npz"),
    "npy": (lambda p: p.write_bytes(_npy_bytes()), r"not a zip/.npz file"),
    "truncated": (_truncate, r"truncated or corrupt"),
    "flipped-byte": (_flip_byte, r"truncated or corrupt \(BadZipFile: Bad CRC-32"),
    "no-meta": (lambda p: _raw(p, None, {"p": np.ones(1)}), r"no '__meta__' member"),
    "format": (lambda p: _raw(p, _header(format="x"), {}), r"format 'x', expected 'backprop-"),
    "newer": (lambda p: _raw(p, _header(version=VERSION + 1), {}), r"newer backprop.*upgrade"),
    "missing-leaf": (lambda p: _raw(p, _header(), {}), r"lists array 'p' but does not contain"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_load_errors_name_the_file(case, tmp_path):
    make, match = BROKEN[case]
    path = tmp_path / "ckpt.npz"
    make(path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_load_refuses_unknown_dtype(tmp_path):
    with pytest.raises(CheckpointError, match=r"dtype must be None, 'float32' or 'float64'"):
        load_checkpoint(_saved(tmp_path / "c.npz"), dtype="float16")


# -- specs -------------------------------------------------------------------------------------
def test_check_spec_lists_each_difference():
    saved = {"sizes": [64, 32, 10], "hidden": ["relu"], "loss": "cross_entropy"}
    current = {"sizes": (64, 64, 10), "hidden": ["relu"], "loss": "mse", "output": "softmax"}
    with pytest.raises(CheckpointError) as info:
        check_spec(saved, current, "model", "runs/x/last.npz")
    assert str(info.value) == (
        'checkpoint runs/x/last.npz was saved for a model with sizes=[64, 32, 10], loss="cross_'
        'entropy", output=<absent> but this model has sizes=[64, 64, 10], loss="mse", '
        'output="softmax"; load it with the same model, or start a new run'
    )


def test_check_spec_accepts_equal_specs():
    check_spec({"sizes": [2, 1], "lr": 0.1}, {"sizes": (2, 1), "lr": 0.1}, "optimizer", "x")
    with pytest.raises(CheckpointError, match="saved for an optimizer with lr=0.1 but this"):
        check_spec({"lr": 0.1}, {"lr": 0.2}, "optimizer", "x")
