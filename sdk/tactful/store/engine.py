"""Opening the database: SQLite (embedded default, WAL) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import SQLModel

from tactful.errors import ConfigurationError
from tactful.store import tables


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
        # chain head, budget reservations) cannot interleave between processes.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_schema(engine: Engine) -> None:
    """Create missing tables and record the schema version; refuse a newer store."""
    try:
        SQLModel.metadata.create_all(engine)
    except OperationalError as exc:
        raise ConfigurationError(
            f"cannot open the database ({type(exc.orig).__name__}); check that the server is "
            "running and the URL is right"
        ) from exc
    meta = tables.table_of(tables.StoreMeta)
    with engine.begin() as conn:
        row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
        if row is None:
            conn.execute(
                meta.insert().values(key="schema_version", value=str(tables.SCHEMA_VERSION))
            )
        elif int(row[0]) > tables.SCHEMA_VERSION:
            raise ConfigurationError(
                f"this store has schema version {row[0]}, newer than this tactful "
                f"({tables.SCHEMA_VERSION}); upgrade tactful to open it"
            )


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction: committed on success, rolled back on any exception."""
    with engine.begin() as conn:
        yield conn
