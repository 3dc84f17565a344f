"""Deferred audit entries: a process-local queue that a background thread writes in batches.

`AuditLog.defer` builds an entry's content (time, kind, alias, canonical payload) and puts it
here; the chain position (seq, previous hash, hash) is assigned only when the batch is written
under the chain's lock, so several processes still form one chain. This module holds the queue
and its thread; writing the batch is the owner's `flush`, which the thread calls:

- when the oldest queued entry is `max_delay` seconds old (the thread starts on the first put);
- synchronously in `put` when `max_pending` entries are queued (backpressure: never dropped);
- at interpreter exit (atexit) for every live buffer.

A forked child empties every buffer and forgets the parent's thread (os.register_at_fork), so
the parent's entries are written once, by the parent. A failed write leaves the entries queued,
in order, and is retried with a growing pause (max_delay doubling, at most 30 s).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

_log = logging.getLogger("tactful.audit")
_IDLE = 1.0  # how often an idle thread checks whether its buffer is still alive
_MAX_BACKOFF = 30.0


class Pending(NamedTuple):
    """One entry waiting for its place in the chain (content fixed at defer time)."""

    at: int  # when it was recorded: microseconds since the epoch (formatted when written)
    kind: str
    alias: str | None
    payload: str  # canonical JSON
    queued: float  # time.monotonic() when deferred
    quoted: str | None = None  # the payload as a JSON string literal, when the caller had it


def describe(exc: BaseException) -> str:
    """An error named without its SQL parameters (a driver's first line at most)."""
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


class Buffer:
    """A thread-safe FIFO of pending entries with a lazily started daemon flusher.

    `flush` is the owner's writer: it takes the entries (`take`), writes them, and on failure
    puts them back in front (`requeue`). `flushing` serializes the owner's own-transaction
    writes within the process.
    """

    def __init__(self, flush: Callable[[], object], *, max_delay: float, max_pending: int) -> None:
        self._flush = flush
        self.max_delay = max_delay
        self.max_pending = max_pending
        self.generation = 0
        self._reset()
        _BUFFERS.add(self)

    def _reset(self) -> None:
        # Fresh locks too: a forked child may have inherited one held by a parent thread.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.flushing = threading.Lock()
        self._items: deque[Pending] = deque()
        self._thread: threading.Thread | None = None
        self.generation += 1

    def __len__(self) -> int:
        return len(self._items)

    def put(self, entry: Pending) -> None:
        """Queue an entry; with `max_pending` already queued, flush first (errors logged)."""
        if len(self._items) >= self.max_pending:
            try:
                self._flush()
            except Exception as exc:  # backpressure never drops an entry
                _log.warning(
                    "audit: writing %d queued decision records failed (%s); they stay queued "
                    "and are retried",
                    len(self._items),
                    describe(exc),
                )
        with self._lock:
            self._items.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=_run, args=(weakref.ref(self),), name="tactful-audit", daemon=True
                )
                self._thread.start()
            elif len(self._items) == 1:
                self._wake.notify()

    def take(self) -> tuple[list[Pending], int]:
        """Every queued entry, in order (the queue is emptied), and the queue's generation."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items, self.generation

    def requeue(self, items: Sequence[Pending], generation: int) -> None:
        """Put entries whose write failed back in front, in order (not in a forked child)."""
        with self._lock:
            if generation == self.generation:
                self._items.extendleft(reversed(items))

    def stop(self) -> None:
        """Let the flusher thread end (a later put starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _next(self, failures: int, retry_at: float) -> float | None:
        """Seconds to wait before the next flush (0: due now; inf: idle), None: end the thread."""
        with self._lock:
            if self._thread is not threading.current_thread():
                return None
            if not self._items:
                return float("inf")
            due = self._items[0].queued + self.max_delay - time.monotonic()
            if failures:
                due = max(due, retry_at - time.monotonic())
            if due > 0:
                self._wake.wait(timeout=due)
                return -1.0  # look again
            return 0.0


def _run(ref: weakref.ref[Buffer]) -> None:
    """The flusher: holds its buffer only while it has work, so an idle one can be collected."""
    failures, retry_at = 0, 0.0
    while True:
        buf = ref()
        if buf is None:
            return
        step = buf._next(failures, retry_at)
        if step is None:
            return
        if step == float("inf"):
            items, wake = buf._items, buf._wake
            del buf
            with wake:
                if not items:  # re-checked under the lock: a put's notify is never missed
                    wake.wait(timeout=_IDLE)
            continue
        if step < 0:
            del buf
            continue
        try:
            buf._flush()
            failures = 0
        except Exception as exc:  # the thread must outlive a database outage
            failures += 1
            pause = min(_MAX_BACKOFF, buf.max_delay * 2**failures)
            retry_at = time.monotonic() + pause
            _log.warning(
                "audit: writing %d queued decision records failed (%s); they stay queued and "
                "are retried in %.1f s",
                len(buf),
                describe(exc),
                pause,
            )
        del buf


_BUFFERS: weakref.WeakSet[Buffer] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for buf in list(_BUFFERS):
        if len(buf):
            try:
                buf._flush()
            except Exception as exc:  # exit goes on; say what was lost
                _log.error(
                    "audit: %d queued decision records could not be written at exit (%s)",
                    len(buf),
                    describe(exc),
                )


def _forget_all_in_child() -> None:
    for buf in list(_BUFFERS):
        buf._reset()


atexit.register(_flush_all_at_exit)
os.register_at_fork(after_in_child=_forget_all_in_child)
