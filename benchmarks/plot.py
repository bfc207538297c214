"""The results figure: median seconds per epoch per contender with the floor as a line, and, when
the sweep ran, µs per sample against batch size and against width."""

from __future__ import annotations

import pathlib
from typing import Any

__all__ = ["plot_results"]


def plot_results(results: dict[str, Any], path: pathlib.Path) -> pathlib.Path:
    """Write the figure to ``path`` (PNG) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = results.get("sweep")
    n_panels = 3 if sweep else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(6 * n_panels, 4.8), squeeze=False)
    _bars(axes[0][0], results)
    if sweep:
        for ax, axis in zip(axes[0][1:], ("batch", "width"), strict=True):
            _sweep_panel(ax, sweep, axis)
    fig.suptitle(
        f"{results['workload']['name']} ({results['dtype']}, {results['device']}): "
        f"{results['machine']['cpu']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, results: dict[str, Any]) -> None:
    summary = results["summary"]
    rows = sorted(
        (s for n, s in summary.items() if n != "floor" and s.get("epoch_s") is not None),
        key=lambda s: s["epoch_s"],
    )
    names = [s["name"] for s in rows]
    medians = [s["epoch_s"] for s in rows]
    low = [s["epoch_s"] - s["epoch_min"] for s in rows]
    high = [s["epoch_max"] - s["epoch_s"] for s in rows]
    colors = ["tab:blue" if n.startswith("backprop-") else "tab:gray" for n in names]
    ax.barh(names, medians, xerr=[low, high], color=colors)
    floor = summary.get("floor", {}).get("epoch_s")
    if floor is not None:
        ax.axvline(floor, color="tab:red", linestyle="--", label=f"GEMM floor {floor:.3f} s")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds per epoch (median, bars: min–max over rounds)")


def _sweep_panel(ax: Any, sweep: dict[str, Any], axis: str) -> None:
    pts = [p for p in sweep["points"] if p["axis"] == axis]
    xs = [p[axis] for p in pts]
    styles = {"numpy_us": "o-", "jax_us": "s-", "floor_us": "k--"}
    labels = {"numpy_us": "backprop-numpy", "jax_us": "backprop-jax", "floor_us": "GEMM floor"}
    for key, style in styles.items():
        ys = [p.get(key) for p in pts]
        if any(y is not None for y in ys):
            ax.plot(xs, [float("nan") if y is None else y for y in ys], style, label=labels[key])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (width 256)" if axis == "batch" else "width (batch 128)")
    ax.set_ylabel("µs per sample")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
