"""Benchmark: the encrypted store against plain SQLAlchemy tables with the same columns.

Measured in one run, on the same engine settings (tactful's SQLite set-up: WAL, BEGIN
IMMEDIATE, synchronous=NORMAL), with the same columns and foreign keys, and a baseline written
as well as tactful's own bulk paths (executemany, statements built once, timestamps parsed
the same way). Each operation runs chunk by chunk, tactful and plain in turn, so that load
changes on a shared machine hit both; wall and process CPU seconds are printed with ratios.

1. Profiles: N users x 4 fields written in batches of 1,000 users per transaction
   (`tf.profiles.put_many`) vs the same rows in plaintext tables; then every user read back
   one by one (`tf.profiles.get`, one transaction each, data key cache cold) vs a plain select.
2. Events: 10 x N events written in batches of 10,000 per transaction
   (`tf.events.record_batch`) vs plaintext inserts; then all read back for training
   (`Events.bundles`, grouped per user and decrypted) vs a plain ordered select.
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
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
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
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite

from tactful import Tactful
from tactful.store.engine import make_engine, utc

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

    def get(self, user: str) -> dict[str, object]:
        with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
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
    with store.begin() as conn:
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


def events_of(n_users: int, n_events: int) -> Iterator[list[tuple[str, str, str, datetime | None]]]:
    batch: list[tuple[str, str, str, datetime | None]] = []
    for i in range(n_events):
        batch.append(
            (
                f"user{i % n_users}",
                ITEMS[(i * 7) % len(ITEMS)],
                "view",
                START + timedelta(seconds=i),
            )
        )
        if len(batch) == 10_000:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def timed(results: dict[str, float], name: str) -> Iterator[None]:
    """Wall seconds into results[name], this process's CPU seconds into results[name + " cpu"].

    On SQLite all the work is in this process, so the CPU seconds are the figure least
    disturbed by other jobs on a shared machine; on PostgreSQL the server's share is not in
    them (use the wall times there).
    """
    cpu, start = time.process_time(), time.perf_counter()
    yield
    results[name] = results.get(name, 0.0) + time.perf_counter() - start
    results[name + " cpu"] = results.get(name + " cpu", 0.0) + time.process_time() - cpu


def alternate(
    r: dict[str, float],
    op: str,
    chunks: Iterable[Any],
    ours: Callable[[Any], object],
    theirs: Callable[[Any], object],
) -> None:
    """Run `op` chunk by chunk, tactful and plain in turn (tactful first on even chunks), so
    that a change in the machine's load during the run hits both sides alike."""
    for i, chunk in enumerate(chunks):
        sides = [("tactful", ours), ("plain", theirs)]
        for side, fn in sides if i % 2 == 0 else sides[::-1]:
            with timed(r, f"{op} {side}"):
                fn(chunk)


def run(url: str, plain_url: str, home: Path, n_users: int, n_events: int, label: str) -> None:
    tf = Tactful.open(db_url=url, key_file=home / "master.key", policies=POLICIES)
    plain = Plain(make_engine(plain_url))
    users = [f"user{i}" for i in range(n_users)]
    r: dict[str, float] = {}
    batches = [users[i : i + 1000] for i in range(0, n_users, 1000)]
    alternate(
        r,
        "profiles write",
        batches,
        lambda b: tf.profiles.put_many(profiles_of(b)),
        lambda b: plain.put_many(profiles_of(b)),
    )
    tf._store.subjects.clear_cache()
    alternate(
        r,
        "profiles read",
        batches,
        lambda b: [tf.profiles.get(u) for u in b],
        lambda b: [plain.get(u) for u in b],
    )
    alternate(
        r, "events write", events_of(n_users, n_events), tf.events.record_batch, plain.record_batch
    )
    tf._store.subjects.clear_cache()
    # Both stores numbered their subjects 1..n in the same order.
    sids = list(range(1, n_users + 1))
    counts = {"tactful": 0, "plain": 0}

    def ours(chunk: list[int]) -> None:
        counts["tactful"] += tactful_bundles(tf, chunk)

    def theirs(chunk: list[int]) -> None:
        counts["plain"] += plain.bundles(chunk)

    alternate(r, "events read", (sids[i : i + 5000] for i in range(0, n_users, 5000)), ours, theirs)
    assert counts["tactful"] == counts["plain"] == n_events, counts
    with timed(r, "rotate tactful"):
        report = tf.keys.rotate(batch_size=5000)
    assert report.rewrapped == n_users
    tf.close()
    # Not a headline figure: events write again (into the same tables, both sides), with the
    # DEK cache sized to the active users instead of the default 4,096 (see docs/architecture.md
    # on the memory and exposure this costs).
    tf = Tactful.open(
        db_url=url, key_file=home / "master.key", policies=POLICIES, dek_cache=n_users
    )
    alternate(
        r,
        "events write big cache",
        events_of(n_users, n_events),
        tf.events.record_batch,
        plain.record_batch,
    )

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
    tf.close()
    plain.engine.dispose()


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
