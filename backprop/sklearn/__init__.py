"""scikit-learn front end: `MLPClassifier` and `MLPRegressor` with scikit-learn's parameters,
rules and attributes, training with `backprop.fit` on any backend."""

from .estimators import MLPClassifier, MLPRegressor, SolverDiverged

__all__ = ["MLPClassifier", "MLPRegressor", "SolverDiverged"]
