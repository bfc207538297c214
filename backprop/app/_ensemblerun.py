"""An ensemble (or sweep) config run: `fit`'s ensemble arguments, the members' scores on
held-out rows and the lines the run prints, and what a run directory's ``model.npz`` says about
its members.

Host-only module. The ensemble's prediction is the members' outputs averaged (probabilities for
classifiers); its loss is the model's data loss of that mean (no L2 term: there is no one set of
weights) and its metric the metric of that mean
(`backprop.training._ensemble_result.evaluate_members`). Each member is also scored alone, with
its own L2 alpha, as `backprop.evaluate` would score it.
"""

from __future__ import annotations

from typing import Any

import backends

from ..nn.ensemble import Ensemble
from ..nn.model import build_model, dtype_name
from ..nn.sequential import first_leaf
from ..training._ensemble_result import evaluate_members, evaluate_members_source
from ..training._ensemble_step import member_scores
from ..training._fitdata import host_xy, move_x
from ..training._sourcedata import as_source, is_source
from ..training.evaluation import resolve_metric

__all__ = [
    "Scores",
    "describe",
    "fit_arguments",
    "hyperparameters",
    "member_lines",
    "model_of",
    "score_members",
]


class Scores(dict):
    """``{"loss": ..., metric: ...}`` of a run; for an ensemble, of its mean prediction, and
    ``members`` holds each member's (a list of K such dicts); None for one model."""

    members: list[dict[str, float]] | None = None


def fit_arguments(cfg: Any) -> dict[str, Any]:
    """`backprop.fit`'s ``ensemble`` and ``sweep`` for the config (nothing for one model)."""
    out: dict[str, Any] = {}
    if cfg.training.ensemble is not None:
        out["ensemble"] = cfg.training.ensemble
    if cfg.sweep.fit_sweep is not None:
        out["sweep"] = cfg.sweep.fit_sweep
    return out


def hyperparameters(cfg: Any, k: int) -> dict[str, float]:
    """Member ``k``'s seed and swept values."""
    return {"seed": cfg.training.seed + k, **{key: v[k] for key, v in cfg.sweep.options.items()}}


def describe(cfg: Any) -> str:
    """The line a run prints about its members."""
    k, seed = cfg.members, cfg.training.seed
    swept = "; ".join(f"{key} {_values(v)}" for key, v in cfg.sweep.options.items())
    return (
        f"ensemble of {k} members trained as one program (seeds {seed}..{seed + k - 1}"
        + (f"; sweep: {swept}" if swept else "")
        + ")"
    )


def _values(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def score_members(
    model: Any, params: Any, k: int, X: Any, Y: Any, metric: str | None, alpha: Any = None
) -> Scores:
    """The ensemble mean's and each member's loss and metric on host rows ``(X, Y)`` (or rows
    of a data source, e.g. the ``npy`` dataset's memory-mapped features, read in chunks), on
    the parameters' backend; ``alpha``: the members' L2 alphas (a sweep), else the model's."""
    ens = Ensemble(model, k)
    name, threshold = resolve_metric(model, metric)
    if is_source(X, Y):
        alphas = None if alpha is None else list(alpha)
        values = evaluate_members_source(ens, params, as_source(X, Y), name, threshold, alphas)
        per = values.pop("members")
    else:
        be = backends.backend_of(first_leaf(params))
        x_host, y_host = host_xy(model, X, Y)
        dtype = dtype_name(params)
        x, y = move_x(be, x_host, dtype, model), be.asarray(y_host, dtype)
        values = evaluate_members(ens, params, x, y, name, threshold)
        per = values.pop("members")
        if alpha is not None:  # each member's loss with its own L2 alpha
            own = member_scores(ens, params, x, y, None, None, alpha=list(alpha))["loss"]
            per["loss"] = [float(v) for v in be.to_numpy(own).tolist()]
    scores = Scores(values)
    scores.members = [{c: per[c][i] for c in per} for i in range(k)]
    return scores


def member_lines(cfg: Any, result: Any, test: Scores, label: str, fmt: Any) -> list[str]:
    """One line per member (seed, swept values, final history values, scores on ``label``),
    the best member, and the ensemble mean's scores."""

    def numbers(values: dict[str, float]) -> str:
        return ", ".join(f"{c} {fmt(c.removeprefix('val_'), v)}" for c, v in values.items())

    lines = []
    for k in range(result.members):
        hyper = ", ".join(f"{c} {v:g}" for c, v in hyperparameters(cfg, k).items())
        history = result.member_history(k)
        final = {c: v for c, v in (history.last if len(history) else {}).items() if _score(c)}
        stopped = result.stopped[k]
        lines.append(
            f"member {k} ({hyper}): "
            + (f"stopped at epoch {stopped}: " if stopped is not None else "")
            + numbers(final)
            + f"; {label} {numbers(test.members[k])}"
        )
    best = result.best_member
    if best is not None:
        lines.append(f"best member: {best} (by {result.monitor})")
    lines.append(f"{label}, ensemble mean of {result.members} members: {numbers(test)}")
    return lines


def _score(column: str) -> bool:
    return column.removeprefix("val_") in ("loss", "accuracy", "r2")


def model_of(spec: dict[str, Any]) -> tuple[Any, int | None]:
    """``(the members' model, K)`` from a ``model.npz`` spec; K None for one model."""
    if isinstance(spec, dict) and spec.get("type") == "ensemble":
        return build_model(spec["model"]), int(spec["members"])
    return build_model(spec), None
