"""Retention: delete profile fields and events kept longer than their category allows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Integer, String, cast, delete, select, update

from tactful.store.engine import insert_ignore
from tactful.store.schema import ProfileSchema
from tactful.store.sequence import PURGED
from tactful.store.tables import BlindIndex, Event, ProfileField, StoreMeta, table_of

_profile = table_of(ProfileField)
_index = table_of(BlindIndex)
_event = table_of(Event)
_meta = table_of(StoreMeta)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a retention run deleted: events per data category, profile fields per field name,
    and the rows of erased users it purged (per table; `erased_purged` users finished)."""

    ran_at: datetime
    events: dict[str, int] = field(default_factory=dict)
    profile_fields: dict[str, int] = field(default_factory=dict)
    purged: dict[str, int] = field(default_factory=dict)
    erased_purged: int = 0

    @property
    def total(self) -> int:
        """How many rows were deleted in all."""
        return (
            sum(self.events.values())
            + sum(self.profile_fields.values())
            + sum(self.purged.values())
        )


def run_retention(conn: Connection, schema: ProfileSchema, at: datetime) -> RetentionReport:
    """Delete, inside the caller's transaction, what is past its retention at time `at`.

    Profile fields are aged by their last update, events by their time. Categories without a
    retention in fields.yaml are kept.
    """
    fields: dict[str, int] = {}
    for name, spec in sorted(schema.fields.items()):
        days = schema.retention_days(spec.category, name)
        if days is None:
            continue
        cutoff = at - timedelta(days=days)
        expired = select(_profile.c.subject_id).where(
            (_profile.c.name == name) & (_profile.c.updated_at < cutoff)
        )
        conn.execute(
            delete(_index).where((_index.c.name == name) & _index.c.subject_id.in_(expired))
        )
        n = conn.execute(
            delete(_profile).where((_profile.c.name == name) & (_profile.c.updated_at < cutoff))
        ).rowcount
        if n:
            fields[name] = n
    events: dict[str, int] = {}
    categories = conn.execute(select(_event.c.category).distinct()).scalars().all()
    for category in sorted(categories):
        days = schema.retention_days(category)
        if days is None:
            continue
        n = conn.execute(
            delete(_event).where(
                (_event.c.category == category) & (_event.c.ts < at - timedelta(days=days))
            )
        ).rowcount
        if n:
            events[category] = n
    if events:
        # A deletion leaves a subject's latest event number where it was: the gate's probe
        # learns of it from this store-wide count (`store.sequence`).
        insert_ignore(conn, _meta, [{"key": PURGED, "value": "0"}], ["key"])
        conn.execute(
            update(_meta)
            .where(_meta.c.key == PURGED)
            .values(value=cast(cast(_meta.c.value, Integer) + 1, String))
        )
    return RetentionReport(at, events, fields)
