"""Mixed precision for ensembles and sweeps: ``fit(..., ensemble=K, dtype="bfloat16" |
"float16")`` trains K members as one program exactly as `fit` trains one model in mixed
precision (float32 master weights and optimizer state, forward and backward in the low dtype,
float32 loss; float16: one dynamic loss scale per member).

Proven here, on JAX and torch:

- member k equals the same model trained alone in the same mixed precision: on torch bit for
  bit (step losses, parameters, optimizer state, loss scale); on JAX within tolerances from
  the compute dtype's eps (`_compare`), because XLA compiles the batched and the one-model
  programs differently: it skips some low-precision roundings inside fused code ("excess
  precision": the one-model step's float32 gradients are not all bfloat16 values) in one
  program and not the other, and it rewrites some float32 divisions as multiplications by a
  reciprocal (seen in the per-member Adam update), as in float32, where members differ from
  their solo runs by a few ulps. With ``XLA_FLAGS=--xla_allow_excess_precision=false`` the
  bfloat16 members equal their solo runs bit for bit (measured; not run here: the flag is
  process-wide);
- float16: a member whose gradients overflow skips its own steps and halves its own scale
  while the others train on (its Adam step count lags like its solo run's);
- a bfloat16 sweep of lr equals single runs with those rates; resume == uninterrupted; the
  checkpoint keeps the compute dtype (no bfloat16 <-> float32 resume); the compiled steps are
  cached per compute dtype; on a memory-mapped source the same as in memory; NumPy and
  array_api_strict refuse as for one model; the CLI trains a bfloat16 ensemble from
  ``[training] ensemble`` and ``[backend] dtype``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import backend_or_skip

import backprop as bp
from backprop.data.datasets import load_digits
from backprop.training import _mixed
from backprop.training._ensemble_step import make_ensemble_epoch, make_ensemble_step
from backprop.training.callbacks import ModelCheckpoint
from backprop.tree import tree_leaves

LOW = ["bfloat16", "float16"]
EPS = {"bfloat16": 2.0**-7, "float16": 2.0**-10}  # the spacing of 1.0 (8 and 11 significant bits)
K, SEED = 3, 4
BLOWN_UP = 1  # the float16 member whose output weights are scaled up until its backward overflows


@pytest.fixture(scope="module")
def digits():
    """192 standardized digits rows: 6 batches of 32."""
    X, Y = load_digits()
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    return X[:192], Y[:192]


def _mlp():
    return bp.MLP([64, 16, 10], hidden="relu", output="softmax", loss="cross_entropy")


def _starts(dtype):
    """Each member's initial parameters; float16: member BLOWN_UP's output weights x300, so
    its hidden-layer delta overflows float16 (65504) until its loss scale has come down."""
    starts = [_mlp().init(seed=SEED + k) for k in range(K)]
    if dtype == "float16":
        starts[BLOWN_UP] = [dict(p) for p in starts[BLOWN_UP]]
        starts[BLOWN_UP][-1]["W"] = starts[BLOWN_UP][-1]["W"] * 300.0
    return starts


def _kw(be, dtype, **more):
    return dict(
        backend=be, dtype=dtype, epochs=3, batch_size=32, seed=SEED, verbose=0,
        optimizer=bp.Adam(0.01), divergence_factor=None, **more,
    )  # fmt: skip


def _host(be, tree):
    return [np.asarray(be.to_numpy(v)) for v in tree_leaves(tree)]


def _member_state(ens, k):
    """Member k's optimizer state leaves (host), each in its solo shape."""
    out = []
    for v in _host(ens.backend, ens.opt_state):
        out.append(v[k].reshape(v.shape[2:] if v.ndim > 2 and v.shape[1] == 1 else v[k].shape))
    return out


def _compare(be, ens, k, alone, x, dtype):
    """Member k of ``ens`` against ``alone``: on torch bit for bit (step losses, parameters).
    On JAX (XLA compiles the two programs differently, module docstring) the step losses
    within 1 eps of the compute dtype (relative) and the predicted probabilities on ``x``
    within 8 eps; over 8 seeds x 3 members the largest seen were 0.32 and 2.5 eps
    (bfloat16), 0.044 and 0.045 eps (float16). Not the parameters: where a low-precision
    rounding flips a ReLU unit on a few rows, Adam (steps of about lr whatever the gradient's
    size) moves its weights by up to a few lr apart, which the outputs barely notice."""
    got, want = np.array(ens.member_history(k).step_losses), np.array(alone.history.step_losses)
    if be.name == "torch":
        np.testing.assert_array_equal(got, want)
        mine, solo = _host(be, ens.member_params(k)), _host(be, alone.params)
        for a, b in zip(mine, solo, strict=True):
            np.testing.assert_array_equal(a, b)
        return
    assert np.max(np.abs(got - want) / np.abs(want)) <= EPS[dtype], (k, got - want)
    outputs = np.asarray(ens.predict_members(x)[k]) - np.asarray(alone.predict(x))
    assert np.max(np.abs(outputs)) <= 8 * EPS[dtype], k


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("name", ["jax", "torch"])
def test_member_equals_alone(name, dtype, digits):
    be = backend_or_skip(name)
    x, y = digits
    starts = _starts(dtype)
    # JAX: one compiled call per step (the compiled epoch scans this same step; compiling
    # both would double the test's time)
    kw = _kw(be, dtype, compile_epoch=False)
    ens = bp.fit(_mlp(), x, y, ensemble=K, params=starts, **kw)
    assert {str(v.dtype).rsplit(".", 1)[-1] for v in tree_leaves(ens.params)} == {"float32"}
    for k in range(K):
        alone = bp.fit(_mlp(), x, y, params=starts[k], **kw)
        _compare(be, ens, k, alone, x, dtype)
        if dtype == "float16":  # its loss scale, good-step count and Adam step count
            mine = [v[k] for v in _host(be, ens.opt_state["loss_scale"])]
            assert mine == _host(be, alone.opt_state["loss_scale"]), k
            t = _host(be, ens.opt_state["optimizer"]["t"])[0][k]
            assert t == _host(be, alone.opt_state["optimizer"]["t"])[0], k
    if dtype == "float16":  # the blown-up member alone skipped steps and lowered its scale
        scales = _host(be, _mixed.LossScale.scale(ens.opt_state))[0]
        steps = _host(be, ens.opt_state["optimizer"]["t"])[0]
        others = [k for k in range(K) if k != BLOWN_UP]
        assert scales[BLOWN_UP] < _mixed.INIT_SCALE == scales[others[0]] == scales[others[1]]
        assert steps[BLOWN_UP] < steps[others[0]] == steps[others[1]] == 18.0


def test_bfloat16_sweep_of_lr_equals_single_runs(digits):
    """torch, bit for bit. (On JAX the ensemble runs the step `test_member_equals_alone`
    checks, the rates being traced inputs; each solo rate would compile a program of its own.)"""
    be = backend_or_skip("torch")
    x, y = digits
    lrs = [0.003, 0.01, 0.03]
    kw = _kw(be, "bfloat16", schedule="exponential")
    ens = bp.fit(_mlp(), x, y, sweep={"lr": lrs}, **kw)
    assert ens.members == K
    for k, lr in enumerate(lrs):
        alone = bp.fit(
            _mlp(), x, y, params=_mlp().init(seed=SEED + k), **{**kw, "optimizer": bp.Adam(lr)}
        )
        _compare(be, ens, k, alone, x, "bfloat16")
        assert ens.member_history(k)["lr"] == alone.history["lr"]


def _saver(folder):
    return [ModelCheckpoint(folder, keep_best=False)]


@pytest.mark.parametrize("dtype", LOW)
def test_resume_equals_uninterrupted(dtype, digits, tmp_path):
    """2 + 2 epochs == 4 epochs, bit for bit: the float32 master weights, Adam's state and
    (float16) the per-member loss scales and step counts are in the checkpoint."""
    be = backend_or_skip("torch")  # jax: the same code path, compiled (kept out for time)
    x, y = digits
    kw = {**_kw(be, dtype), "ensemble": K, "params": _starts(dtype), "validation_split": 0.25}
    whole = bp.fit(_mlp(), x, y, **{**kw, "epochs": 4}, callbacks=_saver(tmp_path / "whole"))
    bp.fit(_mlp(), x, y, **{**kw, "epochs": 2}, callbacks=_saver(tmp_path / "half"))
    last = tmp_path / "half" / "last.npz"
    resumed = bp.fit(
        _mlp(), x, y, **{**kw, "epochs": 4, "params": None}, resume=last,
        callbacks=_saver(tmp_path / "half"),
    )  # fmt: skip
    for tree in ("params", "opt_state"):
        for a, b in zip(
            _host(be, getattr(whole, tree)), _host(be, getattr(resumed, tree)), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    assert whole.history.step_losses == resumed.history.step_losses
    assert whole.history["val_loss"] == resumed.history["val_loss"]


@pytest.mark.parametrize("dtype", LOW)
def test_on_a_memory_mapped_source_equals_in_memory(dtype, digits, tmp_path):
    be = backend_or_skip("torch")
    x, y = (a.astype(np.float32) for a in digits)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mapped = [np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in ("x", "y")]
    kw = {**_kw(be, dtype, ensemble=K), "epochs": 2}
    source, memory = bp.fit(_mlp(), *mapped, **kw), bp.fit(_mlp(), x, y, **kw)
    assert source.history.step_losses == memory.history.step_losses
    for a, b in zip(_host(be, source.params), _host(be, memory.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_resumes_only_in_its_compute_dtype(digits, tmp_path):
    """A bfloat16 ensemble checkpoint holds float32 master weights like a float32 one: the
    compute dtype saved with the fit settings keeps either from continuing the other."""
    be = backend_or_skip("torch")
    x, y = digits[0][:64], digits[1][:64]
    kw = dict(backend=be, batch_size=32, seed=SEED, verbose=0, ensemble=2)
    for saved, resumed in (
        ("bfloat16", "float32"),
        ("float32", "bfloat16"),
        ("float16", "bfloat16"),
    ):
        folder = tmp_path / saved
        bp.fit(_mlp(), x, y, epochs=1, dtype=saved, callbacks=_saver(folder), **kw)
        with pytest.raises(bp.CheckpointError, match="compute_dtype"):
            bp.fit(_mlp(), x, y, epochs=2, dtype=resumed, resume=folder / "last.npz", **kw)


def test_compiled_ensemble_steps_are_cached_per_compute_dtype():
    """The same ensemble and optimizer in float32, bfloat16 and float16 are three compiled
    programs (the cache keys on the compute dtype, not only on the model and optimizer); that
    each computes in its dtype: `test_member_equals_alone`, `test_the_ensemble_step_runs_...`."""
    be = backend_or_skip("jax")
    ens, optimizer = bp.Ensemble(_mlp(), 2), bp.Adam(1.0)
    for make in (make_ensemble_step, make_ensemble_epoch):
        f32, bf16 = make(ens, optimizer, be), make(ens, optimizer, be, "bfloat16")
        assert f32 is not bf16
        assert make(ens, optimizer, be, "bfloat16") is bf16  # cached
        assert make(ens, optimizer, be, "float16") not in (f32, bf16)


def test_the_ensemble_step_runs_the_passes_in_the_low_dtype(digits, monkeypatch):
    be = backend_or_skip("torch")
    model = _mlp()
    seen = []
    forward = model._forward

    def probe(xp, p, X, *args, **kwargs):
        seen.append((str(X.dtype).rsplit(".", 1)[-1], str(p[0]["W"].dtype).rsplit(".", 1)[-1]))
        return forward(xp, p, X, *args, **kwargs)

    monkeypatch.setattr(model, "_forward", probe)
    x, y = digits[0][:64], digits[1][:64]
    bp.fit(model, x, y, ensemble=2, backend=be, dtype="bfloat16", epochs=1, verbose=0)
    assert ("bfloat16", "bfloat16") in seen  # the training steps
    assert ("float32", "float32") in seen  # evaluation and metrics stay float32


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_backends_without_the_dtype_refuse_as_for_one_model(name, dtype):
    be = backend_or_skip(name)
    x, y = np.zeros((8, 64)), np.eye(10)[np.arange(8) % 10]
    messages = []
    for extra in ({}, {"ensemble": 2}, {"sweep": {"lr": [0.1, 0.2]}}):
        with pytest.raises(ValueError, match=f"backend '{name}' has no {dtype}") as info:
            bp.fit(_mlp(), x, y, backend=be, dtype=dtype, epochs=1, verbose=0, **extra)
        messages.append(str(info.value))
    assert len(set(messages)) == 1, messages


def test_a_per_member_loss_scale_refuses_one_models_update():
    be = backend_or_skip("torch")
    scaled = _mixed.LossScale(bp.SGD(0.1), members=2)
    params = bp.Ensemble(_mlp(), 2).init(backend=be)
    with pytest.raises(ValueError, match="built for members=2"):
        scaled.update(params, params, scaled.init(params), None)


def test_cli_trains_a_bfloat16_ensemble(tmp_path, capsys):
    """``[training] ensemble = 2`` with ``[backend] dtype = "bfloat16"``: exit 0, the member
    lines, and the run's checkpoint records the compute dtype."""
    backend_or_skip("torch")
    from backprop.app import cli
    from backprop.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    code = cli.main([
        "train", "configs/xor.toml", "--set", "backend.name=torch", "--set",
        "backend.dtype=bfloat16", "--set", "training.ensemble=2", "--set", "training.epochs=3",
        "--run-dir", str(run),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ensemble of 2 members trained as one program" in out and "member 1 (seed 1)" in out
    assert "bfloat16" in out
    meta = load_checkpoint(run / "last.npz").meta
    assert meta["fit"]["compute_dtype"] == "bfloat16" and meta["dtype"] == "float32"
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
