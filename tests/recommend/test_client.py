"""Recommenders behind the gate, through Tactful on SQLite and PostgreSQL: the app's own
recommender, blend weights and rules, exploration, excluded topics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tactful import Tactful, ValidationError
from tactful.recommend import CatalogItem, Interaction, MinimizedView, Rule, ScoredItem
from tests.conftest import seed_small


class Newest:
    """An app recommender: suggests 'f' and 'c'; records what it was given."""

    name = "newest"

    def __init__(self) -> None:
        self.bundles: list[list[Interaction]] = []
        self.forgotten: list[list[Interaction]] = []
        self.views: list[MinimizedView] = []

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        self.bundles = [list(b) for b in bundles]

    def learn(self, bundle: Sequence[Interaction]) -> None:
        self.bundles.append(list(bundle))

    def forget(self, bundle: Sequence[Interaction]) -> None:
        self.forgotten.append(list(bundle))

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        self.views.append(view)
        return [ScoredItem(i, 1.0, self.name, "New this week.") for i in ["f", "c"]][:k]


def test_registered_recommender_is_gated_and_learns_only_consented_users(tf: Tactful) -> None:
    seed_small(tf)
    app = Newest()
    tf.register_recommender(app, weight=5.0)
    recs = tf.recommend("u1", k=3)
    assert recs.items[0].signal == "newest" and recs.items[0].explanation == "New this week."
    assert len(app.bundles) == 3, "u1, u2, u4 consented; u3 did not"
    assert all(isinstance(v, MinimizedView) for v in app.views)
    calls = len(app.views)
    assert tf.recommend("u3", k=3).mode == "non_personalized"
    assert len(app.views) == calls, "no view of a user without consent"
    tf.rights.erase("u2")
    assert app.forgotten or len(app.bundles) == 2, "an erased user's bundle is unlearned"


def test_registered_recommender_never_shows_excluded_topics(tf: Tactful) -> None:
    seed_small(tf)
    tf.register_recommender(Newest(), weight=5.0)
    tf.settings.update("u1", excluded_topics=["horror"])
    assert "f" not in tf.recommend("u1", k=4).item_ids


class Scripted(Newest):
    """An app recommender that answers whatever `answer` is, or raises it."""

    name = "scripted"

    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        self.views.append(view)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[return-value]


def _decisions(tf: Tactful) -> list[dict[str, object]]:
    tf.audit.flush()
    with tf._store.begin() as conn:
        return [r.payload for r in tf._audit.records(conn, kind="decision")]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (None, "the answer is a NoneType"),
        ("f", "the answer is a str"),
        ({"f": 1.0}, "item 1 is a str"),
        (["f"], "item 1 is a str"),
        ([ScoredItem("f", 1.0, "s", "x"), ("c", 1.0, "s")], "item 2 is a tuple"),
        ([ScoredItem(7, 1.0, "s", "x")], "item 1 has an item id"),  # type: ignore[arg-type]
        ([ScoredItem("", 1.0, "s", "x")], "item 1 has an item id"),
        ([ScoredItem("f", "high", "s", "x")], "item 1 has a score of type str"),  # type: ignore[arg-type]
        ([ScoredItem("f", True, "s", "x")], "item 1 has a score of type bool"),
        ([ScoredItem("f", 1.0, "s", None)], "item 1 has a signal or explanation"),  # type: ignore[arg-type]
    ],
)
def test_an_ill_typed_answer_is_a_clear_error_and_its_decision_is_recorded(
    tf: Tactful, answer: object, says: str
) -> None:
    seed_small(tf)
    tf.register_recommender(Scripted(answer), weight=5.0)
    before = len(_decisions(tf))
    with pytest.raises(ValidationError, match=f"{says}.*recommender 'scripted' must return"):
        tf.recommend("u1", k=3)
    records = _decisions(tf)
    assert len(records) == before + 1, "the decision was made and its view handed out"
    failed = records[-1]
    assert failed["failure"] == "ValidationError"
    assert failed["outcome"] == "personalized" and failed["items"] == 0
    assert failed["recommender"] == "hybrid"
    assert "high" not in str(failed) and "'f'" not in str(failed)
    assert tf.audit.verify().ok


def test_a_raising_recommender_reaches_the_caller_and_its_decision_is_recorded(
    tf: Tactful,
) -> None:
    seed_small(tf)
    app = Scripted(RuntimeError("the app's model server is down for u1"))
    tf.register_recommender(app, weight=5.0)
    with pytest.raises(RuntimeError, match="model server is down"):
        tf.recommend("u1", k=3)
    failed = _decisions(tf)[-1]
    assert failed["failure"] == "RuntimeError", "the type is recorded"
    assert "u1" not in str(failed) and "down" not in str(failed), "never the message"
    # The failure poisons nothing: the next call with a working answer gets it and a record.
    app.answer = [ScoredItem("f", 1.0, "scripted", "New this week.")]
    recs = tf.recommend("u1", k=3)
    assert recs.items[0].item == "f"
    last = _decisions(tf)[-1]
    assert last["decision_id"] == recs.decision_id and "failure" not in last
    assert last["items"] == len(recs.items)


@pytest.mark.parametrize("container", [list, tuple, iter])
def test_an_app_answer_of_ints_numpy_floats_and_plain_tuples_is_taken(
    tf: Tactful, container: type
) -> None:
    seed_small(tf)
    items = [("f", np.float64(2.0), "scripted", "Why f."), ("c", 1, "scripted", "Why c.")]
    app = Scripted(None)
    app.recommend = lambda view, k, exclude: container(items)  # type: ignore[method-assign]
    tf.register_recommender(app, weight=5.0)
    recs = tf.recommend("u1", k=3)
    assert recs.item_ids[:2] == ["f", "c"]
    assert recs.items[0].explanation == "Why f." and isinstance(recs.items[1].score, float)


def test_register_rejects_non_recommenders_and_duplicate_names(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="must implement"):
        tf.register_recommender(object())  # type: ignore[arg-type]
    tf.register_recommender(Newest())
    with pytest.raises(ValidationError, match="already registered"):
        tf.register_recommender(Newest())


def test_app_weights_and_context_rules_shape_the_personalized_list(tf: Tactful) -> None:
    seed_small(tf)
    tf.configure_recommendations(
        rules=[
            Rule(
                "pin",
                item={"item": "d"},
                when={"context.device": "mobile"},
                reason="short on mobile",
            )
        ]
    )
    assert tf.recommend("u1", k=3).item_ids[0] != "d"
    recs = tf.recommend("u1", k=3, context={"device": "mobile"})
    assert recs.item_ids[0] == "d" and recs.items[0].explanation == "Featured: short on mobile."
    with pytest.raises(ValidationError, match="unknown recommender"):
        tf.configure_recommendations(weights={"nope": 1.0})


def test_discovery_adds_an_item_outside_the_usual_categories(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u1", discovery=0.5)
    recs = tf.recommend("u1", k=3)
    last = recs.items[-1]
    assert last.item in {"c", "d"}, "u1 watches action and horror: comedy is new"
    assert "outside what you usually choose" in last.explanation
