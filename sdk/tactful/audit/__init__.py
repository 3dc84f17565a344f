"""The tamper-evident audit log: hash-chained records of decisions and privacy events.

Each entry's hash is SHA-256 over the canonical JSON of (seq, ts, kind, alias, payload,
previous hash). Payloads never hold personal data: a subject appears only as a random alias,
which links to nobody once the subject is erased, so the chain still verifies after erasure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, text

from tactful.store import now, utc
from tactful.store.tables import AuditEntry, table_of

GENESIS = "0" * 64
_audit = table_of(AuditEntry)
_LOCK_KEY = 0x7AC7F011  # PostgreSQL advisory lock id serializing chain appends


def canonical(obj: object) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    seq: int, ts: datetime, kind: str, alias: str | None, payload: str, prev: str
) -> str:
    """The hash of one entry, binding it to its predecessor."""
    body = canonical(
        {
            "seq": seq,
            "ts": utc(ts).isoformat(),
            "kind": kind,
            "alias": alias,
            "payload": payload,
            "prev": prev,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The result of verifying the chain: ok, how many entries, and the first broken link."""

    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        """One line a person can read."""
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head {self.head[:16]}"
        return f"audit chain BROKEN at entry {self.first_bad_seq}: {self.problem}"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry as read back."""

    seq: int
    ts: datetime
    kind: str
    alias: str | None
    payload: dict[str, Any]


class AuditLog:
    """Appends to and verifies the hash chain."""

    def append(
        self,
        conn: Connection,
        kind: str,
        payload: Mapping[str, object],
        *,
        alias: str | None = None,
    ) -> int:
        """Append an entry inside the caller's transaction; returns its sequence number."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        head = conn.execute(
            select(_audit.c.seq, _audit.c.hash).order_by(_audit.c.seq.desc()).limit(1)
        ).first()
        seq = 1 if head is None else head.seq + 1
        prev = GENESIS if head is None else head.hash
        stamp = now()
        body = canonical(dict(payload))
        digest = entry_hash(seq, stamp, kind, alias, body, prev)
        conn.execute(
            _audit.insert().values(
                seq=seq, ts=stamp, kind=kind, alias=alias, payload=body, prev_hash=prev, hash=digest
            )
        )
        return seq

    def verify(self, conn: Connection) -> AuditVerdict:
        """Walk the chain; report the first entry that is modified, missing or out of order."""
        result = conn.execute(
            select(_audit).order_by(_audit.c.seq).execution_options(yield_per=2000)
        )
        with result:
            return self._walk(result)

    def _walk(self, rows: Iterable[Row[Any]]) -> AuditVerdict:
        expected_seq, prev, count = 1, GENESIS, 0
        for r in rows:
            if r.seq != expected_seq:
                problem = (
                    f"entries {expected_seq}..{r.seq - 1} are missing (deleted)"
                    if r.seq > expected_seq
                    else "sequence numbers repeat or go backwards"
                )
                return AuditVerdict(False, count, prev, expected_seq, problem)
            if r.prev_hash != prev:
                return AuditVerdict(
                    False,
                    count,
                    prev,
                    r.seq,
                    "does not link to the entry before it (an entry before it was deleted, "
                    "reordered or rewritten)",
                )
            if entry_hash(r.seq, r.ts, r.kind, r.alias, r.payload, r.prev_hash) != r.hash:
                return AuditVerdict(
                    False, count, prev, r.seq, "content was modified after it was written"
                )
            prev, expected_seq, count = r.hash, expected_seq + 1, count + 1
        return AuditVerdict(True, count, prev)

    def records(
        self,
        conn: Connection,
        *,
        kind: str | None = None,
        alias: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[AuditRecord]:
        """Entries in order, optionally filtered by kind, alias and time window."""
        stmt = select(_audit.c.seq, _audit.c.ts, _audit.c.kind, _audit.c.alias, _audit.c.payload)
        if kind is not None:
            stmt = stmt.where(_audit.c.kind == kind)
        if alias is not None:
            stmt = stmt.where(_audit.c.alias == alias)
        if since is not None:
            stmt = stmt.where(_audit.c.ts >= since)
        if until is not None:
            stmt = stmt.where(_audit.c.ts < until)
        with conn.execute(stmt.order_by(_audit.c.seq).execution_options(yield_per=2000)) as result:
            for r in result:
                yield AuditRecord(r.seq, utc(r.ts), r.kind, r.alias, json.loads(r.payload))

    def count(self, conn: Connection) -> int:
        """How many entries the chain has."""
        return int(conn.execute(select(func.count()).select_from(_audit)).scalar_one())


__all__ = ["AuditLog", "AuditRecord", "AuditVerdict", "canonical", "entry_hash"]
