"""The encrypted store: tables, engine, subjects and their keys, profiles, events, catalog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine, bindparam, event, select, update
from sqlalchemy.exc import ProgrammingError

from tactful.crypto import KeyProvider, checkpoint_mac, checkpoint_mac_valid
from tactful.errors import ConfigurationError
from tactful.store import sequence
from tactful.store.engine import (
    DriverReads,
    insert_ignore,
    make_engine,
    now,
    read_options,
    utc,
)
from tactful.store.keystore import ORPHAN_GRACE, KeyStatus, KeyStore, RotationReport
from tactful.store.migrate import prepare
from tactful.store.notified import UNWATCHED, Notified, watch_commits
from tactful.store.notified import ensure as ensure_triggers
from tactful.store.probe import Probe, probe, watched_tables
from tactful.store.quiet import Quiet
from tactful.store.records import (
    Catalog,
    Events,
    MarkedEvents,
    Profiles,
    StoredEvent,
    StoredItem,
    upsert,
)
from tactful.store.retention import RetentionReport, run_retention
from tactful.store.schema import FieldSpec, ProfileSchema, category_allowed
from tactful.store.subjects import CIPHER_CACHE, SubjectRef, Subjects, check_user_id
from tactful.store.tables import StoreMeta, Subject, table_of

_meta = table_of(StoreMeta)
# Built once: a statement made per call costs several times its execution.
_META_VALUE = select(_meta.c.value).where(_meta.c.key == bindparam("key"))
INDEXED = "blind_index_fields"
# Probes kept per (pseudonym, dataset) while the database is quiet (SQLite; PostgreSQL when
# notified of changes).
PROBE_MEMO = 4096
PG_CHANGES = ("probe", "notify")  # how a process on PostgreSQL learns of others' commits
_subject = table_of(Subject)

__all__ = [
    "Catalog",
    "Connection",
    "Events",
    "FieldSpec",
    "KeyStatus",
    "KeyStore",
    "MarkedEvents",
    "Probe",
    "ProfileSchema",
    "Profiles",
    "RetentionReport",
    "RotationReport",
    "Store",
    "StoredEvent",
    "StoredItem",
    "SubjectRef",
    "Subjects",
    "category_allowed",
    "check_user_id",
    "checkpoint_mac",
    "checkpoint_mac_valid",
    "now",
    "upsert",
    "utc",
]


class Store:
    """One open store: the data engine, the separate key store, and the record stores.

    Opening creates missing tables and upgrades an older schema (store/migrate.py).
    """

    def __init__(
        self,
        url: str,
        provider: KeyProvider,
        schema: ProfileSchema,
        *,
        keystore_url: str,
        dek_cache: int = CIPHER_CACHE,
        pg_changes: str = "probe",
    ) -> None:
        self.engine: Engine = make_engine(url)
        self.reads = DriverReads(self.engine)
        # Probes answered from memory while nothing else was committed: on SQLite always
        # (strict), on PostgreSQL with pg_changes="notify" (see tactful.store.notified).
        self.quiet: Quiet | Notified | None = (
            Quiet(self.engine) if self.engine.dialect.name == "sqlite" else None
        )
        self._probes: dict[tuple[str, str], tuple[int, Probe]] = {}
        self.probe_memo = PROBE_MEMO
        self.keystore = KeyStore(keystore_url, provider)
        try:
            self.prepared = prepare(self.engine, self.keystore)
        except BaseException:
            self.close()
            raise
        self.dialect = self.engine.dialect.name
        self.store_id = self.prepared.store_id
        self._reading = read_options(self.dialect)  # the options of `read`'s connections
        if self.dialect == "postgresql":
            # Every process moves its own listeners at its commits, whichever mode it runs in.
            watch_commits(self.engine, self.store_id)
            if pg_changes == "notify":
                self._listen_for_changes()
        self.subjects = Subjects(self.keystore, self.store_id, cache_size=dek_cache)
        self.profiles = Profiles(self.subjects, schema)
        self.events = Events(self.subjects, schema.event_category)
        self.catalog = Catalog()

        @event.listens_for(self.engine, "rollback")
        def _forget_ciphers(_conn: Connection) -> None:
            # A rolled-back transaction may have created subjects whose ids get reused;
            # never keep a data key cached for a row that does not exist.
            self.subjects.clear_cache()

        @event.listens_for(self.engine, "commit")
        def _forget_fresh_ciphers(_conn: Connection) -> None:
            self.subjects.end_transaction()

        self._sync_blind_indexes(schema)

    def _listen_for_changes(self) -> None:
        # The triggers are made by the first process that asks for notifications, and stay
        # (docs/architecture.md, "Probes answered from memory (PostgreSQL, opt-in)"): until
        # then the store's writers pay nothing for them.
        try:
            with self.begin() as conn:
                ensure_triggers(conn, self.store_id, watched_tables())
        except ProgrammingError as exc:
            self.close()
            raise ConfigurationError(
                f"pg_changes='notify' must add a trigger to the store's tables, and the "
                f"database refused ({type(exc.orig).__name__}): open the store once in this "
                f"mode as a role that owns its tables, or use pg_changes='probe'"
            ) from None
        except BaseException:
            self.close()
            raise
        self.quiet = Notified(self.engine, self.store_id)

    def _sync_blind_indexes(self, schema: ProfileSchema) -> None:
        # Fields that became searchable (fields.yaml changed, or a store from before blind
        # indexes) are indexed now; fields no longer searchable lose their index.
        wanted = ",".join(sorted(n for n, f in schema.fields.items() if f.searchable))
        with self.begin() as conn:
            if self.read_meta(conn, INDEXED) == wanted:
                return
            self.profiles.reindex(conn, wanted.split(",") if wanted else [])
            insert_ignore(conn, _meta, [{"key": INDEXED, "value": wanted}], ["key"])
            conn.execute(update(_meta).where(_meta.c.key == INDEXED).values(value=wanted))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back (nothing written) on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection: its first statement through SQLAlchemy begins one snapshot,
        committed at the end. On SQLite a deferred `BEGIN` (no write lock); on PostgreSQL a
        `REPEATABLE READ READ ONLY` transaction (every statement sees the same moment, where
        the default READ COMMITTED takes a new one per statement).

        Writing through it is refused (PostgreSQL's READ ONLY, SQLite's `query_only`): use
        `begin` for anything that writes. The gate's probe runs before any snapshot, as one
        statement of its own.
        """
        with self.engine.connect().execution_options(**self._reading) as conn:
            yield conn
            if conn.in_transaction():
                conn.commit()

    def probe(self, user_id: str, dataset: str = "popularity") -> Probe:
        """The subject of a user id, the mark of its gate-relevant rows, the model epoch and
        the latest DP top-k release of `dataset` (`tactful.store.probe`): one statement, on a
        connection of the store's own.

        On SQLite a probe is answered from memory when no connection but the audit log's
        writer committed since it was run (`tactful.store.quiet`): then none of the rows it
        reads can differ. On PostgreSQL with `pg_changes="notify"`, when no commit of this
        process and no notification of another's was seen since (`tactful.store.notified`).
        """
        ref = self.subjects.pseudonym(user_id)
        quiet = self.quiet
        generation = None if quiet is None or not self.probe_memo else quiet.now()
        if generation is None:
            return probe(self.reads, ref, dataset)
        key = (ref, dataset)
        known = self._probes.get(key)
        if known is not None and known[0] == generation:
            return known[1]
        found = probe(self.reads, ref, dataset)
        if len(self._probes) >= self.probe_memo:
            self._probes.clear()  # bounded; a new generation makes every entry useless anyway
        self._probes[key] = (generation, found)
        return found

    def audit_begin(self) -> AbstractContextManager[Connection]:
        """The transaction the audit log writes its queued records in, so that the gate's own
        group commits do not look like changes: on SQLite on the quiet connection, on
        PostgreSQL on a connection whose commit moves no listener (`notified.UNWATCHED`)."""
        if isinstance(self.quiet, Quiet):
            return self.quiet.begin()
        return self._unwatched_begin()

    @contextmanager
    def _unwatched_begin(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{UNWATCHED: True})
            with conn.begin():
                yield conn

    def events_drawn(self, conn: Connection) -> int:
        """The latest event write number drawn store-wide (`store.sequence`; 0 before any)."""
        return sequence.drawn(conn)

    def read_meta(self, conn: Connection, key: str) -> str | None:
        """A store-wide fact (schema version, model epoch), or None."""
        row = conn.execute(_META_VALUE, {"key": key}).first()
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

    def key_status(self) -> KeyStatus:
        """KEK versions and how many DEKs each wraps."""
        return self.keystore.status(self.store_id)

    def rotate_keys(
        self, *, batch_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> RotationReport:
        """New KEK version, every DEK rewrapped in batches (resumable), unused versions retired."""
        return self.keystore.rotate(self.store_id, batch_size=batch_size, progress=progress)

    def collect_orphans(self, *, grace: timedelta = ORPHAN_GRACE) -> int:
        """Delete DEKs no live subject uses (creations that rolled back, interrupted erasures).

        Keys younger than `grace` are kept: their subject's transaction may still be running.
        """
        removed = 0
        for ids in self.keystore.key_ids(self.store_id, older_than=now() - grace):
            with self.engine.connect() as conn:
                live = set(
                    conn.execute(
                        select(_subject.c.alias).where(
                            _subject.c.alias.in_(ids) & (_subject.c.status != "erased")
                        )
                    ).scalars()
                )
            dead = [k for k in ids if k not in live]
            if dead:
                removed += self.keystore.delete(self.store_id, dead)
        return removed

    def retention(self, conn: Connection, schema: ProfileSchema) -> RetentionReport:
        """Delete what is past its retention (inside the caller's transaction)."""
        return run_retention(conn, schema, now())

    def close(self) -> None:
        """Release the connection pools."""
        quiet: Quiet | Notified | None = getattr(self, "quiet", None)
        if quiet is not None:
            quiet.close()
        self.reads.close()
        self.engine.dispose()
        if hasattr(self, "keystore"):
            self.keystore.close()
