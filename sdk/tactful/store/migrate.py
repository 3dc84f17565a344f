"""Schema versions: create new tables, upgrade older stores step by step, refuse newer ones.

The rule (docs/store.md, "Migrations"): a new table is appended to tables.py and made by
`create_all`; a change to an existing table (column, index, data moved) bumps
`tables.SCHEMA_VERSION` and adds one step here. Steps run in one transaction with Alembic's
operations (batch mode where SQLite needs it), under a lock so that concurrent openers
upgrade once; the version lives in `tactful_meta.schema_version`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    LargeBinary,
    column,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import SQLModel

from tactful.crypto import unwrap_key_v1
from tactful.errors import ConfigurationError
from tactful.store import sequence, tables
from tactful.store.keystore import KeyStore

_meta = tables.table_of(tables.StoreMeta)
_subject = tables.table_of(tables.Subject)
LOCK_ID = 0x7AC7F01  # PostgreSQL advisory lock serializing schema changes


@dataclass(frozen=True, slots=True)
class Step:
    """One schema step: from `version - 1` to `version`."""

    version: int
    description: str
    run: Callable[[Operations, Connection, KeyStore, str], None]


def _v2_keys_out_of_the_database(
    ops: Operations, conn: Connection, keystore: KeyStore, store_id: str
) -> None:
    """Move wrapped DEKs to the separate key store; add the encrypted user id column."""
    ops.add_column("subject", Column("user_id_ct", LargeBinary, nullable=True))
    old = table("subject_key", column("subject_id"), column("kek_version"), column("wrapped"))
    rows = conn.execute(
        select(old.c.kek_version, old.c.wrapped, _subject.c.ref, _subject.c.alias).join(
            _subject, _subject.c.id == old.c.subject_id
        )
    ).all()
    for start in range(0, len(rows), 1000):
        keystore.put_wrapped(
            store_id,
            [
                {
                    "key_id": r.alias,
                    "dek": unwrap_key_v1(
                        keystore.kek(r.kek_version),
                        r.wrapped,
                        subject_ref=r.ref,
                        kek_version=r.kek_version,
                    ),
                }
                for r in rows[start : start + 1000]
                if r.ref is not None
            ],
        )
    ops.drop_table("subject_key")


def _v3_event_write_sequence(
    ops: Operations, conn: Connection, keystore: KeyStore, store_id: str
) -> None:
    """Number the events written so far (`Event.seq`, `store.sequence`) and index the
    numbers by subject, for the gate's probe."""
    ops.add_column("event", Column("seq", BigInteger, nullable=True))
    if conn.dialect.name == "postgresql":
        sequence.ensure(conn)
        conn.execute(text("UPDATE event SET seq = nextval(:name)"), {"name": sequence.PG_SEQUENCE})
    else:
        conn.execute(text("UPDATE event SET seq = rowid"))
        last = conn.execute(text("SELECT coalesce(max(seq), 0) FROM event")).scalar_one()
        sequence.start_at(conn, int(last))
    ops.create_index("ix_event_subject_seq", "event", ["subject_id", "seq"])


STEPS: tuple[Step, ...] = (
    Step(2, "data keys move to the separate key store", _v2_keys_out_of_the_database),
    Step(3, "events are numbered in write order for the gate's probe", _v3_event_write_sequence),
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The outcome of opening: the store's id and the versions before and after."""

    store_id: str
    from_version: int | None
    to_version: int


def prepare(engine: Engine, keystore: KeyStore) -> Prepared:
    """Create missing tables, upgrade an older store, refuse a newer one; attach the key store."""
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
            SQLModel.metadata.create_all(conn)
            before = _read(conn, "schema_version")
            store_id = _read(conn, "store_id")
            if store_id is None:
                store_id = secrets.token_hex(16)
                conn.execute(_meta.insert().values(key="store_id", value=store_id))
            version = int(before) if before is not None else tables.SCHEMA_VERSION
            if version > tables.SCHEMA_VERSION:
                raise ConfigurationError(
                    f"this store has schema version {version}, newer than this tactful "
                    f"({tables.SCHEMA_VERSION}); upgrade tactful to open it"
                )
            if version < tables.SCHEMA_VERSION:
                keystore.attach(store_id, expect_keys=False)
                ops = Operations(MigrationContext.configure(conn))
                for step in STEPS:
                    if step.version > version:
                        step.run(ops, conn, keystore, store_id)
            sequence.ensure(conn)
            if before is None:
                conn.execute(
                    _meta.insert().values(key="schema_version", value=str(tables.SCHEMA_VERSION))
                )
            elif version != tables.SCHEMA_VERSION:
                conn.execute(
                    update(_meta)
                    .where(_meta.c.key == "schema_version")
                    .values(value=str(tables.SCHEMA_VERSION))
                )
            live = conn.execute(
                select(_subject.c.id).where(_subject.c.status != "erased").limit(1)
            ).first()
    except (OperationalError, ProgrammingError) as exc:
        raise ConfigurationError(
            f"cannot open the database ({type(exc.orig).__name__}); check that the server is "
            "running, the URL is right, and that the store was not opened by a newer tactful"
        ) from None
    keystore.attach(store_id, expect_keys=live is not None)
    migrated = before is not None and int(before) < tables.SCHEMA_VERSION
    if migrated and engine.dialect.name == "sqlite":
        _vacuum(engine)
    return Prepared(store_id, int(before) if before is not None else None, tables.SCHEMA_VERSION)


def _read(conn: Connection, key: str) -> str | None:
    row = conn.execute(select(_meta.c.value).where(_meta.c.key == key)).first()
    return None if row is None else str(row[0])


def _vacuum(engine: Engine) -> None:
    # The dropped key table's pages still hold wrapped DEKs; rewrite the file without them.
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
    finally:
        raw.close()
