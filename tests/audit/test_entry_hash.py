"""`entry_hash` builds the canonical JSON by hand for speed: it must be byte-for-byte the
generic `canonical(...)` of the same mapping, for any text and any timezone."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from tactful.audit import _stamps, canonical, entry_hash, json_string

zones = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


def _reference(
    seq: int, ts: datetime, kind: str, alias: str | None, payload: str, prev: str
) -> str:
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    body = canonical(
        {
            "seq": seq,
            "ts": aware.isoformat(),
            "kind": kind,
            "alias": alias,
            "payload": payload,
            "prev": prev,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    ts=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    zone=zones,
    kind=st.text(),
    alias=st.none() | st.text(),
    payload=st.text(),
    prev=st.text(),
)
def test_entry_hash_is_the_hash_of_the_canonical_json(
    seq: int,
    ts: datetime,
    zone: timezone | None,
    kind: str,
    alias: str | None,
    payload: str,
    prev: str,
) -> None:
    stamped = ts if zone is None else ts.replace(tzinfo=zone)
    assert entry_hash(seq, stamped, kind, alias, payload, prev) == _reference(
        seq, stamped, kind, alias, payload, prev
    )


def test_a_known_answer() -> None:
    ts = datetime(2026, 11, 28, 6, 18, 56, tzinfo=UTC)
    body = (
        '{"alias":null,"kind":"decision","payload":"{\\"a\\":\\"é\\"}",'
        '"prev":"00","seq":7,"ts":"2026-11-28T06:18:56+00:00"}'
    )
    assert (
        entry_hash(7, ts, "decision", None, '{"a":"é"}', "00")
        == hashlib.sha256(body.encode()).hexdigest()
    )


@given(
    ts=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    whole=st.booleans(),
)
def test_an_entry_time_is_spelled_as_its_hash_and_sqlite_spell_the_datetime(
    ts: datetime, whole: bool
) -> None:
    # The flush formats the time from microseconds since the epoch; the hash must read as
    # `entry_hash` of the datetime read back, and the stored text as SQLAlchemy stores it.
    moment = (ts.replace(microsecond=0) if whole else ts).replace(tzinfo=UTC)
    us = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    dialect = sqlite.dialect()
    bind = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    seconds: dict[int, str] = {}
    for _ in range(2):  # formatted, then from the second's memo
        stamp, stored = _stamps(us, seconds)
        assert stamp == moment.isoformat()
        assert stored == bind(moment)


@given(head=st.text(), tail=st.text(), middle=st.text(alphabet="0123456789abcdef"))
def test_a_json_string_literal_is_made_of_its_parts_literals(
    head: str, tail: str, middle: str
) -> None:
    # The gate's record templates keep the literals of the text around the decision id.
    joined = json_string(head)[:-1] + middle + json_string(tail)[1:]
    assert joined == json_string(head + middle + tail)
