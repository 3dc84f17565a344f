"""Differential privacy benchmarks (issue 7): speed against Polars, utility on MovieLens 100K.

1. DP group-by count and mean over 1,000,000 event rows (user-level: at most
   `max_contributions` rows per user, values clamped) against the same non-private Polars
   group-by, both measured here; the ratio is printed. tactful's side is the pipeline a release
   runs after decryption: keep the public keys, bound rows per user, count and sum per key,
   add OpenDP noise, compute the intervals.
2. Utility: DP top-20 popularity on ML-100K at epsilon 0.5, 1 and 2 (each user counts once per
   item, at most `max_contributions` items per user) against the exact popularity (all
   ratings): popularity-mass error (1 - exact popularity of the DP top-20 / that of the true
   top-20), relative error of the released noisy counts, overlap with the true top-20, and
   NDCG@10 of the DP ranking with the exact counts as gains.

Run: /work/venv/bin/python bench/bench_dp.py
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from tactful.dp import engine
from tactful.dp.engine import Categorical, Frame
from tactful.dp.queries import distinct, grouped, only_keys, top

ROWS = 1_000_000
USERS = 20_000
GROUPS = 20
REPEATS = 7


def _timed(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed() -> None:
    rng = np.random.default_rng(7)
    users = np.sort(rng.integers(0, USERS, ROWS))  # rows grouped per user, as the store reads
    for n_keys in (GROUPS, 1682):
        keys = [f"k{i}" for i in range(n_keys)]
        codes = rng.integers(0, n_keys, ROWS).astype(np.int32)
        values = rng.gamma(2.0, 30.0, ROWS)  # e.g. minutes watched
        df = pl.DataFrame({"user": users, "key": np.array(keys)[codes], "value": values})
        frame = Frame(users, {"key": Categorical(codes, tuple(keys)), "value": values})

        def baseline(df: pl.DataFrame = df) -> object:
            return df.group_by("key").agg(pl.len(), pl.col("value").mean())

        def private(frame: Frame = frame, keys: list[str] = keys) -> object:
            f = only_keys(frame, "key", keys)
            f = f.take(engine.bound_rows(f.users, 64))
            return grouped(f, "key", keys, "value", (0.0, 240.0), 64, 1.0)

        baseline()
        private()
        t_pl, t_dp = _timed(baseline), _timed(private)
        print(
            f"group-by count+mean, {ROWS:,} rows, {n_keys} groups: polars {t_pl * 1e3:.1f} ms, "
            f"tactful DP {t_dp * 1e3:.1f} ms, ratio {t_dp / t_pl:.2f}x"
        )


def _ndcg(ranked: list[str], exact: Counter[str], k: int = 10) -> float:
    gains = [exact[i] for i in ranked[:k]]
    ideal = sorted(exact.values(), reverse=True)[:k]
    dcg = sum(g / np.log2(r + 2) for r, g in enumerate(gains))
    return float(dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal)))


def utility(trials: int = 20) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dp_movielens import ratings

    rows = ratings()
    items = sorted({i for _, i, _, _ in rows}, key=int)  # the catalog: public
    by_user = sorted(rows, key=lambda r: int(r[0]))
    exact = Counter(i for _, i, _, _ in {(u, i, 0, 0) for u, i, _, _ in rows})
    true_top = [i for i, _ in exact.most_common(20)]
    users = np.array([int(u) for u, _, _, _ in by_user], dtype=np.int64)
    frame = Frame(users, {"item": Categorical.encode([i for _, i, _, _ in by_user])})
    prepared = distinct(only_keys(frame, "item", items), "item")
    for m in (100, 1000):
        for eps in (0.5, 1.0, 2.0):
            mass, errs, overlaps, ndcgs = [], [], [], []
            for _ in range(trials):
                f = prepared.take(engine.bound_rows(prepared.users, m))
                out = top(f, "item", 20, items, m, eps).by_key
                mass.append(1 - sum(exact[i] for i in out) / sum(exact[i] for i in true_top))
                errs += [abs(e.value - exact[i]) / exact[i] for i, e in out.items()]
                overlaps.append(len(set(out) & set(true_top)) / 20)
                ndcgs.append(_ndcg(list(out), exact))
            print(
                f"ML-100K DP top-20, max_contributions={m}, epsilon={eps}: "
                f"popularity-mass error {statistics.mean(mass):.3f}, "
                f"count error {statistics.mean(errs):.3f}, "
                f"top-20 overlap {statistics.mean(overlaps):.2f}, "
                f"NDCG@10 {statistics.mean(ndcgs):.3f}  (mean of {trials})"
            )


if __name__ == "__main__":
    speed()
    utility()
