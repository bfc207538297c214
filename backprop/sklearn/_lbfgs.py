"""``solver="lbfgs"`` of `backprop.sklearn`'s estimators: scikit-learn's full-batch L-BFGS.

The quasi-Newton bookkeeping (curvature pairs, line search, stopping tests) is SciPy's
``minimize(method="L-BFGS-B")`` on the host, called as scikit-learn 1.9's ``MLP._fit_lbfgs``
calls it: ``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``, over the flat vector
theta = [W_1.ravel(), ..., W_L.ravel(), b_1, ..., b_L] (scikit-learn's ``_pack`` order). Each
evaluation moves theta to the backend once, computes there (compiled on JAX)::

    J(theta) = sum_i w_i l_i / sum_i w_i + alpha / (2 sum_i w_i) * sum_l ||W_l||^2

and its gradient with the model's ``loss_and_grad`` (w_i = 1 without weights, so sum_i w_i = n,
scikit-learn's ``_loss_grad_lbfgs``), and moves (J, dJ/dtheta) back once. The compute dtype is
``dtype`` when set, else float64 where the backend has it (SciPy iterates in float64, and so
does scikit-learn here whatever the input dtype).

Needs scikit-learn and SciPy (its dependency); SciPy is imported only when lbfgs runs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from sklearn.utils.optimize import _check_optimize_result

from ..data.weights import compute_sample_weight
from ..training.step import _compiled
from . import _arrays as arrays

__all__ = ["fit_lbfgs"]


def fit_lbfgs(
    est: Any,
    be: Any,
    X: Any,
    Y: Any,
    sample_weight: Any,
    units: list[int],
    *,
    alpha_scale: float,
    diverged: type[Exception],
) -> None:
    """Minimize the full-batch loss from ``est.coefs_`` / ``est.intercepts_`` and set
    ``coefs_``, ``intercepts_``, ``n_iter_`` (iterations, at most ``max_iter``), ``loss_``
    (J at the end), ``backend_``, ``device_``; warn as scikit-learn does (ConvergenceWarning)
    when SciPy stops on ``max_iter`` or ``max_fun`` or fails. X (n, n_features), Y (n, K)
    host arrays; ``sample_weight`` (n,) or None; the L2 penalty is ``alpha * alpha_scale``
    (n / sum(sample_weight), as for the other solvers). ``diverged``: the error type raised
    (message, None, reason) for a non-finite end (`SolverDiverged`, passed in by `_fit`,
    which imports this module)."""
    import scipy.optimize  # a scikit-learn dependency; only this solver needs it

    _check_no_dropout(est)
    dtype = _dtype(est, be)
    shapes = list(itertools.pairwise(units))
    fun = _objective(est, be, X, Y, sample_weight, est._model(units, alpha_scale), dtype)
    with be.quiet_float_errors():
        result = scipy.optimize.minimize(
            fun,
            _pack(be, dtype, est.coefs_, est.intercepts_),
            method="L-BFGS-B",
            jac=True,
            options={
                "maxfun": int(est.max_fun),
                "maxiter": int(est.max_iter),
                "gtol": float(est.tol),
            },
        )
    _check_finite(est, result, diverged)
    est.n_iter_ = _check_optimize_result("lbfgs", result, est.max_iter)
    est.loss_ = float(result.fun)
    est.coefs_, est.intercepts_ = _unpack(result.x, shapes, dtype)
    est.backend_, est.device_ = be.name, be.device_name


def _objective(
    est: Any, be: Any, X: Any, Y: Any, sample_weight: Any, model: Any, dtype: str
) -> Any:
    """SciPy's ``fun(theta) -> (J, dJ/dtheta)`` on host float vectors: the data and weights
    moved to the backend once here, theta and the gradient once per call. The weights are
    ``sample_weight`` times ``class_weight`` rescaled to mean 1 (J's data term is then
    sum(w l) / sum(w))."""
    w = compute_sample_weight(Y, est._fit_class_weight(), sample_weight)  # mean 1, or None
    x, y = be.asarray(X, dtype), be.asarray(Y, dtype)
    w = None if w is None else be.asarray(w, dtype)
    shapes = list(itertools.pairwise(model.sizes))  # (fan_in, fan_out) per layer
    build = lambda: be.compile(_flat_loss(model, shapes, be.xp))  # noqa: E731
    evaluate = _compiled("lbfgs", model, None, be, build)

    def fun(theta: Any) -> tuple[float, Any]:
        loss, grad = evaluate(be.asarray(theta, dtype), x, y, w)
        return float(loss), be.to_numpy(grad)

    return fun


def _check_finite(est: Any, result: Any, diverged: type[Exception]) -> None:
    """scikit-learn's check of the end weights, and of the end loss."""
    if not math.isfinite(float(abs(result.x).max())) or not math.isfinite(float(result.fun)):
        raise diverged(
            f"{arrays.NONFINITE}{type(est).__name__}(solver='lbfgs') reached a NaN or infinite "
            "loss or weight; scale the inputs (e.g. StandardScaler in a Pipeline)",
            None,
            "non-finite loss or weights",
        )


def _dtype(est: Any, be: Any) -> str:
    """``dtype`` when set; else float64, or float32 on a backend without float64."""
    if est.dtype is not None:
        return est.dtype
    return "float64" if be.supports_dtype("float64") else "float32"


def _check_no_dropout(est: Any) -> None:
    rates = est.dropout if isinstance(est.dropout, list | tuple) else [est.dropout]
    if any(float(r) > 0 for r in rates):
        raise ValueError(
            f"solver='lbfgs' minimizes the full-batch loss, which dropout would make random; "
            f"received dropout={est.dropout!r}. Set dropout=0.0, or use solver='adam' or 'sgd' "
            "with dropout"
        )


def _flat_loss(model: Any, shapes: list[tuple[int, int]], xp: Any) -> Any:
    """``(theta, x, y, w) -> (J, dJ/dtheta)``: theta (P,) split into the layers' W (fan_in,
    fan_out) and b (fan_out,) in `_pack`'s order, the gradient packed the same way; pure
    Array API, so the backend may compile it."""
    sizes = [i * o for i, o in shapes] + [o for _, o in shapes]
    bounds = [sum(sizes[:k]) for k in range(len(sizes) + 1)]

    def flat_loss(theta: Any, x: Any, y: Any, w: Any) -> tuple[Any, Any]:
        parts = [theta[a:b] for a, b in itertools.pairwise(bounds)]
        n = len(shapes)
        dense = [
            {"W": xp.reshape(parts[k], shape), "b": parts[n + k]} for k, shape in enumerate(shapes)
        ]
        loss, grads = model.loss_and_grad(model.expand_params(dense), x, y, w)
        grads = model.dense_params(grads)
        flat = [xp.reshape(g["W"], (-1,)) for g in grads] + [g["b"] for g in grads]
        return loss, xp.concat(flat)

    return flat_loss


def _pack(be: Any, dtype: str, coefs: list[Any], intercepts: list[Any]) -> Any:
    """scikit-learn's ``_pack``: [W_1.ravel(), ..., b_1, ...] as one host vector of ``dtype``
    (SciPy iterates in float64 whatever it is given)."""
    xp = be.xp
    parts = [be.asarray(arrays.to_host(c), dtype) for c in [*coefs, *intercepts]]
    return be.to_numpy(xp.concat([xp.reshape(p, (-1,)) for p in parts]))


def _unpack(theta: Any, shapes: list[tuple[int, int]], dtype: str) -> tuple[list, list]:
    """``(coefs, intercepts)``: host arrays of ``dtype`` from the flat host vector ``theta``."""
    coefs, intercepts, start = [], [], 0
    for i, o in shapes:
        coefs.append(theta[start : start + i * o].reshape(i, o).astype(dtype))
        start += i * o
    for _, o in shapes:
        intercepts.append(theta[start : start + o].astype(dtype))
        start += o
    return coefs, intercepts
