"""The epoch loop of an ensemble `fit` on data that stays on the host (`EnsembleSourceLoop`):
a memory-mapped ``.npy``, a `RowSource`, a `Dataset`, or a stream of batches.

It is `EnsembleLoop` (per-member rates, dropout masks, read-out, divergence, early stopping)
with the batches of `SourceLoop`: read, checked and moved to the backend by the prefetch
thread, two batches ahead, while the device runs the step. One read of the rows serves every
member; the step is the in-memory ensemble step, given the batch's rows instead of all rows.

- Indexable source, ``member_order="shared"``: the batch order is the host permutation of the
  in-memory ensemble fit (the ``"order"`` generator), each batch's rows are read once and every
  member steps on them: member k equals member k of the same fit on the rows in memory (bit
  for bit on NumPy) and member k trained alone on the source.
- Indexable source, ``member_order="member"``: each member draws its own permutation, as in
  memory; each step reads the union of the K batches once (sorted, `_ensemble_host.union_rows`:
  up to K times a shared step's rows) and gathers each member's batch from it on the device.
- Stream of batches: every member takes the loader's batches, in its order, one pass an epoch;
  ``member_order="member"`` is refused (the order is the loader's, not fit's to draw per
  member), as is a training metric (it would need a second pass).

The epoch's read-out streams the training rows (training metric) and the validation data in
the chunks of the in-memory read-out, one read for all members, and still ends in one
device->host read per epoch. Only the members' outputs on those rows, (K, N, n_out), stay on
the device, as in memory; the inputs are never all read. The divergence reference of each
member is its untrained loss on the first `REFERENCE_ROWS` training rows (a stream: on its
first batch).
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from ..data import sources
from ..tree import tree_leaves
from . import _divergence, _ensemble_host
from ._ensemble_loop import EnsembleLoop
from ._ensemble_result import member_source_scores
from ._ensemble_step import ensemble_columns, member_scores
from ._loop import _copy
from ._sourcedata import move_batch
from ._stream import (
    PREFETCH_DEPTH,
    REFERENCE_ROWS,
    batch_done,
    pass_done,
    unknown_length,
    warn_unreplayable,
)

__all__ = ["EnsembleSourceLoop"]


class EnsembleSourceLoop(EnsembleLoop):
    """`EnsembleLoop` with batches read from a host source (module docstring)."""

    def _setup(self, compile_epoch: Any) -> None:
        run, data, s, be = self.run, self.data, self.run.settings, self.run.backend
        if compile_epoch:
            raise ValueError(
                "fit: compile_epoch=True needs the data on the device; with a data source every "
                "batch comes from the host. Use compile_epoch=None or False"
            )
        if be.n_devices > 1:
            raise ValueError(
                f"fit: ensemble=/sweep= on a data source train on one device; backend "
                f"{be.name!r} spans {be.n_devices}. Use a single-device backend, load the rows "
                "in memory (np.asarray(X)), or fit the members one by one on the source"
            )
        if not data.indexable and run.member_order == "member":
            raise ValueError(
                f"fit: member_order='member' draws each member's batch order, and X is an "
                f"iterable of batches ({data.train!r}) that comes in its own order; use "
                "member_order='shared' (every member takes the loader's batches), or pass an "
                "indexable source (a memory-mapped array, a Dataset with rows(idx))"
            )
        self.step_fn, self.epoch_fn = self._make_step(), None
        self.columns = ensemble_columns(s, data.val is not None)
        self.n_steps = -(-data.n // s["batch_size"]) if data.indexable else data.train.n_batches
        self.rows_checked = False
        warn_unreplayable(data, run.epoch, stacklevel=6)

    # -- divergence references -------------------------------------------------------------------
    def _references(self, given: Any) -> list[float] | None:
        """Indexable: each member's untrained loss (`EnsembleLoop._references`) on the first
        `REFERENCE_ROWS` training rows, one streamed pass for all members. Stream: None,
        computed on the run's first batch (`_stream_references`)."""
        run, s, data = self.run, self.run.settings, self.data
        if s["divergence_factor"] is None:
            return [math.inf] * self.members
        if not data.indexable:
            return None
        ens, n = run.model, min(REFERENCE_ROWS, data.n)
        init = ens.init(seed=s["seed"], backend=run.backend, dtype=s["dtype"])
        alpha = run.sweep.get("alpha")
        out = [-math.inf] * self.members
        for params in [init] if given is None else [init, given]:
            loss = member_source_scores(ens, params, data.train, None, None, alpha, data.w, n)
            for k in range(self.members):
                value = _divergence.as_epoch_loss(
                    self._member_model(k), ens.member(params, k), loss["loss"][k], data.n,
                    self.n_steps, self.xp,
                )  # fmt: skip
                out[k] = max(out[k], value)
        return out

    def _stream_references(self, x: Any, y: Any, w: Any) -> list[float]:
        """Each member's untrained loss (``init(seed)``, its alpha) on the first batch."""
        run, s = self.run, self.run.settings
        init = run.model.init(seed=s["seed"], backend=run.backend, dtype=s["dtype"])
        alpha = run.sweep.get("alpha")
        losses = member_scores(run.model, init, x, y, None, None, alpha, w)["loss"]
        return run.backend.to_numpy(losses).tolist()

    # -- one epoch -------------------------------------------------------------------------------
    def _epoch(self) -> None:
        run, be, s = self.run, self.run.backend, self.run.settings
        t0 = time.perf_counter()
        items, produce = self._items()
        active = run.active()
        self.mask = None if all(active) else be.asarray([float(a) for a in active], s["dtype"])
        if be.donates:  # the steps donate these buffers; references taken so far stay valid
            run.params, run.opt_state = _copy(self.xp, run.params), _copy(self.xp, run.opt_state)
        # the epoch's (S, K) rates at once, moved once, when its length is known (as in memory);
        # else (a loader without len()) one row a step
        table = self._rates(self.n_steps) if self.n_steps else None
        lrs = None if table is None else _ensemble_host.device_rates(be, table, s["dtype"])
        losses, sizes, rates = [], [], None
        with sources.Prefetcher(produce, items, depth=PREFETCH_DEPTH) as batches:
            for x, y, w, idx, rows in batches:
                if self.references is None:
                    self.references = self._stream_references(x, y, w)
                b = len(sizes)
                if table is not None and b < len(table):
                    rates, lr = table[b], lrs[b, ...]
                else:
                    rates = self._rates(1)
                    lr = _ensemble_host.device_rates(be, rates, s["dtype"])[0, ...]
                    rates = rates[0]
                loss = self._member_step(idx, lr, (x, y, w))
                batch_done(self, losses, sizes, loss, rows, 0.0)
        pass_done(self, sizes)
        self._end_members(losses, [float(r) for r in rates], t0, sizes)

    def _rates(self, steps: int) -> Any:
        """The K members' learning rates of the next ``steps`` steps from ``run.step``, (steps,
        K) on the host (`_ensemble_host.rate_table`: the numbers of the in-memory table)."""
        run = self.run
        try:
            return _ensemble_host.rate_table(
                run.schedule, self.base_lrs, run.schedule_state, steps=steps, step=run.step,
                epoch=run.epoch, samples=run.samples, total_steps=self.total_steps,
            )  # fmt: skip
        except TypeError:
            if self.total_steps is not None:
                raise
            raise unknown_length(self) from None

    def _items(self) -> tuple[Any, Any]:
        """This epoch's items for the prefetcher, and the function that turns one into a batch
        on the backend: ``(x, y, w, idx, rows)``, ``idx`` the members' rows of ``x`` ((B,)
        shared, (K, B) per member) and ``rows`` the batch's row count (B)."""
        run, data, be = self.run, self.data, self.run.backend
        s = run.settings
        if not data.indexable:
            counter, epoch = itertools.count(1), run.epoch

            def from_stream(batch: tuple) -> tuple:
                x, y, w, rows = self._move(batch, f"batch {next(counter)} of epoch {epoch + 1}")
                return x, y, w, self._arange(rows), rows

            return data.train.epoch(epoch), from_stream
        n, bs = data.n, s["batch_size"]
        order = _ensemble_host.orders(run.rngs, n, self.members, s["shuffle"])
        w, name, checked = data.w, repr(data.train), self.rows_checked

        def from_rows(idx: Any) -> tuple:
            b, positions, read = idx.shape[-1], None, idx
            if idx.ndim == 2:  # one batch per member: read the union once
                size = min(self.members * b, n) if be.compiles else None
                read, positions = _ensemble_host.union_rows(idx, size)
            batch = data.train.rows(read)
            if w is not None:
                batch = (*batch[:2], w[read])
            where = f"rows {read[0]}..{read[-1]} of {name}"
            x, y, wb, rows = self._move(batch, where, checked)
            index = self._arange(rows) if positions is None else be.asarray(positions, "int32")
            return x, y, wb, index, b

        return [order[..., i : min(i + bs, n)] for i in range(0, n, bs)], from_rows

    def _move(self, batch: tuple, where: str, checked: bool = False) -> tuple:
        run = self.run
        return move_batch(
            run.model.model, run.backend, run.settings["dtype"], batch, where, None, checked
        )

    def _arange(self, rows: int) -> Any:
        """0..rows-1 on the device (int32): every member takes all of a shared batch's rows."""
        cache = self.__dict__.setdefault("_aranges", {})
        if rows not in cache:
            cache[rows] = self.run.backend.asarray(list(range(rows)), "int32")
        return cache[rows]

    # -- the epoch's end -------------------------------------------------------------------------
    def _read_out(self, losses: list) -> list[float]:
        """The vector of `make_ensemble_epoch_end` (step losses, K values per column, K
        finiteness flags) from streamed evaluations; one device->host read."""
        run, s, data, xp = self.run, self.run.settings, self.data, self.xp
        ens, params, metric, cut = run.model, run.params, s["metric"], s["threshold"]
        out: list[Any] = []
        if s["train_metrics"] and metric is not None:
            out.append(
                member_source_scores(ens, params, data.train, metric, cut, self.alpha)[metric]
            )
        if data.val is not None:
            out += member_source_scores(ens, params, data.val, metric, cut, self.alpha).values()
        finite = [xp.all(xp.isfinite(p), axis=tuple(range(1, p.ndim))) for p in tree_leaves(params)]
        flags = xp.astype(xp.all(xp.stack(finite), axis=0), losses[0].dtype)
        steps = [v if v.ndim == 2 else xp.reshape(v, (1, -1)) for v in losses]
        vector = xp.concat([xp.reshape(xp.concat(steps, axis=0), (-1,)), *out, flags])
        return run.backend.to_numpy(vector).tolist()
