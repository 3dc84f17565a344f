"""The consent ledger: append-only, folded per purpose, answerable as of any moment."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tactful import Tactful, ValidationError


def test_user_without_records_has_not_been_asked(tf: Tactful) -> None:
    status = tf.consent.status("nobody")
    assert {p: s.state for p, s in status.items()} == {
        "analytics.aggregate": "not_asked",
        "improve.models": "not_asked",
        "marketing.email": "not_asked",
        "marketing.targeted": "not_asked",
        "personalization": "not_asked",
        "personalization.precise_location": "not_asked",
    }


def test_grant_then_withdraw_and_the_past_stays_answerable(tf: Tactful) -> None:
    receipt = tf.consent.grant(
        "ann",
        ["personalization", "marketing.email"],
        notice_id="notice",
        notice_version="v3",
        method="ui",
    )
    assert receipt.state == "given" and receipt.purposes == ("personalization", "marketing.email")
    assert receipt.expires_at is not None and receipt.expires_at > receipt.recorded_at
    between = datetime.now(UTC)
    time.sleep(0.01)
    tf.consent.withdraw("ann", "personalization")
    now = tf.consent.status("ann")
    assert now["personalization"].state == "withdrawn"
    assert now["marketing.email"].state == "given"
    past = tf.consent.status("ann", as_of=between)
    assert past["personalization"].state == "given"
    assert past["personalization"].notice_version == "v3"
    before = tf.consent.status("ann", as_of=datetime(2000, 1, 1, tzinfo=UTC))
    assert before["personalization"].state == "not_asked"


def test_history_is_append_only(tf: Tactful) -> None:
    tf.consent.grant("ben", "personalization")
    tf.consent.withdraw("ben", "personalization")
    tf.consent.grant("ben", "personalization")
    history = tf.rights.export("ben")["consent_history"]
    assert [h["state"] for h in history] == ["given", "withdrawn", "given"]


def test_unknown_purpose_is_rejected_listing_the_declared_ones(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match=r"'telepathy' is not declared.*personalization"):
        tf.consent.grant("cid", ["telepathy"])
    assert tf.consent.status("cid")["personalization"].state == "not_asked"


def test_purpose_not_based_on_consent_cannot_be_granted(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="rests on contract"):
        tf.consent.grant("dan", "service.delivery")


def test_unknown_method_is_rejected(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="method"):
        tf.consent.grant("dan", "personalization", method="carrier-pigeon")


def test_receipt_carries_the_iso_27560_fields_and_no_user_id(tf: Tactful) -> None:
    notice_hash = "ab" * 32
    receipt = tf.consent.grant(
        "eve-4711",
        ["personalization", "marketing.email"],
        notice_id="privacy-notice",
        notice_version="2026-01",
        notice_hash=notice_hash,
        method="ui",
        source="web/settings",
    )
    doc = json.loads(receipt.to_json())
    assert doc["consent"]["state"] == "given" and doc["consent"]["type"] == "expressed"
    assert doc["notice"] == {"id": "privacy-notice", "version": "2026-01", "sha256": notice_hash}
    assert doc["collection"] == {"method": "ui", "source": "web/settings"}
    assert doc["controller"]["name"] == tf.pack.meta.controller.name
    assert [p["id"] for p in doc["purposes"]] == ["personalization", "marketing.email"]
    personalization = doc["purposes"][0]
    assert personalization["dpv"] == "dpv:PersonalisedRecommendation"
    assert personalization["lawful_basis"] == "consent" and personalization["profiling"] is True
    assert personalization["expires_at"] is not None
    assert len(doc["record_ids"]) == 2 and doc["receipt_id"]
    assert doc["data_subject"]["pseudonymous_id"] and "withdraw" in doc["withdrawal"]
    assert "eve-4711" not in receipt.to_json()
    withdrawal = json.loads(tf.consent.withdraw("eve-4711", "personalization").to_json())
    assert withdrawal["consent"]["state"] == "withdrawn"
    assert withdrawal["data_subject"] == doc["data_subject"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"notice_id": "x" * 129}, "notice_id must be a string of at most 128"),
        ({"notice_version": "v" * 33}, "notice_version must be a string of at most 32"),
        ({"source": "s" * 129}, "source must be a string of at most 128"),
        ({"notice_hash": "not-a-hash"}, "notice_hash must be"),
        ({"at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"at": datetime.now(UTC) + timedelta(days=1)}, "in the future"),
        ({"given_by": "neighbour"}, "given_by"),
        ({"explicit": "yes"}, "explicit must be True or False"),
    ],
)
def test_bad_grant_input_is_rejected_and_writes_nothing(
    tf: Tactful, kwargs: dict[str, Any], message: str
) -> None:
    tf.consent.grant("fay", "marketing.email")
    with pytest.raises(ValidationError, match=message):
        tf.consent.grant("fay", ["personalization"], **kwargs)
    assert tf.consent.status("fay")["personalization"].state == "not_asked"
    assert len(tf.rights.export("fay")["consent_history"]) == 1


def test_too_many_purposes_in_one_call_is_rejected(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="too many purposes"):
        tf.consent.grant("gus", ["personalization"] * 1 + [f"p{i}" for i in range(80)])


def test_as_of_must_be_timezone_aware(tf: Tactful) -> None:
    tf.consent.grant("hal", "personalization")
    with pytest.raises(ValidationError, match="as_of"):
        tf.consent.status("hal", as_of=datetime(2026, 1, 1))


def test_refusal_is_recorded_and_is_not_consent(tf: Tactful) -> None:
    receipt = tf.consent.refuse("ivy", "personalization", method="ui")
    assert receipt.state == "refused"
    assert tf.consent.status("ivy")["personalization"].state == "refused"
    assert tf.recommend("ivy").mode == "non_personalized"


def test_backdated_record_is_folded_by_time_everywhere(tf: Tactful) -> None:
    # A withdrawal imported from an older tool is appended after a grant but happened before
    # it: the grant (later in time) is the state, in status, training set and report counts.
    tf.consent.grant("jon", "personalization")
    tf.consent.withdraw("jon", "personalization")
    tf.consent.grant("kim", "personalization")
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    tf.consent.withdraw("kim", "personalization", method="import", at=three_days_ago)
    assert tf.consent.status("kim")["personalization"].state == "given"
    with tf._store.begin() as conn:
        ids = tf._ledger.consenting_subjects(conn, "personalization")
        counts = tf._ledger.counts(conn)["personalization"]
        kim = tf._store.subjects.get(conn, "kim")
        jon = tf._store.subjects.get(conn, "jon")
    assert kim.id in ids and jon.id not in ids
    assert counts == {"given": 1, "withdrawn": 1}


def test_grant_expires_after_the_purpose_validity(tf: Tactful) -> None:
    validity = tf.pack.purposes.get("personalization").validity_days
    assert validity is not None
    long_ago = datetime.now(UTC) - timedelta(days=validity + 1)
    receipt = tf.consent.grant("lea", "personalization", method="import", at=long_ago)
    assert receipt.expires_at == long_ago + timedelta(days=validity)
    assert tf.consent.status("lea")["personalization"].state == "expired"
    assert (
        tf.consent.status("lea", as_of=long_ago + timedelta(days=1))["personalization"].state
        == "given"
    )
    with tf._store.begin() as conn:
        assert tf._ledger.counts(conn)["personalization"] == {"expired": 1}
