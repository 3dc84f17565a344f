"""`entry_hash` builds the canonical JSON by hand for speed: it must be byte-for-byte the
generic `canonical(...)` of the same mapping, for any text and any timezone."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from tactful.audit import canonical, entry_hash

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
