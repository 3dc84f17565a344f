"""The models learn the events their own process records without a refit, and unlearning
stays exact when another process wrote events the models never learned: on SQLite and
PostgreSQL, each time against a refit in a fresh instance on the same store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from tactful import Tactful
from tactful.parts.models import CATCH_UP_MIN, CATCH_UP_SHARE
from tactful.recommend import CatalogItem, Interaction, MinimizedView, ScoredItem
from tests.conftest import POLICIES, seed_small

State = tuple[dict[tuple[str, str], float], dict[str, float], dict[str, int]]


def learned(tf: Tactful) -> State:
    """What the models hold: item-item's co-occurrence counts by item pair (zeros left out)
    and popularity's weighted counts and contributors by item."""
    models = tf._models
    counts = models.itemitem.counts().tocoo()
    items = models.itemitem.items
    pairs = {
        (items[i], items[j]): float(v)
        for i, j, v in zip(counts.row, counts.col, counts.data, strict=True)
        if v != 0
    }
    return pairs, dict(models.popularity.counts), dict(models.popularity.contributors)


def refit(db_url: str, tmp_path: Path) -> State:
    """The models of a fresh instance on the same store: a refit from what is stored now."""
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as new:
        new.train()
        return learned(new)


def assert_same(state: State, expected: State) -> None:
    pairs, counts, contributors = state
    assert pairs == expected[0]
    assert counts == pytest.approx(expected[1])
    assert contributors == expected[2]


class Bundles:
    """An app recommender that keeps the bundles it holds, as it was told to learn them."""

    name = "bundles"

    def __init__(self) -> None:
        self.held: list[list[Interaction]] = []

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        self.held = [list(b) for b in bundles]

    def learn(self, bundle: Sequence[Interaction]) -> None:
        self.held.append(list(bundle))

    def forget(self, bundle: Sequence[Interaction]) -> None:
        self.held.remove(list(bundle))  # a bundle never learned is an error

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        return []


def items_of(rec: Bundles) -> list[list[str]]:
    return sorted(sorted(i.item for i in b) for b in rec.held)


def fitted(tf: Tactful) -> tuple[Bundles, int]:
    """The small store, a recorder registered, the models fit; the recorder and fit count."""
    seed_small(tf)
    rec = Bundles()
    tf.register_recommender(rec)
    tf.recommend("u1", k=6)
    return rec, tf._models.fits


def test_events_recorded_here_are_learned_at_the_next_call_without_a_refit(
    tf: Tactful, db_url: str, tmp_path: Path
) -> None:
    rec, fits = fitted(tf)
    tf.events.record("u1", "d")  # a new item for u1: co-occurs with a, b, e from now on
    tf.events.record_many("u2", [("f", "view", None), ("a", "like", None)])
    tf.events.record_batch([("u4", "c", "view", None), ("u1", "c", "view", None)])
    after = tf.recommend("u1", k=6)
    assert tf._models.fits == fits, "no refit: the three users were learned again"
    assert_same(learned(tf), refit(db_url, tmp_path))
    assert items_of(rec) == [
        ["a", "a", "c", "e", "f"],
        ["a", "b", "c", "d", "e"],
        ["a", "b", "c", "f"],
    ]
    assert "d" not in after.item_ids and "c" not in after.item_ids, "seen items stay out"


def test_events_of_users_the_models_did_not_learn_change_nothing(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1", k=6)
    before, version = learned(tf), tf._models.version
    tf.events.record("u3", "a")  # u3 has not consented: not trained on
    tf.events.record("newcomer", "b")  # a new user: no consent yet
    tf.recommend("u1", k=6)
    assert learned(tf) == before and tf._models.version == version


def test_withdrawal_here_forgets_only_what_was_learned_when_another_process_added_events(
    tf: Tactful, other: Tactful, db_url: str, tmp_path: Path
) -> None:
    rec, fits = fitted(tf)
    other.events.record("u1", "d")  # tf never learned this one
    tf.consent.withdraw("u1", ["personalization"])
    assert tf._models.fits == fits, "unlearned in place, not refit"
    assert_same(learned(tf), refit(db_url, tmp_path))
    assert items_of(rec) == [["a", "b", "f"], ["a", "c", "e"]]


def test_erasure_here_forgets_only_what_was_learned_after_a_catch_up(
    tf: Tactful, other: Tactful, db_url: str, tmp_path: Path
) -> None:
    seed_small(tf)
    tf.recommend("u2", k=6)
    tf.events.record("u1", "c")
    tf.recommend("u2", k=6)  # u1 learned again, with c
    other.events.record("u1", "f")  # and then another process adds f
    tf.rights.erase("u1")
    assert_same(learned(tf), refit(db_url, tmp_path))
    assert ("c", "e") in learned(tf)[0], "u2's own co-occurrences stay"


def test_events_another_process_wrote_are_learned_at_most_once_per_sync_interval(
    tf: Tactful, other: Tactful, db_url: str, tmp_path: Path
) -> None:
    seed_small(tf)
    tf._models.sync_interval = 3600.0  # no look falls due by the clock during the test
    tf.recommend("u1", k=6)
    fits = tf._models.fits
    other.events.record("u1", "d")
    other.events.record_many("u4", [("c", "view", None), ("e", "view", None)])
    other.events.record("u3", "a")  # u3 is not trained on
    tf.recommend("u2", k=6)
    assert tf._models.fits == fits and learned(tf) != refit(db_url, tmp_path), (
        "within the interval after the fit the process does not look"
    )
    tf._models._next_sync = 0.0  # as when the interval has passed
    tf.recommend("u2", k=6)
    assert tf._models.fits == fits, "caught up, not refit"
    assert_same(learned(tf), refit(db_url, tmp_path))
    before = learned(tf)
    other.events.record("u2", "b")
    tf.recommend("u2", k=6)
    assert learned(tf) == before, "within the interval the process does not look again"
    tf._models.sync_interval = 0.0
    tf._models._next_sync = 0.0  # as when the interval has passed
    tf.recommend("u2", k=6)
    assert tf._models.fits == fits
    assert_same(learned(tf), refit(db_url, tmp_path))
    tf.rights.erase("u4")  # unlearning stays exact after learning another process's events
    assert_same(learned(tf), refit(db_url, tmp_path))


def test_an_infinite_sync_interval_leaves_other_processes_events_to_the_next_refit(
    tf: Tactful, other: Tactful, db_url: str, tmp_path: Path
) -> None:
    # docs/architecture.md, "Models across processes": the setting that restores models
    # which change only at refits (and with this process's own events).
    seed_small(tf)
    tf._models.sync_interval = float("inf")
    tf.train()
    fits = tf._models.fits
    other.events.record("u1", "d")
    for _ in range(3):
        tf.recommend("u2", k=6)
    assert tf._models.fits == fits
    assert learned(tf) != refit(db_url, tmp_path), "another process's event is not looked for"
    tf.events.record("u4", "c")
    tf.recommend("u2", k=6)
    assert ("c", "f") in learned(tf)[0], "this process's own events are still learned"
    tf.train()
    assert_same(learned(tf), refit(db_url, tmp_path))


def test_an_event_numbered_below_the_learned_mark_makes_the_process_refit(
    tf: Tactful, other: Tactful, db_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL an event numbered earlier can commit after a fit read the user; the
    learned set is then no longer "the events up to the mark", which the catch-up sees."""
    seed_small(tf)
    tf.recommend("u2", k=6)
    fits = tf._models.fits
    other.events.record("u1", "d")
    with tf._store.begin() as conn:  # d drew its number before the fit's latest for u1
        conn.execute(text("UPDATE event SET seq = 1 WHERE seq = (SELECT max(seq) FROM event)"))
    tf.events.record("u1", "c")
    tf.recommend("u2", k=6)
    assert tf._models.fits == fits + 1
    assert_same(learned(tf), refit(db_url, tmp_path))


def many_trained(tf: Tactful) -> list[str]:
    """Twice CATCH_UP_MIN consenting users with one event each, the models fit."""
    users = [f"user{n}" for n in range(2 * CATCH_UP_MIN)]
    tf.catalog.upsert([{"item_id": f"i{n}", "title": f"Item {n}"} for n in range(5)])
    tf.events.record_batch([(u, f"i{n % 5}", "view", None) for n, u in enumerate(users)])
    for u in users:
        tf.consent.grant(u, ["personalization"])
    tf.recommend(users[0], k=3)
    return users


def test_events_of_many_learned_users_at_once_are_a_refit(
    tf: Tactful, db_url: str, tmp_path: Path
) -> None:
    users = many_trained(tf)
    fits = tf._models.fits
    few = users[:CATCH_UP_MIN]
    tf.events.record_batch([(u, "i4", "view", None) for u in few])
    tf.recommend(users[0], k=3)
    assert tf._models.fits == fits, f"{len(few)} users are caught up"
    limit = CATCH_UP_MIN + len(users) // CATCH_UP_SHARE
    tf.events.record_batch([(u, "i3", "view", None) for u in users[: limit + 1]])
    tf.recommend(users[0], k=3)
    assert tf._models.fits == fits + 1, f"{limit + 1} users are refit"
    assert_same(learned(tf), refit(db_url, tmp_path))


def test_threads_recording_and_recommending_at_once_end_where_a_refit_would(
    tf: Tactful, db_url: str, tmp_path: Path
) -> None:
    users = [f"user{n}" for n in range(12)]
    tf.catalog.upsert([{"item_id": f"i{n}", "title": f"Item {n}"} for n in range(20)])
    tf.events.record_batch([(u, f"i{n % 20}", "view", None) for n, u in enumerate(users)])
    for u in users:
        tf.consent.grant(u, ["personalization"])
    tf.recommend(users[0], k=3)
    fits, errors = tf._models.fits, []

    def work(mine: list[str], offset: int) -> None:
        try:
            for step in range(15):
                for u in mine:
                    tf.events.record(u, f"i{(step * 7 + offset) % 20}", "view")
                    tf.recommend(u, k=3)
        except Exception as exc:  # reported below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(users[n::3], n)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tf.recommend(users[0], k=3)
    assert tf._models.fits == fits, "caught up, never refit"
    assert_same(learned(tf), refit(db_url, tmp_path))


def test_many_users_events_from_another_process_are_a_refit_in_the_same_call(
    tf: Tactful, other: Tactful, db_url: str, tmp_path: Path
) -> None:
    users = many_trained(tf)
    fits = tf._models.fits
    limit = CATCH_UP_MIN + len(users) // CATCH_UP_SHARE
    other.events.record_batch([(u, "i2", "view", None) for u in users[: limit + 1]])
    tf._models._next_sync = 0.0  # as when the interval has passed
    tf.recommend(users[0], k=3)
    assert tf._models.fits == fits + 1, f"{limit + 1} users are refit, at this call"
    assert_same(learned(tf), refit(db_url, tmp_path))


class Waiting(Bundles):
    """An app recommender whose fit waits (at most 10 s) until the test says go on."""

    name = "waiting"

    def __init__(self) -> None:
        super().__init__()
        self.fitting = threading.Event()
        self.go_on = threading.Event()
        self.waited_out = False

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        self.fitting.set()
        self.waited_out = not self.go_on.wait(timeout=10)
        super().fit(bundles, catalog)


def test_a_refit_holds_no_write_lock_and_writers_go_on_during_it(
    tf: Tactful, other: Tactful
) -> None:
    # The fit only reads. In a write transaction it held SQLite's write lock for its whole
    # length, and every writer of every process waited behind it.
    seed_small(tf)
    rec = Waiting()
    tf.register_recommender(rec)
    rec.go_on.set()
    tf.recommend("u1", k=6)
    rec.fitting.clear()
    rec.go_on.clear()
    training = threading.Thread(target=tf.train)
    training.start()
    try:
        assert rec.fitting.wait(timeout=10), "the refit started"
        other.settings.update("u2", discovery=0.7)  # another instance writes meanwhile
        other.events.record("u4", "c")
        assert not rec.go_on.is_set() and not rec.waited_out, "written while the fit ran"
    finally:
        rec.go_on.set()
        training.join(timeout=30)
    assert not rec.waited_out
    assert tf.recommend("u4", k=6).mode == "personalized"
