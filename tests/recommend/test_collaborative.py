"""Popularity and item-item: the contract every caller relies on (k, exclusions, ties, unknown
items, explanations) and known answers for the counts and similarities, on small data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tactful.recommend import (
    CatalogItem,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
    Recommender,
)
from tactful.recommend.popularity import DAY

CATALOG = [
    CatalogItem("a", "Alien"),
    CatalogItem("b", "Brazil"),
    CatalogItem("c"),
    CatalogItem("d", "Dune"),
]
BUNDLES = [
    [Interaction("a"), Interaction("b"), Interaction("a")],  # a repeat counts once
    [Interaction("a"), Interaction("b"), Interaction("c")],
    [Interaction("a"), Interaction("c")],
    [Interaction("d")],
]
NOW = 100 * DAY


def _history(*items: str) -> MinimizedView:
    return MinimizedView(history=tuple(Interaction(i) for i in items))


def _ids(recs: list[object]) -> list[str]:
    return [r.item for r in recs]  # type: ignore[attr-defined]


def test_both_models_satisfy_the_recommender_protocol() -> None:
    assert isinstance(PopularityRecommender(), Recommender)
    assert isinstance(ItemItemRecommender(), Recommender)


def test_popularity_counts_distinct_contributors_and_breaks_ties_by_item_id() -> None:
    model = PopularityRecommender()
    model.fit(BUNDLES, CATALOG)
    assert model.counts == {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}
    recs = model.recommend(MinimizedView(), 10, frozenset())
    assert _ids(recs) == ["a", "b", "c", "d"], "b and c tie at 2: the smaller id first"
    assert {r.signal for r in recs} == {"popularity"}
    assert recs[0].explanation == "Popular with many users."


def test_popularity_honours_k_and_exclusions() -> None:
    model = PopularityRecommender()
    model.fit(BUNDLES, CATALOG)
    assert model.recommend(MinimizedView(), 0, frozenset()) == []
    assert model.recommend(MinimizedView(), -3, frozenset()) == []
    assert _ids(model.recommend(MinimizedView(), 2, frozenset({"a", "zzz"}))) == ["b", "c"]


def test_trending_weight_halves_per_half_life_of_the_latest_interaction() -> None:
    model = PopularityRecommender(half_life_days=10.0, now=NOW)
    model.fit(
        [
            [Interaction("old", ts=NOW - 20 * DAY), Interaction("old", ts=NOW - 30 * DAY)],
            [Interaction("new", ts=NOW)],
            [Interaction("old", ts=NOW - 10 * DAY)],
        ],
        [],
    )
    assert math.isclose(model.counts["old"], 0.25 + 0.5)
    assert math.isclose(model.counts["new"], 1.0)
    recs = model.recommend(MinimizedView(), 2, frozenset())
    assert _ids(recs) == ["new", "old"] and recs[0].explanation == "Trending right now."


def test_popularity_rejects_a_non_positive_half_life() -> None:
    with pytest.raises(ValueError, match="half_life_days"):
        PopularityRecommender(half_life_days=0)


def test_item_item_counts_are_the_co_occurrences_of_distinct_items() -> None:
    model = ItemItemRecommender()
    model.fit(BUNDLES, CATALOG)
    c = model.counts().toarray()
    order = [model.items.index(i) for i in "abcd"]
    assert np.array_equal(
        c[np.ix_(order, order)],
        [[3, 2, 2, 0], [2, 2, 1, 0], [2, 1, 2, 0], [0, 0, 0, 1]],
    )


def test_item_item_similarity_is_shrunk_cosine() -> None:
    model = ItemItemRecommender(shrinkage=1.0)
    model.fit(BUNDLES, CATALOG)
    recs = model.recommend(_history("a"), 5, frozenset({"a"}))
    assert _ids(recs) == ["b", "c"], "d never co-occurs with a: no score"
    assert math.isclose(recs[0].score, 2 / (math.sqrt(3 * 2) + 1.0))
    assert math.isclose(recs[0].score, recs[1].score), "b and c tie: the smaller id first"


def test_item_item_sums_votes_and_explains_with_the_strongest_history_title() -> None:
    model = ItemItemRecommender(shrinkage=0.0)
    model.fit(BUNDLES, CATALOG)
    recs = model.recommend(_history("b", "c"), 5, frozenset({"b", "c"}))
    assert _ids(recs) == ["a"]
    assert math.isclose(recs[0].score, 2 / math.sqrt(6) * 2)
    assert recs[0].explanation == "Because you viewed Brazil.", "tie of sources: first index"
    untitled = model.recommend(_history("c"), 1, frozenset({"a"}))
    assert untitled[0].item == "b" and untitled[0].explanation == "Because you viewed c."


def _item_item_reference(
    model: ItemItemRecommender, view: MinimizedView, k: int, exclude: frozenset[str]
) -> tuple[list[tuple[str, float, str]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Item-item's answer by its definition, a history item at a time: each adds its weight
    times each neighbor's similarity to that neighbor's score, and an item's reason is the
    first history item (in order) whose vote for it is the largest; ranked by score on the
    1e-9 grid, then item id. Also the (scores, source, best) arrays `scores` gives."""
    from tactful.recommend.types import on_grid

    weights = model.history_weights(view.history)
    hist = list(weights)
    n = len(model.items)
    scores, best, source = np.zeros(n), np.zeros(n), np.full(n, -1, dtype=np.int64)
    rows = model.neighbors_of(np.asarray(hist, dtype=np.int64)) if hist else []
    for h, (idx, sim) in zip(hist, rows, strict=True):
        for j, s in zip(idx.tolist(), sim.tolist(), strict=True):
            vote = weights[h] * s
            scores[j] += vote
            if vote > best[j]:
                best[j], source[j] = vote, h
    ranked = sorted(
        (j for j in range(n) if scores[j] > 0 and model.items[j] not in exclude),
        key=lambda j: (-on_grid(float(scores[j])), model.items[j]),
    )[: max(k, 0)]
    answers = []
    for j in ranked:
        because = model.items[int(source[j])]
        text = f"Because you viewed {model.titles.get(because, because)}."
        answers.append((model.items[j], float(scores[j]), text))
    return answers, (scores, source, best)


@pytest.mark.parametrize("items", [60, 5000])  # the dense layout, and the sparse one
def test_item_item_answers_as_summing_row_by_row_would(items: int) -> None:
    # The votes are summed and the strongest reason found over all rows at once: the same
    # scores to the bit, order, ties and reasons as adding one history item's row after
    # another, with equal weights (many ties) and with a half-life, repeats in the history,
    # exclusions and every k.
    import random

    rng = random.Random(items)
    names = [f"i{n}" for n in range(items)]
    bundles = [
        [
            Interaction(names[min(int(rng.paretovariate(1.2)) - 1, items - 1)])
            for _ in range(rng.randint(1, 8))
        ]
        for _ in range(300)
    ]
    catalog = [CatalogItem(name, f"Title {name}" if n % 3 else "") for n, name in enumerate(names)]
    for half_life, shrinkage, neighbors in ((None, 0.0, 3), (4.0, 10.0, 50)):
        model = ItemItemRecommender(
            neighbors=neighbors, shrinkage=shrinkage, history_half_life=half_life
        )
        model.fit(bundles, catalog)
        for case in range(40):
            history = [bundles[rng.randrange(300)][0].item for _ in range(rng.randint(0, 10))]
            view = _history(*history)
            exclude = frozenset(rng.sample(names[:30], rng.randint(0, 5))) | frozenset(history[:2])
            k = rng.choice([1, 3, 10, 100])
            answers, arrays = _item_item_reference(model, view, k, exclude)
            got = [(r.item, r.score, r.explanation) for r in model.recommend(view, k, exclude)]
            assert got == answers, (half_life, case)
            assert all(map(np.array_equal, model.scores(view), arrays)), (half_life, case)


def test_item_item_answers_nothing_without_a_known_history() -> None:
    model = ItemItemRecommender()
    model.fit(BUNDLES, CATALOG)
    assert model.recommend(MinimizedView(), 5, frozenset()) == []
    assert model.recommend(_history("unknown"), 5, frozenset()) == []
    assert model.recommend(_history("a"), 0, frozenset()) == []
    assert model.recommend(_history("d"), 5, frozenset()) == [], "d has no neighbors"


def test_item_item_never_returns_excluded_items_and_at_most_k() -> None:
    model = ItemItemRecommender(neighbors=2)
    bundles = [[Interaction(f"x{n}"), Interaction(f"x{n + 1}")] for n in range(20)]
    bundles.append([Interaction(f"x{n}") for n in range(0, 21, 2)])
    model.fit(bundles, [])
    view = _history("x0", "x4", "x8")
    full = model.recommend(view, 50, frozenset())
    assert len(full) == len({r.item for r in full})
    excluded = frozenset({"x0", "x4", "x8", full[0].item})
    recs = model.recommend(view, 3, excluded)
    assert len(recs) == 3 and not excluded & set(_ids(recs))
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_item_item_keeps_only_the_top_neighbors_per_item() -> None:
    bundles = [[Interaction("hub"), Interaction(f"s{n}")] for n in range(5)]
    bundles += [[Interaction("s0"), Interaction("hub")]] * 3  # s0 is hub's closest neighbor
    model = ItemItemRecommender(neighbors=1, shrinkage=0.0)
    model.fit(bundles, [])
    assert _ids(model.recommend(_history("hub"), 5, frozenset({"hub"}))) == ["s0"]
    wide = ItemItemRecommender(neighbors=10, shrinkage=0.0)
    wide.fit(bundles, [])
    assert len(wide.recommend(_history("hub"), 5, frozenset({"hub"}))) == 5


def test_item_item_learns_new_items_and_forgets_unknown_ones_harmlessly() -> None:
    model = ItemItemRecommender(shrinkage=0.0)
    model.fit(BUNDLES, CATALOG)
    model.learn([Interaction("d"), Interaction("e")])
    assert _ids(model.recommend(_history("d"), 5, frozenset({"d"}))) == ["e"]
    before = model.counts().toarray()
    model.forget([Interaction("never-seen")])
    assert np.array_equal(model.counts().toarray(), before)


def test_item_item_rejects_bad_knobs() -> None:
    with pytest.raises(ValueError, match="neighbors"):
        ItemItemRecommender(neighbors=0)
    with pytest.raises(ValueError, match="shrinkage"):
        ItemItemRecommender(shrinkage=-1.0)


@pytest.mark.parametrize("neighbors", [1, 3, 20])
def test_item_item_neighbor_rows_follow_their_definition_on_the_sparse_layout(
    neighbors: int,
) -> None:
    # Each row: the similarities C_rj / (sqrt(C_rr C_jj) + shrinkage) of the other items, its
    # k largest positive ones and every item tied with the k-th, in item order; read from
    # the counts as fitted and after further contributors wait to be merged (learn).
    import random

    rng = random.Random(neighbors)
    names = [f"i{n}" for n in range(5000)]  # above DENSE_MAX: the sparse layout

    def bundle() -> list[Interaction]:
        # Items 100-139 come in twins that are always taken together: equal counts with every
        # item and equal totals, so equal similarities, and ties at the k-th.
        twins = [names[100 + 2 * g + t] for g in rng.sample(range(20), 3) for t in (0, 1)]
        return [Interaction(i) for i in twins] + [
            Interaction(names[rng.randrange(60)]) for _ in range(rng.randint(1, 5))
        ]

    learned = [bundle() for _ in range(200)]
    model = ItemItemRecommender(neighbors=neighbors, shrinkage=2.0)
    model.fit(learned, [CatalogItem(name) for name in names])
    assert model._dense is None, "the sparse layout"
    for step in range(3):
        # The counts by their definition (not `model.counts()`, which would merge the
        # waiting changes first): co-occurrences of distinct items per contributor.
        counts = np.zeros((140, 140))  # items 140 on co-occur with nothing: similarity 0
        for b in learned:
            at = np.asarray(sorted({model.index[e.item] for e in b}))
            counts[np.ix_(at, at)] += 1
        diag = counts.diagonal()
        picked = rng.sample([*range(60), *range(100, 140)], 40)
        rows = np.asarray(sorted(model.index[names[n]] for n in picked), dtype=np.int64)
        model._rows.clear()  # computed now, from the counts and the waiting changes
        got = model.neighbors_of(rows)
        for r, (cols, sims) in zip(rows.tolist(), got, strict=True):
            denom = np.sqrt(diag[r] * diag) + 2.0
            want = np.divide(counts[r], denom, out=np.zeros(len(diag)), where=denom > 0)
            want[r] = 0.0
            positive = np.flatnonzero(want > 0)
            kth = np.sort(want[positive])[::-1][neighbors - 1] if positive.size >= neighbors else 0
            keep = positive[want[positive] >= kth]
            assert cols.tolist() == keep.tolist(), (step, r)
            assert np.array_equal(sims, want[keep]), (step, r)
        for _ in range(5):
            learned.append(bundle())
            model.learn(learned[-1])  # a waiting change, merged into the rows read next
        assert model._pending, "the next rows merge waiting changes"
