"""The state of a `Run` at the end of an epoch, to put the run back there when training is
interrupted (Ctrl-C) in the middle of the next one.

Taken at every epoch end, so it must be cheap: parameters and optimizer state are kept by
reference (the epoch loop never writes into them: on backends that donate buffers, the next
epoch trains on copies), the host RNG states are small dicts, the callbacks' JSON state a
deep copy of a few numbers, the history two lengths (records are only ever appended).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["Snapshot"]

_POSITION = ("epoch", "step", "samples", "stop_training", "stop_reason", "best_epoch")


class Snapshot:
    """Everything `fit` changes in a `Run` during an epoch, as it was when ``take`` ran."""

    def __init__(self, run: Any) -> None:
        self.params, self.opt_state = run.params, run.opt_state
        self.position = {k: getattr(run, k) for k in _POSITION}
        self.schedule_state = copy.deepcopy(run.schedule_state)
        self.rngs = {k: rng.bit_generator.state for k, rng in run.rngs.items()}
        self.lengths = (len(run.history.records), len(run.history.step_losses))
        self.callbacks = [
            (copy.deepcopy(cb.state_dict()), cb.trees()) if _saves(cb) else None
            for cb in run.callbacks
        ]

    def restore(self, run: Any) -> None:
        """Put ``run`` (and its callbacks' saved state) back to this snapshot."""
        run.params, run.opt_state = self.params, self.opt_state
        for k, value in self.position.items():
            setattr(run, k, value)
        run.schedule_state = copy.deepcopy(self.schedule_state)
        for k, state in self.rngs.items():
            run.rngs[k].bit_generator.state = state
        records, steps = self.lengths
        del run.history.records[records:]
        del run.history.step_losses[steps:]
        for cb, saved in zip(run.callbacks, self.callbacks, strict=True):
            if saved is not None:
                cb.load_state_dict(copy.deepcopy(saved[0]), saved[1])

    def interrupt(self, run: Any) -> None:
        """`restore`, then every callback's ``on_interrupt(run)`` (training was interrupted)."""
        self.restore(run)
        for cb in run.callbacks:
            hook = getattr(cb, "on_interrupt", None)  # duck-typed callbacks may lack it
            if hook is not None:
                hook(run)


def _saves(cb: Any) -> bool:
    """Whether a callback has the state methods of `backprop.Callback` (duck-typed ones may
    have only the hooks)."""
    return all(hasattr(cb, m) for m in ("state_dict", "trees", "load_state_dict"))
