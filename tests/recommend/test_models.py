"""Content-based, rules, hybrid and diversity: each behavior a caller relies on, on small data."""

from __future__ import annotations

import pytest

from tactful.recommend import (
    CatalogItem,
    ContentRecommender,
    HybridRecommender,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
    Rule,
    ScoredItem,
    apply_rules,
    rerank,
)

CATALOG = [
    CatalogItem("a1", "Action One", ("action",), {"length": 20}),
    CatalogItem("a2", "Action Two", ("action",), {"length": 120}),
    CatalogItem("a3", "Action Three", ("action", "comedy"), {"length": 90}),
    CatalogItem("c1", "Comedy One", ("comedy",), {"length": 25}),
    CatalogItem("c2", "Comedy Two", ("comedy",), {"length": 95}),
    CatalogItem("d1", "Doc One", ("documentary",), {"length": 50}),
]
BY_ID = {c.item_id: c for c in CATALOG}
BUNDLES = [
    [Interaction("a1"), Interaction("a2")],
    [Interaction("a1"), Interaction("a2"), Interaction("a3")],
    [Interaction("a2"), Interaction("a3")],
    [Interaction("c1"), Interaction("c2")],
    [Interaction("a1"), Interaction("c1")],
]


def _view(*items: str, **fields: object) -> MinimizedView:
    return MinimizedView(fields=fields, history=tuple(Interaction(i) for i in items))


def test_content_recommends_items_sharing_the_history_categories_and_says_which() -> None:
    model = ContentRecommender()
    model.fit([], CATALOG)
    recs = model.recommend(_view("a1", "a2"), 3, frozenset())
    assert recs[0].item == "a3" and "Action" in recs[0].explanation
    assert {"a1", "a2"}.isdisjoint(s.item for s in recs), "owned items are no discovery"


def test_content_uses_declared_preferences_for_a_user_without_history() -> None:
    model = ContentRecommender()
    model.fit([], CATALOG)
    recs = model.recommend(_view(favorite_genres=["Documentary"]), 2, frozenset())
    assert recs[0].item == "d1"
    assert recs[0].explanation == "Matches your interest in Documentary."
    assert model.recommend(_view(), 2, frozenset()) == [], "nothing known: no content answer"


def _content_reference(
    model: ContentRecommender, view: MinimizedView, k: int, exclude: frozenset[str]
) -> list[tuple[str, float, str]]:
    """What content-based answers, by its definition: every candidate sorted (score down,
    then catalog order), and each item explained by its two features sharing most with the
    taste (ties in feature order), read from the item vectors row by row."""
    import numpy as np

    from tactful.recommend.content import _explain, declared_preferences

    taste, scores = model.taste(view), model.scores(view)
    if not taste.any():
        return []
    owned = exclude | {e.item for e in view.history}
    ranked = sorted(
        (j for j, item in enumerate(model.items) if scores[j] > 0 and item not in owned),
        key=lambda j: (-scores[j], j),
    )[:k]
    declared = {f for f in declared_preferences(view.fields) if f in model.feature_index}
    out = []
    for j in ranked:
        row = model.vectors.getrow(j)
        shared = row.data * taste[row.indices]
        names = [
            model.features[row.indices[f]]
            for f in np.argsort(-shared, kind="stable")[:2]
            if shared[f] > 0
        ]
        out.append((model.items[j], float(scores[j]), _explain(names, declared)))
    return out


def test_content_answers_as_a_full_sort_would_ties_and_explanations_included() -> None:
    # Few categories and tags over many items: most scores tie. The k best (and the k-th's
    # ties) are ranked and explained as a full sort of every candidate would, whether or not
    # the user declared preferences, in any order of such users' calls.
    import random

    rng = random.Random(11)
    catalog = [
        CatalogItem(
            f"i{i}",
            f"Item {i}",
            tuple(rng.sample(["action", "comedy", "drama", "doc", "kids"], rng.randint(0, 2))),
            {"tags": rng.sample(["long", "short", "new", "classic"], rng.randint(0, 3))},
        )
        for i in range(400)
    ]
    for half_life in (None, 5.0):
        model = ContentRecommender(history_half_life=half_life)
        model.fit([], catalog)
        for case in range(60):
            history = [f"i{rng.randrange(400)}" for _ in range(rng.randint(0, 12))]
            fields = {"favorite_genres": ["Drama"]} if case % 3 == 0 else {}
            view = _view(*history, **fields)
            exclude = frozenset(f"i{rng.randrange(400)}" for _ in range(rng.randint(0, 30)))
            k = rng.choice([1, 5, 10, 50, 400])
            got = [(s.item, s.score, s.explanation) for s in model.recommend(view, k, exclude)]
            assert got == _content_reference(model, view, k, exclude), (half_life, case)


def test_content_names_tied_features_in_feature_order() -> None:
    # Categories in pairs that always go together: an item's two features share exactly as
    # much with the taste, and the explanation names them in feature order, as a stable sort
    # of the row would (and, with no match at all, names nothing).
    pairs = [("drama", "doc"), ("kids", "comedy"), ("action", "classic")]
    catalog = [CatalogItem(f"i{i}", f"Item {i}", pairs[i % 3], {}) for i in range(30)]
    catalog.append(CatalogItem("solo", "Solo", ("opera",), {}))
    model = ContentRecommender()
    model.fit([], catalog)
    for history in (["i0"], ["i0", "i1"], ["i4", "i1", "i2"], ["solo"]):
        view = _view(*history)
        got = [(s.item, s.score, s.explanation) for s in model.recommend(view, 40, frozenset())]
        assert got == _content_reference(model, view, 40, frozenset()), history
    named = {s.explanation for s in model.recommend(_view("i0"), 40, frozenset())}
    assert "Like the Drama and Doc items you viewed." in named


def test_boost_applies_only_in_the_declared_context_and_explains_itself() -> None:
    short = Rule(
        "boost",
        item={"length": {"lt": 30}},
        when={"context.device": "mobile", "context.daypart": "evening"},
        amount=1.0,
        reason="short items for your evening on mobile",
    )
    scored = [ScoredItem("a2", 0.9, "item_item", "x"), ScoredItem("c1", 0.5, "item_item", "y")]
    desk = MinimizedView(context={"device": "desktop", "daypart": "evening"})
    assert [s.item for s in apply_rules(scored, [short], desk, BY_ID, frozenset())] == ["a2", "c1"]
    phone = MinimizedView(context={"device": "mobile", "daypart": "evening"})
    out = apply_rules(scored, [short], phone, BY_ID, frozenset())
    assert [s.item for s in out] == ["c1", "a2"]
    assert "short items for your evening on mobile" in out[0].explanation


def test_filter_bury_and_pin_respect_segment_and_never_bring_back_excluded_items() -> None:
    scored = [ScoredItem(i, 1.0 - n / 10, "item_item", "") for n, i in enumerate(["a2", "a3"])]
    rules = [
        Rule("bury", item={"item": "a2"}, amount=0.5),
        Rule("pin", item={"category": "documentary"}, reason="new this week"),
        Rule("pin", item={"item": "c2"}),
        Rule("filter", item={"length": {"gt": 100}}, when={"fields.segment": "kids"}),
    ]
    view = MinimizedView(fields={"segment": "adult"})
    out = apply_rules(scored, rules, view, BY_ID, frozenset({"c2"}))
    assert [s.item for s in out] == ["d1", "a3", "a2"]
    assert out[0].signal == "rule" and out[0].explanation == "Featured: new this week."
    kids = apply_rules(scored, rules, MinimizedView(fields={"segment": "kids"}), BY_ID, frozenset())
    assert "a2" not in [s.item for s in kids]


def test_rule_misuse_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not one of"):
        Rule("promote", item={"item": "a"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'context\.' or 'fields\.'"):
        Rule("boost", item={"item": "a"}, when={"device": "mobile"})
    with pytest.raises(ValueError, match="unknown rule operator"):
        Rule("boost", item={"length": {"below": 3}})


def _hybrid(**kw: object) -> HybridRecommender:
    model = HybridRecommender(
        [ItemItemRecommender(shrinkage=0.0), ContentRecommender(), PopularityRecommender()],
        **kw,  # type: ignore[arg-type]
    )
    model.fit(BUNDLES, CATALOG)
    return model


def test_hybrid_falls_back_from_history_to_preferences_to_popularity() -> None:
    model = _hybrid()
    with_history = model.recommend(_view("a1"), 3, frozenset({"a1"}))
    assert with_history[0].signal == "item_item" and "Action One" in with_history[0].explanation
    declared = model.recommend(_view(favorite_genres="documentary"), 3, frozenset())
    assert declared[0].item == "d1" and declared[0].signal == "content"
    nothing = model.recommend(_view(), 3, frozenset())
    assert [s.signal for s in nothing] == ["popularity"] * 3
    assert nothing[0].item == "a1" and nothing[0].explanation == "Popular with many users."


def test_hybrid_weights_are_per_app_and_excluded_items_never_appear() -> None:
    pop_only = _hybrid(weights={"item_item": 0.0, "content": 0.0, "popularity": 1.0})
    assert {s.signal for s in pop_only.recommend(_view("a1"), 4, frozenset())} == {"popularity"}
    model = _hybrid(rules=[Rule("pin", item={"category": "action"})])
    out = model.recommend(_view("c1"), 6, frozenset({"a1", "a2", "a3"}))
    assert not {"a1", "a2", "a3"} & {s.item for s in out}


def test_a_lone_component_gives_the_list_it_would_give_from_its_full_pool() -> None:
    # Asked for k instead of the pool of 100 when it is the only weighted component: the same
    # items, order and (normalized) scores as the blend of its whole pool.
    lone = _hybrid(weights={"item_item": 1.0, "content": 0.0, "popularity": 0.0})
    item_item = lone.components[0]
    for k in (1, 2, 3, 5):
        for view in [_view("a1"), _view("a1", "c1"), _view("c2")]:
            pool = item_item.recommend(view, 100, frozenset({"a2"}))
            top = max(s.score for s in pool)
            blended = sorted(pool, key=lambda s: (-round(s.score / top, 9), s.item))[:k]
            fast = lone.recommend(view, k, frozenset({"a2"}))
            assert [(s.item, s.score) for s in fast] == [(s.item, s.score / top) for s in blended]


def test_every_hybrid_item_has_a_signal_and_a_readable_explanation() -> None:
    for view in [_view("a1", "c1"), _view(favorite_genres="comedy"), _view()]:
        for s in _hybrid().recommend(view, 5, frozenset()):
            assert s.signal in {"item_item", "content", "popularity"}
            assert s.explanation and s.explanation[0].isupper()


def test_discovery_zero_keeps_the_order_and_higher_levels_mix_categories() -> None:
    pool = [
        ScoredItem("a1", 1.0, "item_item", ""),
        ScoredItem("a2", 0.95, "item_item", ""),
        ScoredItem("a3", 0.9, "item_item", ""),
        ScoredItem("c1", 0.7, "item_item", ""),
    ]
    assert rerank(pool, 3, 0.0, BY_ID) == pool[:3]
    mixed = [s.item for s in rerank(pool, 3, 0.4, BY_ID)]
    assert mixed[0] == "a1" and "c1" in mixed, "a comedy breaks the run of action items"


def _mmr_by_definition(
    pool: list[ScoredItem], k: int, level: float, cats: dict[str, frozenset[str]]
) -> list[ScoredItem]:
    """Greedy MMR as diversity.py defines it: each step takes the item of largest
    (1 - L) * f - L * (f + max similarity to those taken) / 2 (first in the pool on a tie)."""
    from tactful.recommend.diversity import jaccard

    top = max((s.score for s in pool), default=0.0)
    fam = [s.score / top if top > 0 else 0.0 for s in pool]
    left, picked, taken = list(range(len(pool))), [], []
    while left and len(picked) < k:

        def value(i: int) -> tuple[float, int]:
            similar = max(
                (jaccard(cats.get(pool[i].item, frozenset()), t) for t in taken), default=0.0
            )
            return ((1.0 - level) * fam[i] - level * (fam[i] + similar) / 2.0, -i)

        best = max(left, key=value)
        left.remove(best)
        picked.append(pool[best])
        taken.append(cats.get(pool[best].item, frozenset()))
    return picked


@pytest.mark.parametrize("seed", range(30))
def test_discovery_reranks_as_mmr_is_defined(seed: int) -> None:
    # Random pools over few categories (many equal similarities and values), duplicates of
    # a score, items without categories or outside the catalog, every level and k.
    import random

    from tactful.recommend.diversity import _mmr

    rng = random.Random(seed)
    names = ["action", "comedy", "drama", "doc"]
    catalog = {
        f"i{n}": CatalogItem(f"i{n}", f"Item {n}", tuple(rng.sample(names, rng.randint(0, 3))))
        for n in range(40)
    }
    scores = [1.0, 0.9, 0.9, 0.5, 0.25, 0.0, 2.0]
    pool = [
        ScoredItem(item, rng.choice(scores), "item_item", "")
        for item in rng.sample([*catalog, "gone1", "gone2"], rng.randint(0, 30))
    ]
    cats = {i: frozenset(c.categories) for i, c in catalog.items()}
    for level in (0.0, 0.1, 0.2, 0.5, 2 / 3, 0.9, 1.0):
        for k in (1, 3, 9, 50):
            assert _mmr(pool, k, level, cats) == _mmr_by_definition(pool, k, level, cats)
    odd = [
        *pool,
        ScoredItem("i0", float("inf"), "app", ""),
        ScoredItem("i1", float("nan"), "app", ""),
    ]
    assert len(_mmr(odd, 5, 0.5, cats)) == min(5, len(odd))


def test_exploration_slot_brings_an_item_outside_the_usual_categories() -> None:
    pool = [ScoredItem(i, 1.0 - n / 10, "item_item", "") for n, i in enumerate(["a2", "a3"])]
    explore = [ScoredItem("d1", 3.0, "popularity", "popular")]
    history = [Interaction("a1"), Interaction("c1")]
    out = rerank(pool, 2, 0.3, BY_ID, history, explore)
    assert [s.item for s in out] == ["a2", "d1"]
    assert "outside what you usually choose" in out[1].explanation
    with pytest.raises(ValueError, match="between 0 and 1"):
        rerank(pool, 2, 1.5, BY_ID)


def test_a_lone_component_listing_an_item_twice_is_summed_as_the_blend_does() -> None:
    class Twice:
        name = "twice"

        def fit(self, bundles: object, catalog: object) -> None: ...
        def learn(self, bundle: object) -> None: ...
        def forget(self, bundle: object) -> None: ...

        def recommend(
            self, view: MinimizedView, k: int, exclude: frozenset[str]
        ) -> list[ScoredItem]:
            return [
                ScoredItem("x", 1.0, "twice", ""),
                ScoredItem("y", 0.8, "twice", ""),
                ScoredItem("x", 0.5, "twice", ""),
            ]

    hybrid = HybridRecommender([Twice()], weights={"twice": 2.0})
    out = hybrid.recommend(MinimizedView(), 2, frozenset())
    assert [(s.item, s.score) for s in out] == [("x", 3.0), ("y", 1.6)]
