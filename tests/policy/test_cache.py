"""The gate's subject cache: repeated calls read only the probe, and any change is seen at once.

Two `Tactful` instances on one store stand for two processes: each has its own cache and its
own connections, so what one writes reaches the other only through the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from tactful import ConfigurationError, Recommendations, Tactful
from tactful.parts.models import interactions
from tactful.policy.cache import SubjectCache, expiry
from tactful.store.probe import _compiled as probe_sql
from tests.conftest import POLICIES, count_probe_statements, seed_small


def _statements(tf: Tactful, call: Callable[[], object]) -> list[str]:
    """The SQL statements SQLAlchemy ran on this thread for the call (the probe runs on the
    driver's cursor and is not among them; the audit log's flusher has a thread of its own)."""
    seen: list[str] = []
    me = threading.get_ident()

    def _count(*args: object) -> None:
        if threading.get_ident() == me:
            seen.append(str(args[2]))

    event.listen(tf._store.engine, "before_cursor_execute", _count)
    try:
        call()
    finally:
        event.remove(tf._store.engine, "before_cursor_execute", _count)
    return seen


def test_a_repeated_call_reads_nothing_but_the_probe(tf: Tactful) -> None:
    seed_small(tf)
    first = tf.recommend("u1", k=3)
    assert first.mode == "personalized"
    statements = _statements(tf, lambda: tf.recommend("u1", k=3))
    assert statements == [], "consent, settings, profile and events came from the cache"
    again = tf.recommend("u1", k=3)
    assert again.item_ids == first.item_ids and again.mode == first.mode


def _child(tf: Tactful) -> None:
    tf.profiles.put("u1", {"birth_year": datetime.now(UTC).year - 10})


CHANGES: dict[str, tuple[Callable[[Tactful], object], Callable[[Recommendations], bool]]] = {
    "consent withdrawn": (
        lambda o: o.consent.withdraw("u1", "personalization"),
        lambda r: r.mode == "non_personalized",
    ),
    "personalization switched off": (
        lambda o: o.settings.update("u1", personalization=False),
        lambda r: r.mode == "non_personalized",
    ),
    "topic excluded": (
        lambda o: o.settings.update("u1", excluded_topics=["comedy"]),
        lambda r: r.mode == "personalized" and not {"c", "d"} & set(r.item_ids),
    ),
    "objection to profiling": (
        lambda o: o.rights.object("u1", "personalization"),
        lambda r: r.mode == "non_personalized",
    ),
    "processing restricted": (
        lambda o: o.rights.restrict("u1"),
        lambda r: r.mode != "personalized",
    ),
    "a child's birth year": (
        _child,
        lambda r: r.reasons == ("art8-child-needs-parental-authorization",),
    ),
    "an item viewed": (
        lambda o: o.events.record("u1", "c", "view"),
        lambda r: r.mode == "personalized" and "c" not in r.item_ids,
    ),
    "an item viewed, backdated": (
        lambda o: o.events.record("u1", "c", "view", datetime(2025, 1, 1, tzinfo=UTC)),
        lambda r: r.mode == "personalized" and "c" not in r.item_ids,
    ),
    "an item viewed and a topic excluded": (  # not only events: the state is read again
        lambda o: (
            o.events.record("u1", "f", "view"),
            o.settings.update("u1", excluded_topics=["comedy"]),
        ),
        lambda r: r.mode == "personalized" and not {"c", "d", "f"} & set(r.item_ids),
    ),
    "erased": (
        lambda o: o.rights.erase("u1"),
        lambda r: r.mode == "non_personalized" and r.reasons != ("personalization-consented",),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_written_elsewhere_is_honored_by_the_next_call(
    tf: Tactful, other: Tactful, change: str
) -> None:
    seed_small(tf)
    write, honored = CHANGES[change]
    before = tf.recommend("u1", k=6)
    assert before.mode == "personalized"
    assert not honored(before), "the change must make a visible difference"
    assert len(tf._gate.cache) == 1
    write(other)
    assert honored(tf.recommend("u1", k=6)), change


def test_a_retention_run_elsewhere_is_honored_by_the_next_call(tf: Tactful, other: Tactful) -> None:
    # A deletion leaves the subject's latest event number where it was; the probe sees the
    # store-wide count of retention runs that deleted events move instead.
    seed_small(tf)
    long_ago = datetime.now(UTC) - timedelta(days=800)  # user.behavior is kept 730 days
    tf.events.record("u1", "c", "view", long_ago)
    assert "c" not in tf.recommend("u1", k=6).item_ids, "viewed: not recommended"
    assert other.retention.run().events == {"user.behavior.interaction": 1}
    assert "c" in tf.recommend("u1", k=6).item_ids, "the view is gone"


def test_the_probes_events_mark_is_an_index_seek_not_a_count(tf: Tactful) -> None:
    # However long a user's history, the events' part of the mark is the latest write number,
    # read from (subject_id, seq); it used to be a count of all the user's events.
    tf.events.record_batch([("u1", f"i{n}", "view", None) for n in range(50)])
    first = tf._store.probe("u1").mark
    tf.events.record("u1", "i0", "view", datetime(2025, 1, 1, tzinfo=UTC))  # backdated
    assert tf._store.probe("u1").mark != first, "a backdated event moves the mark"
    if tf._store.dialect == "sqlite":
        sql, bind = probe_sql(tf._store.engine.dialect)
        with tf._store.engine.connect() as conn:
            plan = [
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", bind("r", "d"))
            ]
        on_events = [step for step in plan if " event " in f" {step} "]
        assert on_events and all("ix_event_subject_seq" in step for step in on_events), plan


def test_events_added_elsewhere_keep_the_users_state_and_only_they_are_read(
    tf: Tactful, other: Tactful
) -> None:
    seed_small(tf)
    assert "c" in tf.recommend("u1", k=6).item_ids
    other.events.record("u1", "c", "view")
    statements = _statements(tf, lambda: tf.recommend("u1", k=6))
    tables = " ".join(statements)
    assert "consent_record" not in tables and "user_settings" not in tables, statements
    # The models learn u1 again through statements of their own (tests/recommend/
    # test_own_events.py); the gate reads the user's events once, only those added.
    history = [q for q in statements if "event.ciphertext" in q and " IN " not in q]
    assert len(history) == 1 and "event.seq >" in history[0], statements
    assert "c" not in tf.recommend("u1", k=6).item_ids, "the added view is in the history"


def _history(tf: Tactful, user: str) -> tuple[object, ...] | None:
    probe = tf._store.probe(user)
    assert probe.subject is not None
    entry = tf._gate.cache.get(probe.subject, probe.mark, tf._gate.policy)
    return None if entry is None else entry.history


def test_a_history_brought_up_to_date_equals_one_read_whole(tf: Tactful, other: Tactful) -> None:
    # Events added in order are appended; a backdated one, or one at the same instant as the
    # latest held (its place then depends on the row id), makes the history be read whole.
    seed_small(tf)
    tf.recommend("u1", k=6)
    base = datetime.now(UTC)
    writes: list[tuple[str, datetime | None]] = [
        ("c", None),
        ("d", base + timedelta(minutes=1)),
        ("a", base - timedelta(days=3)),  # backdated
        ("f", base + timedelta(minutes=1)),  # the same instant as the latest
        ("b", base + timedelta(minutes=2)),
    ]
    for n, (item, ts) in enumerate(writes):
        (other if n % 2 else tf).events.record("u1", item, "view", ts)
        tf.recommend("u1", k=6)
        with tf._store.read() as conn:
            whole = interactions(tf._store.events.read(conn, tf._store.subjects.get(conn, "u1")))
        assert _history(tf, "u1") == whole, f"after write {n}"


def test_a_change_in_this_process_is_honored_too(tf: Tactful) -> None:
    seed_small(tf)
    assert "c" in tf.recommend("u1", k=6).item_ids
    tf.events.record("u1", "c", "view")
    assert "c" not in tf.recommend("u1", k=6).item_ids
    tf.consent.withdraw("u1", "personalization")
    assert tf.recommend("u1", k=6).mode == "non_personalized"


def test_a_policy_reload_drops_what_was_decided_under_the_old_pack(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1", k=3)
    old = tf._gate.policy
    tf.policy.reload(POLICIES, run_pack_tests=False)
    assert tf._gate.policy is not old
    entry = tf._gate.cache._entries[next(iter(tf._gate.cache._entries))]
    assert entry.policy is old
    assert tf.recommend("u1", k=3).mode == "personalized"
    (entry,) = tf._gate.cache._entries.values()
    assert entry.policy is tf._gate.policy, "the entry was read again under the new pack"


def test_an_entry_expires_with_the_earliest_consent_expiry() -> None:
    read_at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()
    soon = datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)
    past = datetime(2026, 5, 1, tzinfo=UTC)
    assert expiry(read_at, 30.0, [soon, past]) == soon.timestamp()
    assert expiry(read_at, 30.0, [past]) == read_at + 30.0, "a lapsed expiry is already read"
    new_year = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    late = datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC).timestamp()
    assert expiry(late, 30.0, []) == new_year, "age facts are judged by year: re-read then"


def test_a_consent_lapsing_by_time_is_honored_without_any_write(tf: Tactful) -> None:
    seed_small(tf)
    # Given 395 days (the purpose's validity) less two seconds ago: it lapses in two seconds,
    # with no record written then.
    tf.events.record_many("u9", [("a", "view", None), ("c", "view", None)])
    lapse = datetime.now(UTC) + timedelta(seconds=2)
    tf.consent.grant("u9", "personalization", at=lapse - timedelta(days=395))
    assert tf.recommend("u9").mode == "personalized"
    (entry,) = tf._gate.cache._entries.values()
    assert entry.expires <= lapse.timestamp() + 0.001
    time.sleep(max(0.0, lapse.timestamp() - time.time()) + 0.2)
    assert tf.recommend("u9").mode == "non_personalized"


def test_the_cache_is_bounded_and_can_be_turned_off(tf: Tactful) -> None:
    seed_small(tf)
    tf._gate.cache = SubjectCache(capacity=2)
    for user in ("u1", "u2", "u4"):
        tf.recommend(user)
    assert len(tf._gate.cache) == 2
    tf._gate.cache = SubjectCache(capacity=0)
    tf.recommend("u1")
    assert len(tf._gate.cache) == 0
    assert tf.recommend("u1").mode == "personalized"
    with pytest.raises(ValueError, match="capacity"):
        SubjectCache(capacity=-1)


def test_an_erasure_here_drops_the_users_state_from_memory(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    tf.recommend("u2")
    assert len(tf._gate.cache) == 2
    tf.rights.erase("u1")
    assert len(tf._gate.cache) == 1, "u1's decrypted fields and history are gone"


def test_the_cache_size_is_configurable(db_url: str, tmp_path: Path) -> None:
    with Tactful.open(
        db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES, subject_cache=0
    ) as off:
        seed_small(off)
        assert off.recommend("u1").mode == "personalized"
        assert len(off._gate.cache) == 0
    with pytest.raises(ConfigurationError, match="subject_cache"):
        Tactful.open(db_url=db_url, key_file=tmp_path / "k2", subject_cache=-1)


def test_on_sqlite_a_quiet_store_answers_the_probe_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite tells a connection whether any other connection committed since it last asked
    # (PRAGMA data_version). The audit log writes its queued decision records on the asking
    # connection, so the gate's own group commits do not count: while nothing else is
    # committed, the probe's statement is not run again. Anything committed elsewhere is.
    url = f"sqlite:///{tmp_path / 'tactful.db'}"
    key = tmp_path / "master.key"
    with (
        Tactful.open(db_url=url, key_file=key, policies=POLICIES) as tf,
        Tactful.open(db_url=url, key_file=key, policies=POLICIES) as other,
    ):
        seed_small(tf)
        assert tf.recommend("u1", k=6).mode == "personalized"
        ran = count_probe_statements(tf, monkeypatch)
        tf.recommend("u1", k=6)
        assert tf.audit.flush() >= 2  # the decision records, on the watching connection
        assert tf.recommend("u1", k=6).mode == "personalized"
        assert ran == [], "nothing was committed but audit records: no probe statement"
        other.consent.withdraw("u1", "personalization")
        assert tf.recommend("u1", k=6).mode == "non_personalized"
        assert len(ran) == 1, "a commit elsewhere makes the next call probe again"
        tf.consent.grant("u1", ["personalization"])  # this process, through its pool
        assert tf.recommend("u1", k=6).mode == "personalized"
        assert len(ran) == 2
