"""The encrypted store on SQLite and PostgreSQL: round-trips, validation, atomic writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tactful import SubjectNotFound, Tactful, ValidationError
from tests.conftest import POLICIES, seed_small, sqlite_store, write_lock_held


def test_profile_round_trip(tf: Tactful) -> None:
    tf.profiles.put("alice", {"age_range": "25-34", "favorite_genres": ["drama", "scifi"]})
    tf.profiles.put("alice", {"country": "DE"})
    assert tf.profiles.get("alice") == {
        "age_range": "25-34",
        "country": "DE",
        "favorite_genres": ["drama", "scifi"],
    }


def test_profile_field_set_to_none_is_deleted(tf: Tactful) -> None:
    tf.profiles.put("alice", {"age_range": "25-34", "country": "DE"})
    tf.profiles.put("alice", {"country": None})
    assert tf.profiles.get("alice") == {"age_range": "25-34"}


def test_unknown_profile_field_is_rejected_naming_it_and_nothing_is_written(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="'shoe_size' is not declared"):
        tf.profiles.put("bob", {"country": "FR", "shoe_size": 44})
    with pytest.raises(SubjectNotFound):
        tf.profiles.get("bob")


def test_wrong_type_is_rejected_without_echoing_the_value(tf: Tactful) -> None:
    with pytest.raises(ValidationError) as info:
        tf.profiles.put("bob", {"age_range": 12345678})
    assert "age_range" in str(info.value) and "12345678" not in str(info.value)


def test_events_are_written_in_one_transaction(tf: Tactful) -> None:
    tf.events.record("carol", "item-1")
    with pytest.raises(ValidationError):
        tf.events.record_many("carol", [("item-2", "view", None), ("", "view", None)])
    assert [e["item"] for e in tf.rights.export("carol")["events"]] == ["item-1"]


def test_event_time_must_be_timezone_aware(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        tf.events.record("carol", "item-1", ts=datetime(2026, 1, 1))


def test_events_come_back_in_time_order(tf: Tactful) -> None:
    tf.events.record("dave", "late", ts=datetime(2026, 5, 1, tzinfo=UTC))
    tf.events.record("dave", "early", "like", ts=datetime(2026, 1, 1, tzinfo=UTC))
    events = tf.rights.export("dave")["events"]
    assert [(e["item"], e["kind"]) for e in events] == [("early", "like"), ("late", "view")]


def test_catalog_upsert_validates_items(tf: Tactful) -> None:
    assert tf.catalog.upsert([{"item_id": "x", "title": "X", "categories": ["a"]}]) == 1
    assert tf.catalog.upsert([{"item_id": "x", "title": "X2", "categories": ["b"]}]) == 1
    with pytest.raises(ValidationError, match="unknown keys"):
        tf.catalog.upsert([{"item_id": "y", "price": 3}])
    with pytest.raises(ValidationError, match="item_id"):
        tf.catalog.upsert([{"title": "no id"}])


def test_invalid_user_id_is_rejected(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="user id"):
        tf.profiles.put("", {"country": "DE"})
    with pytest.raises(ValidationError, match="user id"):
        tf.events.record("x" * 300, "item")


def test_store_reopens_with_the_same_key_file(db_url: str, tmp_path: object) -> None:
    from pathlib import Path

    key = Path(str(tmp_path)) / "k.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as first:
        first.profiles.put("erin", {"country": "NL"})
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as second:
        assert second.profiles.get("erin") == {"country": "NL"}


def test_reads_do_not_wait_for_a_writer_on_sqlite(tmp_path: Path) -> None:
    # Reads take a snapshot, not SQLite's write lock: while another connection holds the
    # lock (a long ingestion transaction, say), they answer at once instead of waiting for
    # it (up to the 30 s busy timeout, then "database is locked").
    with sqlite_store(tmp_path) as (tf, db):
        seed_small(tf)
        tf.profiles.put("u1", {"country": "DE", "email": "u1@example.com"})
        tf.settings.update("u1", discovery=0.4)
        with write_lock_held(db):
            assert tf.profiles.get("u1")["country"] == "DE"
            assert tf.profiles.find("email", "u1@example.com") == ["u1"]
            assert tf.consent.status("u1")["personalization"].state == "given"
            assert tf.settings.get("u1").discovery == 0.4
            assert len(tf.settings.history("u1")) == 1
            assert tf.recommend("u1", k=6).mode == "personalized"


def test_a_read_snapshot_refuses_writes_and_its_connection_writes_again_after(tf: Tactful) -> None:
    # Store.read() is read-only on both databases (SQLite `query_only`, PostgreSQL READ ONLY):
    # a write there would upgrade a stale snapshot on SQLite and escape this process's change
    # tracking. The refusal leaves the pooled connection fit for the next write transaction.
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    tf.settings.update("u1", discovery=0.3)
    for _ in range(3):  # the pool hands the same connections back
        with pytest.raises(DBAPIError, match=r"read-?only"), tf._store.read() as conn:
            conn.execute(text("DELETE FROM user_settings"))
        tf.settings.update("u1", discovery=0.5)
    assert tf.settings.get("u1").discovery == 0.5


def test_lookups_and_verification_do_not_wait_for_a_writer_on_sqlite(tmp_path: Path) -> None:
    # The operator's reads (policy explanations, requests, budgets and releases,
    # experiments, the audit chain) take a snapshot too: with another connection holding the
    # write lock they answer at once (before, each waited up to the 30 s busy timeout and
    # then failed with "database is locked").
    with sqlite_store(tmp_path) as (tf, db):
        seed_small(tf)
        request = tf.rights.restrict("u2")
        tf.aggregates.grant("reports", 2.0, operator="dpo")
        tf.experiments.declare(
            "home", variants={"control": 1, "b": 1}, purpose="improve.models", metrics=["click"]
        )
        tf.recommend("u1", k=3)
        tf.audit.flush()
        entries = tf.audit.verify().entries
        with write_lock_held(db):
            assert tf.policy.explain("u1", purpose="personalization").outcome == "personalized"
            assert [r.id for r in tf.rights.requests.list()] == [request.id]
            assert tf.rights.requests.show(request.id).kind == "restriction"
            assert tf.rights.awaiting_purge() == 0
            assert tf.aggregates.budget("reports").total == 2.0
            assert [b.dataset for b in tf.aggregates.budgets()] == ["reports"]
            assert tf.aggregates.releases() == []
            assert [e.id for e in tf.experiments.list()] == ["home"]
            assert tf.experiments.get("home").purpose == "improve.models"
            assert tf.experiments.last_results("home") is None
            verdict = tf.audit.verify()
            assert verdict.ok and verdict.entries == entries


def test_a_report_is_gathered_without_the_write_lock_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report reads the whole period and walks the audit chain: it does so in a snapshot
    # while another connection holds the write lock, and only its own audit record waits
    # for the lock. Before, the report waited for the lock before reading anything.
    import threading

    import tactful.client

    gathered = threading.Event()
    real = tactful.client.collect

    def spied(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        gathered.set()
        return found

    monkeypatch.setattr(tactful.client, "collect", spied)
    with sqlite_store(tmp_path) as (tf, db):
        seed_small(tf)
        before = tf.audit.verify().entries
        tf.recommend("u1", k=3)
        tf.audit.flush()  # the decision's record: written before the lock is taken
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(tf.report()))
        with write_lock_held(db):
            worker.start()
            assert gathered.wait(20), "the report waited for the write lock to gather"
            assert not results  # its record is not written while the lock is held
        worker.join(30)
        assert len(results) == 1
        report = results[0].report  # type: ignore[attr-defined]
        assert report.integrity.audit_chain_ok
        assert report.integrity.entries == before + 1  # the decision, not its own record
        assert tf.audit.verify().entries == before + 2  # its record, written after the lock
