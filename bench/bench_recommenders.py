"""tactful's recommenders vs the `implicit` library on MovieLens 100K, in one run.

Run: /work/venv/bin/python bench/bench_recommenders.py  (needs the `bench` extra: implicit)

Protocol: every rating is an implicit interaction; per user the last interaction by time
(ties by item id) is the test item, the rest is training. Knobs are tuned on a validation
split carved from training the same way (each user's last training interaction), never on
the test split; then every model is refit on the full training data and scored once on test.
Ranking covers all items the user has not seen. Metrics: NDCG@10, HR@10 (= Recall@10 with one
test item), catalog coverage, intra-list diversity (mean pairwise 1 - genre cosine), with a
paired 95% interval of the per-user NDCG@10 difference against the best implicit model.
Costs: fit time, median/p99 of one top-10 call, forgetting one user vs a full refit. Consent
sensitivity: the consenting users scored by a model trained on everyone and by one trained on
the consenting users only, for 10/30/50% withdrawn.
"""

from __future__ import annotations

import itertools
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns otherwise

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from movielens import Rating, load
from tactful.recommend import (
    CatalogItem,
    ContentRecommender,
    HybridRecommender,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
    ScoredItem,
    rerank,
)

K = 10
Split = tuple[dict[str, list[Interaction]], dict[str, str]]
Ranker = Callable[[str, list[Interaction]], list[str]]


def cpu_model() -> str:
    """The CPU model name as lscpu reports it (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def split(histories: dict[str, list[Interaction]]) -> Split:
    """Leave-last-out: (training histories, the held-out item per user)."""
    train, test = {}, {}
    for user, hist in histories.items():
        if len(hist) < 2:
            continue
        train[user], test[user] = hist[:-1], hist[-1].item
    return train, test


def histories_of(ratings: Sequence[Rating]) -> dict[str, list[Interaction]]:
    """Each user's interactions, oldest first (ties by item id)."""
    out: dict[str, list[Interaction]] = {}
    for r in sorted(ratings, key=lambda r: (r.user, r.ts, r.item)):
        out.setdefault(r.user, []).append(Interaction(r.item, ts=r.ts))
    return out


class Genres:
    """Intra-list diversity from the items' genre vectors."""

    def __init__(self, catalog: Sequence[CatalogItem]) -> None:
        names = sorted({g for c in catalog for g in c.categories})
        col = {g: n for n, g in enumerate(names)}
        self.vec = {}
        for c in catalog:
            v = np.zeros(len(names))
            for g in c.categories:
                v[col[g]] = 1.0
            n = np.linalg.norm(v)
            self.vec[c.item_id] = v / n if n else v

    def ild(self, items: Sequence[str]) -> float:
        if len(items) < 2:
            return 0.0
        m = np.stack([self.vec[i] for i in items])
        sims = m @ m.T
        n = len(items)
        return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def evaluate(
    rank: Ranker,
    train: dict[str, list[Interaction]],
    test: dict[str, str],
    genres: Genres,
    n_items: int,
    users: Sequence[str] | None = None,
    per_user: list[float] | None = None,
) -> dict[str, float]:
    """NDCG@10, HR@10, coverage, ILD and per-call latency over the given users.

    `per_user`, when given, receives each user's NDCG@10 (for paired comparisons).
    """
    ndcg, hits, ild, times = [], 0, [], []
    seen_items: set[str] = set()
    chosen = list(users if users is not None else test)
    for user in chosen:
        t0 = time.perf_counter()
        recs = rank(user, train[user])[:K]
        times.append(time.perf_counter() - t0)
        seen_items.update(recs)
        ild.append(genres.ild(recs))
        if test[user] in recs:
            hits += 1
            ndcg.append(1.0 / np.log2(recs.index(test[user]) + 2))
        else:
            ndcg.append(0.0)
    times.sort()
    if per_user is not None:
        per_user.extend(ndcg)
    return {
        "ndcg": float(np.mean(ndcg)),
        "hr": hits / len(chosen),
        "coverage": len(seen_items) / n_items,
        "ild": float(np.mean(ild)),
        "p50_ms": 1000 * times[len(times) // 2],
        "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))],
    }


def tactful_ranker(
    model: object,
    catalog: dict[str, CatalogItem],
    discovery: float = 0.0,
    popularity: PopularityRecommender | None = None,
) -> Ranker:
    def rank(user: str, hist: list[Interaction]) -> list[str]:
        view = MinimizedView(history=tuple(hist))
        seen = frozenset(i.item for i in hist)
        if discovery == 0.0:
            out: list[ScoredItem] = model.recommend(view, K, seen)  # type: ignore[attr-defined]
            return [s.item for s in out]
        # As the client does: a pool widened by the discovery level, then MMR + exploration.
        pool = model.recommend(view, K + int(np.ceil(3 * K * discovery)), seen)  # type: ignore[attr-defined]
        explore = popularity.recommend(MinimizedView(), 50, seen) if popularity else []
        return [s.item for s in rerank(pool, K, discovery, catalog, hist, explore)]

    return rank


def implicit_ranker(
    model: object, train: dict[str, list[Interaction]], items: list[str]
) -> tuple[Ranker, float]:
    """Fit an implicit model on the training matrix; (ranker, fit seconds)."""
    users = sorted(train)
    uidx = {u: n for n, u in enumerate(users)}
    iidx = {i: n for n, i in enumerate(items)}
    rows = [uidx[u] for u in users for _ in train[u]]
    cols = [iidx[e.item] for u in users for e in train[u]]
    x = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(items))
    )
    x.data[:] = 1.0  # binary, like tactful's
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # implicit's CosineRecommender hands its own normalized COO matrix to its kNN and
        # warns about it; the matrix given here is CSR.
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model.fit(x, show_progress=False)  # type: ignore[attr-defined]
    fit = time.perf_counter() - t0

    def rank(user: str, hist: list[Interaction]) -> list[str]:
        u = uidx[user]
        ids, _ = model.recommend(u, x[u], N=K, filter_already_liked_items=True)  # type: ignore[attr-defined]
        return [items[int(i)] for i in ids]

    return rank, fit


def bundles_of(
    train: dict[str, list[Interaction]], users: Sequence[str] | None = None
) -> list[list[Interaction]]:
    return [train[u] for u in (users if users is not None else sorted(train))]


def make_hybrid(params: dict[str, float]) -> HybridRecommender:
    return HybridRecommender(
        [
            ItemItemRecommender(
                int(params["neighbors"]), params["shrinkage"], params["half_life"] or None
            ),
            ContentRecommender(history_half_life=params["content_half_life"] or None),
            PopularityRecommender(),
        ],
        weights={
            "item_item": 1.0,
            "content": params["w_content"],
            "popularity": params["w_popularity"],
        },
    )


def main() -> None:
    t_start = time.perf_counter()
    ratings, catalog_list = load()
    catalog = {c.item_id: c for c in catalog_list}
    items = [c.item_id for c in catalog_list]
    genres = Genres(catalog_list)
    train, test = split(histories_of(ratings))
    vtrain, vtest = split(train)  # validation: carved from training only
    print(f"MovieLens 100K: {len(ratings)} ratings, {len(train)} users, {len(items)} items")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")

    # --- tuning on validation -------------------------------------------------------------
    def val(rank: Ranker) -> float:
        return evaluate(rank, vtrain, vtest, genres, len(items))["ndcg"]

    best_ii, best_ii_score = {}, -1.0
    ii_grid = itertools.product([5, 10, 20, 50, 100, 200], [0.0, 10.0, 50.0], [0.0, 10.0, 30.0])
    for nb, sh, hl in ii_grid:
        m = ItemItemRecommender(nb, sh, hl or None)
        m.fit(bundles_of(vtrain), catalog_list)
        s = val(tactful_ranker(m, catalog))
        if s > best_ii_score:
            best_ii, best_ii_score = {"neighbors": nb, "shrinkage": sh, "half_life": hl}, s
    print(f"tuned item_item {best_ii} val NDCG@10 {best_ii_score:.4f}")
    best_ct, best_ct_score = 0.0, -1.0
    for hl in [0.0, 10.0, 30.0]:
        m = ContentRecommender(history_half_life=hl or None)
        m.fit([], catalog_list)
        s = val(tactful_ranker(m, catalog))
        if s > best_ct_score:
            best_ct, best_ct_score = hl, s
    best_hy, best_hy_score = {}, -1.0
    for wc, wp in itertools.product([0.0, 0.1, 0.3, 0.5, 1.0], [0.0, 0.05, 0.1, 0.3]):
        params = {**best_ii, "content_half_life": best_ct, "w_content": wc, "w_popularity": wp}
        m = make_hybrid(params)
        m.fit(bundles_of(vtrain), catalog_list)
        s = val(tactful_ranker(m, catalog))
        if s > best_hy_score:
            best_hy, best_hy_score = params, s
    print(f"tuned hybrid {best_hy} val NDCG@10 {best_hy_score:.4f}")

    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender

    grids: dict[str, tuple[Callable[..., object], list[dict[str, object]]]] = {
        "implicit ALS": (
            AlternatingLeastSquares,
            [
                {"factors": f, "regularization": r, "alpha": a, "iterations": 15, "random_state": 0}
                for f in (32, 64, 128, 256)
                for r in (0.01, 0.1, 1.0)
                for a in (1.0, 10.0, 40.0)
            ],
        ),
        "implicit BPR": (
            BayesianPersonalizedRanking,
            [
                {"factors": f, "learning_rate": lr, "iterations": it, "random_state": 0}
                for f in (64, 128, 256)
                for lr in (0.002, 0.005, 0.01)
                for it in (100, 300)
            ],
        ),
        "implicit Cosine": (CosineRecommender, [{"K": k} for k in (50, 100, 200, 400, 800)]),
    }
    best_impl: dict[str, dict[str, object]] = {}
    for name, (cls, grid) in grids.items():
        scores = []
        for p in grid:
            rank, _ = implicit_ranker(cls(**p), vtrain, items)
            scores.append(val(rank))
        best_impl[name] = grid[int(np.argmax(scores))]
        print(f"tuned {name} {best_impl[name]} val NDCG@10 {max(scores):.4f}")

    # --- test: refit on all training data, score once ----------------------------------------
    results: list[tuple[str, dict[str, float]]] = []
    per_user: dict[str, list[float]] = {}
    all_bundles = bundles_of(train)

    def run_tactful(name: str, model: object, discovery: float = 0.0) -> None:
        t0 = time.perf_counter()
        model.fit(all_bundles, catalog_list)  # type: ignore[attr-defined]
        fit = time.perf_counter() - t0
        pop = PopularityRecommender()
        pop.fit(all_bundles, catalog_list)
        r = evaluate(
            tactful_ranker(model, catalog, discovery, pop),
            train,
            test,
            genres,
            len(items),
            per_user=per_user.setdefault(name, []),
        )
        results.append((name, {**r, "fit_s": fit}))

    run_tactful("tactful popularity", PopularityRecommender())
    run_tactful(
        "tactful item_item",
        ItemItemRecommender(
            best_ii["neighbors"], best_ii["shrinkage"], best_ii["half_life"] or None
        ),
    )
    run_tactful("tactful content", ContentRecommender(history_half_life=best_ct or None))
    run_tactful("tactful hybrid", make_hybrid(best_hy))
    run_tactful("tactful hybrid+diversity (0.2)", make_hybrid(best_hy), discovery=0.2)
    run_tactful("tactful hybrid+diversity (0.5)", make_hybrid(best_hy), discovery=0.5)
    for name, (cls, _) in grids.items():
        rank, fit = implicit_ranker(cls(**best_impl[name]), train, items)
        r = evaluate(rank, train, test, genres, len(items), per_user=per_user.setdefault(name, []))
        results.append((name, {**r, "fit_s": fit}))

    ours = max((r["ndcg"], n) for n, r in results if n.startswith("tactful"))
    theirs = max((r["ndcg"], n) for n, r in results if n.startswith("implicit"))
    print(
        "\n| model | NDCG@10 | NDCG / best implicit | HR@10 | coverage | ILD | fit s "
        "| top-10 p50 ms | p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results:
        print(
            f"| {name} | {r['ndcg']:.4f} | {r['ndcg'] / theirs[0]:.2f} | {r['hr']:.4f} | "
            f"{r['coverage']:.3f} | {r['ild']:.3f} | {r['fit_s']:.3f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} |"
        )
    by = dict(results)
    print(
        f"\nbest tactful: {ours[1]} {ours[0]:.4f}; best implicit: {theirs[1]} {theirs[0]:.4f}; "
        f"ratio {ours[0] / theirs[0]:.3f} -> goal {'MET' if ours[0] >= theirs[0] else 'NOT met'}"
    )
    # Paired over the same users: is the difference more than noise?
    diff = np.asarray(per_user[ours[1]]) - np.asarray(per_user[theirs[1]])
    half = 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)
    print(
        f"paired NDCG@10 difference {ours[1]} - {theirs[1]}: {diff.mean():+.4f} "
        f"(95% CI {diff.mean() - half:+.4f} .. {diff.mean() + half:+.4f}, {diff.size} users)"
    )
    for name in ("tactful item_item", "tactful hybrid"):
        d = np.asarray(per_user[name]) - np.asarray(per_user[theirs[1]])
        h = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
        print(
            f"  {name} - {theirs[1]}: {d.mean():+.4f} (95% CI {d.mean() - h:+.4f} .. "
            f"{d.mean() + h:+.4f})"
        )
    hy, hd = by["tactful hybrid"], by["tactful hybrid+diversity (0.2)"]
    drop = 1 - hd["ndcg"] / hy["ndcg"]
    ok = drop <= 0.05 and hd["ild"] > hy["ild"]
    print(
        f"hybrid+diversity (0.2): NDCG {-drop:+.1%}, ILD {hy['ild']:.3f} -> {hd['ild']:.3f} "
        f"-> goal {'MET' if ok else 'NOT met'}"
    )

    # --- unlearning one user vs a full refit ---------------------------------------------------
    rng = random.Random(0)
    sample = rng.sample(sorted(train), 50)
    ii = ItemItemRecommender(
        best_ii["neighbors"], best_ii["shrinkage"], best_ii["half_life"] or None
    )
    hybrid = make_hybrid(best_hy)
    for model, label in [(ii, "item_item"), (hybrid, "hybrid (all components)")]:
        refits = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.fit(all_bundles, catalog_list)  # type: ignore[attr-defined]
            refits.append(time.perf_counter() - t0)
        forgets = []
        for u in sample:
            t0 = time.perf_counter()
            model.forget(train[u])  # type: ignore[attr-defined]
            forgets.append(time.perf_counter() - t0)
            model.learn(train[u])  # type: ignore[attr-defined]
        refit, forget = statistics.median(refits), statistics.median(forgets)
        print(
            f"unlearn one user, {label}: forget {1000 * forget:.3f} ms vs refit "
            f"{1000 * refit:.1f} ms -> {refit / forget:.0f}x cheaper "
            f"(goal >= 100x: {'MET' if refit / forget >= 100 else 'NOT met'})"
        )

    # --- consent sensitivity: withdrawn users' data excluded -----------------------------------
    # The same consenting users are scored by the model trained on everyone and by the model
    # trained on the consenting users only, so the difference is what consent costs them
    # (not the noise of scoring a smaller set). Averaged over SEEDS random withdrawals.
    seeds = 3
    users = sorted(train)
    everyone = make_hybrid(best_hy)
    everyone.fit(all_bundles, catalog_list)
    print(f"\nconsent sensitivity, mean of {seeds} random withdrawals:")
    print(
        "| withdrawn | consenting users | NDCG@10 trained on all | NDCG@10 trained on "
        "consenting only | ratio | HR@10 all -> consenting only |"
    )
    print("|---|---|---|---|---|---|")
    for frac in (0.1, 0.3, 0.5):
        full, only, hr_full, hr_only = [], [], [], []
        for seed in range(seeds):
            gone = set(random.Random(seed).sample(users, int(frac * len(users))))
            kept = [u for u in users if u not in gone]
            m = make_hybrid(best_hy)
            m.fit(bundles_of(train, kept), catalog_list)
            a = evaluate(tactful_ranker(everyone, catalog), train, test, genres, len(items), kept)
            b = evaluate(tactful_ranker(m, catalog), train, test, genres, len(items), kept)
            full.append(a["ndcg"])
            only.append(b["ndcg"])
            hr_full.append(a["hr"])
            hr_only.append(b["hr"])
        f, o = statistics.mean(full), statistics.mean(only)
        print(
            f"| {frac:.0%} | {len(kept)} | {f:.4f} | {o:.4f} | {o / f:.3f} | "
            f"{statistics.mean(hr_full):.4f} -> {statistics.mean(hr_only):.4f} |"
        )
    print(f"\ntotal bench time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
