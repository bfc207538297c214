"""Training for `backprop.sklearn`'s estimators: scikit-learn's initial weights, one
`backprop.fit` call per ``fit`` (``max_iter`` epochs) or ``partial_fit`` (one epoch), and the
fitted attributes, which continue across calls as scikit-learn's do.

Needs scikit-learn (the ``sklearn`` extra); imported only by `backprop.sklearn`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight

import backends

from ..training.fit import FitResult, TrainingDiverged, fit
from ..tree import tree_map
from . import _arrays as arrays
from ._lbfgs import fit_lbfgs
from ._rules import SklearnRules, Tracker

__all__ = ["FitMixin", "SolverDiverged", "dense"]

_SEED_BOUND = 2**31 - 1  # fit's seed is drawn from random_state in [0, 2**31 - 1)
_TOO_SMALL = (  # scikit-learn's words, which its tests match
    "The validation set is too small. Increase 'validation_fraction' or the size of your dataset. "
)
_STOCHASTIC_ATTRIBUTES = (  # set by _init_stochastic; absent after a fresh lbfgs fit
    "loss_curve_",
    "validation_scores_",
    "validation_loss_curve_",
    "best_validation_score_",
    "best_loss_",
    "_no_improvement_count",
    "_opt_state",
    "_rate",
)


class SolverDiverged(TrainingDiverged, ValueError):
    """``fit`` or ``partial_fit`` of `MLPClassifier` / `MLPRegressor` diverged: the loss or the
    weights became NaN or infinite, or an epoch's training loss exceeded 10 times the
    untrained network's. A `backprop.TrainingDiverged` (``result``: the weights of the last
    good epoch; ``reason``: what went wrong) and a ``ValueError``, the type scikit-learn raises
    for non-finite weights. The estimator keeps its previous attributes. Lower
    ``learning_rate_init`` or scale the inputs (``StandardScaler`` in a ``Pipeline``)."""


class FitMixin:
    """``fit`` and ``partial_fit`` of `backprop._sklearn_base.BaseMLP`. The estimator provides
    ``_validate_input`` (host X and float targets (n, K)), ``_output_activation``,
    ``_stratify``, ``_score_column``, ``_hidden_sizes``, ``_model`` and ``_optimizer``."""

    def _init_weights(self, units: list[int], dtype: str, rs: Any) -> None:
        """scikit-learn's initialisation, drawn in its order from ``rs`` (so the same
        ``random_state`` gives scikit-learn's weights): per layer W (fan_in, fan_out), then b
        (fan_out,), both ~ U(-r, r), r = sqrt(f / (fan_in + fan_out)), f = 2 for logistic
        hidden layers, else 6 (Glorot and Bengio's bound)."""
        act = self.activation
        names = [act] if isinstance(act, str) else list(act)
        factor = 2.0 if names and all(n in ("logistic", "sigmoid") for n in names) else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in itertools.pairwise(units):
            bound = math.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(rs.uniform(-bound, bound, fan_out).astype(dtype))

    def _check_coefs(self, units: list[int]) -> None:
        """``coefs_`` and ``intercepts_`` (fitted or set by the user) fit the layer sizes."""
        expected = [((i, o), (o,)) for i, o in itertools.pairwise(units)]
        found = [
            (tuple(getattr(w, "shape", ())), tuple(getattr(b, "shape", ())))
            for w, b in zip(self.coefs_, self.intercepts_, strict=False)
        ]
        if found != expected:
            raise ValueError(
                f"warm start: coefs_ and intercepts_ have shapes {found}, but this data and "
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} need {expected}; set arrays of "
                "those shapes, or fit with warm_start=False to start from new weights"
            )

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> FitMixin:
        self._validate_params()
        hidden = self._hidden_sizes()
        if self.early_stopping and incremental:
            raise ValueError(
                "partial_fit does not support early_stopping=True (each call trains one epoch "
                "on the batch it is given); set early_stopping=False"
            )
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        be = arrays.array_backend(X) or backends.get_backend(self.backend, self.device)
        X, Y = self._validate_input(
            dense(arrays.to_host(X)), arrays.to_host(y), incremental, first_pass
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(arrays.to_host(sample_weight), X)
        units = [X.shape[1], *hidden, Y.shape[1]]
        rs = check_random_state(self.random_state)
        dtype = self._train_dtype(X, be, first_pass)
        if first_pass:
            self._initialize(Y, units, dtype, rs)
        else:
            self._check_coefs(units)
        self.n_outputs_ = Y.shape[1]
        if self.solver == "lbfgs":  # full batch: SciPy's L-BFGS-B on the host, as scikit-learn
            scale, error = _alpha_scale(sample_weight), SolverDiverged
            fit_lbfgs(self, be, X, Y, sample_weight, units, alpha_scale=scale, diverged=error)
            return self
        if not hasattr(self, "loss_curve_"):  # continuing an lbfgs fit with another solver
            self._init_stochastic()
        result, tracker = self._train(be, X, Y, sample_weight, units, dtype, rs, incremental)
        self._store(result, tracker, incremental)
        return self

    def _train_dtype(self, X: Any, be: Any, first_pass: bool) -> str:
        """``dtype`` when set; else the dtype of the weights being continued; else float32
        for float32 inputs or a backend without float64, float64 otherwise."""
        if self.dtype is not None:
            return self.dtype
        if not first_pass:
            return str(arrays.to_host(self.coefs_[0]).dtype)
        if str(X.dtype) == "float32" or not be.supports_dtype("float64"):
            return "float32"
        return "float64"

    def _initialize(self, Y: Any, units: list[int], dtype: str, rs: Any) -> None:
        """Fresh weights and counters (a first fit, or any fit without warm_start)."""
        self.n_iter_, self.t_ = 0, 0
        self.n_layers_ = len(units)
        self.out_activation_ = self._output_activation()
        self._init_weights(units, dtype, rs)
        if self.solver != "lbfgs":
            self._init_stochastic()
        else:  # no loss_curve_, best_loss_, validation_scores_ ... for lbfgs, as scikit-learn
            for name in _STOCHASTIC_ATTRIBUTES:
                self.__dict__.pop(name, None)

    def _init_stochastic(self) -> None:
        """The stochastic solvers' curves and counters, fresh."""
        self.loss_curve_: list[float] = []
        self._no_improvement_count, self._opt_state, self._rate = 0, None, None
        es = self.early_stopping
        self.validation_scores_ = [] if es else None
        self.validation_loss_curve_ = [] if es else None
        self.best_validation_score_ = -math.inf if es else None
        self.best_loss_ = None if es else math.inf

    def _train(
        self,
        be: Any,
        X: Any,
        Y: Any,
        sample_weight: Any,
        units: list[int],
        dtype: str,
        rs: Any,
        incremental: bool,
    ) -> tuple[FitResult, Tracker]:
        """One `backprop.fit` call: ``max_iter`` epochs, or one for ``partial_fit``."""
        es = bool(self.early_stopping)
        continuing = incremental and self._opt_state is not None
        model = self._model(units, _alpha_scale(sample_weight))
        params = model.expand_params(  # an empty dict for each dropout layer
            {"W": arrays.to_host(w), "b": arrays.to_host(b)}
            for w, b in zip(self.coefs_, self.intercepts_, strict=True)
        )
        column = f"val_{self._score_column}" if es else None
        score = self.best_validation_score_ if es else None
        tracker = Tracker(column, -math.inf if score is None else score, params, bool(self.verbose))
        settings = {
            "epochs": 1 if incremental else int(self.max_iter),
            "stratify": self._stratify(Y) if es else False,  # its error first, as scikit-learn
            "batch_size": self._batch_size(self._n_train(X.shape[0])),
            "seed": int(rs.randint(_SEED_BOUND)),
            "shuffle": bool(self.shuffle),
            "validation_split": float(self.validation_fraction) if es else 0.0,
            "metric": self._score_column if es else None,
            "class_weight": self._fit_class_weight(),
        }
        try:
            result = fit(
                model,
                X,
                Y,
                optimizer=self._optimizer(),
                schedule=self._schedule(column, continuing),
                backend=be,
                dtype=dtype,
                sample_weight=sample_weight,
                callbacks=[tracker],
                params=params,
                opt_state=self._opt_state if continuing else None,
                train_metrics=False,
                verbose=0,
                **settings,
            )
        except TrainingDiverged as exc:
            if not es:
                raise SolverDiverged(self._diverged(exc), exc.result, exc.reason) from None
            # scikit-learn (its issue #29504): no error, the best validation weights are kept
            tracker.diverged, result = self._diverged(exc), exc.result
            if not tracker.state:  # it diverged in its first epoch
                tracker.state = {
                    "bad_epochs": self._no_improvement_count,
                    "rate": None,
                    "best": score,
                }
        return result, tracker

    def _diverged(self, exc: TrainingDiverged) -> str:
        """The message: scikit-learn's sentence first where the loss or weights stopped being
        finite (its tests match it), then what happened and what to do."""
        reason = exc.reason or str(exc)
        nonfinite = reason.startswith(("the loss became", "a parameter became"))
        first = arrays.NONFINITE if nonfinite else ""
        return (
            f"{first}{type(self).__name__} diverged: {reason}. Lower "
            f"learning_rate_init (now {self.learning_rate_init:g}) or scale the inputs (e.g. "
            "StandardScaler in a Pipeline)"
        )

    def _n_train(self, n: int) -> int:
        """Training rows: all, or with early stopping those left after the validation set
        (ceil(validation_fraction * n) rows, as `backprop.fit` and train_test_split hold out)."""
        if not self.early_stopping:
            return n
        n_val = math.ceil(self.validation_fraction * n)
        if n_val < 2 or n_val >= n:
            head = _TOO_SMALL if n_val < 2 else ""
            raise ValueError(
                f"{head}early_stopping needs a validation set of at least 2 samples and a "
                f"training set: validation_fraction={self.validation_fraction} of {n} samples "
                f"holds out {n_val}; change validation_fraction, use more data, or set "
                "early_stopping=False"
            )
        return n - n_val

    def _schedule(self, column: str | None, continuing: bool) -> SklearnRules:
        """scikit-learn's learning rate and stopping rule, continuing this estimator's counters
        (``t_``, the best value, epochs without improvement, and within ``partial_fit`` the
        optimizer's current rate)."""
        best = self.best_validation_score_ if column else self.best_loss_
        return SklearnRules(
            learning_rate=self.learning_rate if self.solver == "sgd" else "constant",
            power_t=float(self.power_t),
            monitor=column or "loss",
            tol=float(self.tol),
            n_iter_no_change=self.n_iter_no_change,
            samples_seen=self.t_,
            restart=not continuing,
            rate=self._rate if continuing else None,
            best=best,
            bad_epochs=self._no_improvement_count,
        )

    def _batch_size(self, n_train: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_train)
        if self.batch_size > n_train:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_train} training samples; "
                "it is clipped to the number of samples",
                UserWarning,
                stacklevel=4,
            )
        return min(int(self.batch_size), n_train)

    def _fit_class_weight(self) -> Any:
        """``class_weight`` for `backprop.fit` (classifiers override this)."""
        return None

    def _store(self, result: FitResult, tracker: Tracker, incremental: bool) -> None:
        """The fitted attributes from one `backprop.fit` call (lists continue across calls)."""
        es, history = bool(self.early_stopping), result.history
        params = result.model.dense_params(tracker.best_params if es else result.params)
        self.coefs_ = [arrays.to_host(p["W"]) for p in params]
        self.intercepts_ = [arrays.to_host(p["b"]) for p in params]
        self._opt_state = tree_map(arrays.to_host, result.opt_state)
        self.n_iter_ = result.epochs
        self.t_ += tracker.samples
        self.loss_curve_.extend(history["loss"])
        self.loss_ = self.loss_curve_[-1]
        state = tracker.state
        self._no_improvement_count, self._rate = state["bad_epochs"], state["rate"]
        if es:
            self.validation_scores_ = [*(self.validation_scores_ or []), *history[tracker.column]]
            curve = [*(self.validation_loss_curve_ or []), *history["val_loss"]]
            self.validation_loss_curve_ = curve
            self.best_validation_score_, self.best_loss_ = state["best"], None
        else:
            self.best_loss_ = state["best"]
        self.backend_, self.device_ = result.backend.name, result.backend.device_name
        if tracker.diverged is not None:  # early_stopping: the diverged epoch scores NaN
            self.n_iter_ += 1
            self.loss_ = math.nan
            for curve in (self.loss_curve_, self.validation_scores_, self.validation_loss_curve_):
                curve.append(math.nan)
            warnings.warn(
                f"{tracker.diverged}; early_stopping kept the weights of the best validation "
                f"score ({self.best_validation_score_:.4g})",
                ConvergenceWarning,
                stacklevel=3,
            )
        if not incremental and result.stop_reason is None:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet. Raise max_iter, or tol to stop earlier.",
                ConvergenceWarning,
                stacklevel=3,
            )


def dense(X: Any) -> Any:
    """A SciPy sparse matrix or array as a dense NumPy array (the backends compute on dense
    arrays: n_samples * n_features floats in memory); anything else unchanged."""
    return X.toarray() if type(X).__module__.startswith("scipy.sparse") else X


def _alpha_scale(sample_weight: Any) -> float:
    """n / sum(sample_weight): `backprop.fit` rescales the weights to mean 1, which makes the
    data term sum(w * loss) / sum(w) as scikit-learn's, but its L2 penalty divides alpha by the
    rows, not the weight sum as scikit-learn does; this factor restores alpha / (2 sum(w)), so a
    sample of weight k counts as k copies in the penalty too (exactly so in full batches)."""
    if sample_weight is None:
        return 1.0
    total = float(sample_weight.sum())
    return sample_weight.shape[0] / total if total > 0 else 1.0
