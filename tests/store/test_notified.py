"""`pg_changes="notify"`: on PostgreSQL, probes answered from memory until a commit of this
process or a notification of another's says something the gate reads changed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tactful import ConfigurationError, Tactful
from tactful.store.notified import TRIGGER, Notified
from tactful.store.probe import watched_tables
from tests.conftest import POLICIES, count_probe_statements, seed_small

pytestmark = pytest.mark.postgres

HEARD_WITHIN = 10.0  # seconds a test waits for a notification before it fails


def _open(url: str, tmp_path: Path, **options: object) -> Tactful:
    return Tactful.open(db_url=url, key_file=tmp_path / "master.key", policies=POLICIES, **options)  # type: ignore[arg-type]


@pytest.fixture
def notified(pg_schema_url: str, tmp_path: Path) -> Iterator[Tactful]:
    with _open(pg_schema_url, tmp_path, pg_changes="notify") as tf:
        yield tf


def _listener(tf: Tactful) -> Notified:
    quiet = tf._store.quiet
    assert isinstance(quiet, Notified)
    return quiet


def _seeded(tf: Tactful) -> tuple[Notified, int]:
    """Seed the store, make a first personalized call; its listener and current generation."""
    seed_small(tf)
    assert tf.recommend("u1", k=6).mode == "personalized"
    listener = _listener(tf)
    now = listener.now()
    assert now is not None
    return listener, now


def _wait_until_moved(listener: Notified, since: int) -> None:
    deadline = time.monotonic() + HEARD_WITHIN
    while time.monotonic() < deadline:
        now = listener.now()
        if now is not None and now != since:
            return
        time.sleep(0.001)
    pytest.fail(f"no notification heard within {HEARD_WITHIN} s")


def _triggers(tf: Tactful) -> set[str]:
    with tf._store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = %(n)s AND c.relnamespace = current_schema()::regnamespace",
            {"n": TRIGGER},
        )
        return {r[0] for r in rows}


def test_every_table_the_probe_reads_notifies_once_a_process_asked_for_notifications(
    pg_schema_url: str, tmp_path: Path
) -> None:
    with _open(pg_schema_url, tmp_path, pg_changes="probe") as tf:
        assert _triggers(tf) == set(), "the default mode costs the writers nothing"
    with _open(pg_schema_url, tmp_path, pg_changes="notify") as tf:
        assert _triggers(tf) == set(watched_tables())
        assert {"consent_record", "user_settings", "event", "subject"} <= _triggers(tf)
        assert "audit_log" not in _triggers(tf), "the gate's own records announce nothing"
        with tf._store.begin() as conn:  # triggers lost (dropped by an operator, say)
            conn.exec_driver_sql(f"DROP TRIGGER {TRIGGER} ON consent_record")
            conn.exec_driver_sql(f"DROP TRIGGER {TRIGGER} ON event")
    with _open(pg_schema_url, tmp_path, pg_changes="probe") as tf:
        assert _triggers(tf) == set(watched_tables()) - {"consent_record", "event"}
    with _open(pg_schema_url, tmp_path, pg_changes="notify") as tf:
        assert _triggers(tf) == set(watched_tables()), "missing ones are made again"


def test_with_notify_a_quiet_store_answers_the_probe_from_memory(
    notified: Tactful, pg_schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf = notified
    seed_small(tf)
    with _open(pg_schema_url, tmp_path) as other:  # the default mode, in this process
        ran = count_probe_statements(tf, monkeypatch)
        quiet = False
        for _ in range(20):  # a notification of the set-up's writes may still be on its way
            assert tf.recommend("u1", k=6).mode == "personalized"
            assert tf.audit.flush() >= 1, "decision records, written on unwatched connections"
            start = len(ran)
            assert tf.recommend("u1", k=6).mode == "personalized"
            assert tf.recommend("u1", k=6).mode == "personalized"
            if len(ran) == start:
                quiet = True
                break
        assert quiet, "nothing was committed but audit records: no probe statement"
        n = len(ran)
        generation = _listener(tf).generation
        other.consent.withdraw("u1", "personalization")
        # Another instance of this process: its commit moves this listener at once, with
        # no notification read (no call has read the connection since).
        assert _listener(tf).generation != generation
        assert tf.recommend("u1", k=6).mode == "non_personalized"
        assert len(ran) == n + 1
        tf.consent.grant("u1", ["personalization"])
        assert tf.recommend("u1", k=6).mode == "personalized"
        assert len(ran) == n + 2


_WITHDRAW = """
import sys
from tactful import Tactful
with Tactful.open(db_url=sys.argv[1], key_file=sys.argv[2], policies=sys.argv[3]) as tf:
    tf.consent.withdraw("u1", "personalization")
"""


def test_a_withdrawal_in_another_process_is_heard_and_enforced(
    notified: Tactful, tmp_path: Path, pg_schema_url: str
) -> None:
    tf = notified
    listener, before = _seeded(tf)
    subprocess.run(
        [sys.executable, "-c", _WITHDRAW, pg_schema_url, str(tmp_path / "master.key"), POLICIES],
        check=True,
        timeout=120,
    )
    _wait_until_moved(listener, before)
    assert tf.recommend("u1", k=6).mode == "non_personalized"


def test_without_notifications_a_change_elsewhere_is_still_seen_once_the_entry_expires(
    notified: Tactful, tmp_path: Path, pg_schema_url: str
) -> None:
    # The safety net if notifications stop (an operator dropped the triggers): the gate's
    # cache entry is read again at its age limit (30 s by default) whatever the probe says.
    tf = notified
    tf._gate.cache.max_age = 0.5
    seed_small(tf)
    with tf._store.begin() as conn:
        for table in watched_tables():
            conn.exec_driver_sql(f'DROP TRIGGER {TRIGGER} ON "{table}"')
    assert tf.recommend("u1", k=6).mode == "personalized"
    subprocess.run(
        [sys.executable, "-c", _WITHDRAW, pg_schema_url, str(tmp_path / "master.key"), POLICIES],
        check=True,
        timeout=120,
    )
    deadline = time.monotonic() + HEARD_WITHIN
    while tf.recommend("u1", k=6).mode == "personalized" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tf.recommend("u1", k=6).mode == "non_personalized"


def test_a_write_by_any_client_is_heard(notified: Tactful, pg_schema_url: str) -> None:
    # The triggers are in the database: a write that bypasses tactful (an operator's SQL,
    # another tool) is announced too.
    import psycopg

    tf = notified
    seed_small(tf)
    listener = _listener(tf)
    time.sleep(0.2)  # the set-up's own notifications arrive, and are read below
    for statement in (
        "UPDATE user_settings SET updated_at = updated_at",
        "DELETE FROM rights_objection",  # no row: statement triggers fire all the same
        "TRUNCATE segment_membership",
    ):
        before = listener.now()
        assert before is not None
        dsn = pg_schema_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn, autocommit=True) as raw:
            raw.execute(statement)
        _wait_until_moved(listener, before)


def test_notifications_are_read_without_calls(notified: Tactful, pg_schema_url: str) -> None:
    # A process that makes no calls must still read its connection, or the server keeps every
    # notification for it (a full queue makes every notifying commit in the database fail).
    import psycopg

    tf = notified
    seed_small(tf)
    listener = _listener(tf)
    assert listener.now() is not None
    before = listener.generation
    # Another client's commit moves no generation in this process by itself: only reading
    # its notification does, and no call is made here to read it.
    dsn = pg_schema_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute("UPDATE user_settings SET updated_at = updated_at")
    deadline = time.monotonic() + HEARD_WITHIN
    while listener.generation == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listener.generation != before, "the daemon thread read the notification"
    assert listener._conn is not None
    assert listener._conn.pgconn.notifies() is None


def _terminate(listener: Notified) -> None:
    import psycopg

    pid = listener._conn.pgconn.backend_pid
    dsn = listener.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn.split("?", 1)[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _closed(listener: Notified) -> None:
    listener._conn.close()


@pytest.mark.parametrize(
    "breaks", [_terminate, _closed], ids=["server ended it", "connection closed"]
)
def test_a_broken_listening_connection_sends_the_caller_to_the_database(
    notified: Tactful, monkeypatch: pytest.MonkeyPatch, breaks: Callable[[Notified], None]
) -> None:
    tf = notified
    listener, before = _seeded(tf)
    breaks(listener)
    deadline = time.monotonic() + HEARD_WITHIN
    while listener.now() is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # the end of a terminated connection arrives as input
    ran = count_probe_statements(tf, monkeypatch)
    after = listener.now()
    assert after is not None and after != before, "a fresh listening connection, afresh"
    assert tf.recommend("u1", k=6).mode == "personalized"
    assert len(ran) == 1, "the first call after it reads the database"
    tf.recommend("u1", k=6)
    assert len(ran) == 1


def test_pg_changes_takes_probe_or_notify_only(
    pg_schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="probe, notify"):
        _open(pg_schema_url, tmp_path, pg_changes="sometimes")
    monkeypatch.setenv("TACTFUL_PG_CHANGES", "listen")
    with pytest.raises(ConfigurationError, match="TACTFUL_PG_CHANGES"):
        _open(pg_schema_url, tmp_path)
    monkeypatch.setenv("TACTFUL_PG_CHANGES", "notify")
    with _open(pg_schema_url, tmp_path) as tf:
        assert isinstance(tf._store.quiet, Notified)
    monkeypatch.delenv("TACTFUL_PG_CHANGES")
    with _open(pg_schema_url, tmp_path) as tf:
        assert tf._store.quiet is None, "the default asks the database on every call"


def test_a_least_privilege_role_opens_the_store_and_notify_tells_it_what_to_do(
    pg_schema_url: str, tmp_path: Path
) -> None:
    # An app often connects as a role that may read and write the tables but not change
    # the schema. It opens a store made by the owner; in notify mode, while the triggers are
    # missing, opening fails with a message saying how to proceed and makes nothing.
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    with _open(pg_schema_url, tmp_path, pg_changes="probe"):
        pass
    role = "tactful_app_" + uuid.uuid4().hex[:8]
    schema = pg_schema_url.rsplit("search_path%3D", 1)[1]
    admin = make_url(pg_schema_url).set(drivername="postgresql", query={})
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        conn.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    try:
        as_app = make_url(pg_schema_url).set(username=role).render_as_string(hide_password=False)
        with pytest.raises(ConfigurationError, match="as a role that owns its tables"):
            _open(as_app, tmp_path, pg_changes="notify")
        with _open(as_app, tmp_path, pg_changes="probe") as tf:
            assert _triggers(tf) == set()
            seed_small(tf)
            assert tf.recommend("u1", k=6).mode == "personalized"
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{role}"')
            c.execute(f'DROP ROLE "{role}"')
