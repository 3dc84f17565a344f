"""Benchmark: data subject rights at scale, each against a baseline measured in the same run.

1. Export of one user with N events (10,000 and 100,000): the streaming export
   (`tf.rights.export_to`, keyset-paged events written as they are read) against the naive
   full-load export (`tf.rights.export` builds the whole document, then `json.dumps`). Time,
   and peak Python memory via tracemalloc (in a separate pass: tracing slows the code down).
2. Erasure cost against history size: the erasure request of a user with 10 events and of
   one with 100,000 (neither consented to personalization, so no model unlearning is
   involved). The ratio is the result. Then the batched purge of the shredded rows
   (`tf.rights.purge`), in rows/s; request + purge is what the request cost when it deleted
   the rows itself.
3. Bulk erasure of 10,000 users (5 events each) with `tf.rights.erase_many` (what
   `tactful erase --from-file` runs), against one `tactful erase USER --yes` process per user
   (measured on a few users: it is the way without the bulk command); then their purge.

Seeding uses the store's internal bulk paths (one transaction per batch), not the public API.

    python bench/bench_rights.py                      # SQLite
    TACTFUL_TEST_POSTGRES_URL=postgresql://127.0.0.1:5432/test python bench/bench_rights.py --pg
    python bench/bench_rights.py --events 20000 --users 1000   # quicker
    python bench/bench_rights.py --only erasure --only bulk    # some parts only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tactful import PurgeReport, Tactful

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
ITEMS = [f"item{n}" for n in range(500)]


def seed_events(tf: Tactful, user: str, n: int) -> None:
    """One user with n events (batches of 20,000 per transaction)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    done = 0
    while done < n:
        batch = min(20_000, n - done)
        tf.events.record_many(
            user,
            (
                (ITEMS[(done + i) % len(ITEMS)], "view", start + timedelta(seconds=done + i))
                for i in range(batch)
            ),
        )
        done += batch


def seed_users(tf: Tactful, users: list[str], events_each: int) -> None:
    """Many users with a few events each, 1,000 users per transaction."""
    store = tf._store
    stamp = datetime(2025, 6, 1, tzinfo=UTC)
    for start in range(0, len(users), 1000):
        chunk = users[start : start + 1000]
        with store.begin() as conn:
            refs = store.subjects.create_many(conn, dict.fromkeys(chunk))
            for user in chunk:
                store.events.record_many(
                    conn,
                    refs[user],
                    [(ITEMS[i], "view", stamp + timedelta(seconds=i)) for i in range(events_each)],
                )


CPU: list[float] = []  # process CPU seconds of the last `timed` call


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of fn(); its CPU seconds go to CPU[-1] (less disturbed by other load)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    CPU.append(time.process_time() - c0)
    return wall


def cpu_median(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall and median CPU seconds over `runs` calls."""
    walls = [timed(fn) for _ in range(runs)]
    return statistics.median(walls), statistics.median(CPU[-runs:])


def peak_mib(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def bench_export(tf: Tactful, sizes: list[int], out_dir: Path) -> None:
    print("\n## Export of one user (JSON)")
    print(
        f"{'events':>8} | {'stream s (cpu)':>15} | {'naive s (cpu)':>15} | {'ratio':>6} | "
        f"{'stream MiB':>10} | {'naive MiB':>9} | {'ratio':>6}"
    )
    for n in sizes:
        user = f"export-{n}"
        seed_events(tf, user, n)
        target = out_dir / f"{user}.json"

        def stream(user: str = user, target: Path = target) -> None:
            tf.rights.export_to(user, target)

        def naive(user: str = user, target: Path = target) -> None:
            document = tf.rights.export(user)
            target.write_text(json.dumps(document, indent=2), encoding="utf-8")

        stream()  # warm the key cache and the page cache for both
        t_stream, c_stream = cpu_median(stream, 3)
        t_naive, c_naive = cpu_median(naive, 3)
        m_stream, m_naive = peak_mib(stream), peak_mib(naive)
        print(
            f"{n:>8} | {t_stream:>6.3f} ({c_stream:>6.3f}) | {t_naive:>6.3f} ({c_naive:>6.3f}) | "
            f"{t_naive / t_stream:>5.2f}x | {m_stream:>10.1f} | {m_naive:>9.1f} | "
            f"{m_naive / m_stream:>5.1f}x"
        )
    csv_target = out_dir / "export.zip"
    t_csv = timed(lambda: tf.rights.export_to(f"export-{sizes[-1]}", csv_target, format="csv"))
    print(f"zip of CSV, {sizes[-1]} events: {t_csv:.3f} s, {csv_target.stat().st_size} bytes")


def bench_erasure(tf: Tactful, big: int) -> None:
    print("\n## Erasure cost against history size (no model unlearning)")
    small_users = [f"small-{i}" for i in range(5)]
    for u in small_users:
        seed_events(tf, u, 10)
    seed_events(tf, "big", big)
    tf.recommend("small-0")  # models fit before, so erasure time holds no first fit
    tf.rights.purge()  # nothing of earlier parts waits for the purge
    walls = [timed(lambda u=u: tf.rights.erase(u)) for u in small_users]
    t_small, c_small = statistics.median(walls), statistics.median(CPU[-5:])
    t_big = timed(lambda: tf.rights.erase("big"))
    c_big = CPU[-1]
    print(
        f"erasure request: 10 events: {t_small * 1000:.1f} ms, cpu {c_small * 1000:.1f} ms "
        f"(median of 5) | {big} events: {t_big * 1000:.1f} ms, cpu {c_big * 1000:.1f} ms | "
        f"ratio {t_big / t_small:.2f} (cpu {c_big / c_small:.2f})"
    )
    report: list[PurgeReport] = []
    t_purge = timed(lambda: report.append(tf.rights.purge()))
    rows = report[0].total
    print(
        f"purge of the shredded rows ({report[0].subjects} users, {rows} rows, "
        f"{report[0].batches} transactions of <= 1000): {t_purge:.2f} s = "
        f"{rows / t_purge:.0f} rows/s ({rows / CPU[-1]:.0f} per CPU second) | "
        f"request + purge of {big} events {(t_big + t_purge) * 1000:.0f} ms, "
        f"the cost the request had when it deleted the rows itself"
    )


def bench_bulk(tf: Tactful, n_users: int, cli_users: int, db_url: str, home: Path) -> None:
    print("\n## Bulk erasure")
    users = [f"bulk-{uuid.uuid4().hex[:12]}" for _ in range(n_users + cli_users)]
    seed_users(tf, users, 5)
    bulk, per_process = users[:n_users], users[n_users:]
    t_bulk = timed(lambda: tf.rights.erase_many(bulk))
    rate_bulk, cpu_rate = n_users / t_bulk, n_users / CPU[-1]
    report: list[PurgeReport] = []
    t_purge = timed(lambda: report.append(tf.rights.purge()))
    rows, c_purge = report[0].total, CPU[-1]
    cmd = [
        sys.executable,
        "-m",
        "tactful_cli",
        "--db",
        db_url,
        "--home",
        str(home),
        "--key-file",
        str(home / "master.key"),
        "--policies",
        str(POLICIES),
        "erase",
    ]

    def one_process_each() -> None:
        for u in per_process:
            subprocess.run([*cmd, u, "--yes"], check=True, capture_output=True)

    rate_cli = cli_users / timed(one_process_each)
    print(
        f"erase_many: {n_users} users in {t_bulk:.1f} s = {rate_bulk:.0f} users/s "
        f"({cpu_rate:.0f} per CPU second) | "
        f"one `tactful erase` process per user: {rate_cli:.3f} users/s "
        f"(on {cli_users}) | ratio {rate_bulk / rate_cli:.0f}x"
    )
    print(
        f"purge afterwards: {report[0].subjects} users, {rows} rows in {t_purge:.1f} s = "
        f"{rows / t_purge:.0f} rows/s ({rows / c_purge:.0f} per CPU second), "
        f"{report[0].batches} transactions"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--cli-users", type=int, default=10)
    parser.add_argument(
        "--only",
        choices=["export", "erasure", "bulk"],
        action="append",
        help="run only these parts (repeatable; default all)",
    )
    parser.add_argument(
        "--pg", action="store_true", help="PostgreSQL from TACTFUL_TEST_POSTGRES_URL"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if args.pg:
            import psycopg

            base = os.environ["TACTFUL_TEST_POSTGRES_URL"]
            schema = "bench_" + uuid.uuid4().hex[:10]
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            db_url = f"{base}?options=-csearch_path%3D{schema}"
        else:
            db_url = f"sqlite:///{home / 'bench.db'}"
        print(f"database: {'postgresql' if args.pg else 'sqlite'}; load {os.getloadavg()}")
        try:
            with Tactful.open(db_url=db_url, key_file=home / "master.key", policies=POLICIES) as tf:
                tf.catalog.upsert(
                    {"item_id": i, "title": i, "categories": ["c" + i[-1]]} for i in ITEMS
                )
                parts = args.only or ["export", "erasure", "bulk"]
                if "export" in parts:
                    bench_export(tf, sorted({args.events // 10, args.events}), home)
                if "erasure" in parts:
                    bench_erasure(tf, args.events)
                if "bulk" in parts:
                    bench_bulk(tf, args.users, args.cli_users, db_url, home)
        finally:
            if args.pg:
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
