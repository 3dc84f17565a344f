"""The answer's items: ranked on a 1e-9 grid whatever the scores (an app's recommender may
score NaN or infinity), validated once per content and shared between answers, and a wrong
item is still refused, whatever came before it."""

from __future__ import annotations

import pydantic
import pytest

import tactful.models
from tactful import Tactful, ValidationError
from tactful.models import RecommendedItem, recommended_items
from tactful.recommend import HybridRecommender, MinimizedView, ScoredItem
from tactful.recommend.types import best_first, on_grid
from tests.conftest import seed_small


def test_a_repeated_answer_shares_its_validated_items() -> None:
    scored = [
        ScoredItem("a", 0.5, "item_item", "Because you viewed B."),
        ScoredItem("c", 0.25, "popularity", "Popular."),
    ]
    first = recommended_items(scored)
    again = recommended_items([ScoredItem(*s) for s in scored])  # equal content, new tuples
    assert first == (
        RecommendedItem(
            item="a", score=0.5, signal="item_item", explanation="Because you viewed B."
        ),
        RecommendedItem(item="c", score=0.25, signal="popularity", explanation="Popular."),
    )
    assert all(x is y for x, y in zip(first, again, strict=True))


def test_a_wrong_item_is_refused_next_to_items_seen_before() -> None:
    good = ScoredItem("a", 0.5, "item_item", "x")
    recommended_items([good])
    with pytest.raises(pydantic.ValidationError) as caught:
        recommended_items([good, ScoredItem(7, 0.5, "app", "x")])  # type: ignore[arg-type]
    assert "item" in str(caught.value)
    with pytest.raises(pydantic.ValidationError):
        recommended_items([good, ScoredItem("b", "high", "app", "x")])  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):  # unhashable: not looked up, still refused
        recommended_items([good, ScoredItem("b", 0.5, "app", ["x"])])  # type: ignore[arg-type]


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tactful.models, "ITEM_MEMO", 8)
    for n in range(40):
        out = recommended_items(
            [
                ScoredItem(f"i{n}", 1.0, "popularity", "p"),
                ScoredItem(f"j{n}", 0.5, "popularity", "p"),
            ]
        )
        assert [i.item for i in out] == [f"i{n}", f"j{n}"]
        assert len(tactful.models._validated) <= 8


class Fixed:
    """An app recommender that answers a fixed list, and counts how often it was asked."""

    def __init__(self, name: str, answer: list[ScoredItem]) -> None:
        self.name = name
        self.answer = answer
        self.calls = 0

    def fit(self, bundles: object, catalog: object) -> None: ...

    def learn(self, bundle: object) -> None: ...

    def forget(self, bundle: object) -> None: ...

    def recommend(self, view: object, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        self.calls += 1
        return list(self.answer)


def test_an_app_recommenders_ill_typed_item_fails_the_call(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1", k=3)  # items of tactful's own recommenders validated and kept
    # An explanation that is not text: the answer must not reach the user.
    typo = Fixed("typo", [ScoredItem("f", 1.0, "typo", None)])  # type: ignore[arg-type]
    tf.register_recommender(typo, weight=1.0)
    tf.configure_recommendations(weights={"item_item": 0.0, "content": 0.0, "popularity": 0.0})
    with pytest.raises(ValidationError, match="item 1 has a signal or explanation that is not"):
        tf.recommend("u1", k=3)


def test_scores_out_of_range_rank_at_the_ends() -> None:
    inf, nan = float("inf"), float("nan")
    keys = [on_grid(x) for x in (nan, -inf, -1.0, 0.0, 1e-10, 0.1 + 0.2, 0.3, 1e300, inf)]
    assert keys == sorted(keys)
    assert on_grid(0.1 + 0.2) == on_grid(0.3), "float noise ties"
    assert on_grid(1e-10) == on_grid(0.0)


def test_ranking_keys_are_on_grid_whatever_the_scores() -> None:
    finite = [0.3, 0.1 + 0.2, -1.0, 0.0, 1e-10, 1e300, 2.5]
    assert best_first(finite) == [-on_grid(x) for x in finite]
    odd = [*finite, float("inf"), float("nan"), float("-inf")]
    assert best_first(odd) == [-on_grid(x) for x in odd]


def test_the_hybrid_ranks_an_app_recommenders_odd_scores_without_failing() -> None:
    odd = [
        ScoredItem("n", float("nan"), "odd", ""),
        ScoredItem("a", 2.0, "odd", ""),
        ScoredItem("i", float("inf"), "odd", ""),
    ]
    steady = [ScoredItem("a", 1.0, "steady", "")]
    for components in ([Fixed("odd", odd)], [Fixed("odd", odd), Fixed("steady", steady)]):
        hybrid = HybridRecommender(components, weights={"odd": 1.0, "steady": 1.0})
        ranked = hybrid.recommend(MinimizedView(), 3, frozenset())
        assert sorted(s.item for s in ranked) == ["a", "i", "n"]  # alone, and blended


def test_a_lone_component_is_asked_once_even_when_the_blend_decides() -> None:
    twice = Fixed("twice", [ScoredItem("x", 1.0, "twice", ""), ScoredItem("x", 0.5, "twice", "")])
    hybrid = HybridRecommender([twice], weights={"twice": 1.0})
    assert [s.item for s in hybrid.recommend(MinimizedView(), 3, frozenset())] == ["x"]
    assert twice.calls == 1


def test_a_lone_components_repeated_list_gives_the_same_items_as_a_fresh_blend() -> None:
    lone = Fixed("lone", [ScoredItem("b", 2.0, "lone", "B."), ScoredItem("a", 4.0, "lone", "A.")])
    hybrid = HybridRecommender([lone], weights={"lone": 0.5})
    fresh = HybridRecommender([lone], weights={"lone": 0.5})
    memo: dict = {}  # type: ignore[type-arg]
    view, none = MinimizedView(), frozenset[str]()

    def check(k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        got = hybrid.recommend(view, k, exclude, memo)
        assert got == fresh.recommend(view, k, exclude)
        return got

    first = check(2, none)
    assert first == [ScoredItem("a", 0.5, "lone", "A."), ScoredItem("b", 0.25, "lone", "B.")]
    again = check(2, none)
    assert again == first and again is not first
    again.clear()  # the caller's list: the memo keeps its own
    assert check(2, none) == first
    assert [s.item for s in check(1, none)] == ["a"]  # another k
    assert [s.item for s in check(2, frozenset({"a"}))] == ["b"]  # another exclusion
    lone.answer = [ScoredItem("c", 1.0, "lone", "C."), ScoredItem("a", 4.0, "lone", "A.")]
    assert [s.item for s in check(2, none)] == ["a", "c"]  # another list
    hybrid.weights["lone"] = fresh.weights["lone"] = 2.0
    assert check(2, none)[0].score == 2.0  # another weight
    assert lone.calls == 2 * 7, "the component is asked on every call"


def test_a_lone_component_mutating_the_list_it_returned_is_followed() -> None:
    class Shared(Fixed):
        def recommend(self, view: object, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
            self.calls += 1
            return self.answer  # the same list object every time

    shared = Shared("shared", [ScoredItem("a", 1.0, "shared", "A.")])
    hybrid = HybridRecommender([shared], weights={"shared": 1.0})
    memo: dict = {}  # type: ignore[type-arg]
    assert [s.item for s in hybrid.recommend(MinimizedView(), 2, frozenset(), memo)] == ["a"]
    shared.answer.insert(0, ScoredItem("b", 2.0, "shared", "B."))
    got = hybrid.recommend(MinimizedView(), 2, frozenset(), memo)
    assert [(s.item, s.score) for s in got] == [("b", 1.0), ("a", 0.5)]


def _blend_by_definition(
    lists: list[tuple[float, list[ScoredItem]]], k: int, exclude: frozenset[str]
) -> list[ScoredItem]:
    """The blend as HybridRecommender documents it, written plainly: each list's scores
    divided by its best and weighted, summed per item; each item explained by its largest
    part (the first such); ranked on the 1e-9 grid, then by item id."""
    blended: dict[str, float] = {}
    best: dict[str, tuple[float, ScoredItem]] = {}
    for w, listed in lists:
        listed = [s for s in listed if s.item not in exclude]
        top = max((s.score for s in listed), default=0.0)
        if top <= 0:
            continue
        for s in listed:
            part = w * max(s.score, 0.0) / top
            blended[s.item] = blended.get(s.item, 0.0) + part
            if s.item not in best or part > best[s.item][0]:
                best[s.item] = (part, s)
    ranked = sorted(blended, key=lambda i: (-on_grid(blended[i]), i))
    return [
        ScoredItem(i, blended[i], best[i][1].signal, best[i][1].explanation) for i in ranked[:k]
    ]


@pytest.mark.parametrize("seed", range(40))
def test_the_blend_of_several_lists_follows_its_definition(seed: int) -> None:
    import random

    rng = random.Random(seed)
    items = [f"i{n}" for n in range(30)]
    # Scores from a few values (ties after weighting and normalizing), zeros, negatives,
    # repeats of an item within a list, and now and then an out-of-range score.
    values = [0.0, -0.5, 0.1, 0.2, 0.1 + 0.2, 0.3, 1.0, 2.5, 1e-10]
    if seed % 5 == 0:
        values += [float("inf"), float("nan")]
    components = []
    for c in range(rng.randint(2, 4)):
        answer = [
            ScoredItem(rng.choice(items), rng.choice(values), f"s{c}", f"why {c}.{n}")
            for n in range(rng.randint(0, 25))
        ]
        components.append(Fixed(f"s{c}", answer))
    weights = {f.name: rng.choice([0.05, 0.1, 0.5, 1.0, 3.0]) for f in components}
    hybrid = HybridRecommender(components, weights=weights, pool=rng.randint(1, 40))
    for k in (1, 3, 10, 40):
        exclude = frozenset(rng.sample(items, rng.randint(0, 5)))
        lists = [(weights[f.name], f.answer) for f in components]
        want = _blend_by_definition(lists, k, exclude)
        got = hybrid.recommend(MinimizedView(), k, exclude)
        assert [(s.item, s.signal, s.explanation) for s in got] == [
            (s.item, s.signal, s.explanation) for s in want
        ]
        # The same sums (NaN compared as NaN).
        assert [repr(s.score) for s in got] == [repr(s.score) for s in want]
