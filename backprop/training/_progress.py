"""The progress bar and the end-of-training summary (host-only: tqdm and print).

The bar shows when ``verbose >= 1`` and standard error is a terminal; it counts steps over the
whole run and shows the epoch, the latest loss read, the validation metric and samples/s. It
redraws at most once per ``MIN_INTERVAL`` seconds (and once more when it closes, so the final
numbers show): a redraw per step cost as much as the training itself on small models. The
summary line is printed at the end whenever ``verbose >= 1``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["MIN_INTERVAL", "Progress", "summary"]

MIN_INTERVAL = 0.1  # seconds between redraws: at most ~10 a second
_clock = time.monotonic  # module-level so tests can drive it


class Progress:
    """A tqdm bar over ``epochs * steps`` steps, or nothing (``on`` is False).

    `batch` and `epoch` update the numbers on every call but redraw only when ``MIN_INTERVAL``
    seconds have passed since the last redraw; `close` draws the final state.
    """

    def __init__(self, epochs: int, steps: int, verbose: int, start_epoch: int = 0) -> None:
        self.steps = steps
        self.on = bool(verbose) and sys.stderr.isatty()
        self.bar = None
        self.epoch_index = start_epoch
        self.postfix: dict[str, str] = {}
        self.drawn_at = _clock()
        if self.on:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=epochs * steps or None,  # steps 0: a loader of unknown length
                initial=start_epoch * steps,
                unit="step",
                dynamic_ncols=True,
                leave=True,
            )

    def batch(self, steps_done: int, loss: float) -> None:
        """``steps_done`` steps of the current epoch are finished; ``loss`` was just read."""
        if self.bar is None:
            return
        self.bar.n = self.epoch_index * self.steps + steps_done
        self.postfix["loss"] = f"{loss:.4g}"
        self._draw()

    def epoch(self, record: dict[str, float], metric: str | None) -> None:
        self.epoch_index = int(record["epoch"])
        if self.bar is None:
            return
        self.bar.n = self.epoch_index * self.steps
        self.postfix = {"epoch": str(self.epoch_index), "loss": f"{record['loss']:.4g}"}
        for key in ("val_loss", f"val_{metric}"):
            if key in record:
                self.postfix[key] = f"{record[key]:.4g}"
        self.postfix["samples/s"] = f"{record['samples_per_s']:.3g}"
        self._draw()

    def _draw(self) -> None:
        """Redraw if ``MIN_INTERVAL`` seconds passed since the last redraw."""
        now = _clock()
        if now - self.drawn_at < MIN_INTERVAL:
            return
        self.drawn_at = now
        self.bar.set_postfix(self.postfix, refresh=True)

    def close(self) -> None:
        """Draw the latest numbers (tqdm's close redraws the bar) and end the line."""
        if self.bar is not None:
            self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.close()
            self.bar = None


def summary(result: Any, metric: str | None) -> str:
    """One line: epochs, time, throughput, backend, the last epoch's numbers, why it stopped."""
    text = run_line(result, metric)
    if result.best_epoch is not None:
        text += f"; best epoch {result.best_epoch}"
    if result.stop_reason:
        text += f"; stopped: {result.stop_reason}"
    return text


def run_line(
    result: Any, metric: str | None, members: int = 1, head: str = "", label: str = ""
) -> str:
    """The start of a summary: ``{head}trained E epoch(s) in T s; R samples/s on backend:
    {label}loss ..., metric ..., val_loss ...`` (the last epoch's numbers). ``members``: models
    trained at once, each seeing every sample (the rate is then member-samples/s)."""
    history, be = result.history, result.backend
    last = history.last
    seconds = sum(r.get("time", 0.0) for r in history.records)
    samples = members * sum(r["samples_per_s"] * r["time"] for r in history.records)
    parts = [f"{head}trained {result.epochs} epoch(s) in {result.time:.2f} s"]
    if seconds > 0:
        unit = "member-samples/s" if members > 1 else "samples/s"
        parts.append(f"{samples / seconds:,.0f} {unit}")
    parts.append(f"on {be.name} ({be.device_name})")
    keys = ["loss", metric, "val_loss", f"val_{metric}"] if metric else ["loss", "val_loss"]
    numbers = ", ".join(f"{k} {last[k]:.4g}" for k in keys if k in last)
    return "; ".join(parts) + (f": {label}{numbers}" if numbers else "")
