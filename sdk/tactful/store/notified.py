"""PostgreSQL: whether anything the gate's probe reads was committed since a moment, as heard
through LISTEN/NOTIFY (opt-in: `Tactful.open(..., pg_changes="notify")`).

Every table the probe reads gets a statement-level trigger that calls `pg_notify` on the
store's channel (`ensure`, run when a process opens the store in this mode, making only what
is missing; they stay, and fire for every writer from then on). PostgreSQL
delivers a notification when the writing transaction commits, and folds a transaction's
identical notifications into one. `Notified` listens on a connection of its own and turns
what it heard into a *generation*, as `tactful.store.quiet.Quiet` does on SQLite: while it has
not moved, `Store.probe` answers from memory.

Unlike SQLite's `PRAGMA data_version`, this is not strict. A notification reaches the
listening connection shortly *after* its commit (measured by bench/bench_gate.py): a call
made by another process within that moment may still be answered from the older probe. So:

- this process's own commits (every instance of the same store in it) move the generation
  at once, through the engine's commit event (`watch_commits`), so a process always sees its
  own writes at its next call;
- another process's commit is seen once its notification has arrived;
- without a listening connection (not opened yet, broken, just forked) `now` returns None
  and the caller reads the database.

The audit log writes its queued decision records on connections marked `UNWATCHED`: its
table has no trigger, and its commits do not move the generation (`Store.audit_begin`).
A daemon thread reads the connection once a second, so that notifications never pile up
on the server for a process that makes no calls. See docs/architecture.md, "Probes answered
from memory (PostgreSQL, opt-in)".
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import DBAPIError

from tactful.store.engine import READ_ONLY
from tactful.store.migrate import LOCK_ID
from tactful.store.quiet import forks  # one fork counter for both (not os.getpid() per call)

UNWATCHED = "tactful_unwatched"  # execution option: this connection's commits are not changes
TRIGGER = "tactful_changed"
DRAIN_EVERY = 1.0  # seconds between the daemon thread's reads of the listening connection

# Generations are drawn from one counter (its `next` is atomic under the GIL) and assigned,
# never incremented in place: `moved` runs in any thread without the lock, and a `+= 1`
# racing with another could set a generation back to a value already handed out.
_ticks = itertools.count(1)

# The listeners of this process, by channel: a commit through any engine of a store moves
# the generation of every listener of that store here, not only its own instance's.
_listeners: dict[str, weakref.WeakSet[Notified]] = {}
_listeners_lock = threading.Lock()


def channel(store_id: str) -> str:
    """The store's notification channel (its id is 32 hex digits: a valid identifier)."""
    return f"tactful_{store_id}"


def ensure(conn: Connection, store_id: str, tables: Iterable[str]) -> None:
    """Give each of `tables` (in the current schema) its notifying trigger, if it has none.

    Idempotent and cheap when nothing is missing (one catalog read); under the schema lock
    (`store.migrate.LOCK_ID`), so that processes opening at once create them once.
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
    have = set(
        conn.execute(
            text(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname = :name AND c.relnamespace = current_schema()::regnamespace"
            ),
            {"name": TRIGGER},
        ).scalars()
    )
    missing = [t for t in tables if t not in have]
    if not missing:
        return
    conn.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{channel(store_id)}', ''); RETURN NULL; END $$"
    )
    for name in missing:
        conn.exec_driver_sql(
            f'CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{name}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
        )


def watch_commits(engine: Engine, store_id: str) -> None:
    """Make every commit through `engine` (but read-only and `UNWATCHED` ones) move the
    generation of every listener of the store in this process, at once."""
    name = channel(store_id)

    @event.listens_for(engine, "commit")
    def _committed(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(READ_ONLY) or options.get(UNWATCHED):
            return
        # SQLAlchemy's commit event comes before the driver's commit: a call in another
        # thread may probe in between and file the older rows under the new generation. The
        # commit's own notification moves the generation again when it arrives.
        for listener in list(_listeners.get(name, ())):
            listener.moved()


class Notified:
    """A change generation of the store, heard through PostgreSQL notifications."""

    def __init__(self, engine: Engine, store_id: str) -> None:
        self.engine = engine
        self.channel = channel(store_id)
        self.generation = next(_ticks)
        self._reset()
        with _listeners_lock:
            _listeners.setdefault(self.channel, weakref.WeakSet()).add(self)

    def _reset(self) -> None:
        self._forks = forks()
        self._lock = threading.Lock()  # fresh in a forked child: a parent thread may hold one
        self._conn: Any = None  # the driver's connection, in autocommit, listening
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def moved(self) -> None:
        """Something was committed, or may have been unseen: a generation never used before."""
        self.generation = next(_ticks)

    def now(self) -> int | None:
        """The current generation: it changes whenever a notification arrived or this process
        committed since the last call. None when it cannot be told (no listening connection
        yet, or it broke, or another thread is reading it): the caller reads the database."""
        if self._forks != forks():
            self._reset()
            self.moved()
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._conn is None:
                self._listen()
            self._drain()
            return self.generation
        except (DBAPIError, self.engine.dialect.loaded_dbapi.Error):
            self._drop()
            return None
        finally:
            self._lock.release()

    def _listen(self) -> None:
        proxy = self.engine.raw_connection()  # configured by the engine's connect events
        proxy.detach()
        conn = proxy.dbapi_connection
        assert conn is not None
        try:
            conn.rollback()  # the pool's pre-ping may have begun a transaction
            conn.autocommit = True
            conn.execute(f'LISTEN "{self.channel}"')
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        self._conn = conn
        # What was committed before LISTEN took effect was never heard: start afresh.
        self.moved()
        if self._thread is None:
            self._thread = threading.Thread(
                target=_drain_loop,
                args=(weakref.ref(self), self._stop),
                name="tactful-notified",
                daemon=True,
            )
            self._thread.start()

    def _drain(self) -> None:
        # Read what the socket holds without waiting (libpq's PQconsumeInput), then take every
        # notification received: about half a µs when there is none.
        pgconn = self._conn.pgconn
        pgconn.consume_input()
        heard = False
        while pgconn.notifies() is not None:
            heard = True
        if heard:
            self.moved()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.moved()
        if conn is not None and self._forks == forks():
            with contextlib.suppress(Exception):
                conn.close()

    def drain_once(self) -> None:
        """Read the listening connection now, if no call is reading it (the daemon thread)."""
        if self._forks != forks() or not self._lock.acquire(blocking=False):
            return
        try:
            if self._conn is not None:
                self._drain()
        except (DBAPIError, self.engine.dialect.loaded_dbapi.Error):
            self._drop()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Stop listening and give the connection back (this process's only)."""
        self._stop.set()
        if self._forks != forks():
            self._reset()  # never the parent's connection, nor its lock (a thread may hold it)
        else:
            with self._lock:
                self._drop()
        with _listeners_lock:
            found = _listeners.get(self.channel)
            if found is not None:
                found.discard(self)
                if not found:
                    del _listeners[self.channel]


def _drain_loop(ref: weakref.ref[Notified], stop: threading.Event) -> None:
    while not stop.wait(DRAIN_EVERY):
        listener = ref()
        if listener is None:
            return
        listener.drain_once()
        del listener
