"""Consent benchmarks: the training-set fold and the TC string decoder, each with a baseline.

1. `ConsentLedger.in_force` (window function: latest record by time, then id, per subject)
   against the walking skeleton's query (max(id) per subject, which is wrong for backdated
   records) on the same SQLite store: what correctness costs.
2. `decode_tc_string` against plain base64url decoding of the same string (the floor any
   decoder pays).

Run: /work/venv/bin/python bench/bench_consent.py [subjects]
"""

from __future__ import annotations

import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from tactful import Tactful
from tactful.consent import decode_tc_string
from tactful.store.tables import ConsentRecord, table_of

REPO = Path(__file__).resolve().parents[1]
_consent = table_of(ConsentRecord)


def median_ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def seed(tf: Tactful, subjects: int) -> None:
    base = datetime.now(UTC) - timedelta(days=30)
    with tf._store.begin() as conn:
        refs = tf._store.subjects.create_many(conn, {f"u{i}": None for i in range(subjects)})
        rows = []
        for i, ref in enumerate(refs.values()):
            for j in range(4):  # grant, withdraw, grant, (every 3rd) withdraw
                state = "given" if j % 2 == 0 else "withdrawn"
                if j == 3 and i % 3:
                    continue
                rows.append(
                    {
                        "subject_id": ref.id,
                        "purpose": "personalization",
                        "state": state,
                        "lawful_basis": "consent",
                        "method": "api",
                        "recorded_at": base + timedelta(days=j, seconds=i),
                        "expires_at": base + timedelta(days=395),
                    }
                )
        conn.execute(insert(_consent), rows)


def skeleton_in_force(tf: Tactful) -> list[int]:
    moment = datetime.now(UTC)
    with tf._store.begin() as conn:
        last = (
            select(_consent.c.subject_id, func.max(_consent.c.id).label("last_id"))
            .where((_consent.c.purpose == "personalization") & (_consent.c.recorded_at <= moment))
            .group_by(_consent.c.subject_id)
            .subquery()
        )
        rows = conn.execute(
            select(_consent.c.subject_id)
            .join(last, _consent.c.id == last.c.last_id)
            .where(
                (_consent.c.state == "given")
                & ((_consent.c.expires_at.is_(None)) | (_consent.c.expires_at > moment))
            )
        )
        return sorted(int(r[0]) for r in rows)


def tactful_in_force(tf: Tactful) -> list[int]:
    with tf._store.begin() as conn:
        return tf._ledger.in_force(conn, "personalization").subject_ids


def main() -> None:
    subjects = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory() as home:
        tf = Tactful.open(home=home, policies=REPO / "policies")
        seed(tf, subjects)
        assert tactful_in_force(tf) == skeleton_in_force(tf), "same answer without backdating"
        base = median_ms(lambda: skeleton_in_force(tf))
        ours = median_ms(lambda: tactful_in_force(tf))
        print(
            f"in_force over {subjects} subjects: skeleton max(id) {base:.1f} ms, "
            f"tactful window fold {ours:.1f} ms, ratio {ours / base:.2f}x"
        )
        tf.close()
    vectors = (REPO / "tests" / "vectors" / "tcf.json").read_text()
    import json

    tc = json.loads(vectors)["valid"][0]["tc_string"]
    n = 20000

    def floor() -> None:
        for _ in range(n):
            base64.urlsafe_b64decode(tc + "=" * (-len(tc) % 4))

    def decode() -> None:
        for _ in range(n):
            decode_tc_string(tc)

    b, d = median_ms(floor), median_ms(decode)
    print(
        f"TC string ({len(tc)} chars): base64 only {b * 1000 / n:.2f} us, "
        f"decode_tc_string {d * 1000 / n:.2f} us, ratio {d / b:.1f}x"
    )


if __name__ == "__main__":
    main()
