"""Bulk paths: many users' profiles and events in one transaction, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tactful import SubjectNotFound, Tactful, ValidationError


def test_put_many_writes_every_users_fields(tf: Tactful) -> None:
    tf.profiles.put("old", {"country": "DE"})
    n = tf.profiles.put_many(
        {"old": {"age_range": "25-34"}, "new": {"country": "FR", "email": "n@example.org"}}
    )
    assert n == 2
    assert tf.profiles.get("old") == {"age_range": "25-34", "country": "DE"}
    assert tf.profiles.find("email", "n@example.org") == ["new"]


def test_put_many_rejects_the_whole_batch_on_one_bad_value(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="'age_range' must be of type str"):
        tf.profiles.put_many({"a": {"country": "DE"}, "b": {"age_range": 3}})
    with pytest.raises(SubjectNotFound):
        tf.profiles.get("a")
    assert tf.keys.status().versions == {1: 0}  # no data key was made either


def test_record_batch_records_events_of_many_users(tf: Tactful) -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    n = tf.events.record_batch(
        [("a", "i1", "view", t), ("b", "i2", "like", None), ("a", "i3", "view", None)]
    )
    assert n == 3
    assert [e["item"] for e in tf.rights.export("a")["events"]] == ["i1", "i3"]
    assert [e["kind"] for e in tf.rights.export("b")["events"]] == ["like"]


def test_record_batch_is_all_or_nothing(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        tf.events.record_batch(
            [("a", "i1", "view", None), ("b", "i2", "view", datetime(2026, 1, 1))]
        )
    with pytest.raises(ValidationError, match="user id"):
        tf.events.record_batch([("a", "i1", "view", None), ("", "i2", "view", None)])
    with pytest.raises(SubjectNotFound):
        tf.profiles.get("a")
