"""What an ensemble `fit` returns (`EnsembleResult`), its summary line, and `evaluate` on
stacked parameters: in memory (`evaluate_members`) or on a data source read in chunks
(`evaluate_members_source`, `member_source_scores`: one read of the rows for all members;
the members' outputs (K, N, n_out) are kept on the device, never the inputs)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from array_api_compat import array_namespace

from ..nn.ensemble import Ensemble
from ..nn.model import dtype_name
from ..nn.sequential import first_leaf, is_activation
from . import _progress
from ._ensemble_step import member_scores, scores_from_outputs
from ._monitor import mode_for
from ._result import FitResult
from ._sourcedata import DeviceData, is_row_source, predict_source, source_outputs
from .history import History
from .metrics import get_metric
from .step import _compiled

__all__ = [
    "EnsembleResult",
    "ensemble_summary",
    "evaluate_members",
    "evaluate_members_source",
    "member_source_scores",
    "stacked_model",
]

# the columns one member's history has, besides its own "loss", metric and "val_*" columns
_SHARED = ("time", "samples_per_s")


@dataclasses.dataclass
class EnsembleResult(FitResult):
    """What ``fit(..., ensemble=K)`` (or ``sweep=``) returns: a `FitResult` whose ``params``
    are stacked (every array with a leading member axis of K, as `Ensemble.init` gives them)
    and ``opt_state`` likewise, plus per member:

    - ``members`` K; ``ensemble`` the `Ensemble`; ``model`` the members' `Sequential`;
    - ``member_params(k)``: member k's parameters in the model's own shapes;
    - ``history``: the ensemble's (per epoch each column's mean over the members, and the
      per-member columns ``"loss[k]"``, ``"val_loss[k]"``, ``"lr[k]"``...; ``step_losses`` the
      K losses of every step, step-major); ``member_history(k)``: the `History` a single fit
      of member k would have (its epochs only: it ends where the member stopped);
    - ``stopped``: per member the epoch it stopped at (early stopping; for a diverged member
      the last good epoch), None for a member that trained to the end; ``stop_reasons``;
    - ``best_epoch``: with `EarlyStopping`, each member's best epoch (a list), else None;
    - ``best_member``: the member with the best ``monitor`` value (early stopping's monitor,
      else "val_loss" with validation data, else "loss") at the epoch its parameters are from;
    - ``predict(X)``: the ensemble's prediction, the members' outputs averaged (N, n_out) (for
      classifiers the mean of the probabilities); ``predict_members(X)``: (K, N, n_out); for
      a memory-mapped ``X`` or a `RowSource`, computed in chunks of rows.
    """

    ensemble: Any = None
    member_stop: list = dataclasses.field(default_factory=list)
    monitor: str = "loss"
    restore_best: bool = False

    @property
    def members(self) -> int:
        return self.ensemble.members

    @property
    def stopped(self) -> list[int | None]:
        return [None if s is None else s["epoch"] for s in self.member_stop]

    @property
    def stop_reasons(self) -> list[str | None]:
        return [None if s is None else s["reason"] for s in self.member_stop]

    def member_params(self, k: int) -> Any:
        """Member ``k``'s parameters (arrays of the backend) in the model's own shapes."""
        return self.ensemble.member(self.params, k)

    def member_history(self, k: int) -> History:
        """Member ``k``'s own history: the columns a single `fit` has, its epochs only."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.members:
            raise IndexError(f"member index must be an int in [0, {self.members}), received {k!r}")
        last = self.stopped[k] if self.stopped[k] is not None else len(self.history)
        suffix, records = f"[{k}]", []
        for record in self.history.records[:last]:
            own = {"epoch": record["epoch"]}
            own.update({c[: -len(suffix)]: v for c, v in record.items() if c.endswith(suffix)})
            own.update({c: record[c] for c in _SHARED if c in record})  # a single fit's order
            records.append(own)
        steps = self.history.step_losses
        per_epoch = len(steps) // max(1, len(self.history)) if self.history.records else 0
        return History(records, steps[: last * per_epoch][k :: self.members])

    def final_epoch(self, k: int) -> int:
        """The epoch member ``k``'s parameters in ``params`` are from."""
        if self.restore_best and self.best_epoch and self.best_epoch[k] is not None:
            return self.best_epoch[k]
        return self.stopped[k] if self.stopped[k] is not None else self.epochs

    @property
    def best_member(self) -> int | None:
        """The member whose ``monitor`` value is best (None before any epoch)."""
        sign = -1.0 if mode_for(self.monitor) == "max" else 1.0
        scores = []
        for k in range(self.members):
            e = self.final_epoch(k)
            value = self.history.records[e - 1].get(f"{self.monitor}[{k}]") if e else None
            if value is not None and math.isfinite(value):
                scores.append((sign * value, k))
        return min(scores)[1] if scores else None

    def predict_members(self, X: Any) -> Any:
        """Every member's outputs for host inputs ``X`` (N, n_in): NumPy (K, N, n_out)."""
        if is_row_source(X):
            forward = ensemble_forward(self.ensemble, self.backend)
            return predict_source(self.model, self.params, X, forward=forward)
        x = self.backend.asarray(X, dtype_name(self.params))
        return self.backend.to_numpy(self.ensemble.predict(self.params, x))

    def predict(self, X: Any) -> Any:
        """The ensemble's prediction: the members' outputs averaged, NumPy (N, n_out)."""
        if is_row_source(X):
            forward = ensemble_forward(self.ensemble, self.backend, mean=True)
            return predict_source(self.model, self.params, X, forward=forward)
        x = self.backend.asarray(X, dtype_name(self.params))
        return self.backend.to_numpy(self.ensemble.predict_mean(self.params, x))


def ensemble_summary(result: EnsembleResult, metric: str | None) -> str:
    """One line: members, epochs, time, throughput, the member means, the best member."""
    history, k = result.history, result.members
    head = f"ensemble of {k} members: "
    text = _progress.run_line(result, metric, k, head=head, label="member means ")
    best = result.best_member
    if best is not None:
        e = result.final_epoch(best)
        value = history.records[e - 1][f"{result.monitor}[{best}]"]
        text += f"; best member {best} ({result.monitor} {value:.4g} at epoch {e})"
    stopped = [i for i, s in enumerate(result.stopped) if s is not None]
    if stopped:
        text += f"; members stopped early: {stopped}"
    if result.stop_reason:
        text += f"; stopped: {result.stop_reason}"
    return text


def evaluate_members(ens: Ensemble, params: Any, X: Any, Y: Any, metric, threshold) -> dict:
    """`evaluate` on stacked parameters: ``{"loss": L, metric: M, "members": {"loss": [K],
    metric: [K]}}``, host floats. ``L`` and ``M`` score the ensemble's prediction, the members'
    outputs averaged (N, n_out), with the model's loss without an L2 term (no one set of
    weights; probabilities of sigmoid/softmax outputs clipped to [tiny, 1 - eps] before the logs);
    ``"members"`` each member's loss (with its L2 term, as `evaluate` of that member alone)
    and metric. X (N, ...), Y (N, n_out): arrays of the parameters' backend and dtype."""
    own = member_scores(ens, params, X, Y, metric, threshold)
    return _with_mean(
        ens, own, array_namespace(X).mean(ens.predict(params, X), axis=0), Y, metric, threshold
    )


def evaluate_members_source(
    ens: Ensemble, params: Any, data: Any, metric, threshold, alpha: Any = None
) -> dict:
    """`evaluate_members` on a `Dataset` or `BatchStream` (`_sourcedata.as_source`), read once
    in chunks for all members: the same numbers as the same rows in memory. ``alpha``: the
    members' L2 alphas (a sweep's list) for their own losses, else the model's."""
    z, a, Y = source_outputs(
        ens.model, params, data, forward=ensemble_forward(ens, _backend(params))
    )
    own = scores_from_outputs(ens, params, z, a, Y, metric, threshold, alpha)
    return _with_mean(ens, own, array_namespace(a).mean(a, axis=0), Y, metric, threshold)


def _with_mean(ens: Ensemble, own: dict, a: Any, Y: Any, metric, threshold) -> dict:
    """The report of `evaluate_members`: the scores of the mean output ``a`` (N, n_out) and
    the members' own scores ``own`` ({name: (K,)}), as host floats."""
    xp, model = array_namespace(a), ens.model
    if any(is_activation(model.output_activation, n) for n in ("sigmoid", "softmax")):
        info = xp.finfo(a.dtype)
        a = xp.clip(a, float(info.smallest_normal), 1.0 - float(info.eps))
    mean = {"loss": model.loss_function.value(xp, a, Y)}
    if metric is not None:
        mean[metric] = get_metric(metric)(xp, a, Y, threshold=threshold)
    values = xp.concat([xp.stack(list(mean.values())), *own.values()])
    host = [float(v) for v in ens_backend_host(values)]
    out: dict[str, Any] = dict(zip(mean, host[: len(mean)], strict=True))
    k, rest = ens.members, host[len(mean) :]
    out["members"] = {name: rest[i * k : (i + 1) * k] for i, name in enumerate(own)}
    return out


def ensemble_forward(ens: Ensemble, be: Any, mean: bool = False) -> Any:
    """``(params, x) -> (z, a)``, every member's (K, N, n_out) each, or with ``mean`` ``(None,
    the members' a averaged (N, n_out))``: compiled, cached per ensemble and backend."""
    xp = be.xp

    def forward(params: Any, x: Any) -> tuple[Any, Any]:
        z, a, _ = ens.model._forward(xp, params, x)
        return (None, xp.mean(a, axis=0)) if mean else (z, a)

    return _compiled(("ensemble_forward", mean), ens, None, be, lambda: be.compile(forward))


def member_source_scores(
    ens, params, data, metric, threshold, alpha=None, weights=None, rows=None
) -> dict:
    """``{"loss": (K,), metric: (K,)}`` on the backend: each member's loss (with its L2 term)
    and metric on the first ``rows`` rows (default all) of ``data`` (a `Dataset`, one pass of a
    `BatchStream`, or `DeviceData`), read once for all members; ``weights``: host (N,) or None.
    The numbers `member_scores` gives for the same rows in memory (the same chunks)."""
    if isinstance(data, DeviceData):
        return member_scores(ens, params, data.x, data.y, metric, threshold, alpha)
    be = _backend(params)
    z, a, y = source_outputs(ens.model, params, data, rows, forward=ensemble_forward(ens, be))
    w = None if weights is None else be.asarray(weights[: y.shape[0]], dtype_name(params))
    return scores_from_outputs(ens, params, z, a, y, metric, threshold, alpha, w)


def _backend(params: Any) -> Any:
    import backends

    return backends.backend_of(first_leaf(params))


def stacked_model(model: Any, params: Any) -> tuple[Any, Ensemble | None]:
    """``(the members' model, the Ensemble)`` for a `bp.Ensemble`, or for a `Sequential` given
    stacked parameters (K read from their leading axis); ``(model, None)`` for one model's."""
    if isinstance(model, Ensemble):
        return model.model, model
    try:
        model._check_params(params)
        return model, None
    except ValueError as single:
        try:
            ens = Ensemble(model, int(first_leaf(params).shape[0]))
            ens._check_params(params)
        except (ValueError, TypeError, AttributeError, IndexError):
            raise single from None
        return model, ens


def ens_backend_host(values: Any) -> list[float]:
    """A backend vector as host floats (one copy)."""
    import backends

    return backends.backend_of(values).to_numpy(values).tolist()
