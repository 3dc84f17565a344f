"""A repeated call reuses its plan: only what may differ between two calls is made again."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tactful import Tactful, ValidationError
from tactful.recommend import CatalogItem, Interaction, MinimizedView, ScoredItem
from tests.conftest import seed_small


class Scripted:
    """An app's recommender whose answer the test sets; it records the views it is given."""

    name = "scripted"

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = [("d", 2.0), ("c", 1.0)]
        self.views: list[MinimizedView] = []
        self.asked: list[int] = []

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        pass

    def learn(self, bundle: Sequence[Interaction]) -> None:
        pass

    def forget(self, bundle: Sequence[Interaction]) -> None:
        pass

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        self.views.append(view)
        self.asked.append(k)
        return [ScoredItem(i, s, self.name, f"Scripted {i}.") for i, s in self.items][:k]


@pytest.fixture
def scripted(tf: Tactful) -> Scripted:
    seed_small(tf)
    rec = Scripted()
    tf.register_recommender(rec)
    tf.configure_recommendations(weights={"item_item": 0.0, "content": 0.0, "popularity": 0.0})
    tf.settings.update("u1", discovery=0.0)  # the scripted order, not re-ranked for discovery
    return rec


def test_repeated_calls_follow_the_recommenders_answer(tf: Tactful, scripted: Scripted) -> None:
    first = tf.recommend("u1", k=2)
    again = tf.recommend("u1", k=2)
    assert first.item_ids == again.item_ids == ["d", "c"]
    assert first.items == again.items and first.decision_id != again.decision_id
    scripted.items = [("c", 3.0), ("d", 1.0)]
    changed = tf.recommend("u1", k=2)
    assert changed.item_ids == ["c", "d"]
    assert [i.score for i in changed.items] == [1.0, 1.0 / 3.0]
    assert changed.items[0].explanation == "Scripted c."
    scripted.items = [("c", 3.0), ("f", 2.0)]
    assert tf.recommend("u1", k=2).item_ids == ["c", "f"]


def test_repeated_calls_follow_k_and_the_context(tf: Tactful, scripted: Scripted) -> None:
    assert len(tf.recommend("u1", k=1).items) == 1
    assert len(tf.recommend("u1", k=2).items) == 2
    assert len(tf.recommend("u1", k=1).items) == 1
    assert scripted.asked == [1, 2, 1]
    for device in ("mobile", "desktop", "mobile"):
        tf.recommend("u1", k=2, context={"device": device})
        assert dict(scripted.views[-1].context) == {"device": device}
    tf.recommend("u1", k=2)
    assert dict(scripted.views[-1].context) == {}


def test_a_context_is_checked_on_every_call(tf: Tactful, scripted: Scripted) -> None:
    tf.recommend("u1", context={"device": "mobile"})
    tf.recommend("u1", context={"device": "mobile"})
    for bad in ({"device": 1}, {"device": ["mobile"]}, {1: "mobile"}, "device=mobile"):
        with pytest.raises(ValidationError, match="context must be a dict"):
            tf.recommend("u1", context=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not declared"):
        tf.recommend("u1", purpose="nope", context={"device": "mobile"})
    assert tf.recommend("u1", context={"device": "mobile"}).mode == "personalized"


def test_a_write_between_calls_makes_a_new_plan(tf: Tactful, scripted: Scripted) -> None:
    assert tf.recommend("u1", k=2).mode == "personalized"
    scripted.items = [("d", 2.0), ("f", 1.0)]
    tf.settings.update("u1", excluded_topics=["comedy"])
    assert tf.recommend("u1", k=2).item_ids == ["f"]
    tf.consent.withdraw("u1", "personalization")
    after = tf.recommend("u1", k=2)
    assert after.mode == "non_personalized" and after.categories_used == ()
    assert len(scripted.views) == 2, "a non-personalized call asks no app recommender"


def test_repeated_unknown_user_calls_get_new_decision_ids_and_the_same_items(tf: Tactful) -> None:
    seed_small(tf)
    calls = [tf.recommend(f"visitor-{n}", k=2) for n in range(3)]
    assert {c.mode for c in calls} == {"non_personalized"}
    assert len({c.decision_id for c in calls}) == 3
    assert calls[0].items == calls[1].items == calls[2].items
