"""`fit`'s epoch loop over data that stays on the host (`SourceLoop`): an indexable source
(a memory-mapped ``.npy``, a `Dataset`) or a stream of batches (a generator, a DataLoader).

Per step: the host reads the batch's rows, checks them and moves them to the backend
(`move_batch`) in a background thread (`backprop.data.sources.Prefetcher`, two batches ahead),
while the device runs the previous step; so reading and transfer overlap compute. The step is
the same pure step as for in-memory data (`make_host_batch_step`), so the same rows in the same
order give the same numbers.

- Indexable source: the batch order is the same host permutation as for arrays (the "order"
  generator of `Run`), so the batches, the losses (bit for bit on NumPy) and exact resume from
  a checkpoint are those of the in-memory run.
- Stream of batches: the loader's own batches, in its order; no shuffling of ours. An epoch
  is one pass over it. Resume continues at an epoch boundary with ``source(epoch)`` for a
  function of the epoch (reproducible when that function is), or with a new pass over a
  re-iterable (a DataLoader: its shuffling is its own, so a resumed run sees other batches).
  The training metric needs a second pass over the rows, so it is not computed (its column is
  absent); validation data is scored as usual.

The epoch's read-out (training metric, validation loss and metric, diagnostics) streams the
sources in chunks and still ends in one device->host read per epoch.
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

from ..data import _host, sources
from ..nn.diagnostics import gradient_flow
from ..nn.sequential import first_leaf
from ..tree import tree_leaves
from . import _divergence
from ._epoch_end import DIAGNOSTIC_ROWS, _vectors, epoch_columns
from ._loop import _copy, _Loop
from ._sourcedata import evaluate_source, move_batch
from .evaluation import evaluate_arrays
from .step import make_host_batch_step

__all__ = [
    "PREFETCH_DEPTH",
    "REFERENCE_ROWS",
    "SourceLoop",
    "batch_done",
    "pass_done",
    "unknown_length",
    "warn_unreplayable",
]

PREFETCH_DEPTH = 2
REFERENCE_ROWS = 65536  # rows of an indexable source the divergence reference is computed on


def warn_unreplayable(data: Any, epoch: int, stacklevel: int) -> None:
    """Warn when a run resumes (``epoch`` > 0) on a stream whose batches fit cannot replay."""
    if not data.indexable and epoch and not data.train.reproducible:
        warnings.warn(
            f"fit resumes at epoch {epoch} from {data.train!r}: its batches are not "
            "fit's to replay (a DataLoader shuffles on its own), so the rest of the run "
            "will not be the one that was interrupted; pass a function epoch -> batches to "
            "make the resumed run repeat it exactly",
            stacklevel=stacklevel,
        )


class SourceLoop(_Loop):
    """`_Loop` with batches read from a host source (see the module docstring)."""

    def _setup(self, compile_epoch: Any) -> None:
        run, be, s, data = self.run, self.run.backend, self.run.settings, self.data
        if compile_epoch:
            raise ValueError(
                "fit: compile_epoch=True needs the data on the device; with a data source every "
                "batch comes from the host. Use compile_epoch=None or False"
            )
        self.step_fn = make_host_batch_step(run.model, run.optimizer, be, s.get("compute_dtype"))
        self.epoch_fn = None
        self.columns = epoch_columns(run.model, s, data.val is not None)
        bs = s["batch_size"]
        self.n_steps = -(-data.n // bs) if data.indexable else data.train.n_batches
        self.diag, self.rows_checked = None, False
        if s["diagnostics"] and data.indexable:
            rows = _host.arange(min(DIAGNOSTIC_ROWS, data.n))
            self.diag = self._move(data.train.rows(rows), "diagnostic rows")[:2]
        warn_unreplayable(data, run.epoch, stacklevel=5)

    def _move(
        self, batch: tuple, where: str, n_rows: int | None = None, checked: bool = False
    ) -> tuple:
        run = self.run
        s = run.settings
        return move_batch(run.model, run.backend, s["dtype"], batch, where, n_rows, checked)

    def _reference(self, start: Any) -> float | None:
        """Indexable: the untrained model's loss on the first `REFERENCE_ROWS` training rows
        (one streamed forward pass). Stream: None, computed on the run's first batch."""
        run, data = self.run, self.data
        if not data.indexable and run.settings["divergence_factor"] is not None:
            return None
        n = min(REFERENCE_ROWS, data.n or 0)

        def epoch_loss(params):
            loss = evaluate_source(run.model, params, data.train, None, weights=data.w, rows=n)
            return _divergence.as_epoch_loss(
                run.model, params, loss["loss"], data.n, self.n_steps, run.backend.xp
            )

        return _divergence.reference(run.model, run.backend, run.settings, start, epoch_loss)

    def _stream_reference(self, xb: Any, yb: Any, wb: Any) -> float:
        """The untrained model's loss on the first batch (``model.init(seed)``)."""
        run, s = self.run, self.run.settings
        init = run.model.init(seed=s["seed"], backend=run.backend, dtype=s["dtype"])
        return float(evaluate_arrays(run.model, init, xb, yb, None, weights=wb)["loss"])

    def _items(self) -> tuple[Any, Any]:
        """This epoch's items for the prefetcher and the function making a batch of one."""
        run, data = self.run, self.data
        be = run.backend
        if not data.indexable:
            epoch = run.epoch
            counter = itertools.count(1)
            # Several processes on one mesh: each loader yields its process's share of the batch
            # (as with a DistributedSampler), k equal shares make the batch.
            start, stop = be.process_rows(be.n_devices)
            k = be.n_devices // (stop - start)

            def from_stream(batch):
                where = f"batch {next(counter)} of epoch {epoch + 1}"
                rows = len(batch[0]) * k if be.n_devices > 1 else None
                return self._move(batch, where, rows)

            return data.train.epoch(epoch), from_stream
        n, bs = data.n, run.settings["batch_size"]
        order = run.rngs["order"].permutation(n) if run.settings["shuffle"] else _host.arange(n)
        w, name = data.w, repr(data.train)  # (the repr once, not per batch)

        def from_rows(idx):
            start, stop = be.process_rows(len(idx))  # all rows, or this process's share
            mine = idx[start:stop]
            batch = data.train.rows(mine)
            if w is not None:
                batch = (*batch[:2], w[mine])
            where = f"rows {idx[0]}..{idx[-1]} of {name}"
            return self._move(batch, where, len(idx) if be.n_devices > 1 else None, checked)

        checked = self.rows_checked  # every row passed the checks in an earlier epoch

        return [order[i : min(i + bs, n)] for i in range(0, n, bs)], from_rows

    def _lr(self) -> float:
        run = self.run
        try:
            return run.schedule.lr(
                self.base_lr,
                run.schedule_state,
                step=run.step,
                epoch=run.epoch,
                samples=run.samples,
                total_steps=self.total_steps,
            )
        except TypeError:
            if self.total_steps is not None:
                raise
            raise unknown_length(self) from None

    def _epoch(self) -> None:
        run, be = self.run, self.run.backend
        t0 = time.perf_counter()
        items, produce = self._items()
        if be.donates:  # the steps donate these buffers; references taken so far stay valid
            run.params, run.opt_state = _copy(self.xp, run.params), _copy(self.xp, run.opt_state)
        losses, sizes, lr = [], [], 0.0
        with sources.Prefetcher(produce, items, depth=PREFETCH_DEPTH) as batches:
            for xb, yb, wb, rows in batches:
                if self.reference is None:
                    self.reference = self._stream_reference(xb, yb, wb)
                if run.settings["diagnostics"] and not sizes and not self.data.indexable:
                    self.diag = (xb[:DIAGNOSTIC_ROWS, ...], yb[:DIAGNOSTIC_ROWS, ...])
                lr = self._lr()
                loss = self._host_step(xb, yb, wb, rows, lr)
                batch_done(self, losses, sizes, loss, rows, lr)
        pass_done(self, sizes)
        self._end_epoch(losses, lr, t0, sizes)

    def _host_step(self, xb: Any, yb: Any, wb: Any, rows: int, lr: float) -> Any:
        run = self.run
        run.params, run.opt_state, loss = self.step_fn(
            run.params, run.opt_state, xb, yb, lr, wb, self._masks(rows)
        )
        run.step += 1
        return loss

    def _read_out(self, losses: list) -> list[float]:
        """The epoch-end vector (`make_epoch_end`'s layout) from streamed evaluations."""
        run, s, data, xp = self.run, self.run.settings, self.data, self.xp
        params, model, metric, cut = run.params, run.model, s["metric"], s["threshold"]
        values = []
        if s["train_metrics"] and metric is not None:
            values.append(evaluate_source(model, params, data.train, metric, cut)[metric])
        if data.val is not None:
            values += evaluate_source(model, params, data.val, metric, cut).values()
        if self.diag is not None:
            values += gradient_flow(model, params, *self.diag).values()
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in tree_leaves(params)]))
        dtype = first_leaf(params).dtype
        tail = xp.stack([*values, xp.astype(finite, dtype)])
        return run.backend.to_numpy(xp.concat([*_vectors(xp, losses), tail])).tolist()


def batch_done(loop: Any, losses: list, sizes: list, loss: Any, rows: int, lr: float) -> None:
    """After one step on a source: keep its loss and row count, call ``on_batch_end``, log
    every ``log_every`` steps (a source loop: one model's or an ensemble's)."""
    losses.append(loss)
    sizes.append(rows)
    for cb in loop.run.callbacks:
        cb.on_batch_end(loop.run, loss)
    if loop.log_every and len(sizes) % loop.log_every == 0:
        loop._log(len(sizes), loss, lr)


def pass_done(loop: Any, sizes: list) -> None:
    """After one pass over a source: refuse an empty pass, count the samples, and note that
    this pass read (and checked) every row of an indexable source."""
    run = loop.run
    if not sizes:
        raise ValueError(
            f"fit: {loop.data.train!r} yielded no batches in epoch {run.epoch + 1}; an "
            "epoch needs at least one"
        )
    run.samples += sum(sizes)
    loop.rows_checked = loop.data.indexable


def unknown_length(loop: Any) -> ValueError:
    """The error for a schedule that needs the run's number of steps on a loader without one."""
    return ValueError(
        f"fit: the schedule {loop.run.schedule!r} needs the run's number of steps, and the "
        f"loader {loop.data.train!r} has no len(); give it a __len__ or give the schedule its "
        "length (e.g. decay_steps)"
    )
