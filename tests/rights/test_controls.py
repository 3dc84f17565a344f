"""Rectification, restriction and objection, as the gate and the models honor them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tactful import Tactful, ValidationError
from tests.conftest import POLICIES, seed_small

MARKETING_RULE = """
  - id: marketing-consented
    description: "marketing e-mails with your consent"
    match: {purposes: [marketing.email], status: [active], consent: given}
    effect: personalized
  - id: marketing-legitimate-interest
    description: "a pack that (wrongly) allows marketing without consent"
    match: {purposes: [marketing.email], status: [active]}
    effect: personalized
"""


def test_rectification_corrects_a_field_and_parses_text_by_type(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "DE"})
    info = tf.rights.rectify("u1", "country", "FR")
    assert info.kind == "rectification" and info.status == "completed"
    tf.rights.rectify("u1", "favorite_genres", "drama, noir")
    tf.rights.rectify("u1", "birth_year", "1990")
    assert tf.profiles.get("u1") == {
        "country": "FR",
        "favorite_genres": ["drama", "noir"],
        "birth_year": 1990,
    }
    with pytest.raises(ValidationError, match="'birth_year' takes a value of type int"):
        tf.rights.rectify("u1", "birth_year", "nineteen")
    with pytest.raises(ValidationError, match="not declared"):
        tf.rights.rectify("u1", "shoe_size", "44")
    assert len(tf.rights.requests.list(kind="rectification")) == 3, "failures open no request"


def test_restriction_denies_everything_until_lifted(tf: Tactful) -> None:
    seed_small(tf)
    assert tf.recommend("u1").mode == "personalized"
    info = tf.rights.restrict("u1")
    assert info.kind == "restriction" and info.status == "completed"
    denied = tf.recommend("u1")
    assert denied.mode == "denied" and "restricted-deny" in denied.reasons and not denied.items
    tf.events.record("u1", "c")  # storage goes on
    tf.rights.unrestrict("u1")
    assert tf.recommend("u1").mode == "personalized"


def test_a_restricted_users_data_trains_no_model(tf: Tactful) -> None:
    seed_small(tf)
    assert "f" in tf.recommend("u3", k=6).item_ids, "f is only viewed by u4"
    tf.rights.restrict("u4")
    assert "f" not in tf.recommend("u3", k=6).item_ids
    tf.train()
    assert "f" not in tf.recommend("u3", k=6).item_ids, "a refit leaves them out too"
    tf.consent.withdraw("u4", ["personalization"])  # never learned: nothing to unlearn
    assert "f" not in tf.recommend("u3", k=6).item_ids
    tf.consent.grant("u4", ["personalization"])
    tf.rights.unrestrict("u4")
    assert "f" in tf.recommend("u3", k=6).item_ids


def test_objecting_to_profiling_stops_personalization_even_after_a_new_consent(
    tf: Tactful,
) -> None:
    seed_small(tf)
    tf.rights.object("u4", "personalization")
    result = tf.recommend("u4")
    assert result.mode == "non_personalized" and result.reasons == ("objection-profiling",)
    assert "f" not in tf.recommend("u3", k=6).item_ids, "their events stopped training"
    tf.consent.grant("u4", ["personalization"])
    assert tf.recommend("u4").mode == "non_personalized", "the objection outweighs consent"
    assert tf.rights.lift_objection("u4", "personalization")
    assert tf.recommend("u4").mode == "personalized"


def test_a_direct_marketing_objection_is_absolute(tmp_path: Path, db_url: str) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(POLICIES, pack)
    with (pack / "rules.yaml").open("a", encoding="utf-8") as fh:
        fh.write(MARKETING_RULE)
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=pack) as tf:
        seed_small(tf)
        tf.consent.grant("u1", ["marketing.email"])
        assert tf.recommend("u1", purpose="marketing.email").mode == "personalized"
        tf.rights.object("u1", "marketing.email")
        denied = tf.recommend("u1", purpose="marketing.email")
        assert denied.mode == "denied" and denied.reasons == ("objection-direct-marketing",)
        tf.consent.grant("u1", ["marketing.email"])
        assert tf.recommend("u1", purpose="marketing.email").mode == "denied"
        assert tf.recommend("u1").mode == "personalized", "other purposes are untouched"


def test_objection_needs_a_declared_purpose(tf: Tactful) -> None:
    seed_small(tf)
    with pytest.raises(ValidationError, match="not declared"):
        tf.rights.object("u1", "telemarketing")
    assert tf.rights.requests.list() == []
