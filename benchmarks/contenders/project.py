"""The project itself, run the way a user runs it: one `backprop.fit` call per backend.

``--dtype bfloat16`` is ``fit(..., dtype="bfloat16")``, `fit`'s mixed precision
(`backprop.training._mixed`): the data on the device, the master weights and SGD's update stay
float32; each step casts the batch and the weights to bfloat16, runs the forward and backward
passes in bfloat16, the loss and softmax in float32. The final weights handed back are the
float32 master weights. (The references train in the same mixed precision; see the README.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..workloads import Workload, make_data
from ._common import CpuMeter, ReferenceSettings, Skip, Trained, device_peak_mib

__all__ = ["CONTENDERS", "backend_for", "timed_fit"]


def timed_fit(be: Any, w: Workload, X: Any, y: Any, *, epochs: int, dtype: str) -> tuple:
    """`backprop.fit` of ``w``'s MLP with plain SGD on backend ``be``, the way a user calls it;
    returns the `FitResult` and the `CpuMeter` that watched other processes during each epoch."""
    import backprop as bp

    model = bp.MLP(list(w.sizes), hidden="relu", output="softmax", loss="cross_entropy")
    meter = CpuMeter()
    watch = bp.LambdaCallback(
        on_train_begin=lambda run: meter.restart(), on_epoch_end=lambda run: meter.mark()
    )
    result = bp.fit(
        model,
        X,
        y,
        optimizer=bp.SGD(lr=w.lr),
        backend=be,
        dtype=dtype,
        epochs=epochs,
        batch_size=w.batch_size,
        seed=w.seed,
        shuffle=True,
        metric=None,
        verbose=0,
        callbacks=[watch],
    )
    return result, meter


def backend_for(backend_name: str, s: ReferenceSettings) -> Any:
    """The backend ``backend_name`` on ``s.device``, ready for ``s.dtype``; `Skip` with the
    reason where it cannot run here or lacks the dtype.

    bfloat16 and float16 are `fit`'s mixed precision (float32 master weights and optimizer
    state, forward and backward in the low dtype): the skip gives `fit`'s own refusal (NumPy,
    array-api-strict and CuPy have no bfloat16), checked before any data is made.
    """
    import backends
    from backprop.training import _mixed

    try:
        be = backends.get_backend(backend_name, s.device)
        if s.dtype in _mixed.COMPUTE_DTYPES:
            _mixed.check_compute_dtype(be, s.dtype)
        else:
            be.dtype(s.dtype)  # raises where the backend lacks the dtype (float64 on a GPU)
    except (backends.BackendError, ValueError) as exc:
        raise Skip(str(exc)) from None
    return be


def _fit_with(backend_name: str) -> Callable[[Workload, ReferenceSettings], Trained]:
    def run(w: Workload, s: ReferenceSettings) -> Trained:
        """`backprop.fit` of the workload's MLP with SGD on backend ``backend_name``."""
        be = backend_for(backend_name, s)
        if s.dtype == "float32":
            be.set_precision("float32")  # true float32 matmuls (no TF32), like the references
        X, y = make_data(w)
        result, meter = timed_fit(be, w, X, y, epochs=s.epochs, dtype=s.dtype)
        history = result.history
        return Trained(
            epoch_times=[float(t) for t in history["time"]],
            step_losses=[float(v) for v in history.step_losses],
            epoch_loss=float(history["loss"][-1]),
            params=[{k: be.to_numpy(v) for k, v in layer.items()} for layer in result.params],
            device=f"{be.device_name} ({be.library.describe_device(be.device)})",
            versions={"backprop-xp": "working tree", be.name: be.library.version()},
            peak_device_mib=device_peak_mib(be.name, be.device),
            foreign_cpu_s=meter.foreign,
        )

    run.__name__ = f"backprop_{backend_name}"
    return run


CONTENDERS = {
    f"backprop-{name}": _fit_with(name)
    for name in ("numpy", "jax", "torch", "cupy", "array_api_strict")
}
