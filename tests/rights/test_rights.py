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


def _left_of_erased(tf: Tactful, table: str) -> int:
    with tf._store.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    f"SELECT count(*) FROM {table} t JOIN subject s ON "
                    "s.id = t.subject_id WHERE s.status = 'erased'"
                )
            ).scalar_one()
        )


def test_erasure_shreds_at_once_and_the_purge_leaves_no_ciphertext(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "IE"})
    tf.settings.update("u1", discovery=0.2)
    receipt = tf.rights.erase("u1")
    assert (receipt.events, receipt.profile_fields, receipt.settings) == (3, 1, 2)
    assert receipt.purge_pending and receipt.purged_at is None
    # Plaintext consent records go with the request; the ciphertexts wait for the purge...
    assert _left_of_erased(tf, "consent_record") == 0
    assert _left_of_erased(tf, "event") == 3
    with tf._store.engine.connect() as conn:
        refs = conn.execute(
            text("SELECT count(*) FROM subject WHERE status = 'erased' AND ref IS NULL")
        ).scalar_one()
    assert refs == 1
    # ...but their data key is already gone from the separate key store (docs/store.md).
    assert sum(tf.keys.status().versions.values()) == 3  # u2, u3, u4 keep theirs; u1 has none
    assert tf.rights.awaiting_purge() == 1
    purged = tf.rights.purge(batch_size=2)
    assert purged.subjects == 1 and purged.total == 6 and purged.batches == 4
    for table in ("profile_field", "event", "user_settings", "settings_history"):
        assert _left_of_erased(tf, table) == 0, table
    assert tf.rights.awaiting_purge() == 0
    stored = tf.rights.requests.show(receipt.request_id).receipt
    assert stored is not None and stored["purged_at"] and not stored["purge_pending"]
    assert tf.rights.purge().batches == 0, "nothing left: a second run is a no-op"
    assert len(tf.rights.export("u2")["events"]) == 3, "others keep their rows"


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
