"""Event payload formats: events written as JSON (format 1) stay readable after format 2."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tactful import IntegrityError, Tactful
from tactful.crypto import associated_data
from tactful.store.records import MAX_ITEM_ID, MAX_KIND, decode_event, encode_event

START = datetime(2025, 3, 1, tzinfo=UTC)


def _rewrite_payloads(tf: Tactful, user: str, payload_of: dict[str, bytes]) -> None:
    """Re-encrypt the user's events (by item) with the given plaintext payloads, in place.

    Uses the subject's own key and the event's associated data, as the tactful version that
    wrote that format did.
    """
    store = tf._store
    with store.begin() as conn:
        subject = store.subjects.get(conn, user)
        rows = conn.execute(
            text("SELECT id FROM event WHERE subject_id = :s ORDER BY ts, id"), {"s": subject.id}
        ).all()
        events = store.events.read(conn, subject)
        for (event_id,), event in zip(rows, events, strict=True):
            blob = store.subjects.cipher(conn, subject).encrypt(
                payload_of[event.item], associated_data(subject.ref, "event", event_id)
            )
            conn.execute(
                text("UPDATE event SET ciphertext = :c WHERE id = :i"), {"c": blob, "i": event_id}
            )


def test_format_2_payload_is_compact_and_versioned() -> None:
    payload = encode_event("item-7", "view")
    assert payload[0] == 2
    assert len(payload) == 1 + 2 + len("item-7") + len("view")
    assert decode_event(payload) == ("item-7", "view")
    assert decode_event(b'["item-7","view"]') == ("item-7", "view")  # format 1


@settings(max_examples=200, deadline=None)
@given(
    item=st.text(min_size=1, max_size=MAX_ITEM_ID),
    kind=st.text(min_size=1, max_size=MAX_KIND),
)
def test_payload_round_trips_any_item_and_kind(item: str, kind: str) -> None:
    # Surrogates cannot be encoded as UTF-8 and are rejected upstream by str.encode.
    try:
        payload = encode_event(item, kind)
    except UnicodeEncodeError:
        return
    assert decode_event(payload) == (item, kind)
    as_json = json.dumps([item, kind], separators=(",", ":")).encode()
    assert decode_event(as_json) == (item, kind)


def test_unknown_payload_format_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="unknown format"):
        decode_event(b"\x07whatever")


def test_json_events_of_an_older_store_are_read_by_every_path(tf: Tactful) -> None:
    user = "old-timer"
    tf.events.record_many(
        user,
        [(f"m{i}", "view" if i % 2 else "like", START + timedelta(minutes=i)) for i in range(6)],
    )
    tf.events.record("newer", "m9", "view", START)
    old = {
        f"m{i}": json.dumps([f"m{i}", "view" if i % 2 else "like"], separators=(",", ":")).encode()
        for i in range(3)  # the three oldest become format 1, the rest stay format 2
    }
    old.update({f"m{i}": encode_event(f"m{i}", "view" if i % 2 else "like") for i in range(3, 6)})
    _rewrite_payloads(tf, user, old)
    tf._store.subjects.clear_cache()
    want = [(f"m{i}", "view" if i % 2 else "like", START + timedelta(minutes=i)) for i in range(6)]

    store = tf._store
    with store.begin() as conn:
        subject = store.subjects.get(conn, user)
        assert [tuple(e) for e in store.events.read(conn, subject)] == want
        assert [tuple(e) for e in store.events.stream(conn, subject, chunk=4)] == want
        bundles = dict(store.events.bundles(conn, [subject.id]))
        assert [tuple(e) for e in bundles[subject.id]] == want

    out = io.BytesIO()
    tf.rights.export_to(user, out)
    exported = json.loads(out.getvalue())["events"]
    assert [(e["item"], e["kind"], e["ts"]) for e in exported] == [
        (i, k, t.isoformat()) for i, k, t in want
    ]


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(n=st.integers(min_value=1, max_value=13), chunk=st.integers(min_value=1, max_value=5))
def test_stream_pages_through_equal_timestamps_without_loss_or_repeat(
    tf: Tactful, n: int, chunk: int
) -> None:
    user = f"pager-{n}-{chunk}"
    # Several events share each timestamp: pages must split ties by row id, not lose them.
    tf.events.record_many(
        user, [(f"x{i}", "view", START + timedelta(seconds=i // 3)) for i in range(n)]
    )
    store = tf._store
    with store.begin() as conn:
        subject = store.subjects.get(conn, user)
        paged = list(store.events.stream(conn, subject, chunk=chunk))
        whole = store.events.read(conn, subject)
    assert sorted(e.item for e in paged) == sorted(f"x{i}" for i in range(n))
    assert paged == whole
    assert [e.ts for e in paged] == sorted(e.ts for e in paged)
