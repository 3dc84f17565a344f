"""Records of processing activities (GDPR Art. 30(1)(a)-(g)) from the policy pack, and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from sqlalchemy import Connection, func, select

from tactful.policy import PolicyPack
from tactful.reports.model import (
    Activity,
    Controller,
    DataCategory,
    DataSubjects,
    KeyFacts,
    Records,
    Security,
    Unavailable,
)
from tactful.store.tables import Subject, table_of

_subject = table_of(Subject)

TRANSFERS_NOTE = (
    "The policy pack declares no transfers to third countries or international organisations; "
    "none are made by tactful itself. Declare any your deployment makes alongside this record."
)
SUBJECT_CATEGORIES = ["Users of the application (account holders and visitors who gave data)"]


def _retention_of(pack: PolicyPack) -> Callable[[str, str | None], int | None]:
    schema = pack.schema
    by_category = getattr(schema, "retention_days", None)
    if by_category is not None:
        return by_category  # type: ignore[no-any-return]

    def field_only(category: str, field: str | None) -> int | None:
        return schema.fields[field].retention_days if field in schema.fields else None

    return field_only


def data_categories(pack: PolicyPack) -> list[DataCategory]:
    """Every declared category of personal data with its fields and retention (Art. 30(1)(f))."""
    retention = _retention_of(pack)
    groups: dict[tuple[str, int | None], list[str]] = {}
    for name, spec in sorted(pack.schema.fields.items()):
        key = (spec.category, retention(spec.category, name))
        groups.setdefault(key, []).append(name)
    events = pack.schema.event_category
    groups.setdefault((events, retention(events, None)), []).append("events")
    return [
        DataCategory(category=cat, fields=fields, retention_days=days)
        for (cat, days), fields in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ]


def records(conn: Connection, pack: PolicyPack, keys: KeyFacts | Unavailable) -> Records:
    """The Art. 30 records: controller, activities, subjects, data, retention, measures."""
    meta = pack.meta
    by_status = {
        str(status): int(n)
        for status, n in conn.execute(
            select(_subject.c.status, func.count()).group_by(_subject.c.status)
        )
    }
    rotation_age = None
    if isinstance(keys, KeyFacts):
        rotation_age = next((v.age_days for v in keys.versions if v.current), None)
    return Records(
        controller=Controller(
            name=meta.controller.name, contact=meta.controller.contact, dpo=meta.controller.dpo
        ),
        data_subjects=DataSubjects(
            categories=SUBJECT_CATEGORIES, by_status=dict(sorted(by_status.items()))
        ),
        activities=[
            Activity(
                purpose=pid,
                title=p.title,
                description=p.description.strip(),
                lawful_basis=p.lawful_basis,
                profiling=p.profiling,
                dpv=p.dpv,
                data_categories=list(p.data_categories),
                recipients=list(p.recipients),
                transfers=[],
                retention_days=p.retention_days,
            )
            for pid, p in sorted(pack.purposes.purposes.items())
        ],
        data_categories=data_categories(pack),
        transfers=[],
        transfers_note=TRANSFERS_NOTE,
        security=Security(
            encryption=(
                "Every profile field, event and settings document is encrypted with AES-256-GCM "
                "under the subject's own data key, bound to its row and field; erasure shreds "
                "the key."
            ),
            key_management=(
                "Each subject's data key is wrapped (AES-256-GCM) by a versioned master key "
                "held outside the database; rotation rewraps every data key under a new version."
            ),
            pseudonymization=(
                "Subjects are stored under a keyed HMAC-SHA-256 pseudonym of the app's user id; "
                "audit records and requests name only a random alias."
            ),
            audit_log=(
                "Decisions and privacy events are written to a SHA-256 hash-chained, "
                "append-only audit log that is verified for this report."
            ),
            key_rotation_age_days=rotation_age,
        ),
    )


CSV_COLUMNS = [
    "controller",
    "controller_contact",
    "dpo",
    "purpose",
    "title",
    "description",
    "lawful_basis",
    "profiling",
    "dpv",
    "data_subject_categories",
    "personal_data_categories",
    "recipients",
    "third_country_transfers",
    "retention_days",
    "security_measures",
]


def records_csv(rec: Records) -> str:
    """The Art. 30 records as CSV: one row per processing activity (purpose), RFC 4180."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    s = rec.security
    measures = " ".join([s.encryption, s.key_management, s.pseudonymization, s.audit_log])
    for a in rec.activities:
        writer.writerow(
            [
                rec.controller.name,
                rec.controller.contact,
                rec.controller.dpo,
                a.purpose,
                a.title,
                a.description,
                a.lawful_basis,
                "yes" if a.profiling else "no",
                a.dpv or "",
                "; ".join(rec.data_subjects.categories),
                "; ".join(a.data_categories),
                "; ".join(a.recipients) or "none",
                "; ".join(a.transfers) or "none",
                "" if a.retention_days is None else str(a.retention_days),
                measures,
            ]
        )
    return buf.getvalue()
