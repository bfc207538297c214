"""Preparing `backprop.fit`'s inputs: argument checks, data checked, split, weighted and moved
to the backend once, user-given parameters moved, monitors checked before training."""

from __future__ import annotations

import dataclasses
from typing import Any

import backends

from ..data import _host
from ..data.checks import DataError, prepare_xy
from ..data.weights import compute_sample_weight, validation_split
from ..nn.sequential import Params, Sequential
from ..tree import tree_map
from .callbacks import _Monitor
from .run import Run, tree_mismatch


@dataclasses.dataclass
class FitData:
    """Training (and validation) arrays on the backend; ``w``: (N,) weights or None."""

    x: Any
    y: Any
    w: Any
    x_val: Any = None
    y_val: Any = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


def host_xy(model: Sequential, X: Any, Y: Any) -> tuple[Any, Any]:
    """Host data checked for ``model``: NumPy ``(X, Y)`` (N, *input_shape), (N, n_out); integer
    labels become one-hot rows for softmax outputs; token-id inputs stay integers
    (`backprop.data.prepare_xy`)."""
    output = model.output_activation
    return prepare_xy(
        X,
        Y,
        model.input_shape,
        _width(model.output_shape),
        getattr(output, "name", None),
        model.loss_function.name,
        input_kind=model.input_kind,
        vocab_size=getattr(model.layers[0], "vocab_size", None),
    )


def _width(shape: tuple[int, ...]) -> int:
    if len(shape) != 1:
        raise ValueError(
            f"fit and evaluate need a model with 1-D outputs (N, n_out), this one gives "
            f"{shape}; end it with Flatten() or GlobalAveragePool1D() and a Dense layer"
        )
    return shape[0]


def move_x(be: Any, x: Any, dtype: str, model: Sequential) -> Any:
    """Host inputs on the backend: floats in ``dtype``, token ids as int32."""
    return be.asarray(x, "int32" if model.input_kind == "int" else dtype)


def move_params(model: Sequential, params: Params, be: Any, dtype: str) -> Params:
    """User-given parameters (host NumPy or any backend's arrays) on ``be`` in ``dtype``."""
    model._check_params(params)
    return tree_map(lambda p: be.asarray(backends.backend_of(p).to_numpy(p), dtype), params)


def move_opt_state(optimizer: Any, params: Params, opt_state: Any, be: Any, dtype: str) -> Any:
    """A user-given optimizer state on ``be`` in ``dtype``, checked against the state
    ``optimizer.init(params)`` builds: the same nesting (dict keys, list lengths), leaf shapes."""
    problem = tree_mismatch(optimizer.init(params), opt_state, "opt_state")
    if problem:
        raise ValueError(
            f"fit: opt_state does not match {type(optimizer).__name__}.init(params): {problem}; "
            "pass the opt_state of a FitResult of the same optimizer and model, or None for a "
            "fresh state"
        )
    return tree_map(lambda s: be.asarray(backends.backend_of(s).to_numpy(s), dtype), opt_state)


def prepare_data(
    model: Sequential,
    X: Any,
    Y: Any,
    be: Any,
    s: dict[str, Any],
    validation_data: Any,
    class_weight: Any,
    sample_weight: Any,
) -> FitData:
    """Check, split, weight and move the data once."""
    x, y = host_xy(model, X, Y)
    dtype = s["dtype"]
    check_castable(be, dtype, X=x, Y=y)
    x_val = y_val = None
    if s["validation_split"]:
        compute_sample_weight(y, class_weight, sample_weight)  # checks them against all rows
        train_idx, val_idx = validation_split(
            y, s["validation_split"], s["seed"] + 2, s["stratify"]
        )
        x, x_val, y, y_val = x[train_idx], x[val_idx], y[train_idx], y[val_idx]
        if sample_weight is not None:
            sample_weight = _host.take_rows(sample_weight, train_idx)
    elif validation_data is not None:
        x_val, y_val = host_xy(model, *validation_data)
        check_castable(be, dtype, **{"validation_data X": x_val, "validation_data Y": y_val})
    w = compute_sample_weight(y, class_weight, sample_weight)
    if w is not None:
        check_castable(be, dtype, **{"the sample weights": w})
    return FitData(
        x=move_x(be, x, dtype, model),
        y=be.asarray(y, dtype),
        w=None if w is None else be.asarray(w, dtype),
        x_val=None if x_val is None else move_x(be, x_val, dtype, model),
        y_val=None if y_val is None else be.asarray(y_val, dtype),
    )


def check_castable(be: Any, dtype: str, **arrays: Any) -> None:
    """Raise `DataError` when a host float array holds a value beyond the largest finite
    number of the training ``dtype`` (it would become infinite when moved to the backend).

    ``arrays``: host NumPy arrays by the name the message gives them; integer and boolean
    arrays always fit (float32 holds up to about 3.4e38).
    """
    top = float(be.xp.finfo(be.dtype(dtype)).max)
    for name, host in arrays.items():
        if host.dtype.kind != "f" or host.size == 0:
            continue
        largest = max(float(host.max()), -float(host.min()))  # no |host| copy of big data
        if largest > top:
            fix = ' or train with dtype="float64"' if dtype != "float64" else ""
            raise DataError(
                f"{name} holds values up to {largest:.4g} in absolute value, beyond the largest "
                f"{dtype} ({top:.4g}): moved to the backend in {dtype} they would become "
                f"infinite; scale the data (e.g. standardize it){fix}"
            )


def check_fit_args(
    epochs: Any,
    batch_size: Any,
    seed: Any,
    validation_split: Any,
    validation_data: Any,
    params: Any,
    resume: Any,
    opt_state: Any = None,
) -> tuple[int, int, int]:
    """Refuse bad arguments; return ``(epochs, batch_size, seed)`` as Python ints (NumPy
    integers such as ``np.int64(2)`` are accepted: any `numbers.Integral` but bool)."""
    import numbers  # here, not at the top: this function's checks are all that use it

    ints = {"epochs": (epochs, 1), "batch_size": (batch_size, 1), "seed": (seed, 0)}
    for name, (value, low) in ints.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"fit: {name} must be an int >= {low}, received {value!r}")
    ok = isinstance(validation_split, numbers.Real) and not isinstance(validation_split, bool)
    if not ok or not 0 <= validation_split < 1:
        raise ValueError(
            f"fit: validation_split must be a number in [0, 1), received {validation_split!r}"
        )
    if validation_split and validation_data is not None:
        raise ValueError(
            "fit: give validation_split or validation_data, not both "
            f"(received validation_split={validation_split!r} and validation_data)"
        )
    if validation_data is not None and (
        not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2
    ):
        raise ValueError("fit: validation_data must be a pair (X_val, Y_val)")
    if params is not None and resume is not None:
        raise ValueError("fit: give params or resume, not both (a checkpoint holds its params)")
    if opt_state is not None and resume is not None:
        raise ValueError(
            "fit: give opt_state or resume, not both (a checkpoint holds its optimizer state)"
        )
    return int(epochs), int(batch_size), int(seed)


def check_devices(be: Any, batch_size: int, n: int) -> None:
    """On a data-parallel backend every batch, the last partial one too, splits evenly over
    the devices."""
    k = be.n_devices
    last = n % batch_size
    if k > 1 and (batch_size % k or last % k):
        raise ValueError(
            f"fit: backend {be.name!r} shards each batch over {k} devices, so batch_size and the "
            f"last batch must be multiples of {k}; received batch_size={batch_size} with {n} "
            f"training rows (last batch {last or batch_size}). Use a batch_size that is a "
            f"multiple of {k} and a row count whose remainder is too (or one that batch_size "
            "divides)"
        )


def check_compile_epoch(compile_epoch: Any, model: Sequential) -> None:
    if compile_epoch is not None and not isinstance(compile_epoch, bool):
        raise ValueError(
            f"fit: compile_epoch must be True, False or None, received {compile_epoch!r}"
        )
    if compile_epoch and any(model.dropout_rates):
        raise ValueError(
            "fit: compile_epoch=True needs a model without dropout (its masks are drawn on the "
            "host for every step); use compile_epoch=None or False"
        )


def check_monitors(run: Run, data: FitData) -> None:
    """Fail before training when a callback or schedule watches a column that will not exist."""
    s = run.settings
    columns = {"loss", "lr", "time", "samples_per_s"}
    if s["metric"] and s["train_metrics"]:
        columns.add(s["metric"])
    if data.x_val is not None:
        columns |= {"val_loss"} | ({f"val_{s['metric']}"} if s["metric"] else set())
    watchers = [
        (type(cb).__name__, cb.monitor)
        for cb in run.callbacks
        if isinstance(cb, _Monitor) and cb.watching
    ]
    if run.schedule.monitor:
        watchers.append((type(run.schedule).__name__, run.schedule.monitor))
    for owner, monitor in watchers:
        if monitor not in columns:
            hint = " (val_* columns need validation_split or validation_data)"
            hint = hint if monitor.startswith("val_") else ""
            raise ValueError(
                f"{owner} monitors {monitor!r}, but this run's history will have "
                f"{sorted(columns)}; monitor one of those{hint}"
            )
