"""The compiled training paths: whole-epoch loops (`make_epoch`, ``fit(compile_epoch=...)``),
cached compiled steps (no recompiles across epochs, partial batches or `fit` calls) and donated
buffers (references the user or a callback holds stay valid)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import backend_or_skip, eps, to_host
from fit_helpers import blobs, classifier

import backprop as bp
from backprop.training import make_batch_step, make_epoch, make_step
from backprop.training import step as step_module
from backprop.training.fit import _Loop
from backprop.training.optimizers import SGD, Adam

# 60 rows in batches of 16: three full batches and a partial one of 12.
X, LABELS = blobs(n_per_class=20)


def _fit(backend, dtype="float64", model=None, **kwargs):
    settings = dict(optimizer=Adam(0.01), backend=backend, dtype=dtype, epochs=3, batch_size=16)
    settings.update(verbose=0, seed=1)
    settings.update(kwargs)
    return bp.fit(model or classifier(), X, LABELS, **settings)


def test_compile_epoch_gives_the_step_by_step_numbers(backend, dtype):
    """One `make_epoch` call per epoch (jax.lax.scan on JAX, a Python loop elsewhere) computes
    exactly the steps that one call per step computes."""
    looped = _fit(backend, dtype, compile_epoch=True)
    stepped = _fit(backend, dtype, compile_epoch=False)
    # Bit-identical where both run the same eager ops; XLA may fuse the scan's body differently
    # from the single step, so allow a few rounding steps per update on compiling backends.
    rtol = 50 * eps(dtype) if backend.compiles else 0.0
    np.testing.assert_allclose(looped.history.step_losses, stepped.history.step_losses, rtol=rtol)
    for a, b in zip(looped.params, stepped.params, strict=True):
        for k in a:
            np.testing.assert_allclose(
                to_host(backend, a[k]), to_host(backend, b[k]), rtol=rtol, atol=rtol
            )
    assert len(looped.history.step_losses) == 3 * 4


def test_compile_epoch_defaults_to_the_backend(backend):
    """Default: a whole-epoch loop where the backend compiles (JAX), one call per step
    elsewhere; dropout or a per-batch callback keeps the per-step path."""
    seen = []

    def spy(run, loss):
        seen.append(run.step)

    loops = []  # one entry per `make_epoch` call that ran an epoch's full batches

    def full_batches(self, *args, **kwargs):
        loops.append(self.epoch_fn)
        return full_batches_orig(self, *args, **kwargs)

    full_batches_orig = _Loop._full_batches
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_Loop, "_full_batches", full_batches)
        plain = _fit(backend, epochs=1)
        assert len(loops) == (1 if backend.compiles else 0), "whole-epoch loop where it compiles"
        loops.clear()
        hooked = _fit(backend, epochs=1, callbacks=[bp.LambdaCallback(on_batch_end=spy)])
        assert loops == []  # a per-batch callback keeps the per-step path
    assert seen == [1, 2, 3, 4]  # called after each step, with the step count of that step
    np.testing.assert_allclose(
        plain.history.step_losses, hooked.history.step_losses, rtol=100 * eps("float64")
    )


def test_forced_compile_epoch_calls_batch_callbacks_after_the_loop(backend):
    losses = []
    result = _fit(
        backend,
        compile_epoch=True,
        callbacks=[bp.LambdaCallback(on_batch_end=lambda run, loss: losses.append(float(loss)))],
    )
    assert losses == result.history.step_losses


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compile_epoch": "yes"}, "compile_epoch must be True, False or None, received 'yes'"),
        ({"compile_epoch": True, "dropout": 0.2}, "compile_epoch=True needs a model without"),
    ],
)
def test_compile_epoch_errors(kwargs, message):
    dropout = kwargs.pop("dropout", 0.0)
    with pytest.raises(ValueError, match=message):
        bp.fit(classifier(dropout=dropout), X, LABELS, epochs=1, verbose=0, **kwargs)


def test_scan_matches_a_python_loop(backend):
    xs = (backend.asarray(np.arange(6.0).reshape(3, 2), "float32"),)

    def body(carry, row):
        (x,) = row
        total = carry + backend.xp.sum(x)
        return total, total * 2

    carry, ys = backend.compile(lambda c, xs: backend.scan(body, c, xs))(
        backend.asarray(1.0, "float32"), xs
    )
    assert float(carry) == 16.0
    np.testing.assert_array_equal(to_host(backend, ys), [4.0, 14.0, 32.0])


def test_compiled_functions_are_cached(backend):
    model, opt = classifier(), SGD(0.1)
    for make in (make_step, make_batch_step, make_epoch):
        first, again = make(model, opt, backend), make(classifier(), SGD(0.1), backend)
        assert (first is again) == backend.compiles
        assert make(model, SGD(0.2), backend) is not first  # another optimizer: another trace


@pytest.fixture
def jax_compiles():
    """The messages JAX logs while compiling (``jax.log_compiles``), as a list."""
    jax = pytest.importorskip("jax")
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            yield messages
    finally:
        logger.removeHandler(handler)


def test_jax_compiles_once_per_shape_not_per_epoch_or_fit(jax_compiles):
    """The first fit compiles (the epoch loop, the partial batch's step, evaluation ops); more
    epochs, a partial last batch each epoch, and a second fit with another seed compile
    nothing."""
    backend = backend_or_skip("jax")
    model = classifier(sizes=(4, 7, 3))  # a model no other test compiled
    settings = dict(optimizer=SGD(0.1), backend=backend, batch_size=16, verbose=0)
    bp.fit(model, X, LABELS, epochs=1, **settings)
    assert any("ompil" in m for m in jax_compiles), "positive control: the first fit compiles"
    jax_compiles.clear()
    bp.fit(model, X, LABELS, epochs=4, seed=5, validation_split=0.0, **settings)
    assert [m for m in jax_compiles if "ompil" in m] == []


def test_donated_buffers_do_not_invalidate_what_the_user_holds():
    """On JAX the step donates the parameter and optimizer-state buffers; the parameters a user
    passed in, and those a callback kept at an epoch end, are never the donated ones."""
    backend = backend_or_skip("jax")
    params = classifier().init(seed=3, backend=backend, dtype="float32")
    kept = []
    result = _fit(
        backend,
        dtype="float32",
        params=params,
        callbacks=[bp.LambdaCallback(on_epoch_end=lambda run: kept.append(run.params))],
    )
    for tree in (params, *kept, result.params):
        for layer in tree:
            assert not any(v.is_deleted() for v in layer.values())
    np.testing.assert_array_equal(to_host(backend, kept[-1][0]["W"]), result.params[0]["W"])


def test_take_rows_gathers_batches_on_the_device(backend):
    data = np.arange(12.0).reshape(6, 2)
    idx = backend.asarray(np.array([5, 0, 3, 3]), "int32")
    rows = backend.take_rows(backend.asarray(data, "float32"), idx)
    np.testing.assert_array_equal(to_host(backend, rows), data[[5, 0, 3, 3]])


def test_asarray_copies_host_data(backend):
    """Host arrays are copied to the backend: read-only input works without a warning, and a
    later write to the host array does not change the backend's copy."""
    host = np.arange(4.0)
    host.setflags(write=False)
    moved = backend.asarray(host, "float64" if backend.supports_dtype("float64") else "float32")
    writable = np.arange(4.0, dtype=np.float32)
    other = backend.asarray(writable, "float32")
    writable[:] = -1.0
    np.testing.assert_array_equal(to_host(backend, moved), [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(to_host(backend, other), [0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "host",
    [np.asarray(7.0), np.arange(3.0).astype(">f8"), [1.0, 2.0]],
    ids=["0-d float64", "big-endian", "list"],
)
def test_asarray_converts_any_host_input_to_float32(backend, host):
    moved = backend.asarray(host, "float32")
    np.testing.assert_array_equal(to_host(backend, moved), np.asarray(host, dtype=np.float32))


def test_compiled_steps_are_not_shared_by_models_of_the_same_sizes(monkeypatch):
    """The compile cache's key is the model's whole structure, not its layer sizes: a tanh MLP
    fitted after a relu MLP of the same sizes trains as tanh (as NumPy does), not with the relu
    model's compiled step."""
    jax_be = backend_or_skip("jax")
    settings = dict(dtype="float32", epochs=1, batch_size=20)  # 3 full batches: one loop
    sizes = (4, 9, 3)  # a model no other test compiles

    def fit(backend, hidden):
        return _fit(backend, model=classifier(sizes, hidden=hidden), **settings)

    monkeypatch.setattr(step_module, "_COMPILED", type(step_module._COMPILED)())  # fresh cache
    relu = fit(jax_be, "relu")
    tanh = fit(jax_be, "tanh")
    reference = fit(backend_or_skip("numpy"), "tanh")
    np.testing.assert_allclose(tanh.history.step_losses, reference.history.step_losses, rtol=1e-5)
    for a, b in zip(tanh.params, reference.params, strict=True):
        for k in a:
            np.testing.assert_allclose(to_host(jax_be, a[k]), b[k], rtol=1e-5, atol=1e-6)
    assert not np.allclose(tanh.history.step_losses, relu.history.step_losses, rtol=1e-3)
