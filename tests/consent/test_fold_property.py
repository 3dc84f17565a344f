"""Property: any sequence of grants, refusals and withdrawals (recorded in any time order) and
any expiry gives, at any moment, the state a simple model predicts, in every read path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tactful import Tactful

PURPOSES = ("personalization", "marketing.email")
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1000)
KIND = {"grant": "given", "refuse": "refused", "withdraw": "withdrawn"}

ops = st.lists(
    st.tuples(
        st.sampled_from(sorted(KIND)),
        st.sampled_from(PURPOSES),
        st.integers(min_value=0, max_value=990),  # day of the record, in any order
    ),
    max_size=8,
)


def model(
    history: list[tuple[str, str, int, int]], purpose: str, moment: datetime, validity: int
) -> str:
    """Latest record by (time, append order) that is not after `moment`; given lapses."""
    seen = [
        (BASE + timedelta(days=day), seq, state)
        for p, state, day, seq in history
        if p == purpose and BASE + timedelta(days=day) <= moment
    ]
    if not seen:
        return "not_asked"
    at, _, state = max(seen)
    if state == "given" and at + timedelta(days=validity) <= moment:
        return "expired"
    return state


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops, st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=4))
def test_ledger_fold_matches_the_model(
    tf: Tactful, sequence: list[tuple[str, str, int]], probes: list[int]
) -> None:
    user = uuid.uuid4().hex  # one fresh subject per example on the shared store
    history: list[tuple[str, str, int, int]] = []
    for seq, (kind, purpose, day) in enumerate(sequence):
        at = BASE + timedelta(days=day)
        method = "import"
        if kind == "grant":
            tf.consent.grant(user, purpose, method=method, at=at)
        elif kind == "refuse":
            tf.consent.refuse(user, purpose, method=method, at=at)
        else:
            tf.consent.withdraw(user, purpose, method=method, at=at)
        history.append((purpose, KIND[kind], day, seq))
    validity = {p: tf.pack.purposes.get(p).validity_days or 0 for p in PURPOSES}
    now_status = tf.consent.status(user)
    for purpose in PURPOSES:
        expected = model(history, purpose, datetime.now(UTC), validity[purpose])
        assert now_status[purpose].state == expected
    for day in probes:
        moment = BASE + timedelta(days=day, hours=12)
        past = tf.consent.status(user, as_of=moment)
        for purpose in PURPOSES:
            assert past[purpose].state == model(history, purpose, moment, validity[purpose])
    if not history:
        return
    with tf._store.begin() as conn:
        subject = tf._store.subjects.get(conn, user)
        for purpose in PURPOSES:
            in_force = subject.id in tf._ledger.consenting_subjects(conn, purpose)
            assert in_force == (now_status[purpose].state == "given")
