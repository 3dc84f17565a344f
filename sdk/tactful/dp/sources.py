"""Consent-aware inputs: frames of events, profile fields or consent states of covered users.

A user is covered when the aggregate's purpose rests on consent and their consent is in
force now, or when the purpose rests on another lawful basis; restricted users (Art. 18) and
erased users (gone from the store) never are. A column is readable only if its data category
falls under the purpose's declared data categories.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, select

from tactful.consent import ConsentLedger
from tactful.consent.purposes import Purpose
from tactful.dp.engine import Categorical, Column, Frame
from tactful.errors import ConsentRequired, ValidationError
from tactful.store import Store, SubjectRef, category_allowed
from tactful.store.tables import Subject, table_of

Source = Literal["events", "profiles", "consents"]
SOURCES: tuple[str, ...] = ("events", "profiles", "consents")
EVENT_COLUMNS = {"item": "text", "kind": "text", "hour": "number"}
CONSENT_COLUMNS = {"purpose": "text", "state": "text"}
_subject = table_of(Subject)


def columns_of(store: Store, source: str) -> dict[str, str]:
    """The columns a source offers, each 'text' or 'number' (list fields count as text)."""
    if source == "events":
        return dict(EVENT_COLUMNS)
    if source == "consents":
        return dict(CONSENT_COLUMNS)
    if source == "profiles":
        return {
            name: "number" if spec.type in ("int", "float") else "text"
            for name, spec in sorted(store.profiles.schema.fields.items())
        }
    raise ValidationError(f"unknown source {source!r}; use one of: {', '.join(SOURCES)}")


def check_column(store: Store, source: str, column: str, kind: str | None = None) -> None:
    """Reject a column the source does not have, or of the wrong kind, naming the choices."""
    cols = columns_of(store, source)
    if not isinstance(column, str) or column not in cols:
        raise ValidationError(
            f"source {source!r} has no column {str(column)[:64]!r} "
            f"(columns: {', '.join(sorted(cols))})"
        )
    if kind is not None and cols[column] != kind:
        fitting = ", ".join(c for c, k in sorted(cols.items()) if k == kind) or "none"
        raise ValidationError(
            f"column {column!r} of {source!r} is {cols[column]}, this query needs a {kind} "
            f"column (those of {source!r}: {fitting})"
        )


def check_categories(
    store: Store, purpose_id: str, purpose: Purpose, source: str, column: str
) -> None:
    """Refuse a column whose data category the purpose does not declare."""
    if source == "consents":
        return  # consent metadata is the controller's own record, not a taxonomy category
    category = (
        store.events.category if source == "events" else store.profiles.schema.category(column)
    )
    if not category_allowed(category, frozenset(purpose.data_categories)):
        raise ConsentRequired(
            f"purpose {purpose_id!r} does not cover data category {category!r} "
            f"(it declares: {', '.join(purpose.data_categories) or 'none'}); "
            "aggregate under a purpose that declares it",
            purpose=purpose_id,
        )


def covered_subjects(
    conn: Connection, ledger: ConsentLedger, purpose_id: str, purpose: Purpose
) -> list[SubjectRef]:
    """Active subjects whose consent (or the purpose's lawful basis) covers the purpose."""
    query = (
        select(
            _subject.c.id,
            _subject.c.ref,
            _subject.c.alias,
            _subject.c.status,
            _subject.c.jurisdiction,
        )
        .where(_subject.c.status == "active")
        .order_by(_subject.c.id)
    )
    if purpose.needs_consent:
        ids = ledger.consenting_subjects(conn, purpose_id)
        if not ids:
            return []
        refs: list[SubjectRef] = []
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            refs += _refs(conn.execute(query.where(_subject.c.id.in_(chunk))))
        return refs
    return _refs(conn.execute(query))


def _refs(rows: Iterable[Any]) -> list[SubjectRef]:
    return [
        SubjectRef(id=r.id, ref=r.ref, alias=r.alias, status=r.status, jurisdiction=r.jurisdiction)
        for r in rows
    ]


def build_frame(
    conn: Connection,
    store: Store,
    ledger: ConsentLedger,
    source: str,
    columns: Sequence[str],
    subjects: Sequence[SubjectRef],
) -> Frame:
    """Decrypt the needed columns of the covered subjects into a Frame (rows grouped by user)."""
    users: list[int] = []
    raw: dict[str, list[object]] = {c: [] for c in columns}
    if source == "events":
        for sid, events in store.events.bundles(conn, [s.id for s in subjects]):
            users.extend([sid] * len(events))
            for c in columns:
                col = raw[c]
                if c == "item":
                    col.extend(e.item for e in events)
                elif c == "kind":
                    col.extend(e.kind for e in events)
                else:
                    col.extend(float(e.ts.hour) for e in events)
    elif source == "profiles":
        wanted = list(dict.fromkeys(columns))
        for s in subjects:
            fields = store.profiles.get(conn, s, fields=wanted)
            if not fields:
                continue
            rows = _explode(fields, wanted)
            users.extend([s.id] * len(rows))
            for row in rows:
                for c in columns:
                    raw[c].append(row.get(c))
    else:
        for s in subjects:
            status = ledger.status(conn, s)
            for pid, pc in sorted(status.items()):
                users.append(s.id)
                if "purpose" in raw:
                    raw["purpose"].append(pid)
                if "state" in raw:
                    raw["state"].append(pc.state)
    kinds = columns_of(store, source)
    cols: dict[str, Column] = {}
    for c in columns:
        if kinds[c] == "number":
            cols[c] = np.array(
                [np.nan if v is None else float(v) for v in raw[c]],  # type: ignore[arg-type]
                dtype=np.float64,
            )
        else:
            cols[c] = Categorical.encode([None if v is None else str(v) for v in raw[c]])
    return Frame(np.asarray(users, dtype=np.int64), cols)


def _explode(fields: dict[str, object], wanted: list[str]) -> list[dict[str, object]]:
    # A list field (e.g. favorite_genres) is one row per element; other fields repeat.
    rows: list[dict[str, object]] = [{}]
    for name in wanted:
        value = fields.get(name)
        if isinstance(value, list):
            rows = [{**r, name: v} for r in rows for v in value] if value else []
        else:
            for r in rows:
                r[name] = value
    return rows
