"""tf.profiles, tf.events and tf.catalog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from tactful.parts.base import Part


class ProfilesAPI(Part):
    """tf.profiles: encrypted profile fields."""

    def put(self, user: str, values: Mapping[str, object]) -> None:
        """Write declared profile fields (None deletes one); unknown fields are rejected."""
        self._store.profiles.schema.check(values)  # before a data key is made for a new user
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            fields = self._store.profiles.schema.fields
            if any(n in fields and fields[n].searchable for n in values):
                self._store.subjects.remember_user_id(conn, subject, user)
            self._store.profiles.put(conn, subject, values)
            self._tf._models.age_fields_written(conn, values)

    def get(self, user: str, fields: Sequence[str] | None = None) -> dict[str, object]:
        """The user's profile fields, decrypted: all, or only the named `fields`.

        With `fields`, only those are read and decrypted; absent ones are left out.
        """
        with self._store.read() as conn:
            subject = self._store.subjects.get(conn, user)
            return self._store.profiles.get(conn, subject, fields=fields)

    def put_many(self, profiles: Mapping[str, Mapping[str, object]]) -> int:
        """Write the profile fields of many users ({user: {field: value}}) in one transaction.

        The bulk path for imports: all values are validated first; nothing is written if any
        is rejected. Returns how many users were written.
        """
        store = self._store
        for values in profiles.values():
            store.profiles.schema.check(values)
        searchable = {n for n, f in store.profiles.schema.fields.items() if f.searchable}
        with store.begin() as conn:
            subjects = store.subjects.resolve_many(conn, profiles)
            names: set[str] = set()
            for user, values in profiles.items():
                names.update(values)
                subject = subjects[user]
                if subject.needs_user_id and not searchable.isdisjoint(values):
                    store.subjects.remember_user_id(conn, subject, user)
            store.profiles.put_many(
                conn, [(subjects[u], v) for u, v in profiles.items()], checked=True
            )
            self._tf._models.age_fields_written(conn, names)
        return len(profiles)

    def find(self, field: str, value: object) -> list[str]:
        """User ids whose searchable `field` equals `value` (blind-index lookup, equality only).

        The field must be declared `searchable: true` in fields.yaml; the lookup uses a keyed
        HMAC of the value, never the plaintext.
        """
        store = self._store
        with store.read() as conn:
            ids = store.profiles.find(conn, field, value)
            found = (store.subjects.user_id(conn, sid) for sid in ids)
            return sorted(u for u in found if u is not None)


class EventsAPI(Part):
    """tf.events: encrypted behavioral events."""

    def record(self, user: str, item: str, kind: str = "view", ts: datetime | None = None) -> None:
        """Record one event (ts defaults to now; must be timezone-aware)."""
        self.record_many(user, [(item, kind, ts)])

    def record_batch(self, events: Iterable[tuple[str, str, str, datetime | None]]) -> int:
        """Record (user, item, kind, ts) events of many users in one transaction (bulk ingestion).

        Everything is validated first; nothing is written if any event is rejected.
        """
        store = self._store
        batch = list(events)
        store.events.check_rows(batch)
        with store.begin() as conn:
            subjects = store.subjects.resolve_rows(conn, [row[0] for row in batch])
            n = store.events.record_rows(conn, batch, subjects)
        self._tf._models.events_written(row[0] for row in subjects.values())
        return n

    def record_many(self, user: str, events: Iterable[tuple[str, str, datetime | None]]) -> int:
        """Record many (item, kind, ts) events of one user in one transaction."""
        batch = self._store.events.check_all(events)  # before a data key is made for a new user
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            n = self._store.events.record_many(conn, subject, batch)
        self._tf._models.events_written((subject.id,))
        return n


class CatalogAPI(Part):
    """tf.catalog: items (not personal data)."""

    def upsert(self, items: Iterable[Mapping[str, object]]) -> int:
        """Insert or update items: dicts with item_id, title, categories, attributes."""
        with self._store.begin() as conn:
            n = self._store.catalog.upsert(conn, items)
        self._tf._models.mark_dirty()
        return n
