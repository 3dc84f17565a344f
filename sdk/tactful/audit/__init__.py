"""The tamper-evident audit log: hash-chained records of decisions and privacy events.

Each entry's hash is SHA-256 over the canonical JSON of (seq, ts, kind, alias, payload,
previous hash). Payloads never hold personal data: a subject appears only as a random alias,
which links to nobody once the subject is erased, so the chain still verifies after erasure.

Signed checkpoints (HMAC-SHA256 under the audit key, `tactful.crypto.checkpoint_mac`) state
"the chain had N entries with head H"; one is written every CHECKPOINT_EVERY appends and on
demand. They catch what a hash chain alone cannot: a cut tail (truncated) and a chain
rewritten from a point on with every hash recomputed (forged).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, func, select, text

from tactful.store import checkpoint_mac, checkpoint_mac_valid, now, utc
from tactful.store.tables import AuditCheckpoint, AuditEntry, table_of

GENESIS = "0" * 64
CHECKPOINT_EVERY = 100
Damage = Literal["modified", "deleted", "reordered", "truncated", "forged"]
_audit = table_of(AuditEntry)
_checkpoints = table_of(AuditCheckpoint)
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
    damage: Damage | None = None
    checkpoints: int = 0

    def summary(self) -> str:
        """One line a person can read."""
        if self.ok:
            return (
                f"audit chain intact: {self.entries} entries, head {self.head[:16]}, "
                f"{self.checkpoints} signed checkpoints"
            )
        return f"audit chain BROKEN ({self.damage}) at entry {self.first_bad_seq}: {self.problem}"


def _checkpoint_message(seq: int, head: str, ts: datetime) -> bytes:
    return canonical({"seq": seq, "head": head, "ts": utc(ts).isoformat()}).encode()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry as read back."""

    seq: int
    ts: datetime
    kind: str
    alias: str | None
    payload: dict[str, Any]


class AuditLog:
    """Appends to and verifies the hash chain.

    With `audit_key` (the key ring's audit key) it signs a checkpoint every CHECKPOINT_EVERY
    appends and verifies checkpoints; without it, checkpoints are neither written nor checked.
    """

    def __init__(self, audit_key: bytes | None = None) -> None:
        self._key = audit_key

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
        if self._key is not None and seq % CHECKPOINT_EVERY == 0:
            self._sign(conn, seq, digest, stamp)
        return seq

    def checkpoint(self, conn: Connection) -> int:
        """Sign the current head now (e.g. before a backup); returns the seq it covers.

        Raises RuntimeError when the log was built without the audit key.
        """
        if self._key is None:
            raise RuntimeError("checkpoints need the audit key; build AuditLog(audit_key=...)")
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        head = conn.execute(
            select(_audit.c.seq, _audit.c.hash).order_by(_audit.c.seq.desc()).limit(1)
        ).first()
        if head is None:
            return 0
        done = conn.execute(
            select(_checkpoints.c.seq).where(_checkpoints.c.seq == head.seq)
        ).first()
        if done is None:
            self._sign(conn, head.seq, head.hash, now())
        return int(head.seq)

    def _sign(self, conn: Connection, seq: int, head: str, stamp: datetime) -> None:
        assert self._key is not None
        mac = checkpoint_mac(self._key, _checkpoint_message(seq, head, stamp))
        conn.execute(_checkpoints.insert().values(seq=seq, ts=stamp, head_hash=head, mac=mac))

    def verify(self, conn: Connection) -> AuditVerdict:
        """Walk the chain and the checkpoints; name the first bad entry and the kind of damage.

        Kinds: modified (content changed, hash not recomputed), deleted (a gap, or a link to
        an earlier entry), reordered (an intact entry sits at another position), truncated
        (fewer entries than a signed checkpoint covers), forged (hashes recomputed after a
        change, or a checkpoint whose signature does not verify).
        """
        checkpoints = {
            r.seq: r for r in conn.execute(select(_checkpoints).order_by(_checkpoints.c.seq))
        }
        result = conn.execute(
            select(_audit).order_by(_audit.c.seq).execution_options(yield_per=2000)
        )
        with result:
            return self._walk(result, checkpoints)

    def _walk(self, rows: Iterable[Row[Any]], checkpoints: Mapping[int, Any]) -> AuditVerdict:
        if self._key is not None:
            for cp in checkpoints.values():
                if not checkpoint_mac_valid(
                    self._key, _checkpoint_message(cp.seq, cp.head_hash, cp.ts), cp.mac
                ):
                    return AuditVerdict(
                        False,
                        0,
                        GENESIS,
                        cp.seq,
                        "the signed checkpoint at this entry does not verify under the audit "
                        "key (checkpoint forged or altered)",
                        "forged",
                    )
        n_cp = len(checkpoints) if self._key is not None else 0
        expected_seq, prev, count = 1, GENESIS, 0
        seen: dict[str, int] = {}  # hash -> seq, to tell reordering and deletion apart
        last_good_cp = 0
        for r in rows:
            if r.seq != expected_seq:
                if r.seq > expected_seq:
                    problem = f"entries {expected_seq}..{r.seq - 1} are missing (deleted)"
                    return AuditVerdict(False, count, prev, expected_seq, problem, "deleted")
                return AuditVerdict(
                    False,
                    count,
                    prev,
                    r.seq,
                    "sequence numbers repeat or go backwards",
                    "reordered",
                )
            content_ok = entry_hash(r.seq, r.ts, r.kind, r.alias, r.payload, r.prev_hash) == r.hash
            if not content_ok:
                origin = seen.get(r.prev_hash)
                moved = (
                    origin is not None
                    and entry_hash(origin + 1, r.ts, r.kind, r.alias, r.payload, r.prev_hash)
                    == r.hash
                )
                if moved or (r.prev_hash != prev and _self_consistent_elsewhere(r)):
                    return AuditVerdict(
                        False,
                        count,
                        prev,
                        r.seq,
                        "holds an intact entry that belongs at another position (reordered)",
                        "reordered",
                    )
                return AuditVerdict(
                    False,
                    count,
                    prev,
                    r.seq,
                    "content was modified after it was written",
                    "modified",
                )
            if r.prev_hash != prev:
                if r.prev_hash in seen:
                    problem = (
                        f"links to entry {seen[r.prev_hash]}: the entries after it were "
                        "deleted and the rest renumbered"
                    )
                    return AuditVerdict(
                        False, count, prev, seen[r.prev_hash] + 1, problem, "deleted"
                    )
                return AuditVerdict(
                    False,
                    count,
                    prev,
                    r.seq,
                    "does not link to the entry before it, yet its own hash is consistent: "
                    "the chain was rewritten with recomputed hashes",
                    "forged",
                )
            cp = checkpoints.get(r.seq) if self._key is not None else None
            if cp is not None:
                if cp.head_hash != r.hash:
                    return AuditVerdict(
                        False,
                        count,
                        prev,
                        last_good_cp + 1,
                        f"the chain up to entry {r.seq} differs from what its signed checkpoint "
                        f"says: rewritten (hashes recomputed) at or after entry "
                        f"{last_good_cp + 1}",
                        "forged",
                    )
                last_good_cp = r.seq
            seen[r.hash] = r.seq
            prev, expected_seq, count = r.hash, expected_seq + 1, count + 1
        if self._key is not None and checkpoints:
            top = max(checkpoints)
            if top > count:
                return AuditVerdict(
                    False,
                    count,
                    prev,
                    count + 1,
                    f"a signed checkpoint covers {top} entries but only {count} remain "
                    "(the tail was cut off)",
                    "truncated",
                )
        return AuditVerdict(True, count, prev, checkpoints=n_cp)

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


def _self_consistent_elsewhere(r: Row[Any]) -> bool:
    """Whether the entry's hash is right for its content at some other nearby position."""
    return any(
        entry_hash(r.seq + d, r.ts, r.kind, r.alias, r.payload, r.prev_hash) == r.hash
        for d in (-2, -1, 1, 2)
        if r.seq + d > 0
    )


__all__ = [
    "CHECKPOINT_EVERY",
    "AuditLog",
    "AuditRecord",
    "AuditVerdict",
    "Damage",
    "canonical",
    "entry_hash",
]
