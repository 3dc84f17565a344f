"""Art. 8 (children), Art. 9 (special categories) and material notice changes at the gate."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tactful import PolicyError, Tactful
from tactful.consent import AgeTable
from tactful.consent.age import is_minor
from tests.conftest import CATALOG, POLICIES, seed_small

YEAR = datetime.now(UTC).year


def test_age_table_reads_member_state_ages_with_16_by_default() -> None:
    table = AgeTable.load(POLICIES)
    assert table.age_of_consent("DE") == 16
    assert table.age_of_consent("FR") == 15
    assert table.age_of_consent("NO") == 13
    assert table.age_of_consent("ZZ") == 16
    assert table.age_of_consent(None) == 16


def test_age_table_rejects_ages_below_13(tmp_path: Path) -> None:
    (tmp_path / "age_of_consent.yaml").write_text("countries: {DE: 12}\n")
    with pytest.raises(PolicyError, match=r"countries\.DE"):
        AgeTable.load(tmp_path)


def test_birth_year_counts_conservatively() -> None:
    assert is_minor(YEAR - 16, 16, YEAR), "may not have had the 16th birthday yet"
    assert not is_minor(YEAR - 17, 16, YEAR)
    assert not is_minor(YEAR - 16, 15, YEAR)


def test_child_without_parental_authorization_gets_non_personalized(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"birth_year": YEAR - 14})
    recs = tf.recommend("u1")
    assert recs.mode == "non_personalized"
    assert recs.reasons == ("art8-child-needs-parental-authorization",)
    assert "parent" in recs.explanation


def test_parental_authorization_allows_profiling_for_a_child(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"birth_year": YEAR - 14})
    receipt = tf.consent.grant("u1", "personalization", given_by="guardian")
    assert receipt.given_by == "guardian"
    assert tf.consent.status("u1")["personalization"].parental
    assert tf.recommend("u1").mode == "personalized"
    tf.consent.withdraw("u1", "personalization", given_by="guardian")
    assert tf.recommend("u1").mode == "non_personalized"


def test_age_of_consent_follows_the_country(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"birth_year": YEAR - 16, "country": "FR"})  # 15 at least: FR is 15
    assert tf.recommend("u1").mode == "personalized"
    tf.profiles.put("u1", {"country": "DE"})  # 15 at least: DE is 16
    assert tf.recommend("u1").mode == "non_personalized"


def test_adult_and_undeclared_age_are_personalized(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"birth_year": YEAR - 30})
    assert tf.recommend("u1").mode == "personalized"
    assert tf.recommend("u2").mode == "personalized", "no birth year: not treated as a child"


def test_the_gate_reads_age_even_when_demographics_are_not_read(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"birth_year": YEAR - 14})
    tf.settings.update("u1", use_profile=False)
    recs = tf.recommend("u1")
    assert recs.mode == "non_personalized"
    assert not any(c.startswith("user.demographic") for c in recs.categories_used)


def test_special_category_reaches_the_recommender_only_with_explicit_consent(
    tf: Tactful,
) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"health_interest": "diabetes", "favorite_genres": ["action"]})
    recs = tf.recommend("u1")
    assert recs.mode == "personalized"
    assert "user.special.health" not in recs.categories_used
    assert "user.preference.genres" in recs.categories_used
    receipt = tf.consent.grant("u1", "personalization", explicit=True)
    assert receipt.consent_type == "explicit"
    assert "user.special.health" in tf.recommend("u1").categories_used
    tf.consent.grant("u1", "personalization")  # a later ordinary consent replaces it
    assert "user.special.health" not in tf.recommend("u1").categories_used


def _pack_with_material_notice(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(POLICIES, pack)
    text = (pack / "purposes.yaml").read_text()
    old = '      - {version: "2026-01"}\n'
    assert old in text
    (pack / "purposes.yaml").write_text(
        text.replace(old, old + '      - {version: "2026-06", material: true}\n')
    )
    return pack


def test_material_notice_change_needs_renewed_consent(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        seed_small(tf)
        tf.consent.grant("u1", "personalization", notice_version="2026-01")
        assert tf.recommend("u1").mode == "personalized"
    with Tactful.open(
        db_url=db_url, key_file=key, policies=_pack_with_material_notice(tmp_path)
    ) as tf:
        assert tf.consent.status("u1")["personalization"].state == "invalidated"
        assert tf.recommend("u1").mode == "non_personalized"
        tf.consent.grant("u1", "personalization", notice_version="2026-06")
        assert tf.consent.status("u1")["personalization"].state == "given"
        assert tf.recommend("u1").mode == "personalized"


def test_age_table_and_signal_map_are_part_of_the_policy_hash(tmp_path: Path) -> None:
    from tactful.policy import load_pack

    pack = tmp_path / "pack"
    shutil.copytree(POLICIES, pack)
    before = load_pack(pack).content_hash
    (pack / "age_of_consent.yaml").write_text("default: 15\n")
    after_age = load_pack(pack).content_hash
    (pack / "signals.yaml").write_text("gpc: {opt_out: []}\n")
    assert len({before, after_age, load_pack(pack).content_hash}) == 3


def test_a_childs_events_train_no_model_without_a_guardians_consent(tf: Tactful) -> None:
    """Art. 8 reaches the training set: a child's own consent makes none of their events
    shape other users' recommendations; a guardian's does."""
    tf.catalog.upsert(CATALOG)
    tf.events.record_many("adult", [("a", "view", None), ("c", "view", None)])
    tf.events.record_many("child", [("d", "view", None), ("f", "view", None)])
    tf.consent.grant("adult", ["personalization"])
    tf.profiles.put("child", {"birth_year": YEAR - 14})
    tf.consent.grant("child", ["personalization"])  # the child's own, unauthorized consent
    assert set(tf.recommend("stranger", k=6).item_ids) == {"a", "c"}
    # Withdrawing what never trained anything unlearns nothing (no negative counts).
    tf.consent.withdraw("child", ["personalization"])
    assert set(tf.recommend("stranger", k=6).item_ids) == {"a", "c"}
    tf.consent.grant("child", ["personalization"], given_by="guardian")
    assert set(tf.recommend("stranger", k=6).item_ids) == {"a", "c", "d", "f"}
    tf.rights.erase("child")
    assert set(tf.recommend("stranger", k=6).item_ids) == {"a", "c"}


def test_a_declared_birth_year_takes_a_childs_events_out_of_the_models(tf: Tactful) -> None:
    tf.catalog.upsert(CATALOG)
    tf.events.record_many("teen", [("e", "view", None)])
    tf.consent.grant("teen", ["personalization"])
    assert "e" in tf.recommend("stranger", k=6).item_ids, "no birth year: not treated as a child"
    tf.profiles.put("teen", {"birth_year": YEAR - 13})  # the next call refits without them
    assert "e" not in tf.recommend("stranger", k=6).item_ids
