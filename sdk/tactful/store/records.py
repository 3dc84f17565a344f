"""Profiles, events and the catalog: encrypted writes and minimized reads."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite

from tactful.crypto import (
    Aead,
    BlindIndexer,
    aad_prefix,
    associated_data,
    fresh_nonces,
    open_many,
    open_sealed,
)
from tactful.errors import IntegrityError, ValidationError
from tactful.store import sequence
from tactful.store.engine import blob_param, driver_sql, now, utc
from tactful.store.schema import ProfileSchema, category_allowed
from tactful.store.subjects import SubjectRef, SubjectRow, Subjects
from tactful.store.tables import BlindIndex, CatalogEntry, Event, ProfileField, Subject, table_of

_profile = table_of(ProfileField)
_index = table_of(BlindIndex)
_event = table_of(Event)
_catalog = table_of(CatalogEntry)
_subject = table_of(Subject)

_TS_RAW = type_coerce(_event.c.ts, String).label("ts")  # see _ts_parser
_INSERT_EVENT = _event.insert()
_STREAM = select(_event.c.id, _TS_RAW, _event.c.ciphertext).order_by(_event.c.ts, _event.c.id)
_STREAM_FIRST = _STREAM.where(_event.c.subject_id == bindparam("sid")).limit(bindparam("n"))
_STREAM_NEXT = _STREAM.where(
    (_event.c.subject_id == bindparam("sid"))
    & (
        tuple_(_event.c.ts, _event.c.id)
        > tuple_(bindparam("ts", type_=_event.c.ts.type), bindparam("id"))
    )
).limit(bindparam("n"))
# A subject's events with their write numbers, as `Events.marked_bundles` reads them.
_MARKED_COLUMNS = (_event.c.subject_id, _event.c.id, _TS_RAW, _event.c.ciphertext, _event.c.seq)
_MARKED_ALL = (
    select(*_MARKED_COLUMNS)
    .where(_event.c.subject_id == bindparam("sid"))
    .order_by(_event.c.ts, _event.c.id)
)
_MARKED_AFTER = _MARKED_ALL.where(_event.c.seq > bindparam("after"))
_MARKED_MANY = (
    select(*_MARKED_COLUMNS)
    .where(_event.c.subject_id.in_(bindparam("sids", expanding=True)))
    .order_by(_event.c.subject_id, _event.c.ts, _event.c.id)
)
_LATEST_NUMBERS = select(
    _subject.c.id,
    select(func.max(_event.c.seq)).where(_event.c.subject_id == _subject.c.id).scalar_subquery(),
).where(_subject.c.ref.is_not(None))
_ALL_FIELDS = (
    select(_profile.c.name, _profile.c.category, _profile.c.ciphertext)
    .where(_profile.c.subject_id == bindparam("sid"))
    .order_by(_profile.c.name)
)
# Without filtering by category (a whole profile, `profiles.get`) the category is not read.
_ALL_VALUES = (
    select(_profile.c.name, _profile.c.ciphertext)
    .where(_profile.c.subject_id == bindparam("sid"))
    .order_by(_profile.c.name)
)

MAX_ITEM_ID = 128
MAX_KIND = 32
READ_CHUNK = 5000  # events per keyset page of `Events.stream`
WRITE_CHUNK = 5000  # events per executemany of the bulk write path


def encode_event(item: str, kind: str) -> bytes:
    """An event's plaintext payload (format 2): 0x02, item length (2 bytes), item, kind (UTF-8).

    Format 1 was the JSON text `["item","kind"]`; `decode_event` reads both, so stores written
    before keep working. The payload is inside the AES-GCM ciphertext, so its format byte is
    authenticated like the rest.
    """
    raw = item.encode()
    return b"\x02" + len(raw).to_bytes(2, "big") + raw + kind.encode()


def decode_event(payload: bytes) -> tuple[str, str]:
    """(item, kind) of a decrypted event payload, either format."""
    if payload[:1] == b"\x02":
        end = 3 + ((payload[1] << 8) | payload[2])
        return payload[3:end].decode(), payload[end:].decode()
    if payload[:1] == b"[":  # format 1 (JSON), written before format 2
        item, kind = json.loads(payload)
        return str(item), str(kind)
    raise IntegrityError(
        "an event payload has an unknown format (written by a newer tactful?); upgrade tactful"
    )


def _ts_from_text(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")


def _ts_parser(conn: Connection) -> Callable[[datetime | str], datetime]:
    """How to read `ts` selected as `_TS_RAW`, i.e. without SQLAlchemy's DateTime conversion.

    SQLite hands back the stored text (UTC, "YYYY-MM-DD HH:MM:SS.ffffff"), which the C parser
    reads several times faster than SQLAlchemy's regular expression; PostgreSQL hands back
    an aware datetime.
    """
    return _ts_from_text if conn.dialect.name == "sqlite" else utc  # type: ignore[return-value]


class StoredEvent(NamedTuple):
    """A decrypted event: item, kind, time (a named tuple: bulk reads make millions)."""

    item: str
    kind: str
    ts: datetime


class MarkedEvents(NamedTuple):
    """A subject's events, oldest first, and each one's write number (`store.sequence`) in
    the same order (0 for a row without one)."""

    events: list[StoredEvent]
    seqs: list[int]


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A catalog item as stored."""

    item_id: str
    title: str
    categories: tuple[str, ...]
    attributes: dict[str, object]


_INDEX_UPSERT: dict[str, str] = {}


def _index_upsert_sql(conn: Connection) -> str:
    """The blind index's upsert (subject_id, name, digest), rendered once per dialect."""
    sql = _INDEX_UPSERT.get(conn.dialect.name)
    if sql is None:
        keys = ["subject_id", "name"]
        stmt = (
            postgresql.insert(_index)
            if conn.dialect.name == "postgresql"
            else sqlite.insert(_index)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={"digest": stmt.excluded.digest}
        )
        sql, order = driver_sql(stmt, conn.dialect)
        assert order == ("subject_id", "name", "digest"), order
        _INDEX_UPSERT[conn.dialect.name] = sql
    return sql


def upsert(conn: Connection, table: Table, rows: list[dict[str, object]], keys: list[str]) -> None:
    """Insert rows, or update the non-key columns where the key already exists.

    One statement executed for many parameter sets (the driver's executemany; batched into
    multi-row VALUES by SQLAlchemy on PostgreSQL), not one statement with every row inlined:
    compiling a statement with thousands of VALUES cost more than the rows' encryption.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)


class Profiles:
    """Encrypted profile fields, one ciphertext per field; searchable ones get a blind index."""

    def __init__(self, subjects: Subjects, schema: ProfileSchema) -> None:
        self._subjects = subjects
        self.schema = schema
        self._indexers: dict[str, BlindIndexer] = {}

    def indexer(self, name: str) -> BlindIndexer:
        """The blind index of one field (its key derived once, its HMAC state kept)."""
        indexer = self._indexers.get(name)
        if indexer is None:
            key = self._subjects.keys.derived_key(f"tactful|blind-index|{name}")
            indexer = self._indexers[name] = BlindIndexer(key)
        return indexer

    def digest(self, name: str, value: object, text: str | None = None) -> bytes:
        """The blind index of a searchable field's value (`text`: its JSON, if at hand)."""
        return self.indexer(name)(json.dumps(value) if text is None else text)

    def put(self, conn: Connection, subject: SubjectRef, values: Mapping[str, object]) -> None:
        """Validate and write fields (None deletes a field) and their blind indexes."""
        self.put_many(conn, [(subject, values)])

    def put_many(
        self,
        conn: Connection,
        batch: Sequence[tuple[SubjectRef, Mapping[str, object]]],
        *,
        checked: bool = False,
    ) -> None:
        """Validate and write the fields of many subjects, a few statements for the batch.

        `checked` says the caller validated every mapping with `schema.check` already.
        """
        if not checked:
            for _, values in batch:
                self.schema.check(values)
        stamp = now()
        rows: list[dict[str, object]] = []
        index: list[tuple[int, str, bytes]] = []
        keyed = self._subjects.aeads_of(s for s, _ in batch)
        specs = self.schema.fields
        dumps = json.dumps
        nonces = fresh_nonces(sum(len(values) for _, values in batch))
        at = 0
        for subject, values in batch:
            if None in values.values():
                gone = [n for n, v in values.items() if v is None]
                for table in (_profile, _index):
                    conn.execute(
                        delete(table).where(
                            (table.c.subject_id == subject.id) & table.c.name.in_(gone)
                        )
                    )
            aead = keyed.get(subject.id)
            if aead is None:
                aead = self._subjects.aead(subject)  # raises: the key is gone
            encrypt = aead.encrypt
            prefix = associated_data(subject.ref, "profile_field", "")
            for name, value in values.items():
                if value is None:
                    continue
                spec = specs[name]
                text = dumps(value)
                nonce = nonces[at : at + 12]
                at += 12
                rows.append(
                    {
                        "subject_id": subject.id,
                        "name": name,
                        "category": spec.category,
                        "ciphertext": nonce + encrypt(nonce, text.encode(), prefix + name.encode()),
                        "updated_at": stamp,
                    }
                )
                if spec.searchable:
                    index.append((subject.id, name, self.digest(name, value, text)))
        for start in range(0, len(rows), 2000):
            upsert(conn, _profile, rows[start : start + 2000], ["subject_id", "name"])
        if index:
            # Blind-index rows (tactful's own, no plaintext counterpart): the driver's
            # executemany of one prebuilt upsert, without SQLAlchemy's per-row processing.
            blob = blob_param(conn.dialect)
            if blob is not None:
                index = [(sid, name, blob(digest)) for sid, name, digest in index]
            conn.exec_driver_sql(_index_upsert_sql(conn), index)

    def get(
        self,
        conn: Connection,
        subject: SubjectRef,
        *,
        categories: frozenset[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> dict[str, object]:
        """Decrypt the subject's fields: all, those of `categories`, or only the named `fields`.

        Only the selected rows are read and decrypted.
        """
        if fields is None and categories is None:
            values = conn.execute(_ALL_VALUES, {"sid": subject.id}).all()
            if not values:
                return {}
            cipher = self._subjects.cipher(conn, subject)
            prefix = aad_prefix(subject.ref, "profile_field")
            plain = cipher.decrypt_many(
                [blob for _, blob in values], [prefix + name.encode() for name, _ in values]
            )
            loads = json.loads
            return {name: loads(p.decode()) for (name, _), p in zip(values, plain, strict=True)}
        if fields is None:
            rows = conn.execute(_ALL_FIELDS, {"sid": subject.id}).all()
        else:
            self.schema.check_names(fields)
            rows = conn.execute(
                select(_profile.c.name, _profile.c.category, _profile.c.ciphertext)
                .where((_profile.c.subject_id == subject.id) & _profile.c.name.in_(list(fields)))
                .order_by(_profile.c.name)
            ).all()
        wanted = (
            rows
            if categories is None
            else [r for r in rows if category_allowed(r[1], categories)]  # r[1]: category
        )
        if not wanted:
            return {}
        decrypt = self._subjects.cipher(conn, subject).decrypt
        prefix = aad_prefix(subject.ref, "profile_field")
        loads = json.loads
        return {
            name: loads(decrypt(blob, prefix + name.encode()).decode()) for name, _, blob in wanted
        }

    def find(self, conn: Connection, name: str, value: object) -> list[int]:
        """Ids of live subjects whose searchable field `name` equals `value` (blind index)."""
        spec = self.schema.fields.get(name)
        if spec is None or not spec.searchable:
            searchable = ", ".join(n for n, f in sorted(self.schema.fields.items()) if f.searchable)
            raise ValidationError(
                f"profile field {name!r} is not searchable (searchable: {searchable or 'none'}); "
                "mark it `searchable: true` in fields.yaml"
            )
        self.schema.check({name: value})
        rows = conn.execute(
            select(_index.c.subject_id)
            .where((_index.c.name == name) & (_index.c.digest == self.digest(name, value)))
            .order_by(_index.c.subject_id)
        )
        return [int(r.subject_id) for r in rows]

    def reindex(self, conn: Connection, names: Collection[str], *, batch: int = 1000) -> int:
        """Rebuild the blind index of fields that became searchable; drop the others' indexes.

        Decrypts every stored value of those fields once (at open, after a fields.yaml change
        or an upgrade); returns how many values were indexed.
        """
        conn.execute(delete(_index).where(_index.c.name.not_in(list(names))))
        if not names:
            return 0
        rows = conn.execute(
            select(_profile.c.subject_id, _profile.c.name, _profile.c.ciphertext).where(
                _profile.c.name.in_(list(names))
            )
        ).all()
        keyed = self._subjects.aeads_for(conn, sorted({r.subject_id for r in rows}))
        out: list[dict[str, object]] = []
        for r in rows:
            if r.subject_id not in keyed:
                continue
            ref, aead = keyed[r.subject_id]
            value = json.loads(
                open_sealed(aead, r.ciphertext, associated_data(ref, "profile_field", r.name))
            )
            out.append(
                {"subject_id": r.subject_id, "name": r.name, "digest": self.digest(r.name, value)}
            )
        for start in range(0, len(out), batch):
            upsert(conn, _index, out[start : start + batch], ["subject_id", "name"])
        return len(out)

    def holders(self, conn: Connection, name: str, subject_ids: Sequence[int]) -> set[int]:
        """Which of these subjects have the field `name` stored (its value is not read)."""
        out: set[int] = set()
        ids = list(subject_ids)
        for start in range(0, len(ids), 500):
            out.update(
                conn.execute(
                    select(_profile.c.subject_id).where(
                        (_profile.c.name == name)
                        & _profile.c.subject_id.in_(ids[start : start + 500])
                    )
                ).scalars()
            )
        return out


def check_event(item: object, kind: object) -> None:
    """Validate an event's item id and kind (the values are never echoed)."""
    if not isinstance(item, str) or not item or len(item) > MAX_ITEM_ID:
        raise ValidationError(
            f"event item must be a non-empty string of at most {MAX_ITEM_ID} characters"
        )
    if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND:
        raise ValidationError(
            f"event kind must be a non-empty string of at most {MAX_KIND} characters"
        )


class Events:
    """Encrypted behavioral events: the item and kind are inside the ciphertext."""

    def __init__(self, subjects: Subjects, category: str) -> None:
        self._subjects = subjects
        self.category = category

    @staticmethod
    def check_all(
        events: Iterable[tuple[str, str, datetime | None]],
    ) -> list[tuple[str, str, datetime | None]]:
        """Validate a batch of (item, kind, ts) events; returns it as a list."""
        batch = list(events)
        for item, kind, ts in batch:
            check_event(item, kind)
            if ts is not None and (not isinstance(ts, datetime) or ts.tzinfo is None):
                raise ValidationError("event time must be timezone-aware (e.g. datetime.now(UTC))")
        return batch

    def record_many(
        self,
        conn: Connection,
        subject: SubjectRef,
        events: Iterable[tuple[str, str, datetime | None]],
    ) -> int:
        """Encrypt and insert events (item, kind, ts) for one subject; returns how many."""
        batch = list(events)
        for item, kind, ts in batch:
            check_event(item, kind)
            if ts is not None and ts.tzinfo is None:
                raise ValidationError("event time must be timezone-aware (e.g. datetime.now(UTC))")
        aead = self._subjects.aead(subject)
        return self._insert(
            conn,
            [(subject.id, item, kind, ts) for item, kind, ts in batch],
            {subject.id: subject},
            {subject.id: aead},
        )

    @staticmethod
    def check_rows(batch: Sequence[tuple[str, str, str, datetime | None]]) -> None:
        """Validate a batch of (user, item, kind, ts) events (the user ids are checked when
        their subjects are resolved)."""
        for row in batch:
            if not isinstance(row, tuple) or len(row) != 4:
                raise ValidationError("each event must be a (user, item, kind, ts) tuple")
            _, item, kind, ts = row
            check_event(item, kind)
            if ts is not None and (not isinstance(ts, datetime) or ts.tzinfo is None):
                raise ValidationError("event time must be timezone-aware (e.g. datetime.now(UTC))")

    def record_rows(
        self,
        conn: Connection,
        rows: Sequence[tuple[str, str, str, datetime | None]],
        subjects: Mapping[str, SubjectRow],
    ) -> int:
        """Encrypt and insert validated (user, item, kind, ts) events of many users (bulk
        ingestion); `subjects` maps every user of the batch to its resolved subject
        (`Subjects.resolve_rows`)."""
        ciphers = self._subjects.aeads_of(subjects.values())
        for subject in subjects.values():
            if subject[0] not in ciphers:
                self._subjects.aead(SubjectRef(*subject))  # raises: this subject's key is gone
        return self._insert(conn, rows, subjects, ciphers)

    def _insert(
        self,
        conn: Connection,
        events: Sequence[tuple[Any, str, str, datetime | None]],
        subjects: Mapping[Any, SubjectRow],
        ciphers: Mapping[int, Aead],
    ) -> int:
        # The bulk write path: per event one payload, one AES-GCM call and one parameter dict;
        # the random row ids (bound into the AAD) are drawn in one call per page. Events are
        # (key, item, kind, ts) with `subjects[key]` their subject, so that a batch makes no
        # per-event tuple of its own: the fewer objects a batch keeps alive, the fewer of
        # Python's full garbage collections it sets off.
        stamp = now()
        category = self.category
        prefixes: dict[int, bytes] = {}
        n = 0
        for start in range(0, len(events), WRITE_CHUNK):
            page = events[start : start + WRITE_CHUNK]
            n += self._insert_page(conn, page, subjects, ciphers, prefixes, stamp, category)
        return n

    def _insert_page(
        self,
        conn: Connection,
        page: Sequence[tuple[Any, str, str, datetime | None]],
        subjects: Mapping[Any, SubjectRow],
        ciphers: Mapping[int, Aead],
        prefixes: dict[int, bytes],
        stamp: datetime,
        category: str,
    ) -> int:
        ids = os.urandom(16 * len(page)).hex()
        nonces = fresh_nonces(len(page))
        seqs = sequence.take(conn, len(page))
        out: list[dict[str, object]] = []
        append = out.append
        for i, (key, item, kind, ts) in enumerate(page):
            subject = subjects[key]
            sid = subject[0]
            prefix = prefixes.get(sid)
            if prefix is None:
                prefix = prefixes[sid] = aad_prefix(subject[1], "event")  # (id, ref, ...)
            event_id = ids[32 * i : 32 * i + 32]
            raw = item.encode()  # the payload, format 2 (see encode_event)
            nonce = nonces[12 * i : 12 * i + 12]
            append(
                {
                    "id": event_id,
                    "subject_id": sid,
                    "category": category,
                    "ts": ts.astimezone(UTC) if ts is not None else stamp,
                    "seq": seqs[i],
                    "ciphertext": nonce
                    + ciphers[sid].encrypt(
                        nonce,
                        b"\x02" + len(raw).to_bytes(2, "big") + raw + kind.encode(),
                        prefix + event_id.encode(),
                    ),
                }
            )
        conn.execute(_INSERT_EVENT, out)
        return len(out)

    def read(self, conn: Connection, subject: SubjectRef) -> list[StoredEvent]:
        """All of the subject's events, oldest first."""
        return list(self.stream(conn, subject))

    def stream(
        self, conn: Connection, subject: SubjectRef, *, chunk: int = READ_CHUNK
    ) -> Iterator[StoredEvent]:
        """The subject's events, oldest first, decrypted a page at a time (exports, erasure).

        Keyset pagination on (ts, id): each page is one short query, so no cursor stays open
        and memory holds one page, whatever the history's length.
        """
        prefix = associated_data(subject.ref, "event", "")
        parse = _ts_parser(conn)
        decrypt: Callable[[bytes, bytes], bytes] | None = None
        after: tuple[datetime, str] | None = None
        while True:
            stmt = _STREAM_FIRST if after is None else _STREAM_NEXT
            params: dict[str, object] = {"sid": subject.id, "n": chunk}
            if after is not None:
                params["ts"], params["id"] = after
            rows = conn.execute(stmt, params).all()
            if rows and decrypt is None:  # no events, no key needed
                decrypt = self._subjects.cipher(conn, subject).decrypt
            event: StoredEvent | None = None
            for event_id, ts, blob in rows:
                assert decrypt is not None
                item, kind = decode_event(decrypt(blob, prefix + event_id.encode()))
                event = StoredEvent(item, kind, parse(ts))
                yield event
            if len(rows) < chunk or event is None:
                return
            after = (event.ts, rows[-1][0])

    def bundles(
        self, conn: Connection, subject_ids: Sequence[int]
    ) -> Iterator[tuple[int, list[StoredEvent]]]:
        """Decrypted events of many subjects, grouped per subject (bulk training read).

        Reads in chunks of subjects, one query each, unwrapping each DEK once; subjects
        without events (or erased meanwhile) are skipped.
        """
        for sid, marked in self.marked_bundles(conn, subject_ids):
            yield sid, marked.events

    def marked_bundles(
        self, conn: Connection, subject_ids: Sequence[int]
    ) -> Iterator[tuple[int, MarkedEvents]]:
        """`bundles`, each event with its write number (`store.sequence`): what a model that
        learned a subject's events needs to know later which of them it learned.

        Each subject's events come from one statement, so they are one consistent set.
        """
        ids = list(subject_ids)
        parse = _ts_parser(conn)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            keyed = self._subjects.aeads_for(conn, chunk)
            result = conn.execute(_MARKED_MANY, {"sids": list(keyed)})
            current: int | None = None
            group: list[Any] = []  # rows (subject_id, id, ts, ciphertext, seq) of one subject
            for rows in result.partitions(1000):
                for row in rows:
                    if row[0] != current:
                        if group:
                            yield group[0][0], self._open_group(keyed, group, parse)
                        current, group = row[0], []
                    group.append(row)
            if group:
                yield group[0][0], self._open_group(keyed, group, parse)

    def latest_numbers(self, conn: Connection) -> dict[int, int]:
        """Each live subject's latest event write number (subjects with events only): one
        statement, one seek in (subject_id, seq) per subject."""
        return {
            int(sid): int(latest)
            for sid, latest in conn.execute(_LATEST_NUMBERS)
            if latest is not None
        }

    def read_marked(self, conn: Connection, subject: SubjectRef, *, after: int = 0) -> MarkedEvents:
        """The subject's events (with `after`, only those numbered above it, read through the
        (subject_id, seq) index), oldest first, with their write numbers (see
        `marked_bundles`); none if there are none or the key is gone. One statement."""
        stmt, params = _MARKED_ALL, {"sid": subject.id}
        if after:
            stmt, params = _MARKED_AFTER, {"sid": subject.id, "after": after}
        rows: list[Any] = list(conn.execute(stmt, params).all())
        aead = self._subjects.aeads_of([subject]).get(subject.id) if rows else None
        if aead is None:
            return MarkedEvents([], [])
        return self._open_group({subject.id: (subject.ref, aead)}, rows, _ts_parser(conn))

    @staticmethod
    def _open_group(
        keyed: Mapping[int, tuple[str, Aead]],
        group: list[Any],
        parse: Callable[[Any], datetime],
    ) -> MarkedEvents:
        # One subject's events of a bulk read: decrypted in one call, format 2 decoded inline.
        ref, aead = keyed[group[0][0]]
        prefix = associated_data(ref, "event", "")
        payloads = open_many(aead, [r[3] for r in group], [prefix + r[1].encode() for r in group])
        out: list[StoredEvent] = []
        append = out.append
        # tuple.__new__ builds the named tuple without its Python-level __new__ (1.0 us
        # against 1.5 per event).
        new = tuple.__new__
        for payload, row in zip(payloads, group, strict=True):
            if payload[0] == 2:  # format 2, as decode_event reads it
                end = 3 + ((payload[1] << 8) | payload[2])
                item, kind = payload[3:end].decode(), payload[end:].decode()
            else:
                item, kind = decode_event(payload)
            append(new(StoredEvent, (item, kind, parse(row[2]))))
        return MarkedEvents(out, [row[4] or 0 for row in group])


class Catalog:
    """The item catalog (not personal data)."""

    def upsert(self, conn: Connection, items: Iterable[Mapping[str, object]]) -> int:
        """Insert or update items given as dicts with item_id, title, categories, attributes."""
        stamp = now()
        rows: list[dict[str, object]] = []
        for raw in items:
            item_id = raw.get("item_id")
            if not isinstance(item_id, str) or not item_id or len(item_id) > MAX_ITEM_ID:
                raise ValidationError(
                    f"catalog item_id must be a non-empty string of at most {MAX_ITEM_ID} chars"
                )
            unknown = set(raw) - {"item_id", "title", "categories", "attributes"}
            if unknown:
                raise ValidationError(
                    f"catalog item {item_id!r} has unknown keys {sorted(unknown)}; "
                    "use item_id, title, categories, attributes"
                )
            cats = raw.get("categories", [])
            if not isinstance(cats, list | tuple) or not all(isinstance(c, str) for c in cats):
                raise ValidationError(
                    f"catalog item {item_id!r}: categories must be a list of strings"
                )
            attrs = raw.get("attributes", {})
            if not isinstance(attrs, dict):
                raise ValidationError(f"catalog item {item_id!r}: attributes must be a dict")
            try:
                attrs_json = json.dumps(attrs, sort_keys=True)
            except TypeError as exc:
                raise ValidationError(
                    f"catalog item {item_id!r}: attributes must be JSON-serializable"
                ) from exc
            rows.append(
                {
                    "item_id": item_id,
                    "title": str(raw.get("title", "")),
                    "updated_at": stamp,
                    "categories": json.dumps(list(cats)),
                    "attributes": attrs_json,
                }
            )
        for start in range(0, len(rows), 1000):
            upsert(conn, _catalog, rows[start : start + 1000], ["item_id"])
        return len(rows)

    def all(self, conn: Connection) -> list[StoredItem]:
        """Every catalog item, by id."""
        rows = conn.execute(
            select(
                _catalog.c.item_id, _catalog.c.title, _catalog.c.categories, _catalog.c.attributes
            ).order_by(_catalog.c.item_id)
        )
        return [
            StoredItem(
                r.item_id, r.title, tuple(json.loads(r.categories)), json.loads(r.attributes)
            )
            for r in rows
        ]
