"""Tests written for the mutants that survived `tools/mutation_test.sh` (see docs/testing.md).

Each test pins behaviour the other tests left open: an exact user-visible message, a boundary
(``<`` against ``<=``), a fallback path (no ``/proc``), or an argument that the common case does
not exercise (sample weights in a fused loss, a backend whose arrays NumPy cannot read). The
expected values come from the documented rules, computed here by hand or with NumPy, never from
the code under test.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import types

import numpy as np
import pytest
from conftest import backend_or_skip
from test_checkpoint import _header, _raw  # hand-made .npz files

from backprop.nn.activations import get_activation
from backprop.nn.layers import Dense
from backprop.nn.losses import get_loss
from backprop.training import checkpoint
from backprop.training.checkpoint import CheckpointError
from backprop.training.checkpoint import load_checkpoint as load
from backprop.training.checkpoint import save_checkpoint as save
from backprop.training.optimizers import SGD, Adam, AdamW, RMSProp, clip_by_global_norm
from backprop.training.schedules import ReduceOnPlateau


# -- activations and losses --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "a", "expected"),
    [
        # sigmoid f' = a(1-a) < 0.1 / 4: saturated outside 0.5 -+ sqrt(0.225) = (0.026, 0.974)
        ("sigmoid", [0.02, 0.03, 0.5, 0.97, 0.98], [True, False, False, False, True]),
        # tanh f' = 1 - a^2 < 0.1 * 1: saturated where |a| > sqrt(0.9) = 0.9487
        ("tanh", [-0.96, -0.94, 0.0, 0.94, 0.96], [True, False, False, False, True]),
    ],
    ids=["sigmoid", "tanh"],
)
def test_saturated_is_below_a_tenth_of_the_peak_derivative(name, a, expected):
    act = get_activation(name)
    a = np.asarray([a])
    z = np.arctanh(a) if name == "tanh" else np.log(a / (1 - a))
    got = act.saturated(np, z, a)
    assert got.dtype == bool and got.tolist() == [expected]


def test_saturated_boundary_is_strict():
    # This float64 a has a * (1 - a) == 0.025 == 0.1 * 1/4 exactly (found by stepping with
    # np.nextafter from 0.5 - sqrt(0.225)): f' equal to a tenth of the peak is not saturated.
    a = np.asarray([[0.025658350974743102]])
    assert a[0, 0] * (1.0 - a[0, 0]) == 0.1 * 0.25
    z = np.log(a / (1 - a))
    assert get_activation("sigmoid").saturated(np, z, a).tolist() == [[False]]


@pytest.mark.parametrize("name", ["relu", "identity", "softplus", "gelu"])
def test_saturated_refused_for_activations_that_do_not_saturate(name):
    with pytest.raises(TypeError, match=rf"^activation '{name}' does not saturate$"):
        get_activation(name).saturated(np, np.zeros((1, 1)), np.zeros((1, 1)))


def test_softmax_derivative_points_to_vjp():
    with pytest.raises(
        TypeError,
        match=r"^softmax has no elementwise derivative; use vjp \(its Jacobian is full\)$",
    ):
        get_activation("softmax").derivative(np, np.zeros((1, 2)), np.full((1, 2), 0.5))


def test_weighted_bce_from_logits_matches_numpy():
    # J = (1/N) sum_i w_i sum_k [log(1 + e^z) - y z], written in plain NumPy.
    z = np.array([[2.0, -1.0], [0.5, 3.0], [-2.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = np.array([[0.5], [2.0], [1.0]])
    expected = np.sum(w * (np.log1p(np.exp(z)) - y * z)) / 3
    got = get_loss("binary_cross_entropy").value_from_logits(np, z, y, w)
    assert float(got) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "leaky_relu", "slope": -1},
            r"^activation 'leaky_relu': slope must be a number in \[0, inf\], received -1$",
        ),
        (
            {"name": "elu", "alpha": 0},
            r"^activation 'elu': alpha must be a number in \(0, inf\], received 0$",
        ),
        ({"name": "elu", "alpha": math.inf}, r"alpha must be a number in \(0, inf\], received inf"),
    ],
    ids=["leaky_relu-slope", "elu-alpha-0", "elu-alpha-inf"],
)
def test_activation_hyperparameter_messages(spec, message):
    with pytest.raises(ValueError, match=message):
        get_activation(spec)


def test_leaky_relu_slope_zero_is_allowed():
    # slope in [0, inf]: 0 is the closed end (a plain relu); f' is 0 on the negative side.
    act = get_activation({"name": "leaky_relu", "slope": 0})
    a = act.forward(np, np.array([[-2.0, 3.0]]))
    assert a.tolist() == [[0.0, 3.0]] and act.derivative(np, None, a).tolist() == [[0.0, 1.0]]


def test_elu_derivative_at_zero_is_the_left_one():
    # Documented: f' = 1 where a > 0 else a + alpha; at z = 0 that is alpha (here 2, not 1).
    act = get_activation({"name": "elu", "alpha": 2.0})
    a = act.forward(np, np.array([[0.0, 1.0, -1.0]]))
    expected = [[2.0, 1.0, 2.0 * math.exp(-1.0)]]
    np.testing.assert_allclose(act.derivative(np, None, a), expected, rtol=1e-15)


def test_cross_entropy_from_logits_shifts_each_row_by_its_own_max():
    # Rows on very different scales: row 2's log-softmax is [-1 - log(1 + 1/e), -log(1 + 1/e)],
    # finite, though exp(-1000) underflows against row 1's max.
    z = np.array([[0.0, 1.0], [-1000.0, -999.0]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    row1 = -math.log1p(math.exp(-1.0))
    row2 = -1.0 - math.log1p(math.exp(-1.0))
    got = get_loss("cross_entropy").value_from_logits(np, z, y)
    assert float(got) == pytest.approx(-(row1 + row2) / 2, rel=1e-14)


@pytest.mark.parametrize("delta", [True, "1", math.inf, 0.0], ids=["bool", "str", "inf", "zero"])
def test_huber_delta_must_be_a_positive_finite_number(delta):
    with pytest.raises(ValueError, match=r"^loss 'huber': delta must be a number > 0, received "):
        get_loss({"name": "huber", "delta": delta})


def test_exp_output_saturates_just_below_the_largest_float():
    # Documented cap: z <= log(finfo.max) - 1e-3, so a = finfo.max * exp(-1e-3) ~ 0.999 * max.
    for dtype in (np.float32, np.float64):
        top = float(np.finfo(dtype).max)
        a = get_activation("exp").forward(np, np.array([[1e4, 0.0]], dtype=dtype))
        assert np.isfinite(a).all() and 0.998 * top < float(a[0, 0]) < top
        assert float(a[0, 1]) == 1.0


def test_weighted_poisson_from_logits_matches_numpy():
    # Half the Poisson deviance with a = exp(z): (1/N) sum_i w_i sum_k (y log(y/a) - y + a),
    # 0 * log 0 = 0; targets below and above 1 (y log y changes sign at 1).
    z = np.array([[0.3, -1.0], [1.2, 0.0], [-0.5, 2.0]])
    y = np.array([[0.0, 0.5], [3.0, 0.2], [1.0, 7.0]])
    w = np.array([[0.5], [2.0], [1.0]])
    a = np.exp(z)
    ylogy_over_a = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / a), 0.0)
    expected = np.sum(w * (ylogy_over_a - y + a)) / 3
    got = get_loss("poisson").value_from_logits(np, z, y, w)
    assert float(got) == pytest.approx(expected, rel=1e-13)


# -- optimizers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SGD(lr=0), r"^SGD: lr must be a finite number > 0, received 0$"),
        (lambda: SGD(momentum=1.0), r"^SGD: momentum must be a number in \[0, 1\), received 1.0$"),
        (lambda: SGD(momentum=False), r"^SGD: momentum must be a number in \[0, 1\), receiv"),
        (lambda: SGD(momentum="0.5"), r"^SGD: momentum must be a number in \[0, 1\), receiv"),
        (
            lambda: Adam(epsilon_on="sqrt"),
            r"^Adam: epsilon_on must be one of \['vhat', 'v'\], received 'sqrt'; 'vhat': w -= lr "
            r"\* mhat / \(sqrt\(vhat\) \+ eps\) \(Kingma & Ba Algorithm 1, torch\), 'v': w -= "
            r"lr_t \* m / \(sqrt\(v\) \+ eps\) \(scikit-learn, Keras\)$",
        ),
        (lambda: Adam().init({}), r"^Adam: params holds no arrays, received \{\}$"),
        (
            lambda: SGD(nesterov=True),
            r"^SGD: nesterov=True needs momentum > 0, received momentum=0$",
        ),
        (lambda: RMSProp(lr=-1.0), r"^RMSProp: lr must be a finite number > 0, received -1.0$"),
        (lambda: RMSProp(epsilon=0.0), r"^RMSProp: epsilon must be a finite number > 0, rec"),
        (lambda: RMSProp(rho=1.0), r"^RMSProp: rho must be a number in \[0, 1\), received 1.0$"),
        (
            lambda: AdamW(weight_decay=math.inf),
            r"^AdamW: weight_decay must be a finite number >= 0, received inf$",
        ),
    ],
    ids=[
        "sgd-lr",
        "sgd-momentum-1",
        "sgd-momentum-false",
        "sgd-momentum-str",
        "adam-epsilon_on",
        "adam-empty-params",
        "sgd-nesterov",
        "rmsprop-lr",
        "rmsprop-epsilon",
        "rmsprop-rho",
        "adamw-weight_decay",
    ],
)
def test_optimizer_hyperparameter_messages(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_clip_by_global_norm_keeps_the_gradients_dtype(backend):
    # ||g|| = 5 > 1: scaled by 1/5, still float32 arrays of the backend.
    grads = {"W": backend.asarray(np.array([3.0, 4.0]), "float32")}
    out = clip_by_global_norm(grads, 1.0)
    host = np.asarray(backend.to_numpy(out["W"]))
    assert type(out["W"]) is type(grads["W"]) and host.dtype == np.float32
    np.testing.assert_allclose(host, [0.6, 0.8], rtol=1e-6)


# -- ReduceOnPlateau ---------------------------------------------------------------------------
def _run(schedule, values, base_lr=1.0):
    state = schedule.init()
    for value in values:
        state = schedule.end_epoch(state, value, base_lr=base_lr)
    return state


def test_plateau_first_epoch_without_a_value_counts_one_bad_epoch():
    # bad_epochs starts at 0: a missing value (None) makes it 1, not above patience=1.
    s = ReduceOnPlateau(patience=1)
    assert _run(s, [None]) == {"scale": 1.0, "best": math.inf, "bad_epochs": 1, "exhausted": False}
    assert _run(s, [None, None])["scale"] == pytest.approx(0.2)


def test_plateau_stops_when_the_rate_equals_min_lr():
    # base_lr * scale == min_lr exactly: "<= min_lr" means exhausted, not another reduction.
    s = ReduceOnPlateau(patience=0, min_lr=0.5, factor=0.5)
    state = _run(s, [1.0, 1.0], base_lr=0.5)
    assert state["exhausted"] is True and state["scale"] == 1.0
    assert s.should_stop(state)


def test_plateau_explicit_mode_overrides_the_monitor_name():
    # monitor "loss" is minimized by "auto"; mode="max" makes a rising loss an improvement.
    s = ReduceOnPlateau(monitor="loss", mode="max", patience=0)
    state = _run(s, [1.0, 2.0, 3.0])
    assert state["best"] == 3.0 and state["scale"] == 1.0 and state["bad_epochs"] == 0


def test_plateau_factor_must_be_below_one():
    with pytest.raises(ValueError, match=r"factor must be a number in \(0, 1\), received 1.0"):
        ReduceOnPlateau(factor=1.0)


@pytest.mark.parametrize(
    ("base_lr", "error", "message"),
    [
        (
            None,
            TypeError,
            r"^ReduceOnPlateau.end_epoch: base_lr is required \(the optimizer's configured "
            r"rate, to compare base_lr \* scale with min_lr\), received None$",
        ),
        (
            0.0,
            ValueError,
            r"^ReduceOnPlateau.end_epoch: base_lr must be a finite number > 0, received 0.0$",
        ),
    ],
    ids=["none", "zero"],
)
def test_plateau_end_epoch_base_lr_messages(base_lr, error, message):
    s = ReduceOnPlateau()
    with pytest.raises(error, match=message):
        s.end_epoch(s.init(), 1.0, base_lr=base_lr)


# -- checkpoints: saving -----------------------------------------------------------------------
class _DeviceArray:
    """An array NumPy cannot read directly (like a CuPy array): only ``backend.to_numpy``
    (here ``.get()``) gives its values."""

    def __init__(self, values):
        self._values = np.asarray(values)
        self.shape, self.dtype = self._values.shape, self._values.dtype

    def get(self):
        return self._values.copy()


class _DeviceBackend:
    name, device_name = "device", "stub"

    def to_numpy(self, x):
        return x.get()  # AttributeError for a NumPy array: host trees must not come here

    def supports_dtype(self, dtype):
        return dtype == "float32"

    def asarray(self, host, dtype):
        return np.asarray(host, dtype=dtype)


def test_save_moves_arrays_with_the_backend_and_host_trees_with_numpy(tmp_path):
    path = save(
        tmp_path / "c.npz",
        {"p": {"W": _DeviceArray([1.0, 2.0])}},
        {},
        backend=_DeviceBackend(),
        host_trees={"h": np.array([3.0])},
    )
    trees = load(path).trees
    assert trees["p"]["W"].tolist() == [1.0, 2.0] and trees["h"].tolist() == [3.0]


@pytest.mark.parametrize(
    ("trees", "meta", "message"),
    [
        ({}, [1], r"^trees and meta must be dicts, received dict and list$"),
        ([], {}, r"^trees and meta must be dicts, received list and dict$"),
        ({"a/b": np.ones(1)}, {}, r"^tree name 'a/b' cannot be saved; expected a non-empty str"),
        ({"": np.ones(1)}, {}, r"^tree name '' cannot be saved"),
        ({7: np.ones(1)}, {}, r"^tree name 7 cannot be saved"),
        (
            {"p": {"": np.ones(1)}},
            {},
            r"^dict key '' under 'p' cannot be saved; keys must be non-empty str without '/'; "
            r"rename the entry$",
        ),
        (
            {"p": type("Shaped", (), {"shape": ()})()},
            {},
            r"^leaf 'p' is a Shaped, not an array; store arrays in trees and plain numbers in "
            r"meta$",
        ),
        (
            {},
            {"s": {1, 2}},
            r"^meta\['s'\] is a set, which is not JSON; convert it to int, float, str, list or "
            r"dict \(e\.g\. \.tolist\(\) for NumPy values\)$",
        ),
    ],
    ids=[
        "meta-list",
        "trees-list",
        "slash-name",
        "empty-name",
        "int-name",
        "empty-key",
        "shape-only",
        "set-in-meta",
    ],
)
def test_save_messages(trees, meta, message, tmp_path):
    with pytest.raises(CheckpointError, match=message):
        save(tmp_path / "c.npz", trees, meta)


def test_save_refuses_a_name_given_as_tree_and_host_tree(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=r"^tree names \['b'\] are given as trees and as host_trees; give each name once$",
    ):
        save(tmp_path / "c.npz", {"a": np.ones(1), "b": np.ones(1)}, {}, host_trees={"b": 1})


def test_save_creates_missing_parent_folders(tmp_path):
    path = save(tmp_path / "a" / "b" / "c.npz", {"p": np.ones(2)}, {})
    assert load(path).trees["p"].tolist() == [1.0, 1.0]


def test_failed_write_names_the_error_type(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        CheckpointError,
        match=r"could not write checkpoint .*: (FileExistsError|NotADirectoryError): .*; check "
        r"free disk space and permissions \(any earlier checkpoint there is unchanged\)$",
    ):
        save(tmp_path / "file" / "c.npz", {"p": np.ones(1)}, {})


def test_temporary_file_lies_beside_the_target(tmp_path):
    # mkstemp in the target's folder, named .NAME.XXXXXXXX.tmp (what a later save cleans up).
    seen = []

    def write(f):
        seen.extend(sorted(p.name for p in tmp_path.iterdir()))
        f.write(b"data")

    checkpoint.write_atomic(tmp_path / "c.npz", write)
    assert len(seen) == 1 and re.fullmatch(r"\.c\.npz\.[a-z0-9_]{8}\.tmp", seen[0]), seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
    assert (tmp_path / "c.npz").read_bytes() == b"data"


def test_stale_cleanup_leaves_symlinks_alone(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("x")
    link = tmp_path / ".c.npz.abcdefgh.tmp"
    link.symlink_to(target)
    stale = tmp_path / ".c.npz.ijklmnop.tmp"
    stale.write_text("left by a killed save")
    save(tmp_path / "c.npz", {"p": np.ones(1)}, {})
    assert link.is_symlink() and target.exists() and not stale.exists()


@pytest.mark.parametrize(
    "status",
    [OSError(2, "no /proc"), "Name:\tpython\n", "Umask:\tnot-octal\n"],
    ids=["no-proc", "no-umask-line", "bad-umask"],
)
def test_file_mode_without_proc_status(status, tmp_path, monkeypatch):
    # No /proc (other systems), no Umask line, or an unreadable one: the umask is read by setting
    # and restoring it; the file still gets 0o666 & ~umask and the umask is unchanged after.
    real_read_text = pathlib.Path.read_text

    def read_text(self, *args, **kwargs):
        if str(self) != "/proc/self/status":
            return real_read_text(self, *args, **kwargs)
        if isinstance(status, OSError):
            raise status
        return status

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    old = os.umask(0o027)
    try:
        path = save(tmp_path / "c.npz", {"p": np.ones(1)}, {})
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_failed_cleanup_keeps_the_write_error(tmp_path, monkeypatch):
    # The write fails, then removing the temporary file fails too: the caller still gets the
    # write's own error, not one from the cleanup.
    monkeypatch.setattr(checkpoint.os, "unlink", _refuse)

    def write(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        checkpoint.write_atomic(tmp_path / "c.npz", write)


def test_stale_temporaries_that_cannot_be_listed_or_removed_are_left(tmp_path, monkeypatch):
    stale = tmp_path / ".c.npz.abcdefgh.tmp"
    stale.write_text("left by a killed save")
    monkeypatch.setattr(checkpoint.os, "unlink", _refuse)
    checkpoint.write_atomic(tmp_path / "c.npz", lambda f: f.write(b"x"))  # unlink fails: kept
    monkeypatch.setattr(checkpoint.os, "scandir", _refuse)
    checkpoint.write_atomic(tmp_path / "c.npz", lambda f: f.write(b"y"))  # listing fails
    assert stale.exists() and (tmp_path / "c.npz").read_bytes() == b"y"


def _refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


# -- checkpoints: loading ----------------------------------------------------------------------
BAD_HEADERS = {
    "list": ([1, 2], r"is not a backprop checkpoint \(format 'list', expected"),
    "version-0": (_header(version=0), r"has an invalid version 0$"),
    "version-str": (_header(version="1"), r"has an invalid version '1'$"),
    "no-meta": (
        {k: v for k, v in _header().items() if k != "meta"},
        r"has corrupt metadata \(no trees or meta\)$",
    ),
    "host-not-str": (_header(host=[1]), r"has corrupt metadata \(host \[1\]\)$"),
    "leaf-not-str": (_header(trees={"p": 3}), r"has corrupt metadata \(leaf 3\)$"),
    "nested-missing": (
        _header(trees={"p": {"a": ["p/a/0"]}}),
        r"lists array 'p/a/0' but does not contain it; the file is incomplete or was edited; "
        r"use an earlier checkpoint$",
    ),
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_bad_headers_name_the_file(case, tmp_path):
    header, message = BAD_HEADERS[case]
    path = _raw(tmp_path / "c.npz", header, {"p": np.ones(1)} if case != "nested-missing" else {})
    with pytest.raises(CheckpointError, match=rf"^(checkpoint )?{re.escape(str(path))} {message}"):
        load(path)


def test_corrupt_json_names_the_file(tmp_path):
    path = tmp_path / "c.npz"
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(path))} has corrupt "):
        load(path)


def test_no_header_lists_the_first_five_members(tmp_path):
    path = _raw(tmp_path / "c.npz", None, {k: np.ones(1) for k in "abcdefg"})
    with pytest.raises(
        CheckpointError,
        match=r"it holds \['a', 'b', 'c', 'd', 'e'\]\); pass a file written by save_checkpoint$",
    ):
        load(path)


def test_foreign_file_message(tmp_path):
    path = tmp_path / "c.npz"
    path.write_text("hello")
    with pytest.raises(
        CheckpointError,
        match=r"is not a backprop checkpoint \(not a zip/.npz file\); pass a file written by "
        r"save_checkpoint$",
    ):
        load(path)


def test_pickled_members_are_refused(tmp_path):
    # An object array needs pickle to load; a checkpoint never holds one and must not run it.
    path = _raw(tmp_path / "c.npz", _header(), {"p": np.ones(1), "x": np.array([{}], object)})
    with pytest.raises(
        CheckpointError,
        match=r"truncated or corrupt \(ValueError: Object arr.*\); use an earlier checkpoint or "
        r"start a new run$",
    ):
        load(path)


def test_host_trees_keep_their_dtype_when_loading_with_a_dtype(tmp_path):
    path = save(tmp_path / "c.npz", {"p": np.ones(2)}, {}, host_trees={"h": np.arange(2.0)})
    loaded = load(path, backend_or_skip("numpy"), dtype="float32").trees
    assert loaded["p"].dtype == np.float32 and loaded["h"].dtype == np.float64


def test_missing_float_dtype_on_the_backend_names_array_and_backend(tmp_path):
    path = save(tmp_path / "c.npz", {"p": {"W": np.ones(2)}}, {})
    with pytest.raises(
        CheckpointError,
        match=r"^array 'p/W' is float64 but backend 'device' on stub has no float64; load with "
        r"dtype='float32'$",
    ):
        load(path, _DeviceBackend())


def test_int32_limits_load_and_one_beyond_is_refused_with_its_key(tmp_path):
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    numpy = backend_or_skip("numpy")
    path = save(tmp_path / "c.npz", {"n": {"k": np.array([lo, hi], dtype=np.int64)}}, {})
    loaded = load(path, numpy).trees["n"]["k"]
    assert loaded.dtype == np.int32 and loaded.tolist() == [lo, hi]
    path = save(tmp_path / "d.npz", {"n": {"k": np.array([hi + 1], dtype=np.int64)}}, {})
    with pytest.raises(
        CheckpointError,
        match=r"^integer array 'n/k' \(int64\) has values outside int32, the integer type every "
        r"backend has; load it with backend=None to get the NumPy array$",
    ):
        load(path, numpy)


# -- Dense -------------------------------------------------------------------------------------
@pytest.mark.parametrize("units", [True, "3", 0], ids=["bool", "str", "zero"])
def test_dense_units_must_be_a_positive_int(units):
    with pytest.raises(ValueError, match=r"^layer 'dense': units must be an int >= 1, received "):
        Dense(units)


def test_dense_refuses_inputs_that_are_not_1d():
    with pytest.raises(
        ValueError,
        match=r"^layer 'dense' takes 1-D features \(n_in,\), received input shape \(2, 3\); put "
        r"Flatten\(\) or GlobalAveragePool1D\(\) before it$",
    ):
        Dense(4).output_shape((2, 3))


def test_dense_backward_z_returns_dx_unless_told_not_to():
    # dJ/dW = x^T dz, dJ/db = column sums of dz, dJ/dx = dz W^T, written out in NumPy.
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    dz = rng.normal(size=(4, 2))
    layer, cache = Dense(2), types.SimpleNamespace(x=x)
    grads, dx = layer.backward_z(np, {"W": w, "b": b}, cache, dz)
    np.testing.assert_allclose(grads["W"], x.T @ dz, rtol=1e-14)
    np.testing.assert_allclose(grads["b"], dz.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(dx, dz @ w.T, rtol=1e-14)
    assert layer.backward_z(np, {"W": w, "b": b}, cache, dz, need_dx=False)[1] is None


# -- check_spec --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("saved", "current"),
    [
        ({"x": math.nan}, {"x": math.nan}),  # NaN != NaN, but the JSON texts agree
        ({"o": {"a": math.nan, "b": 1}}, {"o": {"b": 1, "a": math.nan}}),  # key order
        ({"x": np.int64(3)}, {"x": np.int64(3)}),  # not JSON: compared by repr
    ],
    ids=["nan", "nan-key-order", "repr"],
)
def test_check_spec_accepts_equal_specs(saved, current):
    checkpoint.check_spec(saved, current, "model", "c.npz")


@pytest.mark.parametrize(
    ("saved", "current", "message"),
    [
        ({"x": 1}, {"x": None}, r"saved for a model with x=1 but this model has x=null;"),
        ({"x": None}, {"x": 1}, r"saved for a model with x=null but this model has x=1;"),
        ({}, {"x": 1}, r"saved for an optimizer with x=<absent> but this optimizer has x=1;"),
    ],
    ids=["now-none", "was-none", "absent"],
)
def test_check_spec_reports_a_value_against_null(saved, current, message):
    what = "optimizer" if not saved else "model"
    with pytest.raises(CheckpointError, match=rf"^checkpoint c.npz was {message} load it with"):
        checkpoint.check_spec(saved, current, what, "c.npz")


def test_check_spec_shows_dict_values_with_sorted_keys():
    # Both sides printed in one key order, so two dicts differing in one value line up.
    saved, current = {"o": {"b": 1, "a": 2}}, {"o": {"a": 2, "b": 3}}
    with pytest.raises(CheckpointError, match=r'with o=\{"a": 2, "b": 1\} but .* has o=\{"a": 2'):
        checkpoint.check_spec(saved, current, "model", "c.npz")


def test_dense_examples_are_not_square_and_cover_the_output_paths():
    # The layer gradient checks run `Dense.examples()`: a square W (n_in == units) would let a
    # transposed W in the backward pass go unnoticed, and the examples should reach the
    # identity, a hidden activation with a derivative, and softmax's full-Jacobian vjp.
    examples = Dense.examples()
    assert all(layer.units != shape[0] for layer, shape in examples)
    names = {layer.activation.name for layer, _ in examples}
    assert {"identity", "softmax"} <= names and len(names) == 3
