"""The run directory of a config run: claiming it, its files as the run goes, the manifest and
the plot.

Host-only module (see `backprop.app.experiment` for what each file holds).

A run directory belongs to one process at a time: `RunDirectory.claim` (a new run) and
`RunDirectory.reopen` (``backprop train --resume``) take an exclusive ``flock`` on
``RUN/.lock`` for the life of the run, so two ``backprop train --run-dir D`` started at the same
moment cannot both write into ``D``: the second one gets `RunDirInUse` (a `FileExistsError`,
exit 2). The lock is released by the kernel when the process dies (kill -9 included), and the
``.lock`` file is removed at `RunDirectory.release`. Every file is written atomically (a temporary
file renamed onto the name), so a failed write (a full disk) leaves the previous version.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import sys
import time
from typing import Any

from ..training.callbacks import Callback
from ..training.checkpoint import save_checkpoint, write_atomic
from ._toml import dump_toml
from .config import Config

try:  # POSIX; elsewhere a run directory is claimed by creating its manifest exclusively
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "LOCK",
    "RunDirInUse",
    "RunDirectory",
    "RunFiles",
    "manifest",
    "plot_history",
    "write_text_atomic",
]

LOCK = ".lock"
MANIFEST = "manifest.json"


class RunDirInUse(FileExistsError):
    """Another process holds the run directory (it is training or resuming into it)."""


class RunDirectory:
    """A run directory this process holds (see the module docstring)."""

    def __init__(self, path: pathlib.Path, lock: Any) -> None:
        self.path, self._lock = path, lock

    @classmethod
    def claim(cls, cfg: Config, run_dir: str | os.PathLike | None = None) -> RunDirectory:
        """``run_dir`` when given (it must not hold files: runs are never overwritten), else a
        new ``<training.run_dir>/<config name>-<date>-<time>`` directory; locked."""
        if run_dir is None:
            return cls._lock_new(cls._new_path(cfg), expected_empty=True)
        path = pathlib.Path(run_dir)
        if path.exists() and not path.is_dir():
            raise FileExistsError(
                f"run directory {path} exists and is a file; pass a new directory as --run-dir"
            )
        path.mkdir(parents=True, exist_ok=True)
        return cls._lock_new(path, expected_empty=True)

    @classmethod
    def reopen(cls, run_dir: str | os.PathLike) -> RunDirectory:
        """An existing run directory, to resume the run in it; locked."""
        path = pathlib.Path(run_dir)
        if not (path / MANIFEST).is_file():
            what = "does not exist" if not path.exists() else f"has no {MANIFEST}"
            raise FileNotFoundError(
                f"cannot resume {path}: it {what}; pass a run directory written by "
                "`backprop train` (it holds manifest.json, config.toml and last.npz)"
            )
        return cls._lock_new(path, expected_empty=False)

    @staticmethod
    def _new_path(cfg: Config) -> pathlib.Path:
        stem = pathlib.Path(cfg.source).stem if cfg.source.endswith(".toml") else "run"
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        parent = pathlib.Path(cfg.training.run_dir)
        for i in range(1, 1000):
            path = parent / (f"{stem}-{stamp}" if i == 1 else f"{stem}-{stamp}-{i}")
            try:
                path.mkdir(parents=True)
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"could not create a new run directory under {parent}")

    @classmethod
    def _lock_new(cls, path: pathlib.Path, expected_empty: bool) -> RunDirectory:
        fd = os.open(path / LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise RunDirInUse(
                        f"run directory {path} is in use by another backprop process (it holds "
                        f"{path / LOCK}); wait for it to finish, or pass another --run-dir"
                    ) from None
            others = sorted(p.name for p in path.iterdir() if p.name != LOCK)
            if expected_empty and others:
                raise FileExistsError(
                    f"run directory {path} already exists and is not empty ({len(others)} "
                    f"file(s), e.g. {others[0]}); runs are never overwritten: pass another "
                    "--run-dir, move that one away, or continue it with "
                    f"`backprop train --resume {path}`"
                )
            if expected_empty and fcntl is None:  # pragma: no cover - no flock: claim by O_EXCL
                os.close(os.open(path / MANIFEST, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def release(self) -> None:
        """Remove ``.lock`` and let go of the lock (idempotent)."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink()
        os.close(self._lock)
        self._lock = None

    def __truediv__(self, name: str) -> pathlib.Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    # -- files ------------------------------------------------------------------------------
    def write_config(self, cfg: Config) -> None:
        comment = f"resolved config of this run (from {cfg.source}); run it again with\n"
        comment += "  backprop train <this file>"
        write_text_atomic(self / "config.toml", dump_toml(cfg.to_dict(), comment=comment))

    def write_history(self, history: Any, fmt: str) -> None:
        """``history.csv`` or ``history.json``, written beside and renamed onto the name."""
        target = self / f"history.{fmt}"
        tmp = target.with_name(f".{target.name}.tmp")
        getattr(history, f"to_{fmt}")(tmp)
        os.replace(tmp, target)

    def write_manifest(self, record: dict[str, Any]) -> None:
        record["files"] = sorted({*self.files(), MANIFEST})
        write_text_atomic(self / MANIFEST, json.dumps(record, indent=2) + "\n")

    def files(self) -> list[str]:
        """The run's files (not the lock or temporary files)."""
        return sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))

    def write_model(self, result: Any, stored: dict[str, Any], dtype: str) -> None:
        """``model.npz``: the parameters (stacked for an ensemble, whose spec says so)."""
        model = getattr(result, "ensemble", None) or result.model
        save_checkpoint(
            self / "model.npz",
            {"params": result.params},
            {"model": model.spec(), "config": stored, "dtype": dtype},
            result.backend,
        )

    def read_manifest(self) -> dict[str, Any]:
        try:
            record = json.loads((self / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(
                f"cannot resume {self.path}: its {MANIFEST} is unreadable ({exc})"
            ) from None
        if not isinstance(record, dict):
            raise FileNotFoundError(
                f"cannot resume {self.path}: its {MANIFEST} is not a JSON object"
            )
        return record


def write_text_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` all or nothing (`backprop.training.checkpoint.write_atomic`):
    a failure (a full disk) leaves the previous file as it was. Temporary files of the same name
    left by a killed process are removed (the run directory's lock keeps other writers out)."""
    try:
        write_atomic(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"could not write {path}: {exc.strerror or exc}; check free disk space and "
            "permissions (the previous version of the file, if any, is unchanged)",
        ) from exc


class RunFiles(Callback):
    """Keeps ``history.<fmt>`` and ``manifest.json`` of a run directory current as the run goes:
    at every epoch ``last.npz`` is written (``every``, `ModelCheckpoint` runs first), at the last
    epoch, and otherwise at most every ``min_seconds``, so a crashed run shows how far it got."""

    def __init__(
        self,
        folder: RunDirectory,
        fmt: str,
        record: dict[str, Any],
        every: int,
        min_seconds: float = 2.0,
    ) -> None:
        self.folder, self.fmt, self.record = folder, fmt, record
        self.every, self.min_seconds = every, min_seconds
        self._last_write = -float("inf")

    def after_epoch(self, run: Any) -> None:
        now = time.monotonic()
        final = run.stop_training or run.epoch == run.settings["epochs"]
        if final or run.epoch % self.every == 0 or now - self._last_write >= self.min_seconds:
            self.write(run.history, run.epoch, "running")
            self._last_write = now

    def write(self, history: Any, epochs: int, status: str) -> None:
        self.folder.write_history(history, self.fmt)
        self.record["status"], self.record["epochs_done"] = status, epochs
        self.folder.write_manifest(self.record)


def manifest(cfg, be, switches, data, model, command) -> dict[str, Any]:
    info = be.info()
    info.update(switches)
    return {
        "created": _now(),
        "status": "running",
        "epochs_done": 0,
        "command": command if command is not None else list(sys.argv),
        "config_source": cfg.source,
        "backend": info,
        "dtype": cfg.backend.dtype,
        "data": {
            "name": cfg.data.name,
            "train_rows": len(data.x_train),
            "test_rows": len(data.x_test) if data.held_out else 0,
            "features": data.n_in,
            "outputs": data.n_out,
        },
        "model": model.spec(),
    }


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def plot_history(history: Any, path: pathlib.Path) -> str:
    """Loss (and metric) per epoch as a PNG; returns the file name, or why it was skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "matplotlib is not installed, so curves.png was skipped: "
            "pip install 'backprop-xp[plot]'"
        )
    if not len(history):
        return "no finished epoch, so curves.png was skipped"
    metrics = [c for c in ("accuracy", "r2") if c in history.columns]
    fig, axes = plt.subplots(
        1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6), squeeze=False
    )
    for ax, name in zip(axes[0], ["loss", *metrics], strict=True):
        for column, style in ((name, "-"), (f"val_{name}", "--")):
            if column in history.columns:
                ax.plot(history["epoch"], history[column], style, label=column)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_yscale("log" if name == "loss" else "linear")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path.name
