"""Benchmark: the encrypted store against plain SQLAlchemy tables with the same columns.

Measured in one run, on the same engine settings (tactful's SQLite set-up: WAL, BEGIN
IMMEDIATE, synchronous=NORMAL), with the same columns and foreign keys, and a baseline written
as well as tactful's own bulk paths (executemany, statements built once, timestamps parsed
the same way). Each side runs in a process of its own (same imports), so that each pays for
its own garbage collections; each operation runs chunk by chunk, tactful and plain in turn,
so that load changes on a shared machine hit both; wall and process CPU seconds are printed
with ratios.

1. Profiles: N users x 4 fields written in batches of 1,000 users per transaction
   (`tf.profiles.put_many`) vs the same rows in plaintext tables; then every user read back
   one by one (`tf.profiles.get`, one read-only transaction each, data key cache cold) vs a
   plain select in the same kind of transaction (on SQLite `BEGIN`, without the write lock).
2. Events: 10 x N events written in batches of 10,000 per transaction
   (`tf.events.record_batch`) vs plaintext inserts; then all read back for training
   (`Events.bundles` in a read-only transaction, as a refit reads them, grouped per user and
   decrypted) vs a plain ordered select in the same kind of transaction.
3. Bulk ingestion on PostgreSQL (with --pg): the same event batches, events/s and ratio.
4. Key rotation: `tf.keys.rotate()` rewrapping the N data keys (no data re-encryption).
5. Not a headline figure, marked "*": the events write again with the DEK cache sized to the
   N users (`dek_cache=N`) instead of the default 4,096.

    python bench/bench_store.py                 # full size: 100,000 profiles, 1,000,000 events
    python bench/bench_store.py --scale 0.05    # quicker
    TACTFUL_TEST_POSTGRES_URL=postgresql://127.0.0.1:5432/test python bench/bench_store.py --pg
    ... python bench/bench_store.py --pg-only --scale 0.2    # PostgreSQL alone
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    inspect,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite

from tactful import Tactful
from tactful.store.engine import make_engine, read_options, utc

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
ITEMS = [f"item{n}" for n in range(5000)]
START = datetime(2025, 1, 1, tzinfo=UTC)

meta = MetaData()
plain_subject = Table(
    "plain_subject",
    meta,
    Column("id", Integer, primary_key=True),
    Column("ref", String(256), unique=True, index=True),
    Column("alias", String(32), unique=True),
    Column("status", String(16)),
    Column("created_at", DateTime(timezone=True)),
)
plain_profile = Table(
    "plain_profile",
    meta,
    Column("subject_id", Integer, ForeignKey("plain_subject.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("category", String(128)),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)
plain_event = Table(
    "plain_event",
    meta,
    Column("id", String(32), primary_key=True),
    Column("subject_id", Integer, ForeignKey("plain_subject.id"), nullable=False),
    Column("category", String(128)),
    Column("ts", DateTime(timezone=True), index=True),
    Column("payload", Text, nullable=False),
    Index("ix_plain_event_subject_ts", "subject_id", "ts"),
)
CATEGORY = {
    "country": "user.location.country",
    "age_range": "user.demographic.age_range",
    "email": "user.contact.email",
    "display_name": "user.contact.name",
}


_PLAIN_SID = select(plain_subject.c.id).where(plain_subject.c.ref == bindparam("ref"))
_PLAIN_FIELDS = (
    select(plain_profile.c.name, plain_profile.c.value)
    .where(plain_profile.c.subject_id == bindparam("sid"))
    .order_by(plain_profile.c.name)
)
_PLAIN_TS = type_coerce(plain_event.c.ts, String).label("ts")


def _parse_ts(value: datetime | str) -> datetime:
    # The same timestamp read as tactful's bulk paths (raw text on SQLite, parsed in C).
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return utc(value)


class Plain:
    """The baseline: the same columns in plaintext, the same batches, Core statements.

    Written the way tactful's own bulk paths are (executemany, statements built once, random
    ids drawn in one call, timestamps read without SQLAlchemy's text parsing on SQLite), so
    that the ratio is the cost of encryption and tactful's bookkeeping, not of a weaker
    baseline.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        meta.create_all(engine)

    def _subjects(self, conn: Any, users: list[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for start in range(0, len(users), 500):
            rows = conn.execute(
                select(plain_subject.c.id, plain_subject.c.ref).where(
                    plain_subject.c.ref.in_(users[start : start + 500])
                )
            )
            ids.update({r.ref: r.id for r in rows})
        missing = [u for u in users if u not in ids]
        if missing:
            stamp = datetime.now(UTC)
            aliases = os.urandom(16 * len(missing)).hex()
            conn.execute(
                plain_subject.insert(),
                [
                    {
                        "ref": u,
                        "alias": aliases[32 * i : 32 * i + 32],
                        "status": "active",
                        "created_at": stamp,
                    }
                    for i, u in enumerate(missing)
                ],
            )
            return self._subjects(conn, users)
        return ids

    def put_many(self, profiles: dict[str, dict[str, object]]) -> None:
        with self.engine.begin() as conn:
            ids = self._subjects(conn, list(profiles))
            stamp = datetime.now(UTC)
            rows = [
                {
                    "subject_id": ids[u],
                    "name": n,
                    "category": CATEGORY[n],
                    "value": json.dumps(v),
                    "updated_at": stamp,
                }
                for u, values in profiles.items()
                for n, v in values.items()
            ]
            insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            stmt = insert(plain_profile)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["subject_id", "name"],
                    set_={
                        "value": stmt.excluded.value,
                        "category": stmt.excluded.category,
                        "updated_at": stmt.excluded.updated_at,
                    },
                ),
                rows,
            )

    def reading(self) -> Connection:
        """A read-only snapshot connection, as tactful's reads use (SQLite `BEGIN` without
        the write lock, PostgreSQL `REPEATABLE READ READ ONLY`)."""
        return self.engine.connect().execution_options(**read_options(self.engine.dialect.name))

    def get(self, user: str) -> dict[str, object]:
        with self.reading() as conn, conn.begin():
            sid = conn.execute(_PLAIN_SID, {"ref": user}).scalar_one()
            rows = conn.execute(_PLAIN_FIELDS, {"sid": sid})
            return {r.name: json.loads(r.value) for r in rows}

    def record_batch(self, events: list[tuple[str, str, str, datetime | None]]) -> None:
        with self.engine.begin() as conn:
            ids = self._subjects(conn, list(dict.fromkeys(u for u, _, _, _ in events)))
            keys = os.urandom(16 * len(events)).hex()
            rows = [
                {
                    "id": keys[32 * i : 32 * i + 32],
                    "subject_id": ids[u],
                    "category": "user.behavior.interaction",
                    "ts": ts,
                    "payload": json.dumps([item, kind], separators=(",", ":")),
                }
                for i, (u, item, kind, ts) in enumerate(events)
            ]
            for start in range(0, len(rows), 5000):
                conn.execute(plain_event.insert(), rows[start : start + 5000])

    def bundles(self, sids: list[int]) -> int:
        n = 0
        loads = json.loads
        with self.reading() as conn, conn.begin():
            for start in range(0, len(sids), 500):
                result = conn.execute(
                    select(
                        plain_event.c.subject_id,
                        plain_event.c.id,
                        _PLAIN_TS,
                        plain_event.c.payload,
                    )
                    .where(plain_event.c.subject_id.in_(sids[start : start + 500]))
                    .order_by(plain_event.c.subject_id, plain_event.c.ts, plain_event.c.id)
                )
                bucket: dict[int, list[tuple[str, str, datetime]]] = {}
                for rows in result.partitions(1000):
                    for sid, _id, ts, payload in rows:
                        item, kind = loads(payload)
                        bucket.setdefault(sid, []).append((item, kind, _parse_ts(ts)))
                        n += 1
        return n


def tactful_bundles(tf: Tactful, sids: list[int]) -> int:
    store = tf._store
    n = 0
    with store.read() as conn:  # as a refit reads them (`Models.fit`)
        for _sid, events in store.events.bundles(conn, sids):
            n += len(events)
    return n


def profiles_of(users: list[str]) -> dict[str, dict[str, object]]:
    return {
        u: {
            "country": "DE",
            "age_range": "25-34",
            "email": f"{u}@example.org",
            "display_name": f"Name {u}",
        }
        for u in users
    }


EVENT_BATCH = 10_000


def event_batch(n_users: int, n_events: int, b: int) -> list[tuple[str, str, str, datetime | None]]:
    """Batch `b` of the events: 10,000 events, user `i % n_users` for event i (round robin)."""
    return [
        (f"user{i % n_users}", ITEMS[(i * 7) % len(ITEMS)], "view", START + timedelta(seconds=i))
        for i in range(b * EVENT_BATCH, min(n_events, (b + 1) * EVENT_BATCH))
    ]


class Side:
    """One side of the benchmark (tactful or the plaintext baseline), in a process of its own.

    Each side runs in its own process so that each pays for its own garbage collections:
    in one process, a full collection (about 70 ms over the objects that importing tactful,
    SQLAlchemy, NumPy and SciPy leaves) is set off by both sides' allocations together and
    lands in whichever side's chunk happens to cross the threshold, which moved a ratio by
    up to 0.7 from one hash seed to the next. Both processes import the same modules, so
    their heaps start alike. Inputs are built before the clock starts.
    """

    def __init__(self, side: str, url: str, home: Path, n_users: int, n_events: int) -> None:
        self.side, self.url, self.home = side, url, home
        self.n_users, self.n_events = n_users, n_events
        users = [f"user{i}" for i in range(n_users)]
        self.batches = [users[i : i + 1000] for i in range(0, n_users, 1000)]
        # Both stores numbered their subjects 1..n in the same order.
        sids = list(range(1, n_users + 1))
        self.sid_chunks = [sids[i : i + 5000] for i in range(0, n_users, 5000)]
        self.tf: Tactful | None = self._open(None) if side == "tactful" else None
        self.plain: Plain | None = Plain(make_engine(url)) if side == "plain" else None

    def _open(self, dek_cache: int | None) -> Tactful:
        key_file = self.home / "master.key"
        if dek_cache is None:
            return Tactful.open(db_url=self.url, key_file=key_file, policies=POLICIES)
        return Tactful.open(
            db_url=self.url, key_file=key_file, policies=POLICIES, dek_cache=dek_cache
        )

    def prepare(self, op: str, i: int) -> Callable[[], object]:
        """The work of chunk `i` of `op`, its input built."""
        return self._tactful(self.tf, op, i) if self.tf else self._plain(self.plain, op, i)

    def _tactful(self, tf: Tactful, op: str, i: int) -> Callable[[], object]:
        if op == "profiles write":
            profiles = profiles_of(self.batches[i])
            return lambda: tf.profiles.put_many(profiles)
        if op == "profiles read":
            batch = self.batches[i]
            return lambda: sum(1 for u in batch if tf.profiles.get(u))
        if op.startswith("events write"):
            events = event_batch(self.n_users, self.n_events, i)
            return lambda: tf.events.record_batch(events)
        if op == "events read":
            sids = self.sid_chunks[i]
            return lambda: tactful_bundles(tf, sids)
        if op == "rotate":
            return lambda: tf.keys.rotate(batch_size=5000).rewrapped
        if op == "clear caches":
            return tf._store.subjects.clear_cache
        if op == "analyze":
            return lambda: analyze(tf._store.engine)
        if op == "big cache":
            # Not a headline figure: the DEK cache sized to the active users instead of the
            # default 4,096 (see docs/architecture.md on the memory and exposure this costs).
            return self._reopen_big
        raise ValueError(op)

    def _plain(self, plain: Plain | None, op: str, i: int) -> Callable[[], object]:
        assert plain is not None
        if op == "profiles write":
            profiles = profiles_of(self.batches[i])
            return lambda: plain.put_many(profiles)
        if op == "profiles read":
            batch = self.batches[i]
            return lambda: sum(1 for u in batch if plain.get(u))
        if op.startswith("events write"):
            events = event_batch(self.n_users, self.n_events, i)
            return lambda: plain.record_batch(events)
        if op == "events read":
            sids = self.sid_chunks[i]
            return lambda: plain.bundles(sids)
        if op == "analyze":
            return lambda: analyze(plain.engine)
        if op in ("clear caches", "big cache"):
            return lambda: None
        raise ValueError(op)

    def _reopen_big(self) -> None:
        assert self.tf is not None
        self.tf.close()
        self.tf = self._open(self.n_users)

    def close(self) -> None:
        if self.tf is not None:
            self.tf.close()
        if self.plain is not None:
            self.plain.engine.dispose()


def analyze(engine: Engine) -> None:
    """PostgreSQL: fresh planner statistics for this side's tables (not timed, both sides at
    the same points). Without them a side's IN-list lookups could be planned on the empty
    tables' statistics: the baseline's events write once took 143 s of wall time for 7.6 s of
    CPU on such a plan."""
    if engine.dialect.name != "postgresql":
        return
    names = inspect(engine).get_table_names()
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f'ANALYZE "{name}"')


def _serve(side: str, url: str, home: str, n_users: int, n_events: int, pipe: Any) -> None:
    """A side's process: runs (op, chunk) requests, answers (wall s, CPU s, result)."""
    try:
        worker = Side(side, url, Path(home), n_users, n_events)
        pipe.send("ready")
        while (request := pipe.recv()) is not None:
            work = worker.prepare(*request)
            cpu, start = time.process_time(), time.perf_counter()
            result = work()
            pipe.send((time.perf_counter() - start, time.process_time() - cpu, result))
        worker.close()
        pipe.send("closed")
    except BaseException:
        pipe.send(("failed", traceback.format_exc()))
        raise


class Sides:
    """The two side processes, asked in turn."""

    def __init__(self, urls: dict[str, str], home: Path, n_users: int, n_events: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: dict[str, Any] = {}
        self.procs: list[Any] = []
        for side, url in urls.items():
            mine, theirs = ctx.Pipe()
            # Daemonic: if one side fails, the run stops instead of waiting on the other.
            proc = ctx.Process(
                target=_serve, args=(side, url, str(home), n_users, n_events, theirs), daemon=True
            )
            proc.start()
            self.pipes[side] = mine
            self.procs.append(proc)
            self._expect(side, "ready")

    def _expect(self, side: str, what: str) -> None:
        got = self.pipes[side].recv()
        if got != what:
            raise RuntimeError(f"{side} side failed:\n{got[1] if isinstance(got, tuple) else got}")

    def ask(self, side: str, op: str, i: int = 0) -> tuple[float, float, Any]:
        self.pipes[side].send((op, i))
        got = self.pipes[side].recv()
        if isinstance(got, tuple) and got[0] == "failed":
            raise RuntimeError(f"{side} side failed:\n{got[1]}")
        return got  # type: ignore[no-any-return]

    def close(self) -> None:
        for side, pipe in self.pipes.items():
            pipe.send(None)
            self._expect(side, "closed")
        for proc in self.procs:
            proc.join()


def alternate(sides: Sides, r: dict[str, float], op: str, chunks: int) -> dict[str, int]:
    """Run `op` chunk by chunk, tactful and plain in turn (tactful first on even chunks), so
    that a change in the machine's load during the run hits both sides alike. Wall seconds
    go to r[f"{op} {side}"], process CPU seconds to r[f"{op} {side} cpu"] (on SQLite all the
    work is in the side's process; on PostgreSQL the server's share is not in them)."""
    results = {"tactful": 0, "plain": 0}
    order = ["tactful", "plain"]
    for i in range(chunks):
        for side in order if i % 2 == 0 else order[::-1]:
            wall, cpu, result = sides.ask(side, op, i)
            r[f"{op} {side}"] = r.get(f"{op} {side}", 0.0) + wall
            r[f"{op} {side} cpu"] = r.get(f"{op} {side} cpu", 0.0) + cpu
            if isinstance(result, int):
                results[side] += result
    return results


def run(url: str, plain_url: str, home: Path, n_users: int, n_events: int, label: str) -> None:
    sides = Sides({"tactful": url, "plain": plain_url}, home, n_users, n_events)
    r: dict[str, float] = {}
    n_batches = -(-n_users // 1000)
    n_event_batches = -(-n_events // EVENT_BATCH)
    alternate(sides, r, "profiles write", n_batches)
    alternate(sides, r, "analyze", 1)
    alternate(sides, r, "clear caches", 1)
    read = alternate(sides, r, "profiles read", n_batches)
    assert read["tactful"] == read["plain"] == n_users, read
    alternate(sides, r, "events write", n_event_batches)
    alternate(sides, r, "analyze", 1)
    alternate(sides, r, "clear caches", 1)
    counts = alternate(sides, r, "events read", -(-n_users // 5000))
    assert counts["tactful"] == counts["plain"] == n_events, counts
    wall, cpu, rewrapped = sides.ask("tactful", "rotate")
    assert rewrapped == n_users
    r["rotate tactful"], r["rotate tactful cpu"] = wall, cpu
    alternate(sides, r, "big cache", 1)
    # Not a headline figure: events write again (into the same tables, both sides), with the
    # DEK cache sized to the active users.
    alternate(sides, r, "events write big cache", n_event_batches)
    sides.close()

    print(f"\n## {label}: {n_users:,} profiles, {n_events:,} events; load {os.getloadavg()}")
    print(
        f"{'operation':<16}{'tactful s':>10}{'plain s':>9}{'ratio':>7}"
        f"{'tactful cpu':>13}{'plain cpu':>11}{'ratio':>7}{'tactful/s':>11}"
    )
    for op, count in (
        ("profiles write", n_users),
        ("profiles read", n_users),
        ("events write", n_events),
        ("events read", n_events),
    ):
        t, p = r[f"{op} tactful"], r[f"{op} plain"]
        tc, pc = r[f"{op} tactful cpu"], r[f"{op} plain cpu"]
        print(
            f"{op:<16}{t:>10.2f}{p:>9.2f}{t / p:>6.2f}x"
            f"{tc:>13.2f}{pc:>11.2f}{tc / pc:>6.2f}x{count / t:>11,.0f}"
        )
    op = "events write big cache"
    t, p = r[f"{op} tactful"], r[f"{op} plain"]
    tc, pc = r[f"{op} tactful cpu"], r[f"{op} plain cpu"]
    print(
        f"{'events write*':<16}{t:>10.2f}{p:>9.2f}{t / p:>6.2f}x"
        f"{tc:>13.2f}{pc:>11.2f}{tc / pc:>6.2f}x{n_events / t:>11,.0f}"
    )
    rot = r["rotate tactful"]
    print(
        f"{'rewrap DEKs':<16}{rot:>10.2f}{'-':>9}{'-':>7}{r['rotate tactful cpu']:>13.2f}"
        f"{'-':>11}{'-':>7}{n_users / rot:>11,.0f}"
    )
    print(f"* not at the default: dek_cache={n_users:,} (the DEK cache sized to the active users)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100k profiles, 1M events")
    parser.add_argument("--pg", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--pg-only", action="store_true", help="run on PostgreSQL only")
    args = parser.parse_args()
    n_users = max(1000, int(100_000 * args.scale))
    n_events = max(10_000, int(1_000_000 * args.scale))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not args.pg_only:
            run(
                f"sqlite:///{home / 'tactful.db'}",
                f"sqlite:///{home / 'plain.db'}",
                home,
                n_users,
                n_events,
                "SQLite",
            )
        if args.pg or args.pg_only:
            pg = os.environ["TACTFUL_TEST_POSTGRES_URL"]
            pg_run(pg, home / "pg", n_users, n_events)


def pg_run(pg: str, home: Path, n_users: int, n_events: int) -> None:
    import psycopg

    schemas = ["bt_" + uuid.uuid4().hex[:8], "bp_" + uuid.uuid4().hex[:8]]
    with psycopg.connect(pg, autocommit=True) as conn:
        for s in schemas:
            conn.execute(f'CREATE SCHEMA "{s}"')
    try:
        url = f"{pg}?options=-csearch_path%3D{schemas[0]}"
        plain_url = "postgresql+psycopg://" + pg.split("://", 1)[1]
        plain_url += f"?options=-csearch_path%3D{schemas[1]}"
        run(url, plain_url, home, n_users, n_events, "PostgreSQL")
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            for s in schemas:
                conn.execute(f'DROP SCHEMA "{s}" CASCADE')


if __name__ == "__main__":
    main()
