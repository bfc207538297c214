"""scikit-learn estimators on any backend: `MLPClassifier` and `MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` (the
stochastic solvers), trained by `backprop.fit` on NumPy, JAX, PyTorch, CuPy or array_api_strict:

>>> from backprop.sklearn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=50, random_state=0, backend="numpy")
>>> # clf.fit(X, y).predict(X); works in Pipeline, GridSearchCV, cross_val_score

Needs scikit-learn (``pip install "backprop-xp[sklearn]"``); ``import backprop`` does not. See
docs/sklearn.md for the parameters, what differs from scikit-learn and why, and backends.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

try:
    from sklearn.utils.validation import column_or_1d, validate_data
except ImportError as exc:  # not installed, or older than 1.6 (no validate_data)
    raise ImportError(
        f"backprop.sklearn needs scikit-learn >= 1.6 ({exc}); install it with: "
        "pip install 'backprop-xp[sklearn]'"
    ) from exc
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)

from . import _arrays as arrays
from ._base import _OUTPUTS, FLOATS, BaseMLP
from ._fit import SolverDiverged

__all__ = ["MLPClassifier", "MLPRegressor", "SolverDiverged"]

_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Units of each hidden layer.
    activation : str or list of str, default="relu"
        Hidden activation: scikit-learn's "identity", "logistic", "tanh", "relu", or one of
        backprop's ("sigmoid" = "logistic", "leaky_relu", "elu", "softplus", "gelu", or any
        registered with ``@backprop.activations.register``, also after this module is
        imported); or a list with one name per hidden layer.
    solver : {"adam", "sgd", "lbfgs", "adamw", "rmsprop"}, default="adam"
        "adam" is scikit-learn's form of Adam (``Adam(epsilon_on="v")``); "sgd" with
        ``momentum`` and ``nesterovs_momentum`` in scikit-learn's velocity form; "lbfgs" is
        scikit-learn's full-batch L-BFGS (SciPy's L-BFGS-B on the host, the loss and gradient
        on the backend, float64 unless ``dtype`` says otherwise; no dropout). Ours: "adamw"
        (decoupled weight decay ``alpha`` instead of the L2 penalty), "rmsprop" (rho =
        ``beta_2``).
    alpha : float, default=1e-4
        L2 penalty: J += alpha / (2 n_batch) * sum(W**2) over weights, not biases.
    batch_size : int or "auto", default="auto"
        "auto" = min(200, n_samples); larger values are clipped with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Only with solver="sgd", as scikit-learn: invscaling lr = learning_rate_init /
        (t_ + 1) ** power_t after each epoch; adaptive divides it by 5 instead of stopping.
    learning_rate_init, power_t, momentum, nesterovs_momentum, beta_1, beta_2, epsilon : float
        As scikit-learn (momentum must be < 1).
    max_iter : int, default=200
        Epochs per ``fit``; a ConvergenceWarning when they all run.
    shuffle : bool, default=True
    random_state : int, RandomState or None
        Initial weights (drawn as scikit-learn draws them), batch order, validation split.
    tol : float, default=1e-4
    n_iter_no_change : int, default=10
        Stop after more than ``n_iter_no_change`` epochs without improving the training loss
        (or the validation score with early_stopping) by ``tol``.
    max_fun : int, default=15000
        solver="lbfgs" only: loss evaluations per ``fit`` (``max_iter``: its iterations).
    verbose : bool, default=False
        Print scikit-learn's lines: the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        Continue from the current ``coefs_`` / ``intercepts_`` (also ones set by hand), with a
        fresh optimizer, as scikit-learn does.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified for classifiers); stop on the
        validation score; end with the weights of the best one.
    validation_fraction : float, default=0.1
    dropout : float or list of float, default=0.0
        Ours: inverted dropout on each hidden layer's output while training.
    backend : str, default="numpy"
        Ours: where NumPy inputs are computed ("numpy", "jax", "torch", "cupy",
        "array_api_strict", "auto"). Arrays of those libraries decide it themselves.
    device : str or None, default=None
        Ours: "cpu", "gpu" or "gpu:N" for ``backend``.
    dtype : {"float32", "float64"} or None, default=None
        Ours: None trains float32 inputs in float32 and others in float64 (float32 on a
        backend without float64); a name forces that dtype.
"""

_ATTRIBUTES = """
    Attributes
    ----------
    coefs_, intercepts_ : lists of NumPy arrays, (n_in, n_out) and (n_out,) per layer
    loss_curve_ : list of float, the training loss of each epoch (with the L2 penalty); this,
        best_loss_, validation_scores_ and best_validation_score_ are absent with lbfgs
    validation_loss_curve_ : list of float or None, the validation loss of each epoch with
        early_stopping (scikit-learn has no such attribute)
    validation_scores_, best_validation_score_ : with early_stopping, else None
    loss_, best_loss_ : the last and the best training loss (best_loss_ None with early_stopping)
    n_iter_, t_ : epochs of the last call; training samples seen in all calls
    n_features_in_, n_outputs_, n_layers_, out_activation_ : as scikit-learn
    backend_, device_ : where the last call trained
"""

_RAISES = """
    Raises
    ------
    SolverDiverged
        From ``fit`` and ``partial_fit`` when training diverges: the loss or weights become NaN
        or infinite, or an epoch's training loss exceeds 10 times the untrained network's. A
        ``ValueError`` and a `backprop.TrainingDiverged`. Lower ``learning_rate_init`` or scale
        the inputs.
"""

_CLASS_WEIGHT = """    class_weight : dict, "balanced" or None, default=None
        Ours: ``{class label: weight}`` or "balanced" (n_samples / (n_classes * count)), folded
        into the per-sample weights (not for multilabel targets).
"""

_CLASSES = """    classes_ : NumPy array of the class labels
"""

_LOSS = """    loss : {"squared_error", "poisson"}, default="squared_error"
        First parameter, as in scikit-learn >= 1.7. "poisson": half the Poisson deviance with
        exponential outputs (the log link), for targets y >= 0 such as counts.
"""


def _base_params(values: dict[str, Any]) -> dict[str, Any]:
    """The arguments of `BaseMLP.__init__` picked from a subclass ``__init__``'s locals()."""
    return {name: values[name] for name in BaseMLP._get_param_names()}


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier trained with backpropagation on any backend.

    Binary targets get one logistic output unit with binary cross-entropy, multiclass targets a
    softmax with cross-entropy, multilabel indicator targets one logistic unit per label.
    """

    __doc__ = (__doc__ or "") + _PARAMETERS + _CLASS_WEIGHT + _ATTRIBUTES + _CLASSES + _RAISES

    _parameter_constraints: ClassVar[dict] = {
        **BaseMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }
    _score_column = "accuracy"

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        dropout: Any = 0.0,
        backend: str = "numpy",
        device: str | None = None,
        dtype: str | None = None,
        class_weight: Any = None,
    ) -> None:
        super().__init__(**_base_params(locals()))
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train for up to ``max_iter`` epochs on X (n_samples, n_features) and labels y
        (n_samples,) or a multilabel indicator matrix (n_samples, n_labels)."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch on this batch, continuing the weights and the optimizer state of earlier
        calls. ``classes`` (every label of the whole data) is required on the first call."""
        self._validate_params()
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit: every class label of "
                "the whole data set (e.g. classes=np.unique(y_all)), since later batches may "
                "hold classes this one lacks"
            )
        y = arrays.to_host(y)
        if _check_partial_fit_first_call(self, arrays.to_host(classes)):
            multilabel = type_of_target(y).startswith("multilabel")
            self._label_binarizer = LabelBinarizer().fit(y if multilabel else self.classes_)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Class labels (n_samples,), or the indicator matrix for multilabel targets; an array of
        the input's library for its arrays (NumPy when the labels are not numbers)."""
        be, _, a, on_device = self._forward(X)
        if on_device:
            return self._device_labels(be, a)
        y = be.to_numpy(a)
        return self._label_binarizer.inverse_transform(y.ravel() if self.n_outputs_ == 1 else y)

    def predict_proba(self, X: Any) -> Any:
        """Probabilities (n_samples, n_classes) in the order of ``classes_``."""
        be, _, a, on_device = self._forward(X)
        p = arrays.probabilities(be.xp, a, binary=self.n_outputs_ == 1)
        return p if on_device else be.to_numpy(p)

    def predict_log_proba(self, X: Any) -> Any:
        """log of `predict_proba`, computed from the logits: finite where a probability rounds
        to 0 (scikit-learn returns -inf there)."""
        be, z, _, on_device = self._forward(X)
        output = _OUTPUTS[self.out_activation_][0]
        log_p = arrays.log_probabilities(be.xp, z, output, binary=self.n_outputs_ == 1)
        return log_p if on_device else be.to_numpy(log_p)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of `predict` (subset accuracy for multilabel targets)."""
        pred = arrays.to_host(self.predict(X))
        weight = arrays.to_host(sample_weight)
        return float(accuracy_score(arrays.to_host(y), pred, sample_weight=weight))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # -- what BaseMLP asks of a classifier -------------------------------------------------------
    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any]:
        """Host X (n, n_features) and float targets (n, K): one 0/1 column for two classes,
        one-hot rows for more, the indicator matrix for multilabel y."""
        X, y = validate_data(self, X, y, multi_output=True, dtype=FLOATS, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            self._check_known_classes(unique_labels(y))
        return X, self._label_binarizer.transform(y).astype(X.dtype)

    def _check_known_classes(self, classes: Any) -> None:
        known = set(self.classes_.tolist())
        if self.warm_start and set(classes.tolist()) != known:
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous "
                f"call to fit. Previously got {self.classes_}, `y` has {classes}; fit with "
                "warm_start=False to start over with the new classes"
            )
        if set(classes.tolist()) - known:
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                f"'y' has {classes}. Pass every class in `classes` on the first partial_fit call"
            )

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self, Y: Any) -> bool:
        """Stratify the validation split unless multilabel; each class needs 2 samples."""
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return False
        rows = [" ".join(row) for row in Y.astype(bool).astype(str).tolist()]  # scikit-learn's
        too_few = sorted(name for name, count in Counter(rows).items() if count < 2)
        if too_few:
            first = [rows.index(name) for name in too_few]
            labels = self._label_binarizer.inverse_transform(Y[first]).tolist()
            raise ValueError(
                "The least populated classes in y have only 1 member, which is too few. The "
                "minimum number of groups for any class cannot be less than 2. Classes with too "
                f"few members are: {too_few} (scikit-learn's names, from the binarized targets: "
                f"the labels {labels}). early_stopping holds out a stratified validation set, so "
                "every class needs at least 2 samples; use more data or early_stopping=False"
            )
        return True

    def _fit_class_weight(self) -> Any:
        """``class_weight`` with class indices (the columns of the targets) for the labels."""
        weights = self.class_weight
        if weights is None:
            return None
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            raise ValueError(
                "class_weight needs one class per sample, but y is a multilabel indicator "
                "matrix; weight the samples with fit(..., sample_weight=...) instead"
            )
        if isinstance(weights, str):
            return weights
        classes = self.classes_.tolist()
        for label in weights:
            if label not in classes:
                raise ValueError(
                    f"class_weight has the class {label!r}, which is not in classes_ {classes}; "
                    "use the labels of y as keys"
                )
        return {classes.index(label): float(w) for label, w in weights.items()}

    def _device_labels(self, be: Any, a: Any) -> Any:
        """`predict` for outputs ``a`` (N, K) on a device: labels on the device when they are
        numbers (a NumPy array of them otherwise)."""
        xp, classes = be.xp, self.classes_
        numeric = classes.dtype.kind in "biuf"
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return xp.astype(a > 0.5, xp.asarray(classes, device=be.device).dtype)
        if len(classes) == 1:
            idx = xp.zeros((a.shape[0],), dtype=be.dtype("int32"), device=be.device)
        elif self.n_outputs_ == 1:
            idx = xp.astype(a[:, 0] > 0.5, be.dtype("int32"))
        else:
            idx = xp.argmax(a, axis=1)
        if not numeric:
            return classes[be.to_numpy(idx)]
        return xp.take(xp.asarray(classes, device=be.device), idx, axis=0)


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multilayer perceptron regressor trained with backpropagation on any backend.

    Identity outputs, one per target column, with the squared error 0.5 * mean((a - y)**2);
    with ``loss="poisson"`` exponential outputs and half the Poisson deviance.
    """

    __doc__ = (__doc__ or "") + _PARAMETERS + _LOSS + _ATTRIBUTES + _RAISES

    _parameter_constraints: ClassVar[dict] = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }
    _score_column = "r2"

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        dropout: Any = 0.0,
        backend: str = "numpy",
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(**_base_params(locals()))
        self.loss = loss

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train for up to ``max_iter`` epochs on X (n_samples, n_features) and targets y
        (n_samples,) or (n_samples, n_targets)."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch on this batch, continuing the weights and the optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predictions (n_samples,) for one target, else (n_samples, n_targets); an array of the
        input's library for its arrays."""
        be, _, a, on_device = self._forward(X)
        out = be.xp.reshape(a, (-1,)) if a.shape[1] == 1 else a
        return out if on_device else be.to_numpy(out)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of `predict`, averaged over the targets."""
        pred = arrays.to_host(self.predict(X))
        weight = arrays.to_host(sample_weight)
        return float(r2_score(arrays.to_host(y), pred, sample_weight=weight))

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any]:
        X, y = validate_data(
            self, X, y, multi_output=True, y_numeric=True, dtype=FLOATS, reset=reset
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                f"loss='poisson' requires y >= 0, but y has {int((y < 0).sum())} negative values "
                f"(min {y.min():g}); use non-negative targets such as counts, or "
                "loss='squared_error'"
            )
        return X, y.reshape(-1, 1) if y.ndim == 1 else y

    def _output_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _stratify(self, Y: Any) -> bool:
        return False
