"""Data subject rights: requests with deadlines, export, erasure, rectification, restriction,
objection. Every action is tracked as a request and audit-logged under the subject's alias."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, func, select

from tactful.audit import AuditLog
from tactful.consent import ConsentLedger, PurposeCatalog
from tactful.experiments import Exposures
from tactful.rights.controls import Controls, parse_value
from tactful.rights.erasure import (
    BulkErasure,
    Erased,
    ErasureNotice,
    ErasureReceipt,
    Journal,
    PurgeReport,
)
from tactful.rights.export import (
    ExportDocument,
    Exporter,
    to_dict,
    write_csv_zip,
    write_json,
)
from tactful.rights.requests import (
    KINDS,
    RequestInfo,
    RequestRegister,
    add_months,
    due_date,
)
from tactful.segments import Memberships
from tactful.settings import SettingsStore
from tactful.store import Store, SubjectRef, now, utc
from tactful.store.purge import drop_blind_index, held_rows
from tactful.store.tables import RightsRequest, table_of

_requests = table_of(RightsRequest)


class ExportResult(BaseModel):
    """What a streamed export wrote: its request, format, and how many events and decisions."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    format: Literal["json", "csv"]
    events: int
    decisions: int


class Rights:
    """The rights operations on one connection; the client wraps each in one transaction."""

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
        self.requests = RequestRegister(audit)
        self.controls = Controls(store, audit, purposes)
        self.exporter = Exporter(store, ledger, settings, audit, purposes)
        self._segments = Memberships(store.subjects)
        self.journal = Journal(audit)
        self.exposures = Exposures(store.subjects)

    def start(
        self,
        conn: Connection,
        subject: SubjectRef,
        kind: str | tuple[str, ...],
        request_id: str | None,
    ) -> str:
        """The request an action fulfils: the given open one (checked), or a new one."""
        if request_id is not None:
            return self.requests.check_usable(conn, request_id, kind, subject).id
        first = kind if isinstance(kind, str) else kind[0]
        return self.requests.open(conn, subject, first).id

    def export_document(
        self, conn: Connection, subject: SubjectRef, request_id: str | None = None
    ) -> ExportDocument:
        """The export of `subject` for a new or given access/portability request.

        The request is completed when the document is built; write it in the same transaction.
        """
        rid = self.start(conn, subject, ("access", "portability"), request_id)
        own = [
            r.model_dump(
                mode="json",
                include={"id", "kind", "status", "received_at", "due_at", "completed_at"},
            )
            for r in self.requests.list(conn, alias=subject.alias)
        ]
        doc = self.exporter.document(conn, subject, rid, own)
        self.requests.complete(conn, rid, {"exported": True})
        return doc

    def export(self, conn: Connection, subject: SubjectRef) -> dict[str, Any]:
        """Everything held about the subject, decrypted and JSON-ready (GDPR Art. 15)."""
        return to_dict(self.export_document(conn, subject))

    def erase(
        self,
        conn: Connection,
        subject: SubjectRef,
        request_id: str | None = None,
        *,
        learned: bool = False,
        link: bool = False,
    ) -> Erased:
        """Erase the subject (GDPR Art. 17): shred the data key, unlink, log a tombstone.

        Cost independent of the history: consent records, objections and blind-index digests
        are deleted, the data key is deleted from the key store (committed first) and the
        subject loses its pseudonym; the ciphertext rows are counted and left to the batched
        purge (`Journal.purge_batch`). With `learned` the events are decrypted first, for
        unlearning from models. A subject whose key is already gone (an erasure interrupted
        between the key shred and the commit) is completed the same way (`resumed`). With
        `link` the pseudonym is kept in the journal until the hooks have run.
        """
        rid = self.start(conn, subject, "erasure", request_id)
        store = self._store
        resumed = not store.subjects.aeads_of([subject])  # the key is gone already
        events = (None if resumed else store.events.read_marked(conn, subject)) if learned else None
        withdrawn = tuple(
            sorted(p for p, c in self._ledger.status(conn, subject).items() if c.given)
        )
        held = held_rows(conn, subject.id)  # None: more than the request counts
        settings = held["settings"], held["settings_history"]
        counts = {
            "profile_fields": held["profile_fields"],
            "events": held["events"],
            "consent_records": self._ledger.delete_all(conn, subject),
            "settings": None if None in settings else sum(n or 0 for n in settings),
            "objections": self.controls.delete_all(conn, subject),
            "segment_memberships": self._segments.delete_all(conn, subject),
            "experiment_exposures": self.exposures.delete_all(conn, subject),
        }
        drop_blind_index(conn, subject.id)
        store.subjects.shred(conn, subject)
        counted = None not in held.values()
        pending = not counted or any(held.values())
        self.journal.record(conn, subject, rid, pending=pending, counted=counted, link=link)
        receipt = ErasureReceipt(
            request_id=rid,
            completed_at=now(),
            consents_withdrawn=withdrawn,
            data_key_shredded=True,
            purge_pending=pending,
            resumed=resumed,
            **counts,
        )
        self._audit.append(
            conn,
            "subject.erased",
            {
                "request_id": rid,
                "consents_withdrawn": list(withdrawn),
                "purge_pending": pending,
                "resumed": resumed,
                **counts,
            },
            alias=subject.alias,
        )
        self.requests.complete(conn, rid, receipt.model_dump(mode="json"))
        return Erased(receipt, subject.alias, events)

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


__all__ = [
    "KINDS",
    "BulkErasure",
    "Controls",
    "Erased",
    "ErasureNotice",
    "ErasureReceipt",
    "ExportDocument",
    "ExportResult",
    "Journal",
    "PurgeReport",
    "RequestInfo",
    "RequestRegister",
    "Rights",
    "add_months",
    "due_date",
    "parse_value",
    "to_dict",
    "write_csv_zip",
    "write_json",
]
