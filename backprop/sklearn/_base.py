"""What `backprop.sklearn`'s two estimators share: the parameters and their checks, the
network and optimizer they describe, and the forward pass on any backend (training is in
`backprop._sklearn_fit`).

Needs scikit-learn (the ``sklearn`` extra); imported only by `backprop.sklearn`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

import backends

from ..nn.activations import ACTIVATIONS
from ..nn.model import MLP
from ..training.optimizers import SGD, Adam, AdamW, Optimizer, RMSProp
from . import _arrays as arrays
from ._fit import FitMixin, dense
from ._rules import LEARNING_RATES

__all__ = ["FLOATS", "SOLVERS", "BaseMLP", "hidden_activations"]

FLOATS = ("float64", "float32")  # validate_data keeps these, converts anything else to float64
SOLVERS = ("sgd", "adam", "adamw", "rmsprop", "lbfgs")
_SKLEARN_NAMES = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


def hidden_activations() -> list[str]:
    """The ``activation`` names accepted now: scikit-learn's first ("logistic" is our
    "sigmoid"), then every hidden activation registered in `backprop.ACTIVATIONS`, read at each
    call, so one a plugin registers after ``import backprop.sklearn`` is accepted too."""
    ours = (n for n in ACTIVATIONS if ACTIVATIONS.get(n).hidden and n not in _SKLEARN_NAMES)
    return [*_SKLEARN_NAMES, *ours]


def __getattr__(name: str) -> Any:  # HIDDEN_ACTIVATIONS: the registry as it is now
    if name == "HIDDEN_ACTIVATIONS":
        return hidden_activations()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _HiddenActivations(StrOptions):
    """scikit-learn's ``StrOptions`` constraint over `hidden_activations`, read at each check."""

    def __init__(self) -> None:
        super().__init__(set())

    @property
    def options(self) -> Any:  # ordered like hidden_activations(), for the error message
        return dict.fromkeys(hidden_activations()).keys()

    @options.setter
    def options(self, value: Any) -> None:  # StrOptions.__init__ sets it; the registry rules
        pass


_OUTPUTS = {  # out_activation_ (scikit-learn's name) -> (our output activation, our loss)
    "logistic": ("sigmoid", "binary_cross_entropy"),
    "softmax": ("softmax", "cross_entropy"),
    "identity": ("identity", "mse"),
    "exp": ("exp", "poisson"),  # MLPRegressor(loss="poisson")
}


class BaseMLP(FitMixin, BaseEstimator):
    """Parameters, network and prediction shared by `MLPClassifier` and `MLPRegressor` (not
    for direct use); subclasses add what `FitMixin` asks for."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [_HiddenActivations(), list, tuple],
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(LEARNING_RATES))],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Options(numbers.Real, {math.inf}),
        ],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), list, tuple],
        "backend": [StrOptions({*backends.known_backends(), "auto"})],
        "device": [str, None],
        "dtype": [StrOptions({"float32", "float64"}), None],
    }

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
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # SciPy sparse X is densified on the way in
        return tags

    def _check_solver(self) -> bool:
        """Whether ``partial_fit`` exists: for the stochastic solvers only (scikit-learn's
        ``available_if`` check, which hides it for lbfgs)."""
        if self.solver == "lbfgs":
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. lbfgs is not "
                f"stochastic; use fit, or one of the solvers {[s for s in SOLVERS if s != 'lbfgs']}"
            )
        return True

    # -- the network -----------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be positive integers, one per hidden layer, e.g. "
                f"(100,) or (64, 32); received {self.hidden_layer_sizes!r}"
            )
        return [int(s) for s in sizes]

    def _hidden_activations(self, n_hidden: int) -> list[str]:
        """Our names of the hidden activations, one per hidden layer."""
        act = self.activation
        names = [act] * n_hidden if isinstance(act, str) else list(act)
        if len(names) != n_hidden:
            raise ValueError(
                f"activation lists {len(names)} names but hidden_layer_sizes has {n_hidden} "
                f"hidden layers; give one name for all, or exactly {n_hidden}"
            )
        allowed = hidden_activations()
        for name in names:
            if name not in allowed:
                raise ValueError(
                    f"unknown activation {name!r}: expected one of {allowed} "
                    "(scikit-learn's names, then backprop's; register your own with "
                    "@backprop.activations.register('name'))"
                )
        return [_SKLEARN_NAMES.get(name, name) for name in names]

    def _model(self, units: list[int], alpha_scale: float = 1.0, training: bool = True) -> MLP:
        """The `MLP` of ``units`` (inputs, hidden..., outputs) with ``out_activation_``; its L2
        penalty is ``alpha * alpha_scale`` (none for adamw, which decays the weights instead);
        ``dropout`` only for ``training`` (prediction never drops units)."""
        output, loss = _OUTPUTS[self.out_activation_]
        return MLP(
            units,
            hidden=self._hidden_activations(len(units) - 2),
            output=output,
            loss=loss,
            alpha=0.0 if self.solver == "adamw" else float(self.alpha) * alpha_scale,
            dropout=self.dropout if training else 0.0,
        )

    def _optimizer(self) -> Optimizer:
        """The optimizer ``solver`` names, with scikit-learn's hyperparameters."""
        lr, b1, b2, eps = (
            float(v) for v in (self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)
        )
        if self.solver == "sgd":
            momentum = float(self.momentum)
            return SGD(lr, momentum, nesterov=bool(self.nesterovs_momentum) and momentum > 0)
        if self.solver == "adam":  # scikit-learn's form of Adam: eps added to sqrt(v)
            return Adam(lr, b1, b2, eps, epsilon_on="v")
        if self.solver == "adamw":
            return AdamW(lr, b1, b2, eps, weight_decay=float(self.alpha))
        return RMSProp(lr, rho=b2, epsilon=eps)

    # -- prediction ------------------------------------------------------------------------------
    def _forward(self, X: Any) -> tuple[Any, Any, Any, bool]:
        """``(backend, z, a, on_device)``: logits and outputs (N, n_outputs_) on the backend of
        ``X`` (an array of another library) or of the ``backend`` parameter (host data)."""
        check_is_fitted(self)
        coefs = [arrays.to_host(w) for w in self.coefs_]
        dtype = str(coefs[0].dtype)
        be = arrays.array_backend(X)
        on_device = be is not None
        if be is None:
            X = validate_data(self, dense(X), reset=False, dtype=FLOATS)
            be = backends.get_backend(self.backend, self.device)
            x = be.asarray(X, dtype)
        else:
            x = arrays.check_device_input(be, X, self.n_features_in_, dtype, type(self).__name__)
        params = [
            {"W": be.asarray(w, dtype), "b": be.asarray(arrays.to_host(b), dtype)}
            for w, b in zip(coefs, self.intercepts_, strict=True)
        ]
        units = [coefs[0].shape[0], *(w.shape[1] for w in coefs)]
        z, a, _ = self._model(units, training=False).forward(params, x)
        return be, z, a, on_device
