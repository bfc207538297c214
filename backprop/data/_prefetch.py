"""Bounded background production of items, in order: while the device computes step t, a host
thread reads (and may transfer) batch t+1.

Host-only module: plain Python threads and a queue; NumPy is not even needed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Prefetcher"]

_POLL_S = 0.05  # how often a blocked put or get looks at the stop flag
_JOIN_S = 5.0  # close() waits this long for a produce() call in flight to return
_OK, _ERROR, _DONE = "ok", "error", "done"


def _work(
    produce: Callable[[Any], Any], items: Iterator, out: queue.Queue, stop: threading.Event
) -> None:
    """The thread's body: ``produce(item)`` for each item, in order, into ``out``; then
    ``_DONE``, or the first exception as ``_ERROR`` (the thread never raises). Holds no reference
    to the `Prefetcher`, so dropping that one lets garbage collection stop the thread."""
    position = 0
    try:
        for item in items:
            if stop.is_set() or not _put(out, (_OK, produce(item)), stop):
                return
            position += 1
        _put(out, (_DONE, None), stop)
    except BaseException as exc:  # forwarded to the consumer, raised there at this position
        if hasattr(exc, "add_note"):  # Python >= 3.11
            exc.add_note(f"(raised in backprop's prefetch thread, at item {position})")
        _put(out, (_ERROR, exc), stop)


def _put(out: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    """Put ``entry``, waiting while the queue is full; False when stopped meanwhile."""
    while not stop.is_set():
        try:
            out.put(entry, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class Prefetcher:
    """Iterate ``produce(item)`` for ``item in items``, computed up to ``depth`` items ahead by a
    daemon thread.

    - Results come in ``items`` order. An exception raised by ``produce`` or by iterating
      ``items`` is re-raised here, with its type and traceback, when iteration reaches its
      position (the results before it are delivered first); iteration then ends.
    - ``close()`` (also ``with``-exit, and garbage collection) stops the thread promptly, even
      when it waits on a full queue, and joins it; a ``produce`` call in flight is waited for up
      to 5 s (the thread is a daemon, so it cannot keep the process alive).
    - ``depth=0``: no thread, ``produce`` runs inline on each ``next`` (debugging, determinism).
    """

    def __init__(self, produce: Callable[[Any], Any], items: Iterable, depth: int = 2) -> None:
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an int >= 0 (0: no thread), received {depth!r}")
        self._produce, self._items, self.depth = produce, iter(items), depth
        self._finished = False
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._thread = threading.Thread(
                target=_work,
                args=(produce, self._items, self._queue, self._stop),
                name="backprop-prefetch",
                daemon=True,
            )
            self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        if self._thread is None:
            return self._next_inline()
        kind, value = self._get()
        if kind == _OK:
            return value
        self.close()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def _next_inline(self) -> Any:
        try:
            return self._produce(next(self._items))
        except BaseException:
            self._finished = True
            raise

    def _get(self) -> tuple[str, Any]:
        thread = self._thread
        if thread is None:  # closed from another thread
            return (_DONE, None)
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not thread.is_alive() and self._queue.empty():
                    # closed meanwhile (from another thread), or stopped without a last word
                    return (_DONE, None)

    def close(self) -> None:
        """Stop and join the thread (idempotent); later ``next`` calls raise StopIteration."""
        self._finished = True
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while True:  # free the queue so the producer's put returns at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if thread is not threading.current_thread():
            thread.join(_JOIN_S)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self.close()
