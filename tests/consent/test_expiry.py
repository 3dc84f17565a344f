"""A consent that lapses by time stops personalization, and training, at the next call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import tactful.consent.ledger
import tactful.parts.models
import tactful.policy.cache
from tactful import Tactful
from tests.conftest import CATALOG


class Clock:
    """Moves the time the ledger and the model freshness check see (nothing else)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta()
        for module in (tactful.consent.ledger, tactful.parts.models, tactful.policy.cache):
            monkeypatch.setattr(module, "now", self.now)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_expired_consent_stops_personalization_and_leaves_the_models(
    tf: Tactful, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    validity = tf.pack.purposes.get("personalization").validity_days
    assert validity is not None
    tf.catalog.upsert(CATALOG)
    tf.events.record_many("lapsing", [("c", "view", None), ("d", "view", None)])
    tf.events.record_many("steady", [("a", "view", None), ("c", "view", None)])
    soon = datetime.now(UTC) - timedelta(days=validity) + timedelta(hours=1)
    tf.consent.grant("lapsing", "personalization", method="import", at=soon)
    tf.consent.grant("steady", "personalization")
    assert tf.recommend("lapsing", k=2).mode == "personalized"
    assert "d" in tf.recommend("stranger", k=6).item_ids, "lapsing's views count while in force"

    clock.offset = timedelta(hours=2)
    assert tf.consent.status("lapsing")["personalization"].state == "expired"
    recs = tf.recommend("lapsing", k=2)
    assert recs.mode == "non_personalized"
    assert recs.reasons == ("personalization-no-consent",)
    popular = tf.recommend("stranger", k=6).item_ids
    assert "d" not in popular, "the model was refit without the lapsed user's events"
    assert set(popular) == {"a", "c"}
