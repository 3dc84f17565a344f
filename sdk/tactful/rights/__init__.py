"""Data subject rights: access/export and erasure, each tracked as a request with a deadline."""

from __future__ import annotations

import calendar
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, func, select

from tactful.audit import AuditLog
from tactful.consent import ConsentLedger, PurposeCatalog
from tactful.settings import SettingsStore
from tactful.store import Store, StoredEvent, SubjectRef, now, utc
from tactful.store.tables import RightsRequest, table_of

_requests = table_of(RightsRequest)


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar-month arithmetic: Jan 31 + 1 month = Feb 28/29 (GDPR Art. 12(3) deadlines)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class ErasureReceipt(BaseModel):
    """Proof of an erasure: the request id, when, and how much of each kind was erased."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    completed_at: datetime
    profile_fields: int
    events: int
    consent_records: int
    settings: int
    data_key_shredded: bool
    models_unlearned: bool = False


@dataclass(frozen=True, slots=True)
class Erased:
    """Internal result of an erasure: the receipt and the events to unlearn from models."""

    receipt: ErasureReceipt
    events: list[StoredEvent]


class Rights:
    """Export and erasure of one subject's data, each logged as a completed request."""

    def __init__(
        self,
        store: Store,
        ledger: ConsentLedger,
        settings: SettingsStore,
        audit: AuditLog,
        purposes: PurposeCatalog,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._audit = audit
        self._purposes = purposes

    def export(self, conn: Connection, subject: SubjectRef) -> dict[str, Any]:
        """Everything held about the subject, decrypted and JSON-ready (GDPR Art. 15)."""
        request_id = self._open_request(conn, subject, "access")
        store = self._store
        document: dict[str, Any] = {
            "format": "tactful-export/1",
            "generated_at": now().isoformat(),
            "request_id": request_id,
            "subject": {
                "alias": subject.alias,
                "status": subject.status,
                "jurisdiction": subject.jurisdiction,
            },
            "profile": store.profiles.get(conn, subject),
            "events": [
                {"item": e.item, "kind": e.kind, "ts": e.ts.isoformat()}
                for e in store.events.read(conn, subject)
            ],
            "consent_history": self._ledger.history(conn, subject),
            "settings": self._settings.get(conn, subject).model_dump(mode="json"),
            "decisions": [
                {"ts": r.ts.isoformat(), **r.payload}
                for r in self._audit.records(conn, kind="decision", alias=subject.alias)
            ],
            "purposes": {
                pid: {
                    "title": p.title,
                    "description": p.description,
                    "lawful_basis": p.lawful_basis,
                    "profiling": p.profiling,
                    "recipients": list(p.recipients),
                    "retention_days": p.retention_days,
                }
                for pid, p in self._purposes.purposes.items()
            },
            "how_recommendations_work": (
                "With your consent, items are recommended from what you viewed: items that "
                "people with similar viewing histories also viewed (item-item collaborative "
                "filtering). Without it, you see what is popular overall. You can switch "
                "personalization off, exclude topics and withdraw consent at any time."
            ),
        }
        self._complete(conn, subject, request_id, {"exported": True})
        return document

    def erase(self, conn: Connection, subject: SubjectRef) -> Erased:
        """Erase the subject (GDPR Art. 17): delete rows, shred the data key, log a tombstone."""
        request_id = self._open_request(conn, subject, "erasure")
        store = self._store
        events = store.events.read(conn, subject)
        counts = {
            "profile_fields": store.profiles.delete_all(conn, subject),
            "events": store.events.delete_all(conn, subject),
            "consent_records": self._ledger.delete_all(conn, subject),
            "settings": self._settings.delete_all(conn, subject),
        }
        store.subjects.shred(conn, subject)
        stamp = now()
        receipt = ErasureReceipt(
            request_id=request_id, completed_at=stamp, data_key_shredded=True, **counts
        )
        self._audit.append(
            conn, "subject.erased", {"request_id": request_id, **counts}, alias=subject.alias
        )
        self._complete(conn, subject, request_id, receipt.model_dump(mode="json"))
        return Erased(receipt, events)

    def _open_request(self, conn: Connection, subject: SubjectRef, kind: str) -> str:
        request_id = uuid.uuid4().hex
        received = now()
        conn.execute(
            _requests.insert().values(
                id=request_id,
                kind=kind,
                alias=subject.alias,
                status="open",
                received_at=received,
                due_at=add_months(received, 1),
            )
        )
        return request_id

    def _complete(
        self, conn: Connection, subject: SubjectRef, request_id: str, receipt: dict[str, Any]
    ) -> None:
        conn.execute(
            _requests.update()
            .where(_requests.c.id == request_id)
            .values(status="completed", completed_at=now(), receipt=json.dumps(receipt))
        )
        self._audit.append(
            conn, "request.completed", {"request_id": request_id}, alias=subject.alias
        )

    def request_counts(self, conn: Connection) -> dict[str, dict[str, int]]:
        """Requests per type and status, with how many were completed after their due date."""
        out: dict[str, dict[str, int]] = {}
        rows = conn.execute(
            select(_requests.c.kind, _requests.c.status, func.count()).group_by(
                _requests.c.kind, _requests.c.status
            )
        )
        for kind, status, n in rows:
            out.setdefault(kind, {})[status] = int(n)
        late = conn.execute(
            select(_requests.c.kind, _requests.c.completed_at, _requests.c.due_at).where(
                _requests.c.completed_at.is_not(None)
            )
        )
        for kind, done, due in late:
            if utc(done) > utc(due):
                out[kind]["late"] = out[kind].get("late", 0) + 1
        return out


__all__ = ["Erased", "ErasureReceipt", "Rights", "add_months"]
