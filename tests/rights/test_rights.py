"""Export and erasure: everything held comes out; after erasure nothing can be read."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tactful import SubjectNotFound, Tactful
from tactful.rights import add_months
from tests.conftest import seed_small


def test_export_holds_everything_and_is_json_ready(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "DE"})
    tf.settings.update("u1", discovery=0.7)
    tf.recommend("u1")
    doc = tf.rights.export("u1")
    json.dumps(doc)
    assert doc["profile"] == {"country": "DE"}
    assert sorted(e["item"] for e in doc["events"]) == ["a", "b", "e"]
    assert doc["consent_history"][0]["purpose"] == "personalization"
    assert doc["settings"]["discovery"] == 0.7
    assert len(doc["decisions"]) == 1
    assert "personalization" in doc["purposes"] and doc["how_recommendations_work"]


def test_erasure_removes_the_user_and_their_contribution(tf: Tactful) -> None:
    seed_small(tf)
    before = tf.recommend("u3", k=6)
    assert "f" in before.item_ids, "f is only viewed by u4, who consented"
    receipt = tf.rights.erase("u4")
    assert receipt.events == 3 and receipt.data_key_shredded and receipt.models_unlearned
    with pytest.raises(SubjectNotFound, match="never recorded, or erased"):
        tf.rights.export("u4")
    after = tf.recommend("u3", k=6)
    assert "f" not in after.item_ids, "an erased user's events no longer count in popularity"
    # u1's neighbours came partly from u4 (a,b co-viewed): the model now equals a refit.
    learned = tf.recommend("u1", k=6)
    tf.train()
    assert tf.recommend("u1", k=6).items == learned.items


def test_same_user_id_after_erasure_starts_a_fresh_subject(tf: Tactful) -> None:
    seed_small(tf)
    tf.rights.erase("u1")
    tf.profiles.put("u1", {"country": "FR"})
    doc = tf.rights.export("u1")
    assert (
        doc["events"] == [] and doc["consent_history"] == [] and doc["profile"] == {"country": "FR"}
    )


def test_erasure_leaves_no_ciphertext_and_no_data_key(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "IE"})
    tf.rights.erase("u1")
    with tf._store.engine.connect() as conn:
        for table in ("profile_field", "event", "user_settings", "consent_record"):
            left = conn.execute(
                text(
                    f"SELECT count(*) FROM {table} t JOIN subject s ON "
                    "s.id = t.subject_id WHERE s.status = 'erased'"
                )
            ).scalar_one()
            assert left == 0, table
        refs = conn.execute(
            text("SELECT count(*) FROM subject WHERE status = 'erased' AND ref IS NULL")
        ).scalar_one()
    assert refs == 1
    # The data key lives in the separate key store (docs/store.md): gone from there too.
    assert sum(tf.keys.status().versions.values()) == 3  # u2, u3, u4 keep theirs; u1 has none


@pytest.mark.parametrize(
    ("start", "due"),
    [
        ("2026-01-31", "2026-02-28"),
        ("2028-01-31", "2028-02-29"),
        ("2026-03-15", "2026-04-15"),
        ("2026-12-31", "2027-01-31"),
    ],
)
def test_request_deadline_is_one_calendar_month(start: str, due: str) -> None:
    from datetime import UTC, datetime

    received = datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert add_months(received, 1).date().isoformat() == due
