"""Evaluation metrics computed on the device: the model's outputs against the targets.

Every metric is one registered function ``fn(xp, a, y, *, threshold=None)`` taking the
namespace ``xp``, the outputs ``a`` (N, K) and the float targets ``y`` (N, K), and returning a
0-d array of ``a``'s dtype (never a Python float: nothing here waits for the device, so a metric
can run inside a compiled step and be read back with the loss).

- ``accuracy``: the fraction of rows predicted right. Softmax outputs (K > 1, no threshold):
  ``argmax(a) == argmax(y)``. Sigmoid outputs (a threshold given, or K == 1 with threshold 0.5):
  every column of the row right, ``(a > t) == (y > t)`` (subset accuracy, as scikit-learn's
  ``accuracy_score`` for multilabel targets).
- ``r2``: the coefficient of determination averaged over the K outputs, as scikit-learn's
  ``r2_score(y, a)`` with ``multioutput="uniform_average"`` and ``force_finite=True``.

To add a metric: write the function, decorate it with ``@register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._registry import Registry

__all__ = ["METRICS", "accuracy", "get_metric", "r2", "register"]

METRICS: Registry[Callable[..., Any]] = Registry("metric")


register = METRICS.register  # function decorator: @register("name")


def get_metric(name: str | Callable[..., Any]) -> Callable[..., Any]:
    """The registered metric called ``name`` (a callable passes through unchanged)."""
    return name if callable(name) else METRICS.get(name)


def _check_shapes(metric: str, a: Any, y: Any) -> None:
    if a.ndim != 2 or tuple(a.shape) != tuple(y.shape):
        raise ValueError(
            f"metric {metric!r} expects outputs a and targets y of the same 2-D shape (N, K), "
            f"received a {tuple(a.shape)} and y {tuple(y.shape)}; prepare the targets as "
            "(N, K) floats (one-hot rows for softmax outputs)"
        )


@register("accuracy")
def accuracy(xp: Any, a: Any, y: Any, *, threshold: float | None = None) -> Any:
    """Fraction of rows whose prediction matches the target; 0-d array of ``a``'s dtype.

    Shapes: ``a`` and ``y`` are (N, K).

    - ``threshold`` None and K > 1 (softmax, one-hot ``y``):
      ``mean_n [argmax_k a[n, k] == argmax_k y[n, k]]``.
    - ``threshold`` t given, or K == 1 (t = 0.5 when None), for sigmoid outputs:
      ``mean_n [all_k (a[n, k] > t) == (y[n, k] > t)]``, the subset accuracy of multilabel
      classification (a row counts only if all its labels are right).
    """
    _check_shapes("accuracy", a, y)
    if threshold is None and a.shape[1] > 1:
        correct = xp.argmax(a, axis=1) == xp.argmax(y, axis=1)
    else:
        t = 0.5 if threshold is None else float(threshold)
        correct = xp.all((a > t) == (y > t), axis=1)
    return xp.mean(xp.astype(correct, a.dtype))


@register("r2")
def r2(xp: Any, a: Any, y: Any, *, threshold: float | None = None) -> Any:
    """Coefficient of determination, averaged over outputs; 0-d array of ``a``'s dtype.

    Shapes: ``a`` (predictions) and ``y`` (targets) are (N, K). Per output k::

        ss_res[k] = sum_n (y[n, k] - a[n, k])**2
        ss_tot[k] = sum_n (y[n, k] - mean_n y[n, k])**2      (two passes: no cancellation)
        r2[k]     = 1 - ss_res[k] / ss_tot[k]

    A constant target column (``ss_tot[k] == 0``) scores 1.0 when predicted exactly
    (``ss_res[k] == 0``) and 0.0 otherwise, as scikit-learn's ``force_finite=True``; the choice
    is made with ``xp.where``, so nothing waits for the device. The result is ``mean_k r2[k]``.
    ``ss_tot`` is computed from ``d = y - y[0]`` (equal in exact arithmetic), so a constant column
    gives exactly 0 even where the library's mean of equal values is off by an ulp.
    ``threshold`` is accepted for the common metric signature and ignored.
    """
    _check_shapes("r2", a, y)
    ss_res = xp.sum((y - a) ** 2, axis=0)
    # shifted by the first row, a constant column is exact zeros and its ss_tot exactly 0; JAX's
    # float32 mean of sixty 2.5s is 2.5000002, which would turn 0 into a tiny ss_tot otherwise
    shifted = y - y[:1, :]
    centred = shifted - xp.mean(shifted, axis=0)
    ss_tot = xp.sum(centred * centred, axis=0)
    constant = ss_tot == 0
    ones = xp.ones_like(ss_tot)
    # divide by 1 where ss_tot == 0, so no 0/0 warning or NaN is ever computed
    score = 1.0 - ss_res / xp.where(constant, ones, ss_tot)
    fallback = xp.where(ss_res == 0, ones, xp.zeros_like(ss_tot))
    result = xp.mean(xp.where(constant, fallback, score))
    return result if result.dtype == a.dtype else xp.astype(result, a.dtype)
