"""Enforcement: an app's recommender sees exactly what the policy allows, and nothing else."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from tactful import Tactful
from tactful.recommend import CatalogItem, Interaction, MinimizedView, ScoredItem
from tests.conftest import POLICIES, seed_small
from tests.policy.helpers import pack_with

PLAIN = (str, int, float, bool, type(None))


class Recording:
    """An app's recommender that records everything it is given."""

    name = "recording"

    def __init__(self) -> None:
        self.views: list[MinimizedView] = []
        self.bundles: list[Sequence[Interaction]] = []
        self.catalog: list[CatalogItem] = []

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        self.bundles = list(bundles)
        self.catalog = list(catalog)

    def learn(self, bundle: Sequence[Interaction]) -> None:
        self.bundles.append(bundle)

    def forget(self, bundle: Sequence[Interaction]) -> None:
        self.bundles.remove(bundle)

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        self.views.append(view)
        return [ScoredItem("d", 1.0, self.name, "Picked by the app.")][:k]


def only_plain_data(value: object) -> bool:
    """True if value is built only of plain data: no store, connection, key or subject."""
    if isinstance(value, PLAIN):
        return True
    if isinstance(value, (list, tuple, frozenset, set)):
        return all(only_plain_data(v) for v in value)
    if isinstance(value, dict) or type(value).__name__ == "mappingproxy":
        return all(only_plain_data(k) and only_plain_data(v) for k, v in value.items())  # type: ignore[attr-defined]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(only_plain_data(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def profile(tf: Tactful) -> None:
    tf.profiles.put(
        "u1",
        {
            "age_range": "25-34",
            "birth_year": 1990,
            "country": "DE",
            "favorite_genres": ["comedy"],
            "email": "u1@example.com",
            "health_interest": "diabetes",
        },
    )


def test_recorded_views_hold_exactly_the_allowed_fields(tf: Tactful) -> None:
    seed_small(tf)
    profile(tf)
    rec = Recording()
    tf.register_recommender(rec)
    result = tf.recommend(
        "u1", k=3, context={"device": "mobile", "ip_address": "192.0.2.7", "referrer": "search"}
    )
    assert result.mode == "personalized" and rec.views
    view = rec.views[-1]
    # Allowed: preference and location.country; withheld: demographic (no rule reads it),
    # contact (not a purpose category), special (no explicit consent).
    assert dict(view.fields) == {"country": "DE", "favorite_genres": ["comedy"]}
    assert dict(view.context) == {"device": "mobile", "referrer": "search"}
    assert sorted(i.item for i in view.history) == ["a", "b", "e"]
    assert view.categories_read == frozenset(
        {
            "user.behavior.interaction",
            "user.location.country",
            "user.preference.genres",
            "context.device",
            "context.referrer",
        }
    )
    assert set(result.categories_used) == view.categories_read
    assert only_plain_data(view), "a recommender never receives the store or an identifier"
    assert all(only_plain_data(b) for b in rec.bundles) and only_plain_data(rec.catalog)
    text = repr(view)
    assert "u1" not in text and "1990" not in text and "diabetes" not in text


def test_a_withheld_category_never_reaches_the_recommender(db_url: str, tmp_path: Path) -> None:
    rules = (
        (POLICIES / "rules.yaml").read_text()
        + """
  - id: no-location-on-kiosks
    match: {context: {channel: [kiosk]}}
    obligations: {withhold: [user.location, user.preference]}
"""
    )
    root = pack_with(tmp_path, rules)
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=root) as tf:
        seed_small(tf)
        profile(tf)
        rec = Recording()
        tf.register_recommender(rec)
        ctx = {"coarse_location": "AT-9", "device": "tv"}
        tf.recommend("u1", context={**ctx, "channel": "web"})
        web = rec.views[-1]
        assert dict(web.fields) == {"country": "DE", "favorite_genres": ["comedy"]}
        assert dict(web.context) == {**ctx, "channel": "web"}
        kiosk = tf.recommend("u1", context={**ctx, "channel": "kiosk"})
        view = rec.views[-1]
        assert dict(view.fields) == {}, "neither location nor preferences"
        assert dict(view.context) == {"device": "tv", "channel": "kiosk"}
        assert view.categories_read == frozenset(
            {"user.behavior.interaction", "context.device", "context.channel"}
        )
        assert kiosk.reasons == ("personalization-consented", "no-location-on-kiosks")
        record = tf.rights.export("u1")["decisions"][-1]
        assert record["categories_used"] == sorted(view.categories_read)
        assert record["context_fields"] == ["channel", "device"]


def test_use_location_off_keeps_every_location_out(tf: Tactful) -> None:
    seed_small(tf)
    profile(tf)
    tf.settings.update("u1", use_location=False, use_profile=True)
    rec = Recording()
    tf.register_recommender(rec)
    tf.recommend("u1", context={"coarse_location": "DE", "precise_location": "1,2", "device": "tv"})
    view = rec.views[-1]
    assert "country" not in view.fields and dict(view.context) == {"device": "tv"}
    assert not any(c.startswith("user.location") for c in view.categories_read)


def test_non_personalized_and_denied_decisions_never_call_the_recommender(tf: Tactful) -> None:
    seed_small(tf)
    rec = Recording()
    tf.register_recommender(rec)
    assert tf.recommend("u3").mode == "non_personalized"  # no consent
    assert tf.recommend("stranger").mode == "non_personalized"  # unknown
    tf.settings.update("u1", personalization=False)
    assert tf.recommend("u1").mode == "non_personalized"
    tf.rights.restrict("u2")
    assert tf.recommend("u2").mode == "denied"
    assert tf.recommend("u4", purpose="marketing.email").mode == "denied"
    assert rec.views == []
    assert tf.recommend("u4").mode == "personalized" and len(rec.views) == 1
