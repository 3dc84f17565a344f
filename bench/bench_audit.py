"""Benchmark: a decision record appended in a transaction of its own vs deferred (group commit).

The baseline is the old path of every decision record: `AuditLog.append` in one transaction
per record (chain head under the chain's lock, canonical JSON, SHA-256, INSERT, commit). The
project's path is `AuditLog.defer` (content fixed, queued) with the background thread writing
batches (one executemany per batch, periodic checkpoints signed as by append). A third line is
`defer` with batched=False (TACTFUL_AUDIT=sync), which writes before returning.

Chunks of CHUNK records run in turn (append, deferred, sync), so load changes on a shared
machine hit each path alike. Per path: the median and p99 microseconds on the caller's path
(wall), and records/s for the whole chunk until the records are committed (a deferred chunk
ends when `flush()` has written what the thread had not yet). The payload is a decision record
as the gate writes it (17 fields). After the run, the chain verifies and holds every record.

    /work/venv/bin/python bench/bench_audit.py sqlite 5000
    /work/venv/bin/python bench/bench_audit.py postgresql://127.0.0.1:5432/test 5000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tactful import Tactful
from tactful.audit import AuditLog

REPO = Path(__file__).resolve().parents[1]
CHUNK = 500

PAYLOAD: dict[str, object] = {
    "decision_id": "",
    "purpose": "personalization",
    "outcome": "personalized",
    "reasons": ["personalize-with-consent"],
    "categories_allowed": ["behavioral", "preferences", "profile.basic"],
    "categories_used": ["behavioral"],
    "excluded_item_categories": [],
    "context_fields": ["channel", "device"],
    "diversity_floor": 0.0,
    "dp_aggregate": False,
    "explanation": "Personalized from your activity, with your consent.",
    "signals": ["item_item"],
    "policy_version": "1.4.0",
    "policy_hash": "9f2c" * 16,
    "recommender": "hybrid",
    "items": 10,
    "segments": [],
}


def _payload() -> dict[str, object]:
    return {**PAYLOAD, "decision_id": uuid.uuid4().hex}


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Way:
    """One way of writing decision records: its caller-path samples and committed totals."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.caller: list[float] = []
        self.records = 0
        self.seconds = 0.0
        self.cpu = 0.0


def run(db: str, tmp: str, records: int) -> None:
    tf = Tactful.open(
        db_url=db, home=tmp, key_file=Path(tmp) / "master.key", policies=REPO / "policies"
    )
    try:
        _bench(tf, records)
    finally:
        tf.close()


def _bench(tf: Tactful, records: int) -> None:
    store = tf._store
    key = store.subjects.keys.audit_key
    direct = AuditLog(key, begin=store.begin)
    batched = AuditLog(key, begin=store.begin)  # max_delay 0.2 s, max_pending 1,000
    sync = AuditLog(key, begin=store.begin, batched=False)
    alias = uuid.uuid4().hex

    def append_one() -> None:
        with store.begin() as conn:
            direct.append(conn, "decision", _payload(), alias=alias)

    def defer_one() -> None:
        batched.defer("decision", _payload(), alias=alias)

    def sync_one() -> None:
        sync.defer("decision", _payload(), alias=alias)

    paths = [Way("append, one transaction each (old path)"), Way("defer + background flush")]
    paths.append(Way("defer, TACTFUL_AUDIT=sync"))
    calls: list[Callable[[], None]] = [append_one, defer_one, sync_one]
    for _ in range(20):  # warm-up: connections, statement caches
        for fn in calls:
            fn()
    batched.flush()
    done = 0
    while done < records:
        n = min(CHUNK, records - done)
        for path, fn in zip(paths, calls, strict=True):
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                t = time.perf_counter_ns()
                fn()
                path.caller.append((time.perf_counter_ns() - t) / 1000)
            if fn is defer_one:
                batched.flush()  # the chunk counts once its records are committed
            path.seconds += time.perf_counter() - t0
            path.cpu += time.process_time() - c0
            path.records += n
        done += n

    print(f"{store.dialect}: {records} records per path, chunks of {CHUNK}, in turn")
    print(f"{'path':42} {'median µs':>10} {'p99 µs':>10} {'records/s':>11} {'CPU s':>7}")
    for p in paths:
        print(
            f"{p.name:42} {statistics.median(p.caller):10.1f} {_pct(p.caller, 0.99):10.1f} "
            f"{p.records / p.seconds:11,.0f} {p.cpu:7.2f}"
        )
    old, new = paths[0], paths[1]
    caller = statistics.median(old.caller) / statistics.median(new.caller)
    rate = (new.records / new.seconds) / (old.records / old.seconds)
    print(f"ratio append/defer: caller-path median {caller:.1f}x, records/s {rate:.1f}x")
    verdict = tf.audit.verify()
    expected = 3 * (records + 20)
    assert verdict.ok and verdict.entries == expected, (verdict.summary(), expected)
    print(f"chain: {verdict.summary()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="sqlite, or a postgresql:// URL (a fresh schema is made there)")
    ap.add_argument("records", type=int, nargs="?", default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.db.startswith("postgresql"):
            run(f"sqlite:///{tmp}/tactful.db", tmp, args.records)
            return
        import psycopg

        schema = "bench_audit_" + uuid.uuid4().hex[:12]
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in args.db else "?"
        try:
            run(f"{args.db}{sep}options=-csearch_path%3D{schema}", tmp, args.records)
        finally:
            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
