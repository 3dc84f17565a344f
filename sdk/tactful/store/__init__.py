"""The encrypted store: tables, engine, subjects and their keys, profiles, events, catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event, select, update

from tactful.crypto import KeyRing
from tactful.store.engine import create_schema, make_engine, now, utc
from tactful.store.records import Catalog, Events, Profiles, StoredEvent, StoredItem, upsert
from tactful.store.schema import FieldSpec, ProfileSchema, category_allowed
from tactful.store.subjects import SubjectRef, Subjects, check_user_id
from tactful.store.tables import StoreMeta, table_of

_meta = table_of(StoreMeta)

__all__ = [
    "Catalog",
    "Connection",
    "Events",
    "FieldSpec",
    "ProfileSchema",
    "Profiles",
    "Store",
    "StoredEvent",
    "StoredItem",
    "SubjectRef",
    "Subjects",
    "category_allowed",
    "check_user_id",
    "now",
    "upsert",
    "utc",
]


class Store:
    """One open store: the engine, the keys, and the record stores built on them."""

    def __init__(self, url: str, keys: KeyRing, schema: ProfileSchema) -> None:
        self.engine: Engine = make_engine(url)
        create_schema(self.engine)
        self.dialect = self.engine.dialect.name
        self.keys = keys
        self.subjects = Subjects(keys)
        self.profiles = Profiles(self.subjects, schema)
        self.events = Events(self.subjects, schema.event_category)
        self.catalog = Catalog()

        @event.listens_for(self.engine, "rollback")
        def _forget_ciphers(_conn: Connection) -> None:
            # A rolled-back transaction may have created subjects whose ids get reused;
            # never keep a data key cached for a row that does not exist.
            self.subjects.clear_cache()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back (nothing written) on error."""
        with self.engine.begin() as conn:
            yield conn

    def read_meta(self, conn: Connection, key: str) -> str | None:
        """A store-wide fact (schema version, model epoch), or None."""
        row = conn.execute(select(_meta.c.value).where(_meta.c.key == key)).first()
        return None if row is None else str(row[0])

    def bump_counter(self, conn: Connection, key: str) -> int:
        """Increment a store-wide counter inside the caller's transaction; returns the new value."""
        current = self.read_meta(conn, key)
        new = int(current) + 1 if current else 1
        if current is None:
            conn.execute(_meta.insert().values(key=key, value=str(new)))
        else:
            conn.execute(update(_meta).where(_meta.c.key == key).values(value=str(new)))
        return new

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()
