"""JAX (XLA:CPU) rounds an ensemble's batched program like each member's own program.

XLA:CPU's YNNPACK fusions summed a (K, N, u) bias gradient over N in another order than
XLA's own emitter sums one member's (N, u), so ensemble member k drifted from its solo fit
(0.3 float32 ulps of the loss in epoch 1, thousands after 30; benchmarks/README.md, W3).
`backends._jax._compiler_options` compiles without YNNPACK fusions; proven here:

- the compiled batched sum over rows equals the per-member sums bit for bit;
- member k of ``fit(ensemble=K)`` equals ``fit(params=model.init(seed + k))`` bit for bit:
  every epoch's loss and the final parameters (float32, 5 epochs, 4 members);
- compiled programs hold no YNNPACK fusion; a user who sets the option in ``XLA_FLAGS``
  keeps it (the backend then passes nothing).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip, to_host

import backends._jax as jax_backend
import backprop as bp
from backprop.data.datasets import load_digits

K, EPOCHS, ROWS = 4, 5, 512


@pytest.fixture
def jax_be():
    return backend_or_skip("jax")


def test_compiled_row_sum_of_stacked_members_equals_each_member_bit_for_bit(jax_be):
    """The bias gradient's reduction: ``sum(dz, axis=-2)`` over (K, N, u) vs K (N, u)."""
    xp = jax_be.xp
    dz = jax_be.asarray(np.random.default_rng(0).standard_normal((8, 32, 64)), "float32")
    row_sum = jax_be.compile(lambda d: xp.sum(d, axis=-2))
    stacked = to_host(jax_be, row_sum(dz))
    alone = np.stack([to_host(jax_be, row_sum(dz[k, ...])) for k in range(8)])
    np.testing.assert_array_equal(stacked, alone)


def _model():
    return bp.MLP([64, 64, 10], hidden="relu", output="softmax", loss="cross_entropy")


def test_member_equals_its_solo_fit_bit_for_bit(jax_be):
    """W3 in small: digits, 64-64-10 ReLU/softmax, SGD lr 0.1, batch 32, float32."""
    X, Y = load_digits()
    X, Y = X[:ROWS], Y[:ROWS]
    kw = dict(
        optimizer=bp.SGD(lr=0.1), backend=jax_be, dtype="float32", epochs=EPOCHS,
        batch_size=32, seed=0, shuffle=True, metric=None, train_metrics=False, verbose=0,
    )  # fmt: skip
    result = bp.fit(_model(), X, Y, ensemble=K, **kw)
    for k in range(K):
        model = _model()
        alone = bp.fit(model, X, Y, params=model.init(seed=k, backend=jax_be), **kw)
        assert result.member_history(k)["loss"] == alone.history["loss"], f"member {k}"
        member = result.member_params(k)
        for i, (got, want) in enumerate(zip(member, alone.params, strict=True)):
            for name in want:
                np.testing.assert_array_equal(
                    to_host(jax_be, got[name]), to_host(jax_be, want[name]),
                    err_msg=f"member {k}, layer {i} {name}",
                )  # fmt: skip


@pytest.mark.parametrize(
    "flags",
    ["--xla_cpu_experimental_ynn_fusion_type=", "--xla_cpu_experimental_ynn_fusion_type=dot"],
)
def test_an_xla_flags_setting_of_the_option_is_kept(jax_be, monkeypatch, flags):
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=1 {flags}")
    monkeypatch.setattr(jax_backend, "_options_cache", [])
    assert jax_backend._compiler_options() == {}


def test_compiled_programs_have_no_ynnpack_fusion_and_the_probe_runs_once(jax_be, monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(jax_backend, "_options_cache", [])
    xp = jax_be.xp
    dz = jax_be.asarray(np.ones((8, 32, 64)), "float32")
    program = jax_be.compile(lambda d: xp.sum(d, axis=-2)).lower(dz).compile().as_text()
    assert "__ynn_fusion" not in program
    assert len(jax_backend._options_cache) == 1  # probed once, then cached
