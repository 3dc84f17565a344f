"""SQLite: whether anything but this process's audit writer committed since a moment.

SQLite counts, per connection, the commits other connections made: `PRAGMA data_version`
returns a different value once any other connection (of this process or another) committed,
and the same value for the connection's own commits. It is read from the WAL index in shared
memory, at the cost of a read transaction's start (a few µs, no table read).

`Quiet` holds one connection of its own for that question and lets the audit log write its
queued decision records on that same connection (`begin`), so the gate's own group commits do
not count as changes. Every other write (consent, settings, profiles, events, erasure, model
epoch, DP releases), from any process and any other connection, moves the value. While it
has not moved, every row the gate's probe reads is as it was when the probe ran: the store
answers the probe from memory (`Store.probe`). See docs/architecture.md, "Probes answered
from memory (SQLite)".

Only audit-log writes may go through `begin`: anything else written there would not be seen
as a change by this process's gate.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

# Forks of this process so far, as seen in it (a child counts one more than its parent when it
# starts): cheaper to compare on every question than os.getpid(), a system call.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


def forks() -> int:
    """Forks of this process so far, as seen in it (`tactful.store.notified` asks too)."""
    return _forks


class Quiet:
    """A change generation of the database, cheap to ask for; and the connection to write
    audit records on without moving it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.generation = 0
        self._reset()

    def _reset(self) -> None:
        self._forks = _forks
        self._lock = threading.Lock()  # fresh in a forked child: a parent thread may hold one
        self._conn: Connection | None = None
        self._cursor: Any = None  # a driver cursor on `_conn`, kept for the question
        self._version: object = None
        self._writing = False  # inside `begin`'s transaction, its write lock held

    def _after_fork(self) -> None:
        # A forked child never uses its parent's connection or lock, nor its generation.
        if self._forks != _forks:
            self._reset()
            self.generation += 1

    def now(self) -> int | None:
        """The current generation: it changes whenever another connection committed since the
        last call. None when it cannot be told without waiting (the audit log is opening or
        committing its transaction): the caller then reads the database."""
        self._after_fork()
        if not self._lock.acquire(blocking=False):
            # Inside the audit log's write transaction nobody else can commit (it holds
            # SQLite's write lock), and `begin` took the generation once the lock was held.
            return self.generation if self._writing else None
        try:
            self._observe()
            return self.generation
        except self.engine.dialect.loaded_dbapi.Error:
            # A broken connection: the caller reads the database; the next question starts
            # from a fresh connection and a fresh generation.
            self._drop()
            return None
        finally:
            self._lock.release()

    def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        self.generation += 1
        self._version = None
        if conn is not None and self._forks == _forks:
            with contextlib.suppress(Exception):
                conn.close()

    def _observe(self) -> None:
        # The driver's cursor is kept between questions (SQLAlchemy's connection properties
        # cost a third of the statement); a connection SQLAlchemy has closed or invalidated
        # since makes it raise the driver's error, and `now` starts again from a fresh one.
        cursor = self._cursor
        if cursor is None:
            raw: Any = self._connection().connection.dbapi_connection
            cursor = self._cursor = raw.cursor()
        cursor.execute("PRAGMA data_version")
        (version,) = cursor.fetchone()
        if version != self._version:
            self._version = version
            self.generation += 1

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE) on the watching connection: for the audit
        log's own writes only (see the module docstring)."""
        self._after_fork()
        with self._lock:
            conn = self._connection()
            try:
                with conn.begin():
                    # The write lock is held from here to the commit: what others committed
                    # before it is counted now, and nothing more can be until the commit.
                    # Not during it: SQLite may release the lock before the call returns (an
                    # automatic checkpoint runs after the commit), and from then on another
                    # connection can commit unseen.
                    self._observe()
                    self._writing = True
                    try:
                        yield conn
                    finally:
                        self._writing = False
            except BaseException:
                # Whatever failed, the next question starts from a fresh generation.
                self.generation += 1
                self._version = None
                raise

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self.engine.connect()
            self._cursor = None
        return self._conn

    def close(self) -> None:
        """Give the connection back (this process's only)."""
        with self._lock:
            self._drop()
