"""Segment memberships per subject: inferred personal data, encrypted under the subject's DEK.

One row per subject holds one ciphertext of {purpose: {segment: {since, description}}}. The
gate rewrites it only when a decision's matched segments differ from what is stored, so a
stable user costs one read per personalized call. It is exported (Art. 15) and erased with
the subject (and unreadable once the data key is shredded).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select

from tactful.store import SubjectRef, Subjects, now, upsert
from tactful.store.tables import SegmentMembership, table_of

_membership = table_of(SegmentMembership)
TABLE = "segment_membership"
FIELD = "doc"
_GET = select(_membership.c.ciphertext).where(_membership.c.subject_id == bindparam("sid"))

Document = dict[str, dict[str, dict[str, str]]]


class Memberships:
    """Reads and writes segment memberships through the store's encryption."""

    def __init__(self, subjects: Subjects) -> None:
        self._subjects = subjects

    def get(self, conn: Connection, subject: SubjectRef) -> Document:
        """The subject's memberships by purpose (empty if none are held)."""
        row = conn.execute(_GET, {"sid": subject.id}).first()
        if row is None:
            return {}
        return _decode(self._subjects.unseal(conn, subject, TABLE, FIELD, row.ciphertext))

    def record(
        self,
        conn: Connection,
        subject: SubjectRef,
        purpose: str,
        matched: Mapping[str, str],
    ) -> bool:
        """Store the segments (id -> description) one decision matched for the purpose.

        Segments no longer matched are dropped, those still matched keep their `since`.
        Returns True if anything was written.
        """
        doc = self.get(conn, subject)
        held = doc.get(purpose, {})
        if set(held) == set(matched):
            return False
        stamp = now().isoformat()
        fresh = {
            sid: {"since": held[sid]["since"] if sid in held else stamp, "description": text}
            for sid, text in sorted(matched.items())
        }
        if fresh:
            doc[purpose] = fresh
        else:
            doc.pop(purpose, None)
        self._write(conn, subject, doc)
        return True

    def clear(self, conn: Connection, subject: SubjectRef, purpose: str) -> bool:
        """Drop the purpose's memberships (its decision is no longer personalized)."""
        return self.record(conn, subject, purpose, {})

    def delete_all(self, conn: Connection, subject: SubjectRef) -> int:
        """Delete the subject's memberships (erasure); returns rows deleted."""
        return int(
            conn.execute(delete(_membership).where(_membership.c.subject_id == subject.id)).rowcount
        )

    def export(self, conn: Connection, subject: SubjectRef) -> list[dict[str, str]]:
        """The subject's memberships as export rows: segment, purpose, description, since."""
        return [
            {"segment": sid, "purpose": pid, "description": m["description"], "since": m["since"]}
            for pid, segments in sorted(self.get(conn, subject).items())
            for sid, m in segments.items()
        ]

    def of_subjects(
        self, conn: Connection, subjects: Sequence[SubjectRef]
    ) -> Iterator[tuple[int, list[str]]]:
        """(subject id, segment ids under any purpose) of the given subjects that have some."""
        by_id = {s.id: s for s in subjects}
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            # Unwrap the chunk's data keys in one key-store round trip (cached for unseal).
            self._subjects.aeads_of([by_id[i] for i in ids[start : start + 500]])
            rows = conn.execute(
                select(_membership.c.subject_id, _membership.c.ciphertext)
                .where(_membership.c.subject_id.in_(ids[start : start + 500]))
                .order_by(_membership.c.subject_id)
            )
            for sid, blob in rows:
                doc = _decode(self._subjects.unseal(conn, by_id[sid], TABLE, FIELD, blob))
                found = sorted({seg for segments in doc.values() for seg in segments})
                if found:
                    yield sid, found

    def _write(self, conn: Connection, subject: SubjectRef, doc: Document) -> None:
        if not doc:
            self.delete_all(conn, subject)
            return
        blob = self._subjects.seal(
            conn, subject, TABLE, FIELD, json.dumps(doc, sort_keys=True).encode("utf-8")
        )
        upsert(
            conn,
            _membership,
            [{"subject_id": subject.id, "ciphertext": blob, "updated_at": now()}],
            ["subject_id"],
        )


def _decode(raw: bytes) -> Document:
    doc: Any = json.loads(raw)
    return doc if isinstance(doc, dict) else {}
