"""Benchmark: the compliance audit report over 100,000 users, 1,000,000 decisions and 10,000
requests, on SQLite and PostgreSQL, against a naive baseline measured in the same run.

The store is seeded directly with Core bulk inserts (a valid audit hash chain included), not
through the API. Each measurement runs in a fresh child process, so its peak RSS
(`resource.getrusage`) is its own. The baseline is the load-everything version of the same
aggregation: every decision record read through `AuditLog.records`, JSON-decoded and counted
in Python, every consent record and request loaded into lists (what the skeleton's report did).

    python bench/bench_report.py                       # SQLite, and PostgreSQL if
    TACTFUL_TEST_POSTGRES_URL=postgresql://127.0.0.1:5432/test python bench/bench_report.py
    python bench/bench_report.py --users 10000 --decisions 100000 --requests 1000   # quicker
    python bench/bench_report.py --keep /tmp/rep   # seed once into /tmp/rep, reuse it next time
    python bench/bench_report.py --keep /tmp/rep --drop   # delete what --keep made (PG schema)

The seeded chain carries a signed checkpoint every 100 entries (as tactful writes them), so the
report verifies the chain and the 10,000 checkpoint signatures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert

from tactful import Tactful
from tactful.audit import (
    CHECKPOINT_EVERY,
    GENESIS,
    canonical,
    checkpoint_message,
    entry_hash,
)
from tactful.store import checkpoint_mac
from tactful.store.tables import (
    AuditCheckpoint,
    AuditEntry,
    ConsentRecord,
    RightsRequest,
    Subject,
    table_of,
)

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
BATCH = 20_000
DECISION_KINDS = [
    # (weight, purpose, outcome, reasons, categories_used)
    (
        55,
        "personalization",
        "personalized",
        ["personalization-consented"],
        ["user.behavior.interaction"],
    ),
    (
        10,
        "personalization",
        "personalized",
        ["personalization-consented"],
        ["user.behavior.interaction", "user.preference.genres"],
    ),
    (20, "personalization", "non_personalized", ["personalization-no-consent"], []),
    (
        5,
        "personalization",
        "non_personalized",
        ["personalization-no-consent", "personalization-unknown-user"],
        [],
    ),
    (4, "personalization", "non_personalized", ["personalization-switched-off"], []),
    (3, "personalization", "denied", ["restricted-deny"], []),
    (3, "marketing.email", "denied", ["default-deny"], []),
]


def _rows_in_batches(rows: object, size: int = BATCH) -> object:
    batch: list[dict[str, object]] = []
    for row in rows:  # type: ignore[attr-defined]
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(url: str, home: Path, users: int, decisions: int, requests: int) -> None:
    """Create the store through the API (tables, keys), then bulk-insert the facts."""
    with Tactful.open(
        db_url=url,
        key_file=home / "master.key",
        policies=POLICIES,
        keystore_url=f"sqlite:///{home / 'keys.db'}",
    ) as tf:
        audit_key = tf._store.subjects.keys.audit_key
    rng = random.Random(9)
    t0 = datetime.now(UTC)
    start = t0 - timedelta(days=90)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    subject, consent = table_of(Subject), table_of(ConsentRecord)
    checkpoints: list[dict[str, object]] = []
    audit, req = table_of(AuditEntry), table_of(RightsRequest)
    aliases = [uuid.uuid4().hex[:16] for _ in range(users)]
    with engine.begin() as conn:
        for batch in _rows_in_batches(
            {
                "id": i + 1,
                "ref": uuid.uuid4().hex,
                "status": "active",
                "alias": a,
                "jurisdiction": "DE",
                "created_at": start,
            }
            for i, a in enumerate(aliases)
        ):
            conn.execute(insert(subject), batch)

        def consent_rows() -> object:
            for sid in range(1, users + 1):
                at = start + timedelta(seconds=rng.randrange(80 * 86400))
                if rng.random() < 0.7:
                    yield _consent(sid, "personalization", "given", at)
                    if rng.random() < 0.15:
                        later = at + timedelta(days=rng.randrange(1, 9))
                        yield _consent(sid, "personalization", "withdrawn", later)
                if rng.random() < 0.3:
                    yield _consent(sid, "analytics.aggregate", "given", at)

        for batch in _rows_in_batches(consent_rows()):
            conn.execute(insert(consent), batch)

        def request_rows() -> object:
            for _ in range(requests):
                got = start + timedelta(seconds=rng.randrange(88 * 86400))
                done = got + timedelta(days=rng.uniform(0.1, 40)) if rng.random() < 0.9 else None
                yield {
                    "id": uuid.uuid4().hex,
                    "kind": rng.choice(["access", "erasure"]),
                    "alias": rng.choice(aliases),
                    "status": "completed" if done and done < t0 else "open",
                    "received_at": got,
                    "due_at": got + timedelta(days=30),
                    "completed_at": done if done and done < t0 else None,
                }

        for batch in _rows_in_batches(request_rows()):
            conn.execute(insert(req), batch)

        weights = [k[0] for k in DECISION_KINDS]
        step = timedelta(seconds=90 * 86400 / max(decisions, 1))

        def audit_rows() -> object:
            prev = GENESIS
            for seq in range(1, decisions + 1):
                _, purpose, outcome, reasons, cats = rng.choices(DECISION_KINDS, weights)[0]
                payload = canonical(
                    {
                        "decision_id": uuid.uuid4().hex,
                        "purpose": purpose,
                        "outcome": outcome,
                        "reasons": reasons,
                        "categories_allowed": cats,
                        "categories_used": cats,
                        "excluded_item_categories": [],
                        "policy_version": "2026.11.1",
                        "policy_hash": "0" * 64,
                        "recommender": "itemitem",
                        "items": 10,
                    }
                )
                ts = start + step * seq
                alias = aliases[rng.randrange(users)]
                digest = entry_hash(seq, ts, "decision", alias, payload, prev)
                yield {
                    "seq": seq,
                    "ts": ts,
                    "kind": "decision",
                    "alias": alias,
                    "payload": payload,
                    "prev_hash": prev,
                    "hash": digest,
                }
                prev = digest
                if seq % CHECKPOINT_EVERY == 0:
                    mac = checkpoint_mac(audit_key, checkpoint_message(seq, digest, ts))
                    checkpoints.append({"seq": seq, "ts": ts, "head_hash": digest, "mac": mac})

        for batch in _rows_in_batches(audit_rows()):
            conn.execute(insert(audit), batch)
        for batch in _rows_in_batches(checkpoints):
            conn.execute(insert(table_of(AuditCheckpoint)), batch)
    engine.dispose()


def _consent(sid: int, purpose: str, state: str, at: datetime) -> dict[str, object]:
    return {
        "subject_id": sid,
        "purpose": purpose,
        "state": state,
        "lawful_basis": "consent",
        "notice_version": "2026-01",
        "method": "api",
        "recorded_at": at,
        "expires_at": at + timedelta(days=395) if state == "given" else None,
    }


def measure(mode: str, url: str, home: Path) -> dict[str, object]:
    """Run one measurement in this (child) process; returns seconds, peak RSS and a digest."""
    tf = Tactful.open(
        db_url=url,
        key_file=home / "master.key",
        policies=POLICIES,
        keystore_url=f"sqlite:///{home / 'keys.db'}",
    )
    t, cpu = time.perf_counter(), time.process_time()
    if mode == "tactful":
        report = tf.report()
        d = report.report.decisions
        digest: dict[str, object] = {
            "by_purpose": d.by_purpose,
            "chain_ok": report.report.integrity.audit_chain_ok,
            "html_bytes": len(report.to_html()),
        }
    else:
        digest = naive(tf)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Where the time goes: the chain verification (in both) measured once more on its own.
    with tf._store.begin() as conn:
        v = time.perf_counter()
        tf._audit.verify(conn)
        digest["verify_seconds"] = time.perf_counter() - v
    tf.close()
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rss_mib": rss_mib, "digest": digest}


def naive(tf: Tactful) -> dict[str, object]:
    """Baseline: load everything, aggregate in Python (decisions, consent, requests, chain)."""
    audit = tf._audit
    with tf._store.begin() as conn:
        records = list(audit.records(conn, kind="decision"))
        by_purpose: dict[str, Counter[str]] = {}
        reasons: Counter[str] = Counter()
        cats: Counter[str] = Counter()
        days: Counter[tuple[str, str]] = Counter()
        for r in records:
            p = r.payload
            by_purpose.setdefault(p["purpose"], Counter())[p["outcome"]] += 1
            if p["outcome"] != "personalized":
                reasons.update(p["reasons"])
            if p["outcome"] != "denied":
                cats.update(p["categories_used"])
            days[(r.ts.date().isoformat(), p["outcome"])] += 1
        consent = list(conn.execute(table_of(ConsentRecord).select()))
        requests = list(conn.execute(table_of(RightsRequest).select()))
        ok = audit.verify(conn).ok
    return {
        "by_purpose": {k: dict(sorted(v.items())) for k, v in sorted(by_purpose.items())},
        "chain_ok": ok,
        "consent_rows": len(consent),
        "request_rows": len(requests),
    }


def child(mode: str, url: str, home: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url, "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def pg_schema(base: str) -> tuple[str, str]:
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run(name: str, url: str, home: Path, args: argparse.Namespace, *, seeded: bool = False) -> None:
    if not seeded:
        t = time.perf_counter()
        seed(url, home, args.users, args.decisions, args.requests)
        print(
            f"[{name}] seeded {args.users:,} users, {args.decisions:,} decisions, "
            f"{args.requests:,} requests in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        if args.keep:
            (home / "seeded").write_text(url, encoding="utf-8")
    ours = child("tactful", url, home)
    if args.skip_baseline:
        r = ours
        d0: dict[str, float] = r["digest"]  # type: ignore[assignment]
        assert d0["chain_ok"], "the seeded chain must verify"
        print(
            f"[{name}] tactful report: {r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU, "
            f"peak RSS {r['rss_mib']:.0f} MiB; chain verification alone "
            f"{d0['verify_seconds']:.2f} s",
            flush=True,
        )
        return
    base = child("naive", url, home)
    assert ours["digest"]["by_purpose"] == base["digest"]["by_purpose"]  # type: ignore[index]
    assert ours["digest"]["chain_ok"] and base["digest"]["chain_ok"]  # type: ignore[index]
    for label, r in (("tactful report", ours), ("naive baseline", base)):
        d: dict[str, float] = r["digest"]  # type: ignore[assignment]
        print(
            f"[{name}] {label}: {r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU, peak RSS "
            f"{r['rss_mib']:.0f} MiB; chain verification alone {d['verify_seconds']:.2f} s"
        )
    print(
        f"[{name}] ratio baseline/tactful: time {base['seconds'] / ours['seconds']:.2f}x, "  # type: ignore[operator]
        f"memory {base['rss_mib'] / ours['rss_mib']:.2f}x",  # type: ignore[operator]
        flush=True,
    )


def write_html(out: Path, args: argparse.Namespace) -> None:
    """Seed a SQLite store, rotate its keys, run retention, write its HTML report (the demo)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = f"sqlite:///{home / 'tactful.db'}"
        seed(url, home, args.users, args.decisions, args.requests)
        with Tactful.open(
            db_url=url,
            key_file=home / "master.key",
            policies=POLICIES,
            keystore_url=f"sqlite:///{home / 'keys.db'}",
        ) as tf:
            tf.catalog.upsert([{"item_id": "a", "title": "Alpha", "categories": ["action"]}])
            for user in ("demo-1", "demo-2", "demo-3"):
                tf.events.record(user, "a")
            tf.keys.rotate()
            tf.retention.run()
            out.write_text(tf.report().to_html(), encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    ap.add_argument("--child", choices=["tactful", "naive"])
    ap.add_argument("--url")
    ap.add_argument("--home")
    ap.add_argument("--html", help="Only seed SQLite at the given scale and write its HTML report.")
    ap.add_argument("--keep", help="Seed into this directory (and a kept PG schema), reuse it.")
    ap.add_argument("--drop", action="store_true", help="With --keep: drop what it made.")
    ap.add_argument("--skip-baseline", action="store_true", help="Measure tactful only.")
    args = ap.parse_args()
    if args.html:
        write_html(Path(args.html), args)
        return
    if args.child:
        print(json.dumps(measure(args.child, args.url, Path(args.home))))
        return
    if args.keep:
        kept(Path(args.keep), args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "postgres":
            home = Path(tmp) / "sqlite"
            home.mkdir()
            run("sqlite", f"sqlite:///{home / 'tactful.db'}", home, args)
        pg = os.environ.get("TACTFUL_TEST_POSTGRES_URL")
        if args.only != "sqlite" and pg:
            home = Path(tmp) / "pg"
            home.mkdir()
            url, schema = pg_schema(pg)
            try:
                run("postgresql", url, home, args)
            finally:
                drop_schema(pg, schema)


def kept(root: Path, args: argparse.Namespace) -> None:
    """Seed into `root` once (SQLite file, PG schema named in root/pg/schema), then measure."""
    pg = os.environ.get("TACTFUL_TEST_POSTGRES_URL")
    if args.drop:
        marker = root / "pg" / "schema"
        if pg and marker.exists():
            drop_schema(pg, marker.read_text(encoding="utf-8"))
            marker.unlink()
        print(f"dropped the kept PostgreSQL schema; remove {root} yourself")
        return
    if args.only != "postgres":
        home = root / "sqlite"
        home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{home / 'tactful.db'}"
        run("sqlite", url, home, args, seeded=(home / "seeded").exists())
    if args.only != "sqlite" and pg:
        home = root / "pg"
        home.mkdir(parents=True, exist_ok=True)
        if (home / "seeded").exists():
            run(
                "postgresql", (home / "seeded").read_text(encoding="utf-8"), home, args, seeded=True
            )
        else:
            url, schema = pg_schema(pg)
            (home / "schema").write_text(schema, encoding="utf-8")
            run("postgresql", url, home, args)


if __name__ == "__main__":
    main()
