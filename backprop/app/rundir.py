"""The run directory of a config run: a new folder, its files, the manifest and the plot.

Host-only module (see `backprop.experiment` for what each file holds).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys
from typing import Any

from ..training.checkpoint import save_checkpoint
from ._toml import dump_toml
from .config import Config

__all__ = ["manifest", "new_run_dir", "plot_history", "write_run"]


def new_run_dir(cfg: Config, run_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """``run_dir`` when given (it must not hold files: runs are never overwritten), else a new
    ``<training.run_dir>/<config name>-<date>-<time>`` directory."""
    if run_dir is not None:
        path = pathlib.Path(run_dir)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"run directory {path} already exists and is not empty; runs are never "
                "overwritten: pass another --run-dir, or move that one away"
            )
        path.mkdir(parents=True, exist_ok=True)
        return path
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


def manifest(cfg, be, switches, data, model, command) -> dict[str, Any]:
    info = be.info()
    info.update(switches)
    return {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
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


def write_run(folder, cfg, result, stored, manifest, verbose) -> None:
    save_checkpoint(
        folder / "model.npz",
        {"params": result.params},
        {"model": result.model.spec(), "config": stored, "dtype": cfg.backend.dtype},
        result.backend,
    )
    history = folder / f"history.{cfg.training.history_format}"
    getattr(result.history, f"to_{cfg.training.history_format}")(history)
    header = f"# resolved config of this run (from {cfg.source}); run it again with\n"
    header += "#   backprop train <this file>\n"
    (folder / "config.toml").write_text(header + dump_toml(cfg.to_dict()), encoding="utf-8")
    manifest["plot"] = plot_history(result.history, folder / "curves.png")
    if manifest["plot"] != "curves.png" and verbose:
        print(f"note: {manifest['plot']}")
    manifest["files"] = [*sorted(p.name for p in folder.iterdir()), "manifest.json"]
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


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
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
