"""The project itself, run the way a user runs it: one `backprop.fit` call per backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..workloads import Workload, make_data
from ._common import CpuMeter, ReferenceSettings, Skip, Trained, device_peak_mib

__all__ = ["CONTENDERS", "timed_fit"]


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


def _fit_with(backend_name: str) -> Callable[[Workload, ReferenceSettings], Trained]:
    def run(w: Workload, s: ReferenceSettings) -> Trained:
        """`backprop.fit` of the workload's MLP with SGD on backend ``backend_name``."""
        import backends

        try:
            be = backends.get_backend(backend_name, s.device)
            be.dtype(s.dtype)  # raises where the backend lacks the dtype (bfloat16 today)
        except (backends.BackendError, ValueError) as exc:
            raise Skip(str(exc)) from None
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
