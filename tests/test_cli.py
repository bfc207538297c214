"""The command line: the main digits job, the backends table, exit codes and messages."""

from __future__ import annotations

import pytest

import backends
from backprop import cli


def test_digits_trains_and_reports_held_out_accuracy(capsys):
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn")
    assert cli.main(["digits", "--epochs", "5"]) == 0
    out = capsys.readouterr().out
    assert "1348 train / 449 held-out images" in out
    accuracy = float(out.split("held-out accuracy ")[1].split("%")[0])
    assert accuracy > 90.0  # 5 epochs of SGD+momentum; 30 epochs reach 98%


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_digits_optimizers_reach_97_percent(capsys, optimizer):
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn")
    assert cli.main(["digits", "--optimizer", optimizer]) == 0
    out = capsys.readouterr().out
    assert float(out.split("held-out accuracy ")[1].split("%")[0]) >= 97.0


def test_backends_lists_every_known_backend(capsys):
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in backends.known_backends():
        assert name in out


def test_unknown_backend_exits_2_with_the_allowed_names(capsys):
    assert cli.main(["digits", "--backend", "nunpy"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'nunpy'" in err and "did you mean 'numpy'" in err
