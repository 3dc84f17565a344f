"""Declared fields: partial reads, searchable fields (blind index), retention per category."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from tactful import PolicyError, Tactful, ValidationError
from tactful.crypto import FieldCipher
from tests.conftest import POLICIES


def test_partial_read_returns_and_decrypts_only_the_named_fields(
    tf: Tactful, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf.profiles.put("ana", {"country": "DE", "age_range": "25-34", "email": "a@example.org"})
    calls: list[int] = []  # the data key is cached by the write: count field decryptions only

    real = FieldCipher.decrypt

    def counting(self: FieldCipher, blob: bytes, aad: bytes) -> bytes:
        calls.append(1)
        return real(self, blob, aad)

    monkeypatch.setattr(FieldCipher, "decrypt", counting)
    assert tf.profiles.get("ana", fields=["country", "display_name"]) == {"country": "DE"}
    assert len(calls) == 1
    with pytest.raises(ValidationError, match="'shoe_size' is not declared"):
        tf.profiles.get("ana", fields=["shoe_size"])


def test_searchable_field_is_found_by_equality_through_the_blind_index(tf: Tactful) -> None:
    tf.profiles.put("ana", {"email": "shared@example.org"})
    tf.profiles.put("ben", {"email": "shared@example.org"})
    tf.profiles.put("cy", {"email": "cy@example.org"})
    assert tf.profiles.find("email", "shared@example.org") == ["ana", "ben"]
    assert tf.profiles.find("email", "cy@example.org") == ["cy"]
    assert tf.profiles.find("email", "Shared@example.org") == []  # equality, exact
    tf.profiles.put("ben", {"email": "ben@example.org"})
    assert tf.profiles.find("email", "shared@example.org") == ["ana"]
    tf.profiles.put("ana", {"email": None})
    assert tf.profiles.find("email", "shared@example.org") == []
    tf.rights.erase("cy")
    assert tf.profiles.find("email", "cy@example.org") == []


def test_blind_index_holds_no_plaintext_and_differs_per_store(db_url: str, tmp_path: Path) -> None:
    digests = []
    for name in ("k1", "k2"):
        url = db_url if name == "k1" else f"sqlite:///{tmp_path / 'second.db'}"
        key = tmp_path / name / "master.key"
        with Tactful.open(db_url=url, key_file=key, policies=POLICIES) as tf:
            tf.profiles.put("ana", {"email": "ana@example.org"})
            with tf._store.engine.connect() as conn:
                digest = bytes(conn.execute(text("SELECT digest FROM blind_index")).scalar_one())
        assert b"ana@example.org" not in digest
        digests.append(digest)
    assert digests[0] != digests[1]


def test_lookup_on_a_field_that_is_not_searchable_is_refused(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match=r"'country' is not searchable.*searchable: email"):
        tf.profiles.find("country", "DE")
    with pytest.raises(ValidationError, match="email"):
        tf.profiles.find("email", 42)


def test_list_fields_cannot_be_declared_searchable(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    for f in POLICIES.iterdir():
        if f.is_file():
            (pack / f.name).write_bytes(f.read_bytes())
    fields = yaml.safe_load((pack / "fields.yaml").read_text())
    fields["fields"]["favorite_genres"]["searchable"] = True
    (pack / "fields.yaml").write_text(yaml.safe_dump(fields))
    with pytest.raises(PolicyError, match="searchable field must be str, int or bool"):
        Tactful.open(
            db_url=f"sqlite:///{tmp_path / 't.db'}", key_file=tmp_path / "k", policies=pack
        )


def test_retention_run_deletes_only_what_is_past_its_category_retention(tf: Tactful) -> None:
    # policies/fields.yaml: user.behavior 730 days, user.special 365 days, others kept.
    now = datetime.now(UTC)
    tf.events.record_many(
        "ana",
        [
            ("old", "view", now - timedelta(days=800)),
            ("older", "view", now - timedelta(days=2000)),
            ("recent", "view", now - timedelta(days=10)),
        ],
    )
    tf.profiles.put("ana", {"health_interest": "running", "country": "DE"})
    with tf._store.begin() as conn:
        conn.execute(
            text("UPDATE profile_field SET updated_at = :t"), {"t": now - timedelta(days=400)}
        )
    report = tf.retention.run()
    assert report.events == {"user.behavior.interaction": 2}
    assert report.profile_fields == {"health_interest": 1}
    assert report.total == 3
    assert tf.profiles.get("ana") == {"country": "DE"}
    assert [e["item"] for e in tf.rights.export("ana")["events"]] == ["recent"]
    with tf._store.engine.connect() as conn:
        (entry,) = tf._audit.records(conn, kind="retention.run")
    assert entry.payload == {
        "events": {"user.behavior.interaction": 2},
        "profile_fields": {"health_interest": 1},
    }
    assert tf.retention.run().total == 0


def test_retention_prefers_a_fields_own_days_and_the_most_specific_category() -> None:
    from tactful.store import ProfileSchema

    schema = ProfileSchema.model_validate(
        {
            "fields": {
                "a": {"category": "user.special.health", "retention_days": 30},
                "b": {"category": "user.special.health"},
            },
            "retention": {"user": 1000, "user.special": 365, "user.special.health": 90},
        }
    )
    assert schema.retention_days("user.special.health", "a") == 30
    assert schema.retention_days("user.special.health", "b") == 90
    assert schema.retention_days("user.special.religion") == 365
    assert schema.retention_days("user.behavior.interaction") == 1000
    assert schema.retention_days("user.specialty") == 1000
