"""scikit-learn's own estimator checks (``parametrize_with_checks``) on both estimators, on the
default NumPy backend. No check is expected to fail."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from backprop.sklearn import MLPClassifier, MLPRegressor

# max_iter=100: the setting scikit-learn's own test suite gives its MLPs for these checks
# (sklearn/utils/_test_common/instance_generator.py), which keeps this file at a few seconds.
ESTIMATORS = [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    # The checks train on tiny data sets for max_iter epochs, which often ends before the
    # stopping rule fires; scikit-learn's test_common runs its own estimators' checks with
    # ConvergenceWarning ignored for the same reason (our pytest turns warnings into errors).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
