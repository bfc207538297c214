"""scikit-learn's ``MLPClassifier`` with plain SGD, one epoch per ``fit`` call, on the CPU.

To start from the shared weights and batch order: one ``partial_fit`` on the first batch builds
the estimator's state (classes, layer shapes, optimizer), then ``coefs_``/``intercepts_`` are
overwritten with `initial_params` as float32. Each epoch is ``fit(X[perm], y[perm])`` with that
epoch's permutation: ``shuffle=False`` keeps the order, ``warm_start=True`` continues from the
current weights, ``max_iter=1`` runs one epoch. The timed epoch includes the ``X[perm]`` gather,
the work sklearn's own shuffling does batch by batch. sklearn does not expose step losses, so
first and last loss are null; ``epoch_loss`` is ``loss_curve_[-1]``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..workloads import Workload, epoch_orders, initial_params, make_data
from ._common import CpuMeter, ReferenceSettings, Skip, Trained, distribution_versions

__all__ = ["CONTENDERS"]


def run_sklearn(w: Workload, s: ReferenceSettings) -> Trained:
    """``MLPClassifier(solver="sgd", momentum=0, alpha=0)``, one epoch per ``fit``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if s.device != "cpu":
        raise Skip("scikit-learn runs only on the CPU")
    if s.dtype not in ("float32", "float64"):
        raise Skip(f"scikit-learn's MLP has no {s.dtype}")
    X, y = make_data(w)
    X = X.astype(s.dtype, copy=False)
    clf = MLPClassifier(
        hidden_layer_sizes=w.sizes[1:-1],
        activation="relu",
        solver="sgd",
        learning_rate="constant",
        learning_rate_init=w.lr,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=w.batch_size,
        shuffle=False,
        max_iter=1,
        warm_start=True,
        early_stopping=False,
        tol=0.0,
        n_iter_no_change=10**9,
        random_state=w.seed,
    )
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 is the point
        clf.partial_fit(X[: w.batch_size], y[: w.batch_size], classes=np.arange(w.n_classes))
        params = initial_params(w, s.dtype)
        clf.coefs_ = [p["W"].copy() for p in params]
        clf.intercepts_ = [p["b"].copy() for p in params]
        meter = CpuMeter()
        for order in epoch_orders(w, s.epochs):
            t0 = time.perf_counter()
            clf.fit(X[order], y[order])
            times.append(time.perf_counter() - t0)
            meter.mark()
    return Trained(
        epoch_times=times,
        step_losses=None,
        epoch_loss=float(clf.loss_curve_[-1]),
        params=[{"W": W, "b": b} for W, b in zip(clf.coefs_, clf.intercepts_, strict=True)],
        device="cpu",
        versions=distribution_versions("scikit-learn", "numpy", "scipy"),
        foreign_cpu_s=meter.foreign,
    )


CONTENDERS = {"sklearn": run_sklearn}
