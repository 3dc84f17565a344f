"""The events' write sequence: numbers that rise with every event written, store-wide.

Each event row carries one (`Event.seq`, schema version 3), so that the gate's probe finds
whether a subject's events changed from the subject's latest number, one index seek, instead
of counting all of the subject's events on every call (docs/architecture.md, "The gate's
subject cache"). Deletions do not lower it: a retention run that deletes events moves the
store-wide `PURGED` counter instead, which the probe reads too.

On SQLite the numbers come from a counter row in `tactful_meta`, moved inside the writing
transaction (SQLite has one writer at a time, so they rise in commit order). On PostgreSQL
they come from a SEQUENCE, which takes no lock: two transactions writing events of the same
user may commit in the other order than they drew, see docs/architecture.md for what that
means for the probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, ScalarSelect, literal_column, select, table, text

from tactful.store.engine import insert_ignore
from tactful.store.tables import StoreMeta, table_of

COUNTER = "event_seq"  # SQLite: the last number handed out
PURGED = "events_purged"  # how many retention runs deleted events
PG_SEQUENCE = "tactful_event_seq"

_meta = table_of(StoreMeta)
_TAKE_SQLITE = text(
    "UPDATE tactful_meta SET value = CAST(CAST(value AS INTEGER) + :n AS TEXT) "
    "WHERE key = :key RETURNING value"
)
_TAKE_PG = text("SELECT nextval(:name) FROM generate_series(1, :n)")
# The latest number drawn, as a scalar subquery per dialect (the gate's probe reads it in its
# own statement): on SQLite the counter row, on PostgreSQL the sequence's last value (drawn,
# maybe not committed).
DRAWN: dict[str, ScalarSelect[Any]] = {
    "sqlite": select(_meta.c.value).where(_meta.c.key == COUNTER).scalar_subquery(),
    "postgresql": select(literal_column("last_value"))
    .select_from(table(PG_SEQUENCE))
    .scalar_subquery(),
}


def ensure(conn: Connection) -> None:
    """Create the sequence's source if it is missing (idempotent; run on every open)."""
    if conn.dialect.name == "postgresql":
        # Looked up first: CREATE ... IF NOT EXISTS needs the CREATE privilege on the schema
        # even when the sequence exists, which an app's least-privilege role does not have.
        found = conn.execute(text("SELECT to_regclass(:name)"), {"name": PG_SEQUENCE}).scalar()
        if found is None:
            conn.exec_driver_sql(f"CREATE SEQUENCE IF NOT EXISTS {PG_SEQUENCE}")
    else:
        insert_ignore(conn, _meta, [{"key": COUNTER, "value": "0"}], ["key"])


def take(conn: Connection, n: int) -> Sequence[int]:
    """`n` fresh numbers, rising, inside the caller's (writing) transaction."""
    if n <= 0:
        return ()
    if conn.dialect.name == "postgresql":
        return [row[0] for row in conn.execute(_TAKE_PG, {"name": PG_SEQUENCE, "n": n})]
    last = int(conn.execute(_TAKE_SQLITE, {"n": n, "key": COUNTER}).scalar_one())
    return range(last - n + 1, last + 1)


def drawn(conn: Connection) -> int:
    """The latest number drawn so far (0 before the first; on PostgreSQL maybe not committed)."""
    value = conn.execute(select(DRAWN[conn.dialect.name])).scalar()
    return 0 if value is None else int(value)


def start_at(conn: Connection, last: int) -> None:
    """Make the next number drawn greater than `last` (the upgrade that numbered old rows)."""
    ensure(conn)
    if conn.dialect.name == "postgresql":
        if last > 0:
            conn.execute(text("SELECT setval(:name, :last)"), {"name": PG_SEQUENCE, "last": last})
    else:
        conn.execute(
            text("UPDATE tactful_meta SET value = :v WHERE key = :key"),
            {"v": str(last), "key": COUNTER},
        )
