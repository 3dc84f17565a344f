"""Request context passes through the policy like any other data, and is never stored."""

from __future__ import annotations

from pathlib import Path

from tactful import Tactful
from tactful.recommend import Rule
from tests.conftest import seed_small
from tests.policy.test_enforcement import Recording

PRECISE = "48.13743,11.57549"


def test_precise_location_needs_its_own_consent(tf: Tactful) -> None:
    seed_small(tf)
    rec = Recording()
    tf.register_recommender(rec)
    ctx = {"coarse_location": "DE-BY", "precise_location": PRECISE, "device": "mobile"}
    first = tf.recommend("u1", context=ctx)
    assert dict(rec.views[-1].context) == {"coarse_location": "DE-BY", "device": "mobile"}
    assert "user.location.precise" not in first.categories_used
    tf.consent.grant("u1", ["personalization.precise_location"])
    second = tf.recommend("u1", context=ctx)
    assert dict(rec.views[-1].context) == ctx
    assert "user.location.precise" in second.categories_used
    assert "precise-location-consented" in second.reasons
    tf.consent.withdraw("u1", "personalization.precise_location")
    tf.recommend("u1", context=ctx)
    assert "precise_location" not in rec.views[-1].context


def test_rule_based_recommendations_use_only_allowed_context(tf: Tactful) -> None:
    seed_small(tf)
    tf.configure_recommendations(
        rules=[
            Rule(
                "pin",
                item={"item": "d"},
                when={"context.referrer": "newsletter"},
                reason="from the newsletter",
            ),
            Rule(
                "pin",
                item={"item": "c"},
                when={"context.precise_location": PRECISE},
                reason="near you",
            ),
        ]
    )
    recs = tf.recommend("u1", k=3, context={"referrer": "newsletter"})
    assert recs.item_ids[0] == "d" and "newsletter" in recs.items[0].explanation
    near = tf.recommend("u1", k=3, context={"precise_location": PRECISE})
    assert near.item_ids[0] != "c", "precise location was withheld, so the rule cannot fire"
    tf.consent.grant("u1", ["personalization.precise_location"])
    near = tf.recommend("u1", k=3, context={"precise_location": PRECISE})
    assert near.item_ids[0] == "c"


def test_context_values_are_never_stored(tf: Tactful, db_url: str, tmp_path: Path) -> None:
    seed_small(tf)
    tf.consent.grant("u1", ["personalization.precise_location"])
    canary = "ref-canary-7f3a9c"
    tf.recommend("u1", context={"referrer": canary, "precise_location": PRECISE, "extra": canary})
    tf.recommend("u3", context={"referrer": canary})
    decisions = tf.rights.export("u1")["decisions"]
    assert decisions[-1]["context_fields"] == ["precise_location", "referrer"]
    assert canary not in str(decisions) and PRECISE not in str(decisions)
    if db_url.startswith("sqlite"):
        tf.close()
        raw = (tmp_path / "tactful.db").read_bytes()
        assert canary.encode() not in raw and PRECISE.encode() not in raw
    else:
        import psycopg

        from tests.conftest import _pg_admin_url

        schema = db_url.split("search_path%3D", 1)[1]
        with psycopg.connect(_pg_admin_url()) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (schema,),
                )
            ]
            for t in tables:
                rows = conn.execute(f'SELECT * FROM "{schema}"."{t}"').fetchall()
                assert canary not in str(rows) and PRECISE not in str(rows), t
