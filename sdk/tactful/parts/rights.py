"""tf.rights and tf.rights.requests."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from tactful.errors import SubjectNotFound, ValidationError
from tactful.parts.base import Part
from tactful.parts.models import TRAINING_PURPOSE, consents_to_training
from tactful.rights import (
    BulkErasure,
    ErasureNotice,
    ErasureReceipt,
    ExportResult,
    PurgeReport,
    RequestInfo,
    parse_value,
    to_dict,
    write_csv_zip,
    write_json,
)

if TYPE_CHECKING:
    from tactful.client import Tactful


class RightsAPI(Part):
    """tf.rights: requests, export, erasure, rectification, restriction and objection.

    Every action completes a data subject request (a new one, or the open one named by
    `request_id`) and is audit-logged under the subject's random alias.
    """

    def __init__(self, tf: Tactful) -> None:
        super().__init__(tf)
        self._hooks: list[Callable[[ErasureNotice], object]] = []
        self.requests = RequestsAPI(tf)

    def export(self, user: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Everything held about the user, decrypted and JSON-ready; SubjectNotFound if none.

        Holds the whole export in memory; for long histories use `export_to`.
        """
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            return to_dict(self._tf._rights.export_document(conn, subject, request_id))

    def export_to(
        self,
        user: str,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        format: Literal["json", "csv"] = "json",
        request_id: str | None = None,
    ) -> ExportResult:
        """Stream the export to a file path or binary stream: JSON, or a zip of CSV files.

        Memory stays flat in the history size. A path is written to a temporary file first and
        renamed when complete, so a failed export leaves no partial file. The export is one
        transaction, written as it is read: on SQLite it holds the write lock until the target
        has taken everything, so for a slow consumer (a network response) export to a local
        path and send the file from there.
        """
        if format not in ("json", "csv"):
            raise ValidationError(f"export format must be json or csv, not {format!r}")
        if isinstance(target, str | os.PathLike):
            path = Path(target)
            partial = path.with_name(f".{path.name}.partial")
            try:
                with partial.open("wb") as fh:
                    result = self._stream(user, fh, format, request_id)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
            return result
        return self._stream(user, target, format, request_id)

    def _stream(self, user: str, out: IO[bytes], fmt: str, request_id: str | None) -> ExportResult:
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            doc = self._tf._rights.export_document(conn, subject, request_id)
            if fmt == "json":
                text = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
                write_json(doc, text)
                text.flush()
                text.detach()
            else:
                write_csv_zip(doc, out)
        return ExportResult(
            request_id=doc.head["request_id"],
            format=fmt,
            events=doc.counts.get("events", 0),
            decisions=doc.counts.get("decisions", 0),
        )

    def on_erasure(
        self, callback: Callable[[ErasureNotice], object]
    ) -> Callable[[ErasureNotice], object]:
        """Register a hook called after each erasure commits, to propagate it to processors.

        The hook gets the request id, the alias and the app's user id (in-process only; tactful
        never stores or logs it). A failing hook does not undo the erasure: the receipt counts
        it and names its exception type. Usable as a decorator.
        """
        if not callable(callback):
            raise ValidationError("on_erasure needs a callable taking an ErasureNotice")
        self._hooks.append(callback)
        return callback

    def erase(self, user: str, *, request_id: str | None = None) -> ErasureReceipt:
        """Erase the user: data key shredded, consents withdrawn, models unlearned, tombstone
        logged; then the erasure hooks run. SubjectNotFound if no data is held.

        The request's cost does not depend on the history: the user's events, profile fields
        and settings are unreadable at once and their rows are deleted by `purge()` (run by
        `tf.retention.run()`). Re-running an interrupted erasure completes it: a user whose
        key is gone but who is not marked erased yet, or whose hooks did not finish, gets the
        remaining steps and a receipt with `resumed` set.
        """
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.find(conn, user)
            if subject is None:
                unfinished = tf._rights.journal.unfinished(
                    conn, self._store.subjects.pseudonym(user)
                )
                if unfinished is None:
                    raise SubjectNotFound(
                        "no data is held for this user id (never recorded, or erased); check the id"
                    )
                receipt, alias = unfinished
            else:
                learned = consents_to_training(tf, conn, subject)
                erased = tf._rights.erase(
                    conn, subject, request_id, learned=learned, link=bool(self._hooks)
                )
                tf._models.forget(subject.id, erased.events, conn, learned=learned)
                receipt, alias = erased.receipt, erased.alias
        if subject is not None:  # their decrypted state leaves this process's memory now
            tf._gate.cache.evict(subject.id)
        receipt = receipt.model_copy(update={"models_unlearned": True})
        if not self._hooks and subject is not None:
            return receipt
        notice = ErasureNotice(receipt.request_id, alias, user)
        errors: list[str] = []
        for hook in self._hooks:
            try:
                hook(notice)
            except Exception as exc:  # the erasure is committed; report, never undo
                errors.append(type(exc).__name__)
        with self._store.begin() as conn:
            tf._rights.journal.propagated(conn, receipt.request_id, alias, len(self._hooks), errors)
        return receipt.model_copy(
            update={
                "hooks_called": len(self._hooks),
                "hooks_failed": len(errors),
                "hook_errors": tuple(errors),
            }
        )

    def purge(
        self, *, batch_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> PurgeReport:
        """Delete the rows of erased users (already unreadable: their keys are shredded).

        At most `batch_size` rows per transaction, until none are left; interrupted, run it
        again to go on. `progress(rows)` is called after each batch. The run is audit-logged
        (counts only) and each finished erasure request's receipt gains `purged_at`.
        `tf.retention.run()` runs it too.
        """
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise ValidationError("batch_size must be an integer from 1 to 100000")
        journal = self._tf._rights.journal
        subjects = batches = 0
        rows: dict[str, int] = {}
        while True:
            with self._store.begin() as conn:
                step = journal.purge_batch(conn, batch_size)
            if step is None:
                break
            done, deleted = step
            subjects, batches = subjects + done, batches + 1
            for table, n in deleted.items():
                rows[table] = rows.get(table, 0) + n
            if progress is not None:
                progress(sum(rows.values()))
        report = PurgeReport(subjects=subjects, rows=rows, batches=batches)
        if batches:
            with self._store.begin() as conn:
                journal.log_purge(conn, report)
        return report

    def awaiting_purge(self) -> int:
        """How many erased users still have (unreadable) rows for `purge()` to delete."""
        with self._store.read() as conn:
            return self._tf._rights.journal.awaiting(conn)

    def erase_many(
        self,
        users: Iterable[str],
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BulkErasure:
        """Erase many users, each in its own transaction (one request and receipt each).

        Users with no data are counted as not found; with `dry_run` nothing is written and
        `erased` counts who would be. `progress(n)` is called after each user. Interrupted?
        Run it again with the same users: the one cut off is completed (`erase` is re-runnable),
        those done count as not found. Their rows go with the next `purge()`.
        """
        erased = missing = 0
        ids: list[str] = []
        for n, user in enumerate(users, 1):
            if dry_run:
                with self._store.begin() as conn:
                    found = self._store.subjects.find(conn, user) is not None
                erased, missing = erased + found, missing + (not found)
            else:
                try:
                    ids.append(self.erase(user).request_id)
                    erased += 1
                except SubjectNotFound:
                    missing += 1
            if progress is not None:
                progress(n)
        return BulkErasure(
            dry_run=dry_run, erased=erased, not_found=missing, request_ids=tuple(ids)
        )

    def rectify(
        self, user: str, field: str, value: object, *, request_id: str | None = None
    ) -> RequestInfo:
        """Correct one profile field (Art. 16); a text value is parsed by the field's type
        (None or "" deletes the field). Returns the completed request."""
        schema = self._store.profiles.schema
        if isinstance(value, str) and field in schema.fields and schema.fields[field].type != "str":
            value = parse_value(schema, field, value)
        rights = self._tf._rights
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            rid = rights.start(conn, subject, "rectification", request_id)
            rights.controls.rectify(conn, subject, {field: value})
            self._tf._models.age_fields_written(conn, [field])
            return rights.requests.complete(conn, rid, {"rectified": [field]})

    def restrict(self, user: str, *, request_id: str | None = None) -> RequestInfo:
        """Restrict processing (Art. 18): the gate denies everything but storage until lifted,
        and the models stop using the user's data. Returns the completed request."""
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            rid = tf._rights.start(conn, subject, "restriction", request_id)
            learned = consents_to_training(tf, conn, subject)
            changed = tf._rights.controls.set_restricted(conn, subject, True)
            if changed:
                events = self._store.events.read_marked(conn, subject) if learned else None
                tf._models.forget(subject.id, events, conn, learned=learned)
            return tf._rights.requests.complete(conn, rid, {"restricted": True})

    def unrestrict(self, user: str) -> bool:
        """Lift a restriction; True if the user was restricted. Audit-logged."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            changed = self._tf._rights.controls.set_restricted(conn, subject, False)
            if changed:
                self._tf._models.bump(conn)
        if changed:
            self._tf._models.mark_dirty()
        return changed

    def object(self, user: str, purpose: str, *, request_id: str | None = None) -> RequestInfo:
        """Record an objection to a purpose (Art. 21): the gate treats that purpose as having
        no consent from now on, whatever is granted later, until the objection is lifted.
        Objecting to profiling stops personalization; a direct-marketing objection is absolute.
        """
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            rid = tf._rights.start(conn, subject, "objection", request_id)
            learned = consents_to_training(tf, conn, subject)
            added = tf._rights.controls.object(conn, subject, purpose)
            tf._gate.drop_segments(conn, subject, purpose)  # inferred for it: no longer held
            if added and purpose == TRAINING_PURPOSE:
                events = self._store.events.read_marked(conn, subject) if learned else None
                tf._models.forget(subject.id, events, conn, learned=learned)
            return tf._rights.requests.complete(conn, rid, {"objection": purpose})

    def lift_objection(self, user: str, purpose: str) -> bool:
        """Remove the user's objection to a purpose; True if there was one. Audit-logged."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            lifted = self._tf._rights.controls.lift_objection(conn, subject, purpose)
            if lifted and purpose == TRAINING_PURPOSE:
                self._tf._models.bump(conn)
        if lifted and purpose == TRAINING_PURPOSE:
            self._tf._models.mark_dirty()
        return lifted


class RequestsAPI(Part):
    """tf.rights.requests: the register of data subject requests and their deadlines."""

    def open(
        self,
        kind: str,
        user: str,
        *,
        profile: str = "gdpr",
        identity_verified: bool = True,
        received_at: datetime | None = None,
    ) -> RequestInfo:
        """Register a request: due one calendar month later (GDPR) or 45 days (CCPA, with a
        10-day acknowledgement); paused until `resume` if the identity is unverified."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            return self._tf._rights.requests.open(
                conn,
                subject,
                kind,
                profile=profile,
                identity_verified=identity_verified,
                received_at=received_at,
            )

    def list(
        self, *, status: str | None = None, kind: str | None = None, overdue: bool = False
    ) -> list[RequestInfo]:
        """Requests, oldest first; `overdue` keeps the open ones past their deadline."""
        with self._store.read() as conn:
            return self._tf._rights.requests.list(conn, status=status, kind=kind, overdue=overdue)

    def show(self, request_id: str) -> RequestInfo:
        """One request by id; ValidationError if unknown."""
        with self._store.read() as conn:
            return self._tf._rights.requests.show(conn, request_id)

    def extend(self, request_id: str, reason: str, *, by: int | None = None) -> RequestInfo:
        """Extend the deadline with a reason: GDPR by up to two months in all, CCPA to 90 days."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.extend(conn, request_id, reason, by)

    def pause(self, request_id: str) -> RequestInfo:
        """Stop the clock while the requester's identity is unverified."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.pause(conn, request_id)

    def resume(self, request_id: str) -> RequestInfo:
        """Identity verified: the clock runs again; the deadline moves by the pause."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.resume(conn, request_id)

    def acknowledge(self, request_id: str) -> RequestInfo:
        """Record that the requester was told the request arrived (CCPA: within 10 days)."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.acknowledge(conn, request_id)

    def complete(self, request_id: str, note: str | None = None) -> RequestInfo:
        """Close a request handled outside tactful, with an optional note (no personal data)."""
        with self._store.begin() as conn:
            receipt = {"note": note} if note else {"completed": "manually"}
            return self._tf._rights.requests.complete(conn, request_id, receipt)
