"""The consent ledger: append-only, folded per purpose, answerable as of any moment."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tactful import Tactful, ValidationError


def test_user_without_records_has_not_been_asked(tf: Tactful) -> None:
    status = tf.consent.status("nobody")
    assert {p: s.state for p, s in status.items()} == {
        "analytics.aggregate": "not_asked",
        "marketing.email": "not_asked",
        "personalization": "not_asked",
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
