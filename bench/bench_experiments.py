"""Experiments: assignment cost and skew, and A/A and A/B tests on MovieLens 100K, in one run.

Run: PYTHONPATH=sdk /work/venv/bin/python bench/bench_experiments.py [--reps 1000] [--no-store]

(a) Assignment. tactful's `Assigner.index` (keyed BLAKE2b state prepared once per experiment,
    copied per call) against two baselines timed in the same run: a plain unkeyed
    `hashlib.blake2b` of the pseudonym (same hash, no key, a new object per call) and the
    naive keyed way, `hmac.new(key, experiment + pseudonym, sha256)` per call. Inputs are real
    pseudonyms (HMAC-SHA256 hex of user ids). Skew: chi-square of 1,000,000 assignments against
    the weights 1:1 and 1:2:7.
(b) MovieLens 100K, leave-last-out as in bench_recommenders.py (each user's last interaction
    is held out; popularity and item-item with the tuned knobs of bench/RESULTS.md are fit on
    the rest). Simulated exposure: each user is assigned by tactful's assigner (a fresh key per
    repetition), is shown the top 10 of their variant's recommender, and converts with
    probability 1/log2(rank + 1) when the held-out item is at `rank` (a position-based click
    model), 0 otherwise; so a variant's expected conversion rate is its offline NDCG@10. The
    results are released by tactful's own mechanism (`estimate`: discrete Laplace through
    OpenDP, epsilon 1, interval from sampling + noise) and, as a baseline in the same run, by
    the same statistics on exact counts (no DP).
    A/A: both variants item-item; the share of repetitions whose interval contains 0 should be
    about 95%. A/B: popularity (control) vs item-item; the predicted difference is the offline
    NDCG@10 difference over all users.
(c) The same A/B once through a real store (SQLite): events, consent, tf.recommend(...,
    experiment=ID) where each variant's blend selects its recommender, conversions recorded
    with tf.experiments.convert, and one tf.experiments.results release at epsilon 1.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import statistics
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recommenders import bundles_of, cpu_model, histories_of, split
from movielens import Rating, load
from tactful.crypto import pseudonym
from tactful.dp import Estimate
from tactful.experiments import Assigner, Experiment, Variant
from tactful.experiments import stats as xstats
from tactful.experiments.core import codes_of, estimate
from tactful.recommend import (
    CatalogItem,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
)

K = 10
EPSILON = 1.0
REPO = Path(__file__).resolve().parents[1]


# -- (a) assignment --------------------------------------------------------------------------


def per_call_us(fn: Callable[[Sequence[str]], None], refs: Sequence[str], repeat: int = 7) -> float:
    """Best-of-`repeat` time of one call in microseconds (the machine is shared)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(refs)
        best = min(best, time.perf_counter() - t0)
    return best / len(refs) * 1e6


def bench_assignment() -> None:
    print("\n## (a) assignment cost and skew")
    pkey, xkey = os.urandom(32), os.urandom(32)
    refs = [pseudonym(pkey, f"user-{i}") for i in range(200_000)]
    assigner = Assigner(xkey, "homepage", ["control", "treatment"], [1, 1])
    bounds = (1 << 63,)

    def ours(rs: Sequence[str]) -> None:
        index = assigner.index
        for r in rs:
            index(r)

    def plain(rs: Sequence[str]) -> None:
        for r in rs:
            bisect_right(
                bounds, int.from_bytes(hashlib.blake2b(r.encode(), digest_size=8).digest(), "big")
            )

    prefix = b"homepage|"

    def naive(rs: Sequence[str]) -> None:
        for r in rs:
            d = hmac.new(xkey, prefix + r.encode(), hashlib.sha256).digest()
            bisect_right(bounds, int.from_bytes(d[:8], "big"))

    t_ours, t_plain, t_naive = (
        per_call_us(ours, refs),
        per_call_us(plain, refs),
        per_call_us(naive, refs),
    )
    print("| assignment of one pseudonym | µs per call | vs plain hashlib |")
    print("|---|---|---|")
    print(
        f"| tactful Assigner.index (keyed BLAKE2b, prepared) | {t_ours:.3f} | "
        f"{t_ours / t_plain:.2f}x |"
    )
    print(f"| plain hashlib.blake2b(pseudonym) per call, unkeyed | {t_plain:.3f} | 1.00x |")
    print(
        f"| naive hmac.new(key, exp+pseudonym, sha256) per call | {t_naive:.3f} | "
        f"{t_naive / t_plain:.2f}x |"
    )
    print(f"goal < 5 µs per call: {'met' if t_ours < 5 else 'NOT met'} ({t_ours:.3f} µs)")

    n = 1_000_000
    big = [pseudonym(pkey, f"u{i}") for i in range(n)]
    for weights in ([1.0, 1.0], [1.0, 2.0, 7.0]):
        a = Assigner(xkey, "skew", [f"v{i}" for i in range(len(weights))], weights)
        counts = np.bincount([a.index(r) for r in big], minlength=len(weights))
        expected = n * np.asarray(weights) / sum(weights)
        p = sps.chisquare(counts, expected).pvalue
        shares = ", ".join(f"{c / n:.4f}" for c in counts)
        print(
            f"chi-square, {n:,} assignments, weights {weights}: shares {shares}; "
            f"p = {p:.3f} ({'no skew' if p > 1e-4 else 'SKEW'} at the 1e-4 threshold)"
        )


# -- (b) simulated experiments on MovieLens 100K --------------------------------------------


def gains(
    model: object, train: dict[str, list[Interaction]], test: dict[str, str], users: Sequence[str]
) -> np.ndarray:
    """Per user: 1/log2(rank+1) of the held-out item in the model's top 10, else 0."""
    out = np.zeros(len(users))
    for n, u in enumerate(users):
        view = MinimizedView(history=tuple(train[u]))
        seen = frozenset(i.item for i in train[u])
        recs = [s.item for s in model.recommend(view, K, seen)]  # type: ignore[attr-defined]
        if test[u] in recs:
            out[n] = 1.0 / np.log2(recs.index(test[u]) + 2)
    return out


def exact(values: Sequence[float]) -> list[Estimate]:
    return [Estimate(float(v), 0.0, float(v), float(v)) for v in values]


def no_dp(exp: Experiment, codes: np.ndarray) -> tuple[float, float, float]:
    """(difference, low, high) of variant 1 vs control from exact counts (the baseline)."""
    n = len(exp.variants)
    counts = exact(np.bincount(codes, minlength=2 * n)[: 2 * n])
    (r0, v0), (r1, v1) = (xstats.rate(counts[n + i], counts[i]) for i in range(2))
    d = xstats.difference("b", "a", r1, v1, r0, v0)
    return d.value, d.low, d.high


def simulate(
    name: str,
    exp: Experiment,
    arm_gains: list[np.ndarray],
    refs: list[str],
    reps: int,
    predicted: float,
    seed: int,
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    names = [v.name for v in exp.variants]
    dp_est, dp_cover, dp_sig, raw_cover, raw_sig, raw_est, widths, raw_widths = (
        [],
        0,
        0,
        0,
        0,
        [],
        [],
        [],
    )
    for _ in range(reps):
        assigner = Assigner(rng.bytes(32), exp.id, names, [v.weight for v in exp.variants])
        arm = np.fromiter((assigner.index(r) for r in refs), dtype=np.int64, count=len(refs))
        p = np.where(arm == 0, arm_gains[0], arm_gains[1])
        click = rng.random(len(refs)) < p
        outcomes = [(names[a], {"click": int(c)}) for a, c in zip(arm, click, strict=True)]
        codes = codes_of(exp, outcomes)
        _, (diff,) = estimate(exp, codes, EPSILON)
        dp_est.append(diff.value)
        widths.append(diff.high - diff.low)
        dp_cover += diff.low <= predicted <= diff.high
        dp_sig += diff.significant
        d, lo, hi = no_dp(exp, codes)
        raw_est.append(d)
        raw_widths.append(hi - lo)
        raw_cover += lo <= predicted <= hi
        raw_sig += lo > 0 or hi < 0
    return {
        "mean": float(np.mean(dp_est)),
        "sd": float(np.std(dp_est)),
        "cover": dp_cover / reps,
        "sig": dp_sig / reps,
        "width": float(np.mean(widths)),
        "raw_mean": float(np.mean(raw_est)),
        "raw_cover": raw_cover / reps,
        "raw_sig": raw_sig / reps,
        "raw_width": float(np.mean(raw_widths)),
    }


def wilson(k: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion k/n."""
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def bench_movielens(reps: int, store: bool) -> None:
    print("\n## (b) A/A and A/B on MovieLens 100K (simulated exposure, epsilon 1)")
    ratings, catalog = load()
    train, test = split(histories_of(ratings))
    users = sorted(test)
    bundles = bundles_of(train)
    pop, ii = PopularityRecommender(), ItemItemRecommender(10, 10.0, 10.0)
    pop.fit(bundles, catalog)
    ii.fit(bundles, catalog)
    g_pop, g_ii = gains(pop, train, test, users), gains(ii, train, test, users)
    predicted = float(g_ii.mean() - g_pop.mean())
    print(
        f"{len(users)} users; offline NDCG@10 popularity {g_pop.mean():.4f}, item-item "
        f"{g_ii.mean():.4f}: predicted difference {predicted:+.4f}"
    )
    pkey = os.urandom(32)
    refs = [pseudonym(pkey, u) for u in users]
    variants = (Variant(name="a"), Variant(name="b"))
    aa = Experiment(id="aa", purpose="improve.models", variants=variants, metrics=("click",))
    ab = aa.model_copy(update={"id": "ab"})
    t0 = time.perf_counter()
    r_aa = simulate("A/A", aa, [g_ii, g_ii], refs, reps, 0.0, seed=1)
    r_ab = simulate("A/B", ab, [g_pop, g_ii], refs, reps, predicted, seed=2)
    took = time.perf_counter() - t0
    lo, hi = wilson(r_aa["cover"] * reps, reps)
    print(f"{reps} repetitions each ({took:.1f} s)\n")
    print(
        "| test | release | mean difference (sd) | interval contains truth | significant | "
        "mean interval width |"
    )
    print("|---|---|---|---|---|---|")
    for label, r, truth in (("A/A (ii vs ii)", r_aa, 0.0), ("A/B (pop vs ii)", r_ab, predicted)):
        print(
            f"| {label}, truth {truth:+.4f} | tactful, DP ε=1 | {r['mean']:+.4f} ({r['sd']:.4f})"
            f" | {r['cover']:.1%} | {r['sig']:.1%} | {r['width']:.4f} |"
        )
        print(
            f"| {label} | exact counts (no DP) | {r['raw_mean']:+.4f} | {r['raw_cover']:.1%} | "
            f"{r['raw_sig']:.1%} | {r['raw_width']:.4f} |"
        )
    print(
        f"\nA/A: no significant difference in {r_aa['cover']:.1%} of repetitions "
        f"(95% Wilson interval {lo:.1%}..{hi:.1%}); expected about 95%."
    )
    print(
        f"A/B: mean estimate {r_ab['mean']:+.4f} vs predicted {predicted:+.4f} "
        f"(bias {r_ab['mean'] - predicted:+.4f}); the interval covers the prediction in "
        f"{r_ab['cover']:.1%}; significant in {r_ab['sig']:.1%} (power at 943 users, ε=1)."
    )
    se = r_ab["width"] / (2 * 1.959964)
    need = ((1.959964 + 0.841621) * se / predicted) ** 2 * len(users)
    print(
        f"A/B users needed for 80% power at this effect and ε=1: about {need:,.0f} "
        f"({need / len(users):.1f}x ML-100K's {len(users)})."
    )
    if store:
        bench_store(ratings, catalog, users, test, predicted)


# -- (c) the same A/B through a real store ---------------------------------------------------


def bench_store(
    ratings: Sequence[Rating],
    catalog: Sequence[CatalogItem],
    users: Sequence[str],
    test: dict[str, str],
    predicted: float,
) -> None:
    from tactful import Tactful

    print("\n## (c) the A/B once through a real store (SQLite, tf.recommend(experiment=...))")
    rng = np.random.default_rng(3)
    held = set(test.items())
    by_user: dict[str, list[tuple[str, str, datetime | None]]] = {}
    for r in ratings:
        if (r.user, r.item) not in held:
            by_user.setdefault(r.user, []).append(
                (r.item, "view", datetime.fromtimestamp(r.ts, UTC))
            )
    with (
        tempfile.TemporaryDirectory() as home,
        Tactful.open(home=home, policies=REPO / "policies") as tf,
    ):
        tf.catalog.upsert(
            [
                {"item_id": c.item_id, "title": c.title, "categories": list(c.categories)}
                for c in catalog
            ]
        )
        t0 = time.perf_counter()
        for u in users:
            tf.events.record_many(u, by_user.get(u, []))
            tf.consent.grant(u, ["personalization", "improve.models"])
        tf.train()
        print(f"store loaded: {len(users)} users ({time.perf_counter() - t0:.1f} s)")
        tf.experiments.declare(
            "pop-vs-ii",
            variants=[
                {"name": "popularity", "blend": {"item_item": 0, "content": 0, "popularity": 1}},
                {"name": "item_item", "blend": {"item_item": 1, "content": 0, "popularity": 0}},
            ],
            purpose="improve.models",
            metrics=["click"],
        )
        t0 = time.perf_counter()
        lat = []
        for u in users:
            s = time.perf_counter()
            items = list(tf.recommend(u, k=K, experiment="pop-vs-ii").item_ids)
            lat.append(time.perf_counter() - s)
            if test[u] in items and rng.random() < 1.0 / np.log2(items.index(test[u]) + 2):
                tf.experiments.convert("pop-vs-ii", u, "click")
        print(
            f"{len(users)} tf.recommend(experiment=...) calls: median "
            f"{1000 * statistics.median(lat):.1f} ms ({time.perf_counter() - t0:.1f} s)"
        )
        tf.aggregates.grant("experiment.pop-vs-ii", EPSILON, operator="bench")
        res = tf.experiments.results("pop-vs-ii", epsilon=EPSILON)
        for v in res.variants:
            print(
                f"  {v.variant}: exposed {v.exposed.value:.0f}, converted "
                f"{v.converted.value:.0f}, rate {v.rate.value:.4f} "
                f"[{v.rate.low:.4f}, {v.rate.high:.4f}]"
            )
        (d,) = res.differences
        print(
            f"  item_item - popularity: {d.value:+.4f} [{d.low:+.4f}, {d.high:+.4f}] "
            f"(predicted {predicted:+.4f}; significant: {d.significant}); budget left "
            f"{tf.aggregates.budget('experiment.pop-vs-ii').remaining:g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--no-store", action="store_true")
    parser.add_argument("--only", choices=["assign", "movielens"], default=None)
    args = parser.parse_args()
    load1 = os.getloadavg()[0]
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average at start {load1:.2f}"
    )
    if args.only in (None, "assign"):
        bench_assignment()
    if args.only in (None, "movielens"):
        bench_movielens(args.reps, not args.no_store)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
