"""The tamper-evident audit log: hash-chained records of decisions and privacy events.

Each entry's hash is SHA-256 over the canonical JSON of (seq, ts, kind, alias, payload,
previous hash). Payloads never hold personal data: a subject appears only as a random alias,
which links to nobody once the subject is erased, so the chain still verifies after erasure.

Signed checkpoints (HMAC-SHA256 under the audit key, `tactful.crypto.checkpoint_mac`) state
"the chain had N entries with head H"; one is written every CHECKPOINT_EVERY appends and on
demand. They catch what a hash chain alone cannot: a cut tail (truncated) and a chain
rewritten from a point on with every hash recomputed (forged).

Decision records take the group-commit path: `defer` queues the entry's content in this
process (audit/deferred.py) and a batch is written under the chain's lock later, with one
executemany; `append` (every other kind) writes in the caller's transaction, after whatever
this process has queued. Readers (`verify`, `records`, `count`, `checkpoint`) first write the
queue in their own transaction, so they see everything this process decided.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring as _string
from typing import Any, Literal, NamedTuple

from sqlalchemy import Connection, Dialect, Row, event, func, select, text

from tactful.audit.deferred import Buffer, Pending
from tactful.errors import IntegrityError
from tactful.store import checkpoint_mac, checkpoint_mac_valid, now, utc
from tactful.store.engine import READ_ONLY, driver_sql
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


def _body(payload: Mapping[str, object] | str) -> str:
    """An entry's payload as canonical JSON (text given is taken as already canonical)."""
    return payload if isinstance(payload, str) else canonical(dict(payload))


def json_string(text: str) -> str:
    """`text` as a JSON string literal, as an entry's hash spells its payload (a caller that
    builds payloads from templates can keep the templates' literals: `AuditLog.defer`)."""
    return _string(text)


def entry_hash(
    seq: int, ts: datetime, kind: str, alias: str | None, payload: str, prev: str
) -> str:
    """The hash of one entry, binding it to its predecessor.

    SHA-256 over the canonical JSON of {seq, ts (ISO 8601, UTC), kind, alias, payload, prev},
    exactly `canonical(...)` of that mapping; assembled by hand because verification hashes
    every entry and the generic encoder cost four times as much.
    """
    if ts.tzinfo is None:  # SQLite hands back naive UTC
        stamp = ts.isoformat() + "+00:00"
    else:
        stamp = (ts.astimezone(UTC) if ts.utcoffset() else ts).isoformat()
    return _digest(seq, stamp, kind, alias, _string(payload), prev)


def _digest(seq: int, stamp: str, kind: str, alias: str | None, quoted: str, prev: str) -> str:
    """`entry_hash` from the time as ISO 8601 text and the payload as a JSON string literal."""
    name = "null" if alias is None else _string(alias)
    body = (
        f'{{"alias":{name},"kind":{_string(kind)},"payload":{quoted},'
        f'"prev":{_string(prev)},"seq":{int(seq)},"ts":"{stamp}"}}'
    )
    return hashlib.sha256(body.encode()).hexdigest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now_us() -> int:
    """The time an entry is recorded: microseconds since the epoch (UTC), a clock read only;
    it is formatted when the entry is written (`_stamps`)."""
    return time.time_ns() // 1000


def _moment(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def _stamps(us: int, seconds: dict[int, str]) -> tuple[str, str]:
    """An entry's time (microseconds since the epoch) as its hash spells it and as SQLite
    stores it: `datetime.isoformat()` of the aware UTC time (which leaves out a zero fraction;
    `entry_hash` spells the value read back the same way) and SQLAlchemy's text form
    (`YYYY-MM-DD HH:MM:SS.ffffff`). `seconds` keeps each second's date and time of day, so a
    batch formats them once per second instead of once per entry."""
    sec, micro = divmod(us, 1_000_000)
    whole = seconds.get(sec)
    if whole is None:
        whole = seconds[sec] = _moment(sec * 1_000_000).isoformat()[:19]
    fraction = f"{micro:06d}"
    iso = f"{whole}.{fraction}+00:00" if micro else f"{whole}+00:00"
    return iso, f"{whole[:10]} {whole[11:]}.{fraction}"


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    """A signed checkpoint whose signature and head the chain matched."""

    seq: int
    head: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The result of verifying the chain: ok, how many entries, and the first broken link.

    `checkpoint` is the last signed checkpoint the chain was verified to (None when there is
    none, or none before the damage); `checkpoints` counts the signed checkpoints verified.
    Entries after `checkpoint.seq` are protected by the hash chain alone: a cut tail past the
    last checkpoint cannot be told from a shorter log (see docs/architecture.md).
    """

    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None
    damage: Damage | None = None
    checkpoints: int = 0
    checkpoint: VerifiedCheckpoint | None = None

    @property
    def unsigned_tail(self) -> int:
        """Entries after the last verified checkpoint (covered by the hash chain only)."""
        return self.entries - (self.checkpoint.seq if self.checkpoint else 0)

    def summary(self) -> str:
        """One line a person can read."""
        if not self.ok:
            return (
                f"audit chain BROKEN ({self.damage}) at entry {self.first_bad_seq}: {self.problem}"
            )
        line = f"audit chain intact: {self.entries} entries, head {self.head[:16]}"
        if self.checkpoint is None:
            return line + "; no signed checkpoint (the hash chain alone cannot show a cut tail)"
        tail = self.unsigned_tail
        return (
            f"{line}; verified to signed checkpoint {self.checkpoint.seq} "
            f"({self.checkpoints} signed checkpoints)"
            + (f"; the last {tail} entries are covered by the hash chain only" if tail else "")
        )


def checkpoint_message(seq: int, head: str, ts: datetime) -> bytes:
    """The bytes a checkpoint's MAC covers: canonical JSON of (seq, head hash, time)."""
    return canonical({"seq": seq, "head": head, "ts": utc(ts).isoformat()}).encode()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry as read back."""

    seq: int
    ts: datetime
    kind: str
    alias: str | None
    payload: dict[str, Any]


_HEAD = select(_audit.c.seq, _audit.c.hash).order_by(_audit.c.seq.desc()).limit(1)
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
# An own-transaction flush waits for the chain's lock at most as long as SQLite's busy timeout.
_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '30s'")
_INSERT = _audit.insert()
_SIGN = _checkpoints.insert()  # built once: `.values(...)` per call made a new statement
_INSERTS: dict[str, str] = {}
_ENTRY_ORDER = ("seq", "ts", "kind", "alias", "payload", "prev_hash", "hash")


def _insert_for(dialect: Dialect) -> str:
    """The entry INSERT rendered for the driver (columns in `_ENTRY_ORDER`). The time is bound
    as SQLAlchemy would store it: SQLite's text form (`_stamps`), a datetime elsewhere."""
    found = _INSERTS.get(dialect.name)
    if found is None:
        sql, order = driver_sql(_INSERT, dialect)
        assert order == _ENTRY_ORDER, order
        found = _INSERTS[dialect.name] = sql
    return found


def _locked_head(conn: Connection) -> Row[Any, Any] | None:
    """The chain's last entry (seq, hash), read under the append lock.

    PostgreSQL: a transaction-scoped advisory lock serializes appends and checkpoints across
    processes. SQLite: the caller's write transaction already holds the database's lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"k": _LOCK_KEY})
    return conn.execute(_HEAD).first()


class _InFlight:
    """Queued entries taken into a transaction: put back in front if it rolls back.

    The rollback event runs before the database releases the chain's lock, so no later entry
    of this process can be written ahead of them.
    """

    __slots__ = ("buffer", "generation", "items", "open", "requeued")

    def __init__(self, buffer: Buffer, items: list[Pending], generation: int) -> None:
        self.buffer, self.items, self.generation = buffer, items, generation
        self.open, self.requeued = True, False

    def committed(self, _conn: Connection) -> None:
        self.open = False

    def rolled_back(self, _conn: Connection) -> None:
        if self.open:
            self.requeue()

    def requeue(self) -> None:
        self.open, self.requeued = False, True
        self.buffer.requeue(self.items, self.generation)


class AuditLog:
    """Appends to and verifies the hash chain.

    With `audit_key` (the key ring's audit key) it signs a checkpoint every CHECKPOINT_EVERY
    appends and verifies checkpoints; without it, checkpoints are neither written nor checked.

    `begin` (the store's `begin`: a callable returning a transaction context manager) lets the
    log write on its own: `defer`, `flush` and the background flusher need it. With `batched`
    (the default) a deferred entry is written within `max_delay` seconds, or at once when
    `max_pending` entries are queued; with `batched=False` `defer` writes before it returns.
    """

    def __init__(
        self,
        audit_key: bytes | None = None,
        *,
        begin: Callable[[], AbstractContextManager[Connection]] | None = None,
        batched: bool = True,
        max_delay: float = 0.2,
        max_pending: int = 1000,
    ) -> None:
        if not (isinstance(max_delay, int | float) and 0 < max_delay <= 60):
            raise ValueError(f"max_delay must be a number of seconds in (0, 60], not {max_delay!r}")
        if not (isinstance(max_pending, int) and max_pending >= 1):
            raise ValueError(f"max_pending must be a positive integer, not {max_pending!r}")
        self._key = audit_key
        self._begin = begin
        self._batched = batched
        self._queue = Buffer(self.flush, max_delay=max_delay, max_pending=max_pending)

    @property
    def batched(self) -> bool:
        """Whether deferred entries are written in batches (False: each before `defer` returns)."""
        return self._batched

    @property
    def pending(self) -> int:
        """How many deferred entries this process has not written yet."""
        return len(self._queue)

    def append(
        self,
        conn: Connection,
        kind: str,
        payload: Mapping[str, object] | str,
        *,
        alias: str | None = None,
    ) -> int:
        """Append an entry inside the caller's transaction; returns its sequence number.

        Entries this process deferred are written first, in the same transaction, so the
        chain keeps this process's order; if the transaction rolls back they are queued again.
        A payload given as text must already be its `canonical` JSON.
        """
        body = _body(payload)
        head = _locked_head(conn)
        queued = self._take(conn)
        entry = Pending(_now_us(), kind, alias, body, 0.0)
        return self._chain(conn, head, [*queued, entry])

    def defer(
        self,
        kind: str,
        payload: Mapping[str, object] | str,
        *,
        alias: str | None = None,
        quoted: str | None = None,
    ) -> None:
        """Record an entry whose chain position is assigned when its batch is written.

        Its time is now and its payload is fixed now (text: already `canonical` JSON); no
        database work happens on the caller's path (batched). A hard crash (SIGKILL, power
        loss) loses what is still queued: at most `max_delay` seconds or `max_pending`
        entries. Call it outside a write
        transaction of your own: at `max_pending` it writes the queue in a transaction of its
        own, which would wait for yours. With `batched=False` it writes the entry in its own
        transaction before returning (and raises if that fails).

        `quoted`, for a text payload, is `json_string(payload)` when the caller has it at hand
        (the gate keeps it with its record templates): the entry is then hashed from it, and
        a wrong one would break the chain at this entry, so pass it only when it is exact.
        """
        if self._begin is None:
            raise RuntimeError(
                "defer needs a way to open a transaction: build AuditLog(begin=store.begin)"
            )
        entry = Pending(_now_us(), kind, alias, _body(payload), time.monotonic(), quoted)
        if self._batched:
            self._queue.put(entry)
            return
        with self._begin() as conn:
            head = _locked_head(conn)
            self._chain(conn, head, [*self._take(conn), entry])

    def flush(self) -> int:
        """Write every queued entry now, in a transaction of its own; returns how many.

        On failure the entries stay queued, in order, and the error is raised.
        """
        if not len(self._queue):
            return 0
        if self._begin is None:
            raise RuntimeError(
                "flush needs a way to open a transaction: build AuditLog(begin=store.begin)"
            )
        with self._queue.flushing:
            if not len(self._queue):
                return 0
            flight: _InFlight | None = None
            try:
                with self._begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(_LOCK_TIMEOUT)
                    head = _locked_head(conn)
                    flight = self._take_flight(conn)
                    if flight is None:
                        return 0
                    self._chain(conn, head, flight.items)
            except BaseException:
                # A commit that failed after its commit event: the rows are not in the chain.
                if flight is not None and not flight.requeued:
                    flight.requeue()
                raise
            return len(flight.items)

    def close(self) -> None:
        """Write what is queued and stop the background flusher (a later `defer` restarts it)."""
        try:
            self.flush()
        finally:
            self._queue.stop()

    def drain(self, conn: Connection) -> int:
        """Write this process's queued entries inside the caller's transaction; returns how many.

        Readers call it first so that they see every entry this process deferred. If the
        transaction rolls back, the entries are queued again. On a read-only connection
        (`Store.read()`, a snapshot that must not write) it writes nothing: such a reader sees
        what was committed when its snapshot began, so its caller flushes first (`flush`).
        """
        if not len(self._queue) or conn.get_execution_options().get(READ_ONLY):
            return 0
        head = _locked_head(conn)
        queued = self._take(conn)
        if queued:
            self._chain(conn, head, queued)
        return len(queued)

    def _take_flight(self, conn: Connection) -> _InFlight | None:
        """Take the queue into `conn`'s transaction (call with the chain's lock held)."""
        if not len(self._queue):
            return None
        items, generation = self._queue.take()
        if not items:
            return None
        flight = _InFlight(self._queue, items, generation)
        event.listen(conn, "commit", flight.committed)
        event.listen(conn, "rollback", flight.rolled_back)
        return flight

    def _take(self, conn: Connection) -> list[Pending]:
        flight = self._take_flight(conn)
        return [] if flight is None else flight.items

    def _chain(
        self, conn: Connection, head: Row[Any, Any] | None, entries: Sequence[Pending]
    ) -> int:
        """Link `entries` after `head` (read under the lock), insert them with one statement,
        and sign the periodic checkpoints the batch reaches; returns the last seq."""
        seq = 0 if head is None else int(head.seq)
        prev = GENESIS if head is None else str(head.hash)
        rows: list[tuple[object, ...]] = []
        reached: list[tuple[int, str, datetime]] = []  # periodic checkpoints due in the batch
        sql = _insert_for(conn.dialect)
        as_text = conn.dialect.name == "sqlite"
        seconds: dict[int, str] = {}
        for e in entries:
            seq += 1
            iso, text = _stamps(e.at, seconds)
            quoted = _string(e.payload) if e.quoted is None else e.quoted
            digest = _digest(seq, iso, e.kind, e.alias, quoted, prev)
            bound = text if as_text else _moment(e.at)
            rows.append((seq, bound, e.kind, e.alias, e.payload, prev, digest))
            if seq % CHECKPOINT_EVERY == 0:
                reached.append((seq, digest, _moment(e.at)))
            prev = digest
        # The driver's executemany of the prebuilt INSERT (no per-row parameter processing).
        conn.exec_driver_sql(sql, rows)
        # The periodic checkpoint signs only a head whose unsigned stretch verifies, so a
        # rewrite made since the last checkpoint is never blessed: its checkpoint is then
        # missing, which `verify` reports.
        if self._key is not None:
            known = 0 if head is None else int(head.seq)  # entries before this batch
            for at, digest, stamp in reached:
                # The batch's own entries were linked here from the head read under the lock:
                # only the entries before it in the window are read back and checked.
                before = CHECKPOINT_EVERY - (at - known)
                if before <= 0 or self._unsigned_ok(conn, known, window=before):
                    self._sign(conn, at, digest, stamp)
        return seq

    def checkpoint(self, conn: Connection) -> int:
        """Sign the current head now (e.g. before a backup); returns the seq it covers.

        The entries since the last signed checkpoint are verified first: IntegrityError (and
        nothing signed) if they do not hash and link. RuntimeError when the log was built
        without the audit key.
        """
        if self._key is None:
            raise RuntimeError("checkpoints need the audit key; build AuditLog(audit_key=...)")
        head = _locked_head(conn)
        queued = self._take(conn)
        if queued:
            self._chain(conn, head, queued)
            head = conn.execute(_HEAD).first()
        if head is None:
            return 0
        done = conn.execute(
            select(_checkpoints.c.seq).where(_checkpoints.c.seq == head.seq)
        ).first()
        if done is None:
            if not self._unsigned_ok(conn, head.seq):
                raise IntegrityError(
                    "the audit entries since the last signed checkpoint do not verify; nothing "
                    "was signed. Run `tactful audit verify` to see the first bad entry"
                )
            self._sign(conn, head.seq, head.hash, now())
        return int(head.seq)

    def _unsigned_ok(self, conn: Connection, upto: int, *, window: int | None = None) -> bool:
        """Whether the entries after the last valid checkpoint below `upto` hash and link.

        With `window`, at most the last `window` entries are checked (the periodic checkpoint
        runs inside an append holding the chain's lock: on a store older than checkpoints the
        stretch since the last one is the whole chain).
        """
        assert self._key is not None
        start, prev = 0, GENESIS
        if window is not None and upto - window > 0:
            floor = conn.execute(select(_audit.c.hash).where(_audit.c.seq == upto - window)).first()
            if floor is None:
                return False
            start, prev = upto - window, str(floor.hash)
        below = conn.execute(
            select(_checkpoints)
            .where(_checkpoints.c.seq < upto)
            .order_by(_checkpoints.c.seq.desc())
            .limit(1)
        ).first()
        if (
            below is not None
            and below.seq >= start
            and checkpoint_mac_valid(
                self._key, checkpoint_message(below.seq, below.head_hash, below.ts), below.mac
            )
        ):
            start, prev = below.seq, below.head_hash
        expected = start + 1
        rows = conn.execute(
            select(*_COLUMNS)
            .where(_audit.c.seq > start, _audit.c.seq <= upto)
            .order_by(_audit.c.seq)
            .execution_options(yield_per=5000)
        )
        with rows:
            for seq, ts, kind, alias, payload, prev_hash, digest in rows:
                if (
                    seq != expected
                    or prev_hash != prev
                    or entry_hash(seq, ts, kind, alias, payload, prev_hash) != digest
                ):
                    return False
                prev, expected = digest, expected + 1
        return expected == upto + 1

    def _sign(self, conn: Connection, seq: int, head: str, stamp: datetime) -> None:
        assert self._key is not None
        mac = checkpoint_mac(self._key, checkpoint_message(seq, head, stamp))
        conn.execute(_SIGN, {"seq": seq, "ts": stamp, "head_hash": head, "mac": mac})

    def verify(self, conn: Connection) -> AuditVerdict:
        """Walk the chain and the checkpoints; name the first bad entry and the kind of damage.

        Kinds: modified (content changed, hash not recomputed), deleted (a gap, entries
        removed and the rest renumbered, or a checkpoint row removed), reordered (an intact
        entry sits at another position), truncated (fewer entries than a signed checkpoint
        covers), forged (hashes recomputed after a change, or a checkpoint whose signature
        does not verify). Streams the entries; memory does not grow with the chain.
        This process's queued entries are written first (`drain`).
        """
        self.drain(conn)
        signed: dict[int, Row[Any]] = {}
        if self._key is not None:
            for cp in conn.execute(select(_checkpoints).order_by(_checkpoints.c.seq)):
                if not checkpoint_mac_valid(
                    self._key, checkpoint_message(cp.seq, cp.head_hash, cp.ts), cp.mac
                ):
                    return AuditVerdict(
                        False,
                        0,
                        GENESIS,
                        cp.seq,
                        f"the signed checkpoint at entry {cp.seq} does not verify under the "
                        "audit key (checkpoint forged or altered)",
                        "forged",
                    )
                signed[cp.seq] = cp
        # Periodic checkpoints are expected from the first one on (older stores and key-less
        # logs have none before it): a missing one means checkpoint rows were deleted.
        periodic = [s for s in signed if s % CHECKPOINT_EVERY == 0]
        first_periodic = min(periodic) if periodic else None
        walk = _Walk(signed, first_periodic)
        result = conn.execute(
            select(*_COLUMNS).order_by(_audit.c.seq).execution_options(yield_per=5000)
        )
        with result:
            walk.run(result)
        if walk.suspect is not None:
            return walk.diagnose(conn)
        return walk.finish()

    def records(
        self,
        conn: Connection,
        *,
        kind: str | None = None,
        alias: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[AuditRecord]:
        """Entries in order, optionally filtered by kind, alias and time window (this process's
        queued entries are written first)."""
        self.drain(conn)
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
        """How many entries the chain has (this process's queued entries written first)."""
        self.drain(conn)
        return int(conn.execute(select(func.count()).select_from(_audit)).scalar_one())


_COLUMNS = (
    _audit.c.seq,
    _audit.c.ts,
    _audit.c.kind,
    _audit.c.alias,
    _audit.c.payload,
    _audit.c.prev_hash,
    _audit.c.hash,
)


class _Entry(NamedTuple):
    seq: int
    ts: datetime
    kind: str
    alias: str | None
    payload: str
    prev_hash: str
    hash: str


class _Walk:
    """One pass over the chain; stops at the first anomaly, which `diagnose` then names."""

    def __init__(self, signed: Mapping[int, Row[Any]], first_periodic: int | None) -> None:
        self.signed = signed
        self.first_periodic = first_periodic
        self.expected, self.prev, self.count = 1, GENESIS, 0
        self.last_cp: VerifiedCheckpoint | None = None
        self.n_cp = 0
        self.suspect: _Entry | None = None
        self.verdict: AuditVerdict | None = None

    def _bad(self, seq: int, problem: str, damage: Damage) -> bool:
        self.verdict = AuditVerdict(
            False, self.count, self.prev, seq, problem, damage, self.n_cp, self.last_cp
        )
        return False

    def _unvouched(self) -> int:
        return self.last_cp.seq + 1 if self.last_cp else 1

    def run(self, rows: Iterable[Any]) -> None:
        """The walk itself: hash and link checks inline; anything unusual goes to `_step`."""
        expected, prev, signed, every = 1, GENESIS, self.signed, CHECKPOINT_EVERY
        for seq, ts, kind, alias, payload, prev_hash, digest in rows:
            if (
                seq != expected
                or prev_hash != prev
                or seq in signed
                or seq % every == 0
                or entry_hash(seq, ts, kind, alias, payload, prev_hash) != digest
            ):
                self.expected, self.prev, self.count = expected, prev, expected - 1
                if not self._step(seq, ts, kind, alias, payload, prev_hash, digest):
                    return
            prev, expected = digest, expected + 1
        self.expected, self.prev, self.count = expected, prev, expected - 1

    def _step(
        self,
        seq: int,
        ts: datetime,
        kind: str,
        alias: str | None,
        payload: str,
        prev_hash: str,
        digest: str,
    ) -> bool:
        """Check one entry in full; False stops the walk (verdict or suspect set)."""
        if seq != self.expected:
            return self._bad(
                self.expected,
                f"entries {self.expected}..{seq - 1} are missing (deleted)",
                "deleted",
            )
        if prev_hash != self.prev or entry_hash(seq, ts, kind, alias, payload, prev_hash) != digest:
            self.suspect = _Entry(seq, ts, kind, alias, payload, prev_hash, digest)
            return False
        cp = self.signed.get(seq)
        if cp is not None:
            if cp.head_hash != digest:
                return self._bad(
                    self._unvouched(),
                    f"the chain up to entry {seq} differs from what its signed checkpoint "
                    f"says: entries {self._unvouched()}..{seq} were rewritten with their "
                    "hashes recomputed",
                    "forged",
                )
            self.last_cp = VerifiedCheckpoint(seq, digest, utc(cp.ts))
            self.n_cp += 1
        elif (
            self.first_periodic is not None
            and seq > self.first_periodic
            and seq % CHECKPOINT_EVERY == 0
        ):
            return self._bad(
                self._unvouched(),
                f"the signed checkpoint expected at entry {seq} (one is written every "
                f"{CHECKPOINT_EVERY} entries) is missing: checkpoint rows were deleted, or it "
                "was withheld because the entries before it did not verify when it was due; "
                f"entries {self._unvouched()}..{seq} are vouched for by nothing but the hash "
                "chain",
                "deleted",
            )
        return True

    def finish(self) -> AuditVerdict:
        """The verdict once every entry passed: truncated if a checkpoint covers more."""
        if self.verdict is not None:
            return self.verdict
        beyond = [s for s in self.signed if s > self.count]
        if beyond:
            return AuditVerdict(
                False,
                self.count,
                self.prev,
                self.count + 1,
                f"a signed checkpoint covers {max(beyond)} entries but only {self.count} "
                "remain (the tail was cut off)",
                "truncated",
                self.n_cp,
                self.last_cp,
            )
        return AuditVerdict(
            True, self.count, self.prev, checkpoints=self.n_cp, checkpoint=self.last_cp
        )

    def diagnose(self, conn: Connection) -> AuditVerdict:
        """Name the damage at the suspect entry (runs only on a broken chain)."""
        r = self.suspect
        assert r is not None
        p = r.seq
        if entry_hash(p, r.ts, r.kind, r.alias, r.payload, r.prev_hash) == r.hash:
            # Intact for its position, but linked to something else: a predecessor rewritten
            # with its hash recomputed (its successor still names the old hash), or this
            # entry rewritten onto a made-up link.
            rewritten = p - 1 if p > 1 and _find_hash(conn, r.prev_hash) is None else p
            self._bad(
                rewritten,
                f"entry {p} does not link to the entry before it, yet its own hash is "
                f"consistent: entry {rewritten} was rewritten with its hash recomputed",
                "forged",
            )
            return self.finish()
        # The entry that belongs here, found at another position, means a reordering.
        for x in conn.execute(select(_audit).where(_audit.c.prev_hash == self.prev)):
            if x.seq != p and entry_hash(p, x.ts, x.kind, x.alias, x.payload, x.prev_hash) == (
                x.hash
            ):
                self._bad(
                    p,
                    f"the entry that belongs at position {p} sits at position {x.seq}: "
                    "entries were reordered",
                    "reordered",
                )
                return self.finish()
        shift = _renumbered_from(r)
        if shift is not None and _find_hash(conn, r.prev_hash) is None:
            self._bad(
                p,
                f"entries {p}..{p + shift - 1} were deleted and the rest renumbered (the entry "
                f"now at {p} was written as entry {p + shift})",
                "deleted",
            )
            return self.finish()
        self._bad(p, "content was modified after it was written (hash mismatch)", "modified")
        return self.finish()


_RENUMBER_SEARCH = 10_000


def _renumbered_from(r: _Entry) -> int | None:
    """How far the entry's seq was shifted down, if its hash fits a later position."""
    for shift in range(1, _RENUMBER_SEARCH + 1):
        if entry_hash(r.seq + shift, r.ts, r.kind, r.alias, r.payload, r.prev_hash) == r.hash:
            return shift
    return None


def _find_hash(conn: Connection, digest: str) -> int | None:
    """The seq of the entry with this hash, if any (a scan: used on broken chains only)."""
    row = conn.execute(select(_audit.c.seq).where(_audit.c.hash == digest).limit(1)).first()
    return None if row is None else int(row.seq)


__all__ = [
    "CHECKPOINT_EVERY",
    "AuditLog",
    "AuditRecord",
    "AuditVerdict",
    "Damage",
    "VerifiedCheckpoint",
    "canonical",
    "checkpoint_message",
    "entry_hash",
    "json_string",
]
