"""The request register: deadlines, extensions, identity pauses, completion, by alias only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tactful import SubjectNotFound, Tactful, ValidationError
from tactful.rights import add_months, due_date
from tests.conftest import seed_small


def test_a_gdpr_request_is_due_one_calendar_month_after_receipt(tf: Tactful) -> None:
    seed_small(tf)
    received = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    info = tf.rights.requests.open("access", "u1", received_at=received)
    assert info.status == "open" and info.profile == "gdpr"
    assert info.due_at == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert tf.rights.requests.show(info.id) == info


def test_a_ccpa_request_is_acknowledged_in_10_days_and_answered_in_45(tf: Tactful) -> None:
    seed_small(tf)
    received = datetime(2026, 3, 1, tzinfo=UTC)
    info = tf.rights.requests.open("erasure", "u1", profile="ccpa", received_at=received)
    assert info.acknowledge_due_at == received + timedelta(days=10)
    assert info.due_at == received + timedelta(days=45)
    acked = tf.rights.requests.acknowledge(info.id)
    assert acked.acknowledged_at is not None
    extended = tf.rights.requests.extend(info.id, "many linked accounts")
    assert extended.due_at == received + timedelta(days=90)
    with pytest.raises(ValidationError, match="most allowed"):
        tf.rights.requests.extend(info.id, "again")


def test_extension_needs_a_reason_and_stops_at_two_more_months(tf: Tactful) -> None:
    seed_small(tf)
    received = datetime(2026, 1, 31, tzinfo=UTC)
    info = tf.rights.requests.open("access", "u1", received_at=received)
    with pytest.raises(ValidationError, match="needs a reason"):
        tf.rights.requests.extend(info.id, "  ")
    one = tf.rights.requests.extend(info.id, "complex request", by=1)
    assert one.due_at == datetime(2026, 3, 31, tzinfo=UTC)
    with pytest.raises(ValidationError, match="1 to 1 months"):
        tf.rights.requests.extend(info.id, "still complex", by=2)
    two = tf.rights.requests.extend(info.id, "still complex", by=1)
    assert two.due_at == datetime(2026, 4, 30, tzinfo=UTC)
    assert two.extension == 2 and two.extension_reason == "still complex"
    with pytest.raises(ValidationError, match="already extended by the most allowed"):
        tf.rights.requests.extend(info.id, "more")


def test_an_unverified_request_waits_and_its_deadline_moves_by_the_pause(tf: Tactful) -> None:
    seed_small(tf)
    received = datetime.now(UTC) - timedelta(days=10)
    info = tf.rights.requests.open("erasure", "u1", identity_verified=False, received_at=received)
    assert info.status == "paused" and info.paused_since == received and not info.overdue
    with pytest.raises(ValidationError, match="paused until the requester's identity"):
        tf.rights.erase("u1", request_id=info.id)
    resumed = tf.rights.requests.resume(info.id)
    assert resumed.status == "open" and resumed.paused_since is None
    moved = resumed.due_at - add_months(received, 1)
    assert timedelta(days=10) - timedelta(seconds=5) <= moved <= timedelta(days=10, seconds=5)
    receipt = tf.rights.erase("u1", request_id=info.id)
    assert receipt.request_id == info.id
    assert tf.rights.requests.show(info.id).status == "completed"


def test_overdue_lists_only_open_requests_past_their_deadline(tf: Tactful) -> None:
    seed_small(tf)
    old = datetime.now(UTC) - timedelta(days=70)
    late = tf.rights.requests.open("access", "u1", received_at=old)
    tf.rights.requests.open("access", "u2")
    paused = tf.rights.requests.open("access", "u3", received_at=old, identity_verified=False)
    assert [r.id for r in tf.rights.requests.list(overdue=True)] == [late.id]
    assert tf.rights.requests.show(late.id).overdue
    assert not tf.rights.requests.show(paused.id).overdue
    tf.rights.export("u1", request_id=late.id)
    done = tf.rights.requests.show(late.id)
    assert done.status == "completed" and done.overdue, "completed after its due date: late"
    assert tf.rights.requests.list(overdue=True) == []


def test_a_request_is_carried_out_only_for_its_own_user_and_type(tf: Tactful) -> None:
    seed_small(tf)
    info = tf.rights.requests.open("erasure", "u1")
    with pytest.raises(ValidationError, match="belongs to another user"):
        tf.rights.erase("u2", request_id=info.id)
    with pytest.raises(ValidationError, match="not access or portability"):
        tf.rights.export("u1", request_id=info.id)
    with pytest.raises(ValidationError, match="no request has this id"):
        tf.rights.requests.complete("0" * 32)
    closed = tf.rights.requests.complete(info.id, "handled by phone")
    assert closed.receipt == {"note": "handled by phone"}
    with pytest.raises(ValidationError, match="already completed"):
        tf.rights.erase("u1", request_id=info.id)
    assert tf.rights.export("u1")["profile"] == {}, "nothing was erased"


def test_requests_need_a_known_user_and_type(tf: Tactful) -> None:
    seed_small(tf)
    with pytest.raises(SubjectNotFound):
        tf.rights.requests.open("access", "nobody")
    with pytest.raises(ValidationError, match="request type 'deletion' is unknown"):
        tf.rights.requests.open("deletion", "u1")
    with pytest.raises(ValidationError, match="deadline profile"):
        tf.rights.requests.open("access", "u1", profile="lgpd")
    with pytest.raises(ValidationError, match="timezone-aware"):
        tf.rights.requests.open("access", "u1", received_at=datetime(2026, 1, 1))
    assert tf.rights.requests.list() == []


def test_the_register_names_subjects_by_alias_only(tf: Tactful) -> None:
    seed_small(tf)
    info = tf.rights.requests.open("access", "u1")
    tf.rights.requests.extend(info.id, "complex")
    with tf._store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM rights_request")).all()
        details = conn.execute(text("SELECT * FROM rights_request_detail")).all()
    dump = repr(rows) + repr(details)
    assert "u1" not in dump and info.alias in dump


@pytest.mark.parametrize(
    ("profile", "extension", "due"),
    [("gdpr", 0, "2026-02-28"), ("gdpr", 2, "2026-04-30"), ("ccpa", 45, "2026-05-01")],
)
def test_due_date_profiles(profile: str, extension: int, due: str) -> None:
    received = datetime(2026, 1, 31, tzinfo=UTC)
    assert due_date(profile, received, extension).date().isoformat() == due  # type: ignore[arg-type]
