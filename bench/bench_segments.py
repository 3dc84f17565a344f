"""Segments benchmark: what evaluating segments in the gate costs a recommendation.

1. `Tactful.recommend` on a store whose pack declares the default three segments against the
   same store data and pack without segments.yaml (the baseline), calls interleaved in one
   process: the whole per-call price (evaluation, the membership read and decryption, the
   write when the set changes, the longer audit record).
2. `CompiledSegments.evaluate` alone on a minimized view of 50 events, against building that
   MinimizedView (the floor any per-call step pays).

Run: /work/venv/bin/python bench/bench_segments.py [users] [calls]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tactful import Tactful
from tactful.policy import load_pack
from tactful.recommend import Interaction, MinimizedView
from tactful.segments import CompiledSegments
from tactful.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CATALOG = [
    {"item_id": f"i{i}", "title": f"Item {i}", "categories": ["sports" if i % 4 == 0 else "drama"]}
    for i in range(400)
]


def seed(tf: Tactful, users: int) -> None:
    tf.catalog.upsert(CATALOG)
    start = datetime.now(UTC) - timedelta(days=60)
    events = [
        (f"u{u}", f"i{(u * 7 + j * 13) % 400}", "view", start + timedelta(days=j * 60 / 50))
        for u in range(users)
        for j in range(50)
    ]
    tf.events.record_batch(events)
    tf.profiles.put_many({f"u{u}": {"country": ["DE", "AT", "FR"][u % 3]} for u in range(users)})
    for u in range(users):
        tf.consent.grant(f"u{u}", ["personalization"])
    tf.train()


def per_call_ms(tf: Tactful, users: int, calls: int) -> list[float]:
    out = []
    for n in range(calls):
        start = time.perf_counter()
        tf.recommend(f"u{n % users}", k=10)
        out.append((time.perf_counter() - start) * 1000)
    return out


def median_us(fn: Callable[[], object], n: int = 20000) -> float:
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    work = Path(tempfile.mkdtemp())
    plain = work / "plain-pack"
    shutil.copytree(REPO / "policies", plain)
    (plain / "segments.yaml").unlink()
    stores = {
        "with segments": Tactful.open(home=work / "a", policies=REPO / "policies"),
        "without": Tactful.open(home=work / "b", policies=plain),
    }
    for tf in stores.values():
        seed(tf, users)
        per_call_ms(tf, users, users)  # warm up: first evaluation writes each membership
    samples: dict[str, list[float]] = {k: [] for k in stores}
    ratios = []
    for _ in range(7):  # interleaved rounds, so both sides see the same machine load
        round_med = {}
        for name, tf in stores.items():
            got = per_call_ms(tf, users, calls // 7)
            samples[name] += got
            round_med[name] = statistics.median(got)
        ratios.append(round_med["with segments"] / round_med["without"])
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"recommend, {users} users x 50 events, {calls} calls each (median per call):")
    for k, v in med.items():
        print(f"  {k:14s} {v:7.3f} ms")
    print(f"  ratio          {med['with segments'] / med['without']:.3f}x")
    print(f"  per-round ratios {', '.join(f'{r:.2f}' for r in sorted(ratios))}")
    for tf in stores.values():
        tf.close()

    pack = load_pack(REPO / "policies")
    compiled = CompiledSegments(pack.segments, pack.schema)
    now = time.time()
    history = tuple(
        Interaction(item=f"i{(j * 13) % 400}", kind="view", ts=now - j * 86400 * 60 / 50)
        for j in range(50)
    )
    sports = frozenset(c["item_id"] for c in CATALOG if c["categories"] == ["sports"])
    fields = {"country": "DE"}
    view = MinimizedView(fields=fields, history=history)
    settings = Settings().model_dump()
    allowed = frozenset({"user.behavior", "user.location.country"})

    def evaluate() -> object:
        return compiled.evaluate(
            "personalization", allowed, view, settings, lambda _c: sports, now=now
        )

    def build_view() -> object:
        return MinimizedView(fields=fields, history=history, context={}, categories_read=allowed)

    ev, bv = median_us(evaluate), median_us(build_view)
    print("segments.evaluate, 3 segments, 50 events (median of 7 rounds):")
    print(f"  evaluate       {ev:7.2f} us")
    print(f"  MinimizedView  {bv:7.2f} us (baseline)")
    print(f"  ratio          {ev / bv:.1f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
