"""The key store: wrapped data keys (DEKs) kept apart from the data they protect.

The key store is its own database (by default the SQLite file `keys.db` next to the master
key file; `TACTFUL_KEYSTORE_URL` names another, e.g. a separate PostgreSQL database). A backup
of the data database therefore holds no data key: once a user's DEK row is deleted here, every
copy of that user's ciphertext, backups included, is unreadable.

There is no distributed transaction between the two databases; the write order makes every
crash safe. A DEK is committed here before any row encrypted under it is written (a crash
leaves at most an orphaned key, which `collect_orphans` removes). On erasure the DEK is
deleted here first (a crash leaves at most unreadable rows, which the retried erasure deletes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from tactful.crypto import (
    FieldCipher,
    KeyProvider,
    KeyRing,
    fresh_nonces,
    new_data_keys,
    wrap_aad,
    wrap_aads,
    wrap_key,
)
from tactful.errors import ConfigurationError
from tactful.store.engine import (
    DriverReads,
    blob_param,
    driver_sql,
    insert_ignore,
    make_engine,
    now,
)

metadata = MetaData()

keystore_store = Table(
    "tactful_keystore",
    metadata,
    Column("store_id", String(32), primary_key=True),
    Column("kek_current", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

data_key = Table(
    "tactful_data_key",
    metadata,
    Column("store_id", String(32), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_data_key_version", "store_id", "kek_version"),
)

_ONE_KEY = select(data_key.c.kek_version, data_key.c.wrapped).where(
    (data_key.c.store_id == bindparam("s")) & (data_key.c.key_id == bindparam("k"))
)
CHUNK = 500
SQLITE_READ_CHUNK = 100
LOCK_ID = 0x7AC7F02  # PostgreSQL advisory lock serializing the key store's CREATE TABLEs


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Master key versions and how many data keys each wraps (`tactful keys status`)."""

    provider: str
    keystore: str
    current: int
    versions: dict[int, int]
    retired_candidates: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What a rotation did: the new version, how many DEKs were rewrapped, what was retired."""

    version: int
    resumed: bool
    rewrapped: int
    retired: tuple[int, ...]


class KeyStore:
    """Creates, unwraps, rewraps and deletes wrapped DEKs in the separate key database."""

    def __init__(self, url: str, provider: KeyProvider) -> None:
        if url.startswith("sqlite") and ":///" in url:
            _create_private(Path(url.split(":///", 1)[1]))
        self.engine = make_engine(url)
        self.url = self.engine.url.render_as_string(hide_password=True)
        if self.engine.dialect.name == "sqlite":

            @event.listens_for(self.engine, "connect")
            def _secure_delete(dbapi_conn: Any, _record: Any) -> None:
                # Overwrite deleted DEKs with zeros in the file instead of leaving free pages.
                dbapi_conn.execute("PRAGMA secure_delete=ON")

        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Concurrent openers of a fresh key store must not race on CREATE TABLE.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
                metadata.create_all(conn)
        except OperationalError as exc:
            raise ConfigurationError(
                f"cannot open the key store at {self.url} ({type(exc.orig).__name__}); check "
                "TACTFUL_KEYSTORE_URL and that its directory or server is reachable"
            ) from None
        self._provider = provider
        self._ring = provider.load()
        self._kek_ciphers: dict[int, FieldCipher] = {}
        # Key reads and key inserts bypass SQLAlchemy's statement layers (see _read): the key
        # store's own statements, rendered once for the driver.
        self._one_key_sql = driver_sql(_ONE_KEY, self.engine.dialect)[0]
        self._many_keys_sql: dict[int, str] = {}
        # Keys per bulk SELECT: SQLite answers 100 ids per IN list with fewer instructions per
        # key than 500 (its temporary index of the list grows with it: about 1,000 fewer per
        # key, callgrind); elsewhere each statement is a round trip, so 500.
        self._read_chunk = SQLITE_READ_CHUNK if self.engine.dialect.name == "sqlite" else CHUNK
        self._insert_sql, order = driver_sql(data_key.insert(), self.engine.dialect)
        assert order == ("store_id", "key_id", "kek_version", "wrapped", "created_at"), order
        stamp_type = data_key.c.created_at.type.dialect_impl(self.engine.dialect)
        self._stamp: Callable[[datetime], Any] = stamp_type.bind_processor(self.engine.dialect) or (
            lambda value: value
        )
        # Key lookups run on connections of the key store's own (DriverReads): about 4 µs
        # on SQLite against 20 µs through the pool for a cold per-user read.
        self._reads = DriverReads(self.engine)
        self._read = self._reads.run

    def __repr__(self) -> str:
        return f"KeyStore({self.url!r})"

    @property
    def ring(self) -> KeyRing:
        """The master keys as last loaded from the provider."""
        return self._ring

    def describe_provider(self) -> str:
        """Where the master keys come from (no secrets)."""
        return self._provider.describe()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One key store transaction (committed before the caller's data transaction)."""
        with self.engine.begin() as conn:
            yield conn

    def kek(self, version: int) -> bytes:
        """KEK `version`, reloading the provider once if another process rotated meanwhile."""
        if version not in self._ring.keks:
            self._ring = self._provider.load()
        return self._ring.kek(version)

    def attach(self, store_id: str, *, expect_keys: bool) -> None:
        """Register a store; refuse a key store that should hold this store's keys but does not."""
        with self.begin() as conn:
            row = conn.execute(
                select(keystore_store.c.store_id).where(keystore_store.c.store_id == store_id)
            ).first()
            if row is not None:
                return
            if expect_keys:
                raise ConfigurationError(
                    f"the key store at {self.url} holds no data keys for this store; point "
                    "TACTFUL_KEYSTORE_URL (or keystore_url=) at the key store the store was "
                    "created with (by default keys.db next to the master key file)"
                )
            insert_ignore(
                conn,
                keystore_store,
                [{"store_id": store_id, "kek_current": self._ring.current, "created_at": now()}],
                ["store_id"],
            )

    def _current(self, conn: Connection, store_id: str) -> int:
        # FOR SHARE (PostgreSQL): a rotation's switch to a new version waits for creators that
        # read the old one to commit, so its rewrap scan sees their keys.
        version = conn.execute(
            select(keystore_store.c.kek_current)
            .where(keystore_store.c.store_id == store_id)
            .with_for_update(read=True)
        ).scalar_one()
        return max(int(version), self._ring.current)

    def create(self, store_id: str, key_ids: Collection[str]) -> dict[str, bytes]:
        """Fresh DEKs for new key ids, wrapped under the current KEK and committed now."""
        if not key_ids:
            return {}
        ids = list(key_ids)
        raw = new_data_keys(len(ids))
        deks = {k: raw[32 * i : 32 * i + 32] for i, k in enumerate(ids)}
        stamp = self._stamp(now())
        with self.begin() as conn:
            version = self._current(conn, store_id)
            encrypt = self._kek_cipher(version).encrypt_drawn  # what wrap_key does
            nonces = fresh_nonces(len(ids))
            aads = wrap_aads(store_id, ids, version)
            wrapped = [
                encrypt(nonces[12 * i : 12 * i + 12], raw[32 * i : 32 * i + 32], aads[i])
                for i in range(len(ids))
            ]
            blob = blob_param(conn.dialect)
            # The driver's executemany of the prebuilt INSERT, in the caller's transaction.
            conn.exec_driver_sql(
                self._insert_sql,
                [
                    (store_id, k, version, w if blob is None else blob(w), stamp)
                    for k, w in zip(ids, wrapped, strict=True)
                ],
            )
        return deks

    def unwrap(self, store_id: str, key_ids: Collection[str]) -> dict[str, bytes]:
        """The DEKs of these key ids; ids whose key is gone (erased) are absent."""
        out: dict[str, bytes] = {}
        ids = list(key_ids)
        if not ids:
            return out
        rows: list[tuple[str, int, bytes]] = []
        if len(ids) == 1:  # the per-read path
            found = self._read(self._one_key_sql, (store_id, ids[0]))
            rows = [(ids[0], version, wrapped) for version, wrapped in found]
        else:
            step = self._read_chunk
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                rows.extend(self._read(self._many_keys(len(chunk)), (store_id, *chunk)))
        if not rows:  # every key gone (erased)
            return out
        if len(rows) == 1:  # one user's key (a read's cache miss): no grouping by version
            key_id, version, wrapped = rows[0]
            out[key_id] = self._kek_cipher(int(version)).decrypt(
                bytes(wrapped), wrap_aad(store_id, key_id, int(version))
            )
            return out
        # Bulk: one decrypt call per KEK version for all its keys (usually one version). The
        # one-version case makes no call per row (an int() and a bytes() per key were ~2,300
        # instructions): the drivers return the versions as int and the wrapped keys as bytes
        # already. The columns are taken by comprehensions, not `zip(*rows)`, which keeps an
        # iterator per row alive at once: 10,000 objects the garbage collector tracks, most
        # of which outlived a collection and went on to set off full ones.
        read_ids = [row[0] for row in rows]
        kinds = {row[1] for row in rows}
        if len(kinds) == 1:
            version = int(rows[0][1])
            deks = self._kek_cipher(version).decrypt_many(
                [row[2] for row in rows], wrap_aads(store_id, read_ids, version)
            )
            return dict(zip(read_ids, deks, strict=True))
        for version in sorted({int(v) for v in kinds}):
            mine = [row for row in rows if int(row[1]) == version]
            key_ids = [row[0] for row in mine]
            deks = self._kek_cipher(version).decrypt_many(
                [bytes(row[2]) for row in mine], wrap_aads(store_id, key_ids, version)
            )
            out.update(zip(key_ids, deks, strict=True))
        return out

    def _many_keys(self, n: int) -> str:
        sql = self._many_keys_sql.get(n)
        if sql is None:
            stmt = select(data_key.c.key_id, data_key.c.kek_version, data_key.c.wrapped).where(
                (data_key.c.store_id == bindparam("s"))
                & data_key.c.key_id.in_([bindparam(f"k{i}") for i in range(n)])
            )
            sql = self._many_keys_sql[n] = driver_sql(stmt, self.engine.dialect)[0]
        return sql

    def _kek_cipher(self, version: int) -> FieldCipher:
        # One AES-GCM object per KEK version: building it costs more than an unwrap.
        cipher = self._kek_ciphers.get(version)
        if cipher is None:
            cipher = self._kek_ciphers[version] = FieldCipher(self.kek(version))
        return cipher

    def delete(self, store_id: str, key_ids: Collection[str]) -> int:
        """Delete DEKs now (crypto-shredding); committed before the caller's data transaction."""
        ids = list(key_ids)
        n = 0
        with self.begin() as conn:
            for start in range(0, len(ids), CHUNK):
                n += conn.execute(
                    delete(data_key).where(
                        (data_key.c.store_id == store_id)
                        & data_key.c.key_id.in_(ids[start : start + CHUNK])
                    )
                ).rowcount
        return n

    def put_wrapped(self, store_id: str, rows: list[dict[str, object]]) -> None:
        """Insert DEKs (key_id, dek) if absent, wrapped under the current KEK (migrations)."""
        stamp = now()
        with self.begin() as conn:
            version = self._current(conn, store_id)
            kek = self.kek(version)
            insert_ignore(
                conn,
                data_key,
                [
                    {
                        "store_id": store_id,
                        "key_id": r["key_id"],
                        "kek_version": version,
                        "wrapped": wrap_key(
                            kek,
                            r["dek"],  # type: ignore[arg-type]
                            store_id=store_id,
                            key_id=str(r["key_id"]),
                            kek_version=version,
                        ),
                        "created_at": stamp,
                    }
                    for r in rows
                ],
                ["store_id", "key_id"],
            )

    def status(self, store_id: str) -> KeyStatus:
        """KEK versions known to the ring and the store, with DEK counts per version."""
        with self.engine.connect() as conn:
            counts = {
                int(v): int(n)
                for v, n in conn.execute(
                    select(data_key.c.kek_version, func.count())
                    .where(data_key.c.store_id == store_id)
                    .group_by(data_key.c.kek_version)
                )
            }
            current = self._current(conn, store_id)
        versions = {v: counts.get(v, 0) for v in sorted(set(self._ring.keks) | set(counts))}
        idle = tuple(v for v, n in versions.items() if n == 0 and v != current)
        return KeyStatus(self._provider.describe(), self.url, current, versions, idle)

    def rotate(
        self,
        store_id: str,
        *,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> RotationReport:
        """Make a new KEK version current and rewrap every DEK under it, batch by batch.

        Resumable: if DEKs under older versions remain (an interrupted rotation), no new version
        is made and the rewrap continues. Each batch is one transaction; reads and writes go on.
        Old versions are retired (removed from the key ring) once no DEK anywhere uses them.
        """
        self._ring = self._provider.load()
        with self.begin() as conn:
            stored = int(
                conn.execute(
                    select(keystore_store.c.kek_current).where(
                        keystore_store.c.store_id == store_id
                    )
                ).scalar_one()
            )
            behind = conn.execute(
                select(func.count()).where(
                    (data_key.c.store_id == store_id)
                    & (data_key.c.kek_version != self._ring.current)
                )
            ).scalar_one()
        resumed = bool(behind) or stored != self._ring.current
        if not resumed:
            self._ring = self._provider.add_version()
        target = self._ring.current
        with self.begin() as conn:
            conn.execute(
                update(keystore_store)
                .where(keystore_store.c.store_id == store_id)
                .values(kek_current=target)
            )
        done = 0
        while True:
            n = self._rewrap_batch(store_id, target, batch_size)
            if not n:
                break
            done += n
            if progress is not None:
                progress(done)
        return RotationReport(target, resumed, done, self.retire_unused())

    def _rewrap_batch(self, store_id: str, target: int, batch_size: int) -> int:
        with self.begin() as conn:
            query = (
                select(data_key.c.key_id, data_key.c.kek_version, data_key.c.wrapped)
                .where((data_key.c.store_id == store_id) & (data_key.c.kek_version != target))
                .order_by(data_key.c.key_id)
                .limit(batch_size)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows:
                return 0
            params = []
            wrap = self._kek_cipher(target).encrypt  # what unwrap_key / wrap_key do, with
            for r in rows:  # one AES object per KEK version instead of two per DEK
                dek = self._kek_cipher(r.kek_version).decrypt(
                    r.wrapped, wrap_aad(store_id, r.key_id, r.kek_version)
                )
                params.append(
                    {
                        "b_key": r.key_id,
                        "b_old": r.kek_version,
                        "b_wrapped": wrap(dek, wrap_aad(store_id, r.key_id, target)),
                    }
                )
            conn.execute(
                update(data_key)
                .where(
                    (data_key.c.store_id == store_id)
                    & (data_key.c.key_id == bindparam("b_key"))
                    & (data_key.c.kek_version == bindparam("b_old"))
                )
                .values(kek_version=target, wrapped=bindparam("b_wrapped")),
                params,
            )
        return len(rows)

    def retire_unused(self) -> tuple[int, ...]:
        """Remove from the key ring every old KEK version no DEK and no store uses any more."""
        retired = []
        for version in sorted(self._ring.keks):
            if version == self._ring.current:
                continue
            with self.engine.connect() as conn:
                used = conn.execute(
                    select(func.count()).where(data_key.c.kek_version == version)
                ).scalar_one()
                used += conn.execute(
                    select(func.count()).where(keystore_store.c.kek_current == version)
                ).scalar_one()
            if not used:
                self._ring = self._provider.retire(version)
                retired.append(version)
        return tuple(retired)

    def key_ids(self, store_id: str, *, older_than: datetime) -> Iterator[list[str]]:
        """This store's key ids created before `older_than`, in batches (orphan collection)."""
        last = ""
        while True:
            with self.engine.connect() as conn:
                ids = list(
                    conn.execute(
                        select(data_key.c.key_id)
                        .where(
                            (data_key.c.store_id == store_id)
                            & (data_key.c.key_id > last)
                            & (data_key.c.created_at < older_than)
                        )
                        .order_by(data_key.c.key_id)
                        .limit(CHUNK)
                    ).scalars()
                )
            if not ids:
                return
            yield ids
            last = ids[-1]

    def close(self) -> None:
        """Release the connection pool and the key-read connections."""
        self._reads.close()
        self.engine.dispose()


ORPHAN_GRACE = timedelta(hours=1)


def _create_private(path: Path) -> None:
    # Wrapped keys are useless without the master key, but keep them as private as it is;
    # SQLite gives its -wal and -shm files the database file's mode.
    if path.name and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
