"""Every setting has an effect the gate honors, shown on a real recommendation; settings are
validated, stored encrypted and kept with their history for export."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tactful import Tactful, ValidationError
from tactful.settings import pool_size
from tactful.store.tables import SettingsHistory, UserSettings, table_of
from tests.conftest import seed_small


def _seed_chain(tf: Tactful) -> None:
    """'me' viewed i0; item i<n> was co-viewed with i0 by 9 - n consenting users."""
    tf.catalog.upsert([{"item_id": f"i{n}", "title": f"Item {n}"} for n in range(10)])
    for n in range(1, 9):
        for u in range(9 - n):
            tf.events.record_many(f"fan{n}-{u}", [("i0", "view", None), (f"i{n}", "view", None)])
            tf.consent.grant(f"fan{n}-{u}", "personalization")
    tf.events.record_many("me", [("i0", "view", None)])
    tf.consent.grant("me", "personalization")


def test_personalization_off_gives_the_option_not_based_on_profiling(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u1", personalization=False)
    recs = tf.recommend("u1")
    assert recs.mode == "non_personalized" and recs.categories_used == ()


def test_discovery_level_moves_the_list_away_from_the_closest_items(tf: Tactful) -> None:
    _seed_chain(tf)
    tf.settings.update("me", discovery=0.0)
    close = tf.recommend("me", k=2)
    assert close.item_ids == ["i1", "i2"]
    tf.settings.update("me", discovery=1.0)
    far = tf.recommend("me", k=2)
    assert far.mode == "personalized"
    assert not set(far.item_ids) & {"i1", "i2"}
    assert set(far.item_ids) <= {f"i{n}" for n in range(3, 9)}, "still items related to i0"


def test_discovery_widens_the_candidate_pool() -> None:
    assert pool_size(4, 0.0) == 4 and pool_size(4, 0.5) == 10 and pool_size(4, 1.0) == 16


def test_excluded_topics_never_appear_in_personalized_lists(tf: Tactful) -> None:
    seed_small(tf)
    before = tf.recommend("u1", k=3)
    assert before.mode == "personalized"
    tf.settings.update("u1", excluded_topics=["comedy", "horror"])
    after = tf.recommend("u1", k=3)
    assert not {"c", "d", "e", "f"} & set(after.item_ids)


def test_behavior_off_means_the_history_is_not_read(tf: Tactful) -> None:
    seed_small(tf)
    assert "user.behavior.interaction" in tf.recommend("u1").categories_used
    tf.settings.update("u1", use_behavior=False)
    recs = tf.recommend("u1", k=3)
    assert "user.behavior.interaction" not in recs.categories_used
    assert all(i.signal != "item_item" for i in recs.items), "no history-based item"


def test_profile_off_means_declared_fields_are_not_read(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"favorite_genres": ["action"]})
    assert "user.preference.genres" in tf.recommend("u1").categories_used
    tf.settings.update("u1", use_profile=False)
    assert "user.preference.genres" not in tf.recommend("u1").categories_used


def test_location_off_means_location_fields_are_not_read(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "DE"})
    assert "user.location.country" in tf.recommend("u1").categories_used
    tf.settings.update("u1", use_location=False)
    recs = tf.recommend("u1")
    assert recs.mode == "personalized"
    assert "user.location.country" not in recs.categories_used


def test_recommendations_channel_off_gives_no_recommendations(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u3", channel_recommendations=False)
    recs = tf.recommend("u3")
    assert recs.mode == "denied" and recs.items == ()
    assert recs.reasons == ("settings-channel-off",)
    assert tf.recommend("u3", context={"channel": "email"}).items != ()


def test_email_channel_off_stops_email_recommendations_only(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u1", channel_email=False)
    assert tf.recommend("u1", context={"channel": "email"}).mode == "denied"
    assert tf.recommend("u1").mode == "personalized"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"discovery": 1.5}, "discovery"),
        ({"discovery": "high"}, "discovery"),
        ({"telepathy": True}, "telepathy"),
        ({"excluded_topics": ["x" * 200]}, "excluded_topics"),
        ({"excluded_topics": [""]}, "excluded_topics"),
        ({"excluded_topics": ["t"] * 300}, "excluded_topics"),
        ({}, "no setting given"),
    ],
)
def test_invalid_settings_are_rejected_and_write_nothing(
    tf: Tactful, changes: dict[str, object], message: str
) -> None:
    tf.settings.update("ann", discovery=0.7)
    with pytest.raises(ValidationError, match=message):
        tf.settings.update("ann", **changes)
    assert tf.settings.get("ann").discovery == 0.7
    assert len(tf.settings.history("ann")) == 1


def test_settings_and_history_are_encrypted_and_exported(tf: Tactful) -> None:
    tf.settings.update("bea", excluded_topics=["zzcanarytopic"])
    tf.settings.update("bea", personalization=False)
    history = tf.settings.history("bea")
    assert [h["settings"]["personalization"] for h in history] == [True, False]
    assert history[0]["settings"]["excluded_topics"] == ["zzcanarytopic"]
    export = tf.rights.export("bea")
    assert export["settings_history"] == history
    assert export["settings"]["personalization"] is False
    with tf._store.begin() as conn:
        blobs = [r[0] for r in conn.execute(select(table_of(SettingsHistory).c.ciphertext))]
        blobs += [r[0] for r in conn.execute(select(table_of(UserSettings).c.ciphertext))]
    assert len(blobs) == 3
    assert not any(b"zzcanarytopic" in bytes(b) for b in blobs)


def test_unknown_user_has_default_settings_and_no_history(tf: Tactful) -> None:
    assert tf.settings.get("nobody").personalization is True
    assert tf.settings.history("nobody") == []


def test_erasure_removes_settings_and_their_history(tf: Tactful) -> None:
    tf.settings.update("cid", discovery=0.9)
    tf.settings.update("cid", discovery=0.1)
    tf.rights.erase("cid")
    assert tf.settings.history("cid") == [], "unreadable at once: the key is shredded"
    tf.rights.purge()  # the rows go with the batched purge
    with tf._store.begin() as conn:
        assert conn.execute(select(table_of(SettingsHistory))).first() is None
