"""One config run from prepared data to a run directory: claim (or reopen) the directory, write
the config and manifest at once, `fit` with the run's callbacks, keep ``history`` and the
manifest current as epochs finish, and leave a complete directory whatever the ending (finished,
stopped early, diverged, interrupted).

Host-only module; `backprop.app.experiment.train_config` and ``resume_run`` call `run_training`.
On Ctrl-C the directory holds the last finished epoch (``model.npz``, ``last.npz``, history,
manifest with ``"status": "interrupted"``, plot) and the raised `RunInterrupted` says the
command that continues it: ``backprop train --resume RUN_DIR``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import time
from typing import Any

from ..data.checks import DataError
from ..nn.model import dtype_name
from ..training.callbacks import EarlyStopping, ModelCheckpoint
from ..training.checkpoint import CheckpointError
from ..training.fit import FitResult, TrainingDiverged, fit
from ..training.scoring import evaluate
from ._ensemblerun import describe, fit_arguments, hyperparameters, member_lines, score_members
from .config import Config
from .rundir import RunDirectory, RunFiles, manifest, plot_history

__all__ = ["RunInterrupted", "RunResult", "format_metric", "run_training"]


@dataclasses.dataclass
class RunResult:
    """What `train_config` returns: the fit result, held-out metrics and the run directory."""

    fit: FitResult
    test: dict[str, float]
    run_dir: pathlib.Path | None
    manifest: dict[str, Any]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a config run: the message says where the last finished epoch is kept and
    how to continue; ``result`` is the `RunResult` at that epoch."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


def format_metric(key: str, value: float) -> str:
    return f"{value:.2%}" if key == "accuracy" else f"{value:.4g}"


def run_training(
    cfg: Config,
    data: Any,
    model: Any,
    be: Any,
    switches: dict[str, Any],
    *,
    run_dir: str | os.PathLike | None,
    save: bool,
    resume: bool,
    verbose: int,
    command: list[str] | None,
) -> RunResult:
    """Train ``model`` on ``data`` as ``cfg`` says, on ``be``; see the module docstring."""
    say = print if verbose else (lambda *a, **k: None)
    if save and be.process_index:  # a multi-process run: process 0 writes the run directory
        save = False
        say(f"process {be.process_index}: the run directory is written by process 0")
    if resume:
        folder = RunDirectory.reopen(run_dir) if save else None
    else:
        folder = RunDirectory.claim(cfg, run_dir) if save else None
    try:
        return _Session(cfg, data, model, be, folder, say, verbose).run(
            switches, command, pathlib.Path(run_dir) / "last.npz" if resume else None
        )
    finally:
        if folder is not None:
            folder.release()


class _Session:
    def __init__(self, cfg, data, model, be, folder, say, verbose):
        self.cfg, self.data, self.model, self.be = cfg, data, model, be
        self.folder, self.say, self.verbose = folder, say, verbose
        self.stored = {"resolved": cfg.to_dict(), "preprocessing": data.preprocessing}
        self.optimizer, self.schedule = cfg.optimizer.build(), cfg.optimizer.schedule.build()

    def run(self, switches, command, resume_from) -> RunResult:
        cfg, data, folder, say = self.cfg, self.data, self.folder, self.say
        record = manifest(cfg, self.be, switches, data, self.model, command)
        if resume_from is not None:
            record = self._resumed_record(record, resume_from)
        elif folder is not None:  # written first: a run that dies early still says what it was
            folder.write_config(cfg)
            folder.write_manifest(record)
        self._announce(record)
        start = time.perf_counter()
        ending, result = "finished", None
        try:
            result = self._fit(record, resume_from)
        except TrainingDiverged as exc:  # keep the last finite parameters and the history
            ending, result, error = "diverged", exc.result, exc
        except KeyboardInterrupt as exc:
            result = getattr(exc, "result", None)
            if result is None or folder is None:
                raise
            ending, error = "interrupted", exc
        if ending == "finished" and result.stop_reason:
            ending = "stopped early"
        test = self._evaluate(result)
        record["result"] = {
            "epochs": result.epochs,
            "fit_seconds": round(result.time, 4),
            "wall_seconds": round(time.perf_counter() - start, 4),
            "stop_reason": result.stop_reason,
            "best_epoch": result.best_epoch,
            "final": result.history.last if len(result.history) else {},
            "evaluated_on": "test" if data.held_out else "training rows",
            "test": test,
            **self._members_record(result, test),
        }
        out = RunResult(result, test, None if folder is None else folder.path, record)
        if folder is not None:
            self._write(result, record, ending)
            say(f"run directory: {folder}")
        if ending == "diverged":
            where = f"; the last finite parameters are in {folder / 'model.npz'}" if folder else ""
            # a config user turns the check off with the config key, not fit's argument
            text = str(error).replace("divergence_factor=None", "training.divergence_factor=0")
            raise TrainingDiverged(f"{text}{where}", result) from None
        if ending == "interrupted":
            raise RunInterrupted(
                f"interrupted after epoch {result.epochs} of {cfg.training.epochs}; {folder} "
                f"holds that epoch; continue with: backprop train --resume {folder}",
                out,
            ) from None
        return out

    def _resumed_record(self, fresh: dict[str, Any], resume_from: pathlib.Path) -> dict:
        if not resume_from.is_file():
            raise CheckpointError(
                f"cannot resume {resume_from.parent}: it has no last.npz (the run ended before "
                "its first checkpoint was written); start it again with `backprop train "
                f"{resume_from.parent / 'config.toml'}`"
            )
        record = self.folder.read_manifest() if self.folder is not None else dict(fresh)
        record["resumed"] = [
            *record.get("resumed", []),
            {
                "at": fresh["created"],
                "command": fresh["command"],
                "backend": fresh["backend"]["backend"],
                "device": fresh["backend"]["device"],
            },
        ]
        record["status"] = "running"
        if self.folder is not None:
            self.folder.write_config(self.cfg)  # a larger training.epochs is the new target
            self.folder.write_manifest(record)
        return record

    def _announce(self, record: dict[str, Any]) -> None:
        cfg, data, say = self.cfg, self.data, self.say
        # fit holds out ceil(fraction * N) rows (backprop.data.weights.validation_split)
        n_val = math.ceil(cfg.training.validation_split * len(data.x_train))
        say(
            f"{cfg.data.name}: {len(data.x_train) - n_val} train"
            + (f" + {n_val} validation" if n_val else "")
            + (f" / {len(data.x_test)} test rows" if data.held_out else " rows (no test split)")
            + (
                f", {data.n_in} features -> {data.n_out} outputs"
                if isinstance(data.n_in, int)
                else f", inputs of shape {tuple(data.n_in)} -> {data.n_out} outputs"
            )
        )
        say(f"model {self.model}")
        say(f"optimizer {self.optimizer.spec()}, schedule {self.schedule.spec()}")
        say(
            f"backend {self.be.name} {record['backend'].get('library_version', '')} on "
            f"{self.be.device_name}, {cfg.backend.dtype}, precision {cfg.backend.precision}"
        )
        if cfg.members is not None:
            say(describe(cfg))

    def _callbacks(self, record: dict[str, Any]) -> list[Any]:
        t, folder = self.cfg.training, self.folder
        out: list[Any] = []
        if t.early_stopping is not None:
            out.append(EarlyStopping(**dataclasses.asdict(t.early_stopping)))
        if folder is not None:
            ck = t.checkpoint
            keep_best = ck.keep_best and (
                t.validation_split > 0 or not ck.monitor.startswith("val_")
            )
            every = ck.every or t.epochs  # 0: only at the end (and when interrupted)
            out.append(
                ModelCheckpoint(folder.path, every=every, keep_best=keep_best, monitor=ck.monitor)
            )
            out.append(RunFiles(folder, t.history_format, record, every))
        return out

    def _fit(self, record: dict[str, Any], resume_from: pathlib.Path | None) -> FitResult:
        cfg, data, t = self.cfg, self.data, self.cfg.training
        return fit(
            self.model,
            data.x_train,
            data.y_train,
            optimizer=self.optimizer,
            schedule=self.schedule,
            backend=self.be,
            dtype=cfg.backend.dtype,
            epochs=t.epochs,
            batch_size=t.batch_size,
            seed=t.seed,
            shuffle=t.shuffle,
            validation_split=t.validation_split,
            metric=t.fit_metric,
            class_weight=self._class_weight(),
            callbacks=self._callbacks(record),
            diagnostics=t.diagnostics,
            divergence_factor=t.fit_divergence_factor,
            verbose=self.verbose,
            config=self.stored,
            resume=resume_from,
            **fit_arguments(cfg),
        )

    def _class_weight(self) -> Any:
        """``training.class_weight`` for `fit`: a table's keys are the data's own labels (0,
        1000, "cat"), turned into the model's class indices through the stored classes."""
        weights, classes = self.cfg.training.class_weight, self.data.preprocessing.get("classes")
        if not isinstance(weights, dict):
            return self.cfg.training.fit_class_weight
        if classes is None:  # the labels are the indices 0..K-1 (0/1 for one sigmoid unit)
            index = {str(k): k for k in range(max(self.data.n_out, 2))}
        else:
            index = {str(c): k for k, c in enumerate(classes)}
        unknown = [k for k in weights if k not in index]
        if unknown:
            known = list(index) if classes is None else [str(c) for c in classes]
            raise DataError(
                f"training.class_weight names {unknown[0]!r}, which is not a class of "
                f"{self.cfg.data.name}'s labels {known}; use those labels as the keys"
            )
        return {index[k]: float(w) for k, w in weights.items()}

    def _evaluate(self, result: FitResult) -> dict[str, float]:
        data, cfg = self.data, self.cfg
        label = "test" if data.held_out else "training rows"
        with self.be.quiet_float_errors():  # diverged runs: report inf, not a NumPy warning
            if cfg.members is not None:  # the ensemble's mean prediction, and each member
                test = score_members(
                    self.model, result.params, cfg.members, data.x_test, data.y_test,
                    cfg.training.fit_metric, cfg.sweep.options.get("alpha"),
                )  # fmt: skip
                for line in member_lines(cfg, result, test, label, format_metric):
                    self.say(line)
                return test
            test = evaluate(
                self.model,
                result.params,
                data.x_test,
                data.y_test,
                metric=cfg.training.fit_metric,
            )
        self.say(f"{label}: " + ", ".join(f"{k} {format_metric(k, v)}" for k, v in test.items()))
        return test

    def _members_record(self, result: FitResult, test: Any) -> dict[str, Any]:
        """The manifest's ``members`` (seed, swept values, final values, scores) and
        ``best_member``; nothing for one model."""
        if self.cfg.members is None:
            return {}
        members = []
        for k in range(result.members):
            history = result.member_history(k)
            members.append(
                {
                    **hyperparameters(self.cfg, k),
                    "stopped_at": result.stopped[k],
                    "final": history.last if len(history) else {},
                    "test": test.members[k],
                }
            )
        return {"best_member": result.best_member, "members": members}

    def _write(self, result: FitResult, record: dict[str, Any], ending: str) -> None:
        """The final files; each write is atomic, and the model goes first, so a full disk
        keeps the best result so far (``last.npz``/``best.npz`` are untouched)."""
        folder, cfg = self.folder, self.cfg
        # the float32 master weights of a mixed-precision (bfloat16/float16) run
        folder.write_model(result, self.stored, dtype_name(result.params))
        folder.write_history(result.history, cfg.training.history_format)
        record["plot"] = plot_history(result.history, folder / "curves.png")
        if record["plot"] != "curves.png" and self.verbose:
            print(f"note: {record['plot']}")
        record["status"], record["epochs_done"] = ending, result.epochs
        folder.write_manifest(record)
