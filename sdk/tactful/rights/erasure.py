"""Erasure (GDPR Art. 17) in two steps: shred at once, purge the unreadable rows in batches.

The request shreds the data key, unlinks the subject (pseudonym, user id, status) and deletes
what is plaintext or linkable (consent records, objections, blind-index digests). Its cost
does not depend on the history size. The subject's ciphertext rows (events, profile fields,
settings and their history) are already unreadable; `Journal.purge_batch` deletes them later,
a bounded number per transaction (`tf.rights.purge()`, `tactful retention run`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, bindparam, delete, func, select, update

from tactful.audit import AuditLog
from tactful.store import MarkedEvents, SubjectRef, now
from tactful.store.purge import count_rows, purge_rows
from tactful.store.tables import ErasureJournal, RightsRequest, table_of

_journal = table_of(ErasureJournal)
_requests = table_of(RightsRequest)
MAX_SUBJECTS_PER_BATCH = 500


class ErasureReceipt(BaseModel):
    """Proof of an erasure: the request id, when, and how much of each kind was erased.

    From `completed_at` nothing of the subject can be read, backups included: the data key is
    shredded. Consent records and objections are deleted in the request; events, profile
    fields and settings (with their history) are ciphertexts whose rows the batched purge
    deletes later (`purge_pending`; the request's stored receipt gains `purged_at` when they
    are gone). Their counts are exact up to 1,000 rows per kind; above that the request does
    not count (its cost must not grow with the history), the field is None and the purge
    writes the exact number into the stored receipt. `resumed` says this call completed an
    interrupted erasure. `hooks_called`/`hooks_failed` count the app's propagation hooks
    (`tf.rights.on_erasure`); `hook_errors` names the exception types of failed hooks (never
    their messages).
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    completed_at: datetime
    profile_fields: int | None
    events: int | None
    consent_records: int
    consents_withdrawn: tuple[str, ...] = ()
    settings: int | None
    objections: int = 0
    segment_memberships: int = 0
    experiment_exposures: int = 0
    data_key_shredded: bool
    purge_pending: bool = False
    purged_at: datetime | None = None
    resumed: bool = False
    models_unlearned: bool = False
    hooks_called: int = 0
    hooks_failed: int = 0
    hook_errors: tuple[str, ...] = ()


class BulkErasure(BaseModel):
    """Summary of a bulk erasure: how many were (or, in a dry run, would be) erased."""

    model_config = ConfigDict(frozen=True)

    dry_run: bool
    erased: int
    not_found: int
    request_ids: tuple[str, ...] = ()


class PurgeReport(BaseModel):
    """What a purge run deleted: erased subjects now without any row, rows per table."""

    model_config = ConfigDict(frozen=True)

    subjects: int = 0
    rows: dict[str, int] = {}
    batches: int = 0

    @property
    def total(self) -> int:
        """How many rows were deleted in all."""
        return sum(self.rows.values())


@dataclass(frozen=True, slots=True)
class ErasureNotice:
    """What an erasure hook receives, after the erasure committed.

    `user_id` is the app's own id, handed over in-process only so the app can propagate the
    erasure to its processors; tactful never logs or stores it.
    """

    request_id: str
    alias: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Erased:
    """Internal result of an erasure: the receipt, the subject's alias, and the events to
    unlearn from models (None when they could no longer be read: the key was already gone)."""

    receipt: ErasureReceipt
    alias: str
    events: MarkedEvents | None


class Journal:
    """The erasures whose rows await the purge, or whose hooks have not finished yet."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def record(
        self,
        conn: Connection,
        subject: SubjectRef,
        request_id: str,
        *,
        pending: bool,
        counted: bool,
        link: bool,
    ) -> None:
        """Note a shredded subject: rows to purge (counted or not), and (while hooks run) its
        pseudonym."""
        if not pending and not link:
            return
        conn.execute(
            _journal.insert().values(
                subject_id=subject.id,
                request_id=request_id,
                ref=subject.ref if link else None,
                erased_at=now(),
                counted=counted,
                purged=not pending,
            )
        )

    def unfinished(self, conn: Connection, ref: str) -> tuple[ErasureReceipt, str] | None:
        """The receipt and alias of a committed erasure of this pseudonym whose hooks were
        interrupted (the process died while they ran), or None."""
        row = conn.execute(
            select(_journal.c.request_id, _requests.c.alias, _requests.c.receipt)
            .join(_requests, _requests.c.id == _journal.c.request_id)
            .where(_journal.c.ref == ref)
        ).first()
        if row is None:
            return None
        receipt = ErasureReceipt.model_validate(json.loads(row.receipt))
        return receipt.model_copy(update={"resumed": True}), str(row.alias)

    def propagated(
        self, conn: Connection, request_id: str, alias: str, hooks: int, errors: Sequence[str]
    ) -> None:
        """Record the hooks' outcome and forget the pseudonym kept for a re-run."""
        if hooks:
            self._audit.append(
                conn,
                "erasure.propagated",
                {
                    "request_id": request_id,
                    "hooks": hooks,
                    "failed": len(errors),
                    "errors": list(errors),
                },
                alias=alias,
            )
        conn.execute(
            delete(_journal).where((_journal.c.request_id == request_id) & _journal.c.purged)
        )
        conn.execute(update(_journal).where(_journal.c.request_id == request_id).values(ref=None))

    def purge_batch(self, conn: Connection, batch_size: int) -> tuple[int, dict[str, int]] | None:
        """One purge transaction: delete at most `batch_size` rows of erased subjects.

        Returns (subjects finished, rows deleted per table), or None when nothing awaits.
        """
        query = (
            select(_journal.c.subject_id, _journal.c.request_id, _journal.c.counted)
            .where(_journal.c.purged.is_(False))
            .order_by(_journal.c.subject_id)
            .limit(min(batch_size, MAX_SUBJECTS_PER_BATCH))
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # concurrent purges share the work
        pending = conn.execute(query).all()
        if not pending:
            return None
        uncounted = {r.subject_id: r.request_id for r in pending if not r.counted}
        if uncounted:  # histories the request did not count: count them before deleting
            exact = count_rows(conn, list(uncounted))
            _patch_receipts(
                conn,
                {
                    rid: {
                        "events": exact[sid]["events"],
                        "profile_fields": exact[sid]["profile_fields"],
                        "settings": exact[sid]["settings"] + exact[sid]["settings_history"],
                    }
                    for sid, rid in uncounted.items()
                },
            )
            conn.execute(
                update(_journal)
                .where(_journal.c.subject_id.in_(list(uncounted)))
                .values(counted=True)
            )
        done = [r.subject_id for r in pending]
        deleted, clean = purge_rows(conn, done, batch_size)
        if not clean:
            return 0, deleted
        stamp = now().isoformat()
        _patch_receipts(
            conn, {r.request_id: {"purge_pending": False, "purged_at": stamp} for r in pending}
        )
        conn.execute(
            delete(_journal).where(_journal.c.subject_id.in_(done) & _journal.c.ref.is_(None))
        )
        conn.execute(update(_journal).where(_journal.c.subject_id.in_(done)).values(purged=True))
        return len(done), deleted

    def log_purge(self, conn: Connection, report: PurgeReport) -> None:
        """The purge run's audit entry (counts only)."""
        self._audit.append(
            conn, "erasure.purged", {"subjects": report.subjects, "rows": report.rows}
        )

    def awaiting(self, conn: Connection) -> int:
        """How many erased subjects still have rows to purge."""
        return int(
            conn.execute(select(func.count()).where(_journal.c.purged.is_(False))).scalar_one()
        )


def _patch_receipts(conn: Connection, changes: dict[str, dict[str, object]]) -> None:
    """Update fields of stored request receipts (the purge's counts and completion)."""
    rows = conn.execute(
        select(_requests.c.id, _requests.c.receipt).where(_requests.c.id.in_(list(changes)))
    ).all()
    params = []
    for rid, text in rows:
        doc = json.loads(text) if text else {}
        doc.update(changes[rid])
        params.append({"rid": rid, "doc": json.dumps(doc, sort_keys=True)})
    if params:
        conn.execute(
            update(_requests)
            .where(_requests.c.id == bindparam("rid"))
            .values(receipt=bindparam("doc")),
            params,
        )
