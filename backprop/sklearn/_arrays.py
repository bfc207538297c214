"""Where `backprop.sklearn` computes: inputs of any installed array library, outputs in kind.

NumPy arrays, lists, DataFrames and sparse matrices are host data: scikit-learn's checks run on
them and the estimator computes on its ``backend`` parameter. An array of another backend
library (JAX, PyTorch, CuPy, array_api_strict) decides the backend and device itself, and the
predictions come back as arrays of that library on that device.
"""

from __future__ import annotations

from typing import Any

import backends

from ..nn.activations import Sigmoid, log_softmax, softplus

__all__ = [
    "NONFINITE",
    "array_backend",
    "check_device_input",
    "log_probabilities",
    "probabilities",
    "to_host",
]

# modules whose arrays (or array-likes) are host data, answered without probing the backends
_HOST_MODULES = ("builtins", "numpy", "pandas", "polars", "scipy")


# scikit-learn's sentence for a solver that produced NaN or infinite weights (its tests match it)
NONFINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and "
    "need to be preprocessed. "
)


def array_backend(X: Any) -> backends.Backend | None:
    """The backend holding ``X`` when it is an array of a backend library other than NumPy (its
    namespace and device); None for host data."""
    if type(X).__module__.split(".")[0] in _HOST_MODULES:
        return None
    try:
        be = backends.backend_of(X)
    except backends.UnknownBackendError:
        return None
    return None if be.name == "numpy" else be


def to_host(X: Any) -> Any:
    """``X`` as host data: a NumPy copy of another library's array, anything else unchanged."""
    be = None if X is None else array_backend(X)
    return X if be is None else be.to_numpy(X)


def check_device_input(be: Any, X: Any, n_features: int, dtype: str, owner: str) -> Any:
    """A device array ``X`` checked like scikit-learn checks host data (2-D, the fitted number
    of features) and cast to ``dtype`` on its device; NaNs are not looked for (that would read
    the data back to the host)."""
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise ValueError(
            f"Expected a 2-D array (n_samples, n_features), got an array of shape {shape}; "
            "reshape it with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )
    if shape[1] != n_features:
        raise ValueError(
            f"X has {shape[1]} features, but {owner} is expecting {n_features} features as input."
        )
    target = be.dtype(dtype)
    return X if X.dtype == target else be.xp.astype(X, target)


def probabilities(xp: Any, a: Any, binary: bool) -> Any:
    """Class probabilities (N, n_classes) from the outputs ``a`` (N, K): ``[1 - a, a]`` for one
    sigmoid unit (``binary``), ``a`` itself for softmax rows or multilabel sigmoid units."""
    return xp.concat([1.0 - a, a], axis=1) if binary else a


def log_probabilities(xp: Any, z: Any, output: str, binary: bool) -> Any:
    """log of `probabilities` from the logits ``z`` (N, K), finite where a probability rounds
    to 0: ``log_softmax(z)`` for softmax. Per sigmoid unit, log(p) of the rounded probability
    p = sigmoid(z) where p > 0 (so it agrees with ``log(predict_proba)``, ties at p == 1.0
    included, as scikit-learn's tests expect) and log sigmoid(z) = -softplus(-z) where p
    rounds to 0; the first column of the binary case the same for 1 - p with -softplus(z)."""
    if output == "softmax":
        return log_softmax(xp, z)
    p = Sigmoid().forward(xp, z)
    log_p = _log_or(xp, p, -softplus(xp, -z))
    if not binary:
        return log_p
    return xp.concat([_log_or(xp, 1.0 - p, -softplus(xp, z)), log_p], axis=1)


def _log_or(xp: Any, p: Any, fallback: Any) -> Any:
    """log(p) where p > 0, else ``fallback`` (without evaluating log(0))."""
    positive = p > 0
    return xp.where(positive, xp.log(xp.where(positive, p, xp.ones_like(p))), fallback)
