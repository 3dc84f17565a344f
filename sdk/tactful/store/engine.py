"""Opening the database: SQLite (embedded default, WAL) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.sql.expression import ClauseElement

from tactful.errors import ConfigurationError

READ_ONLY = "tactful_read_only"


def read_options(dialect: str) -> dict[str, object]:
    """The execution options of a read-only snapshot connection (`Store.read`): SQLite
    `BEGIN` without the write lock and `query_only` (the begin event), PostgreSQL
    `REPEATABLE READ READ ONLY`."""
    if dialect == "postgresql":
        return {READ_ONLY: True, "isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    return {READ_ONLY: True}


def utc(value: datetime) -> datetime:
    """Attach UTC to a naive datetime read back from SQLite; convert aware ones to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and write-locking transactions."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigurationError(
            "cannot use this database URL; for PostgreSQL install the extra: "
            "pip install 'tactful[postgres]'"
        ) from exc
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"the database driver {exc.name!r} is missing; for PostgreSQL install the extra: "
            "pip install 'tactful[postgres]'"
        ) from exc
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so read-then-write transactions (the audit
        # chain head, budget reservations) cannot interleave between processes. Connections
        # marked read-only (READ_ONLY execution option) take a snapshot without the lock,
        # and SQLite refuses their writes (`query_only`, switched only when a pooled
        # connection changes from one kind to the other), as PostgreSQL does.
        reading = bool(conn.get_execution_options().get(READ_ONLY))
        info = conn.info
        if info.get(_QUERY_ONLY, False) != reading:
            conn.exec_driver_sql(f"PRAGMA query_only={int(reading)}")
            info[_QUERY_ONLY] = reading
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


_QUERY_ONLY = "tactful_query_only"  # a pooled SQLite connection's query_only setting


def blob_param(dialect: Dialect) -> Callable[[bytes | None], Any] | None:
    """How to hand a `bytes` value (or None, NULL) to the driver as a BLOB parameter: as a
    `bytearray` on SQLite, unchanged elsewhere (None: nothing to do). Usable as a column
    type's bind processor.

    Python's sqlite3 binds str, int, float and bytearray directly, but sends every other
    parameter, `bytes` and None included, through its adapter lookup (a registry probe and
    two failed attribute lookups, each raising and clearing an AttributeError): 1.9 us per
    value in an executemany, against 0.16 us for the copy into a bytearray. The stored BLOB
    is the same, and SQLite returns it as `bytes`.
    """
    return _blob_or_null if dialect.name == "sqlite" else None


def _blob_or_null(value: bytes | None) -> bytearray | None:
    return None if value is None else bytearray(value)


def driver_sql(stmt: ClauseElement, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """A statement rendered once for the driver's own cursor, with positional parameters
    ("?" on SQLite, "%s" on PostgreSQL), and the names of its parameters in that order.

    For hot statements run through `Connection.exec_driver_sql` or a DBAPI cursor: the driver
    then gets plain tuples, without SQLAlchemy's per-row parameter processing. Bind types are
    not applied, so values must already be what the driver takes.
    """
    if not dialect.positional:
        make: Any = type(dialect)
        dialect = make(paramstyle="format")
    compiled: Any = stmt.compile(dialect=dialect)  # SQLCompiler
    return str(compiled), tuple(compiled.positiontup or ())


def insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, object]], keys: list[str]
) -> int:
    """Insert rows, skipping those whose key already exists; returns how many were inserted.

    One statement executed for all the rows (executemany), not a statement with every row
    inlined: compiling thousands of VALUES costs more than writing them.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        # psycopg reports no row count for a batched insert: count the rows it returns.
        pg = postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        return len(conn.execute(pg.returning(table.c[keys[0]]), rows).all())
    lite = sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    return conn.execute(lite, rows).rowcount


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction: committed on success, rolled back on any exception."""
    with engine.begin() as conn:
        yield conn


class DriverReads:
    """Single statements on DBAPI connections of our own, outside SQLAlchemy's pool.

    For the hottest reads (a data key by id, the gate's probe): SQLAlchemy's pool checkout
    (on PostgreSQL a pre-ping and a rollback, each a round trip), events and result layers
    cost several times the indexed SELECT itself. Each read takes an idle connection from a
    stack and gives it back (a stack, not one shared connection: threads read concurrently).
    Connections run in autocommit mode, so every SELECT sees the latest committed rows (an
    erasure at once) and none holds a transaction open. A broken connection (a PostgreSQL
    server restart) is dropped and the read tried once more; connections made in a parent
    process are never used after a fork.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.idle: list[Any] = []
        self._pid = os.getpid()

    def run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """The rows of one statement rendered for the driver (`driver_sql`)."""
        for attempt in (1, 2):
            conn = self._take()
            try:
                cur = conn.cursor()
                try:
                    cur.execute(sql, params)
                    rows = cur.fetchall()
                finally:
                    cur.close()
            except self.engine.dialect.loaded_dbapi.OperationalError:
                with contextlib.suppress(Exception):
                    conn.close()
                if attempt == 2:
                    raise
                continue
            self.idle.append(conn)
            return list(rows)
        raise AssertionError("unreachable")

    def _take(self) -> Any:
        if self._pid != os.getpid():
            self.idle, self._pid = [], os.getpid()
        try:
            return self.idle.pop()
        except IndexError:
            pass
        proxy = self.engine.raw_connection()  # configured by the engine's connect events
        proxy.detach()
        conn = proxy.dbapi_connection
        assert conn is not None
        if self.engine.dialect.name == "postgresql":
            conn.rollback()  # the pool's pre-ping may have begun a transaction
            conn.autocommit = True
        return conn

    def close(self) -> None:
        """Close the idle connections (those of this process)."""
        idle, self.idle = self.idle, []
        if self._pid == os.getpid():
            for conn in idle:
                with contextlib.suppress(Exception):
                    conn.close()
