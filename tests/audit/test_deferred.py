"""Group commit of decision records: `AuditLog.defer` queues, a batch is chained at write time.

Real SQLite and PostgreSQL stores. Deferred entries keep this process's order among the
synchronous appends, are written by the background thread within `max_delay`, by the caller
at `max_pending`, by `flush`, by `close`, and before anything reads the log; a failed write
keeps them queued. No timing assertions: waits poll with a generous timeout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from tactful import Tactful
from tactful.audit import CHECKPOINT_EVERY, AuditLog
from tactful.errors import ConfigurationError
from tests.audit import damage
from tests.conftest import POLICIES, seed_small

PATIENCE = 60.0  # seconds a poll waits before the test fails (never a speed assertion)


def _log(tf: Tactful, *, max_delay: float = 60.0, max_pending: int = 1000) -> AuditLog:
    """A log on tf's store that the background thread leaves alone unless told otherwise."""
    return AuditLog(
        tf._store.subjects.keys.audit_key,
        begin=tf._store.begin,
        max_delay=max_delay,
        max_pending=max_pending,
    )


def _rows(tf: Tactful) -> list[tuple[int, str, dict[str, object]]]:
    """(seq, kind, payload) of every stored entry, read with raw SQL (no flush on the way)."""
    with tf._store.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, kind, payload FROM audit_log ORDER BY seq")).all()
    return [(r.seq, r.kind, json.loads(r.payload)) for r in rows]


def _stored(tf: Tactful) -> int:
    with tf._store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert time.monotonic() < deadline, "not done within the test's patience"
        time.sleep(0.02)


def _block_writes(tf: Tactful) -> None:
    """A real trigger that makes every insert into audit_log fail."""
    with tf._store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION audit_block() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit writes blocked by the test'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_block BEFORE INSERT ON audit_log "
                    "FOR EACH ROW EXECUTE FUNCTION audit_block()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER audit_block BEFORE INSERT ON audit_log BEGIN "
                    "SELECT RAISE(ABORT, 'audit writes blocked by the test'); END"
                )
            )


def _unblock_writes(tf: Tactful) -> None:
    with tf._store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER audit_block ON audit_log"))
            conn.execute(text("DROP FUNCTION audit_block()"))
        else:
            conn.execute(text("DROP TRIGGER audit_block"))


def test_deferred_entries_chain_between_appends_in_this_processs_order(tf: Tactful) -> None:
    audit = _log(tf)
    audit.defer("decision", {"n": 1}, alias="a1")
    audit.defer("decision", {"n": 2}, alias="a2")
    assert audit.pending == 2 and _stored(tf) == 0, "defer wrote nothing yet"
    with tf._store.begin() as conn:
        seq = audit.append(conn, "consent.given", {"n": 3})
    assert seq == 3 and audit.pending == 0, "the append wrote the queue first, in its transaction"
    audit.defer("decision", {"n": 4})
    audit.defer("decision", {"n": 5})
    assert audit.flush() == 2 and audit.flush() == 0
    rows = _rows(tf)
    assert [(s, k, p["n"]) for s, k, p in rows] == [
        (1, "decision", 1),
        (2, "decision", 2),
        (3, "consent.given", 3),
        (4, "decision", 4),
        (5, "decision", 5),
    ]
    with tf._store.begin() as conn:
        assert [r.alias for r in audit.records(conn)] == ["a1", "a2", None, None, None]
        verdict = audit.verify(conn)
    assert verdict.ok and verdict.entries == 5, verdict.summary()


def test_the_background_thread_writes_within_max_delay_without_a_flush(tf: Tactful) -> None:
    audit = _log(tf, max_delay=0.05)
    for n in range(3):
        audit.defer("decision", {"n": n})
    _until(lambda: _stored(tf) == 3)
    assert audit.pending == 0
    audit.defer("decision", {"n": 3})  # the idle thread wakes for a later entry too
    _until(lambda: _stored(tf) == 4)
    assert [p["n"] for _, _, p in _rows(tf)] == [0, 1, 2, 3]
    assert tf.audit.verify().ok


def test_a_full_queue_is_written_by_the_next_defer(tf: Tactful) -> None:
    audit = _log(tf, max_pending=5)
    for n in range(5):
        audit.defer("decision", {"n": n})
    assert audit.pending == 5 and _stored(tf) == 0
    audit.defer("decision", {"n": 5})
    assert _stored(tf) == 5 and audit.pending == 1, "backpressure wrote the five, queued the sixth"
    audit.flush()
    assert [p["n"] for _, _, p in _rows(tf)] == list(range(6))


def test_a_failed_write_keeps_the_queue_in_order_and_a_later_flush_writes_it(
    tf: Tactful,
) -> None:
    audit = _log(tf)
    audit.defer("decision", {"n": 0})
    audit.defer("decision", {"n": 1})
    _block_writes(tf)
    with pytest.raises(Exception, match="audit writes blocked"):
        audit.flush()
    assert audit.pending == 2 and _stored(tf) == 0
    # A synchronous append takes the queue into its transaction; its rollback puts it back.
    with pytest.raises(Exception, match="audit writes blocked"), tf._store.begin() as conn:
        audit.append(conn, "consent.given", {"n": -1})
    assert audit.pending == 2
    audit.defer("decision", {"n": 2})
    _unblock_writes(tf)
    assert audit.flush() == 3
    assert [(k, p["n"]) for _, k, p in _rows(tf)] == [
        ("decision", 0),
        ("decision", 1),
        ("decision", 2),
    ]
    assert tf.audit.verify().ok


def test_a_rolled_back_transaction_requeues_what_its_append_took(tf: Tactful) -> None:
    audit = _log(tf)
    audit.defer("decision", {"n": 0})
    with pytest.raises(RuntimeError, match="caller failed"), tf._store.begin() as conn:
        audit.append(conn, "consent.given", {"n": 1})
        assert audit.pending == 0
        raise RuntimeError("caller failed after appending")
    assert audit.pending == 1 and _stored(tf) == 0, "the decision is queued again, not lost"
    with tf._store.begin() as conn:
        audit.append(conn, "consent.given", {"n": 2})
    assert [(k, p["n"]) for _, k, p in _rows(tf)] == [("decision", 0), ("consent.given", 2)]


def test_the_background_thread_retries_after_a_failure_and_logs_no_content(
    tf: Tactful, caplog: pytest.LogCaptureFixture
) -> None:
    audit = _log(tf, max_delay=0.05)
    _block_writes(tf)
    with caplog.at_level(logging.WARNING, logger="tactful.audit"):
        audit.defer("decision", {"n": 0, "secret-looking": "payload-text"}, alias="alias-xyz")
        _until(lambda: any("stay queued" in r.getMessage() for r in caplog.records))
        assert audit.pending == 1
        _unblock_writes(tf)
        _until(lambda: _stored(tf) == 1)
    text_logged = " ".join(r.getMessage() for r in caplog.records)
    assert "payload-text" not in text_logged and "alias-xyz" not in text_logged
    assert "1 queued decision records" in text_logged
    assert tf.audit.verify().ok


def test_a_batch_crossing_multiples_of_checkpoint_every_signs_each(tf: Tactful) -> None:
    audit = _log(tf, max_pending=10_000)
    with tf._store.begin() as conn:
        for n in range(30):
            audit.append(conn, "test.event", {"n": n})
    for n in range(2 * CHECKPOINT_EVERY + 20):
        audit.defer("decision", {"n": n})
    assert audit.flush() == 2 * CHECKPOINT_EVERY + 20
    with tf._store.engine.connect() as conn:
        signed = conn.execute(text("SELECT seq FROM audit_checkpoint ORDER BY seq")).all()
    assert [s for (s,) in signed] == [CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY]
    verdict = tf.audit.verify()
    assert verdict.ok and verdict.entries == 30 + 2 * CHECKPOINT_EVERY + 20
    assert verdict.checkpoints == 2 and verdict.checkpoint is not None
    assert verdict.checkpoint.seq == 2 * CHECKPOINT_EVERY


def test_a_batch_never_signs_a_head_over_an_entry_edited_before_it(tf: Tactful) -> None:
    # The batch's own entries are linked under the lock and not re-read; the entries before
    # it in the checkpoint's window are, so an edit there leaves the checkpoint unsigned.
    audit = _log(tf, max_pending=10_000)
    with tf._store.begin() as conn:
        for n in range(CHECKPOINT_EVERY - 10):
            audit.append(conn, "test.event", {"n": n})
    damage.modify_payload(tf, CHECKPOINT_EVERY - 20)
    for n in range(20):
        audit.defer("decision", {"n": n})
    assert audit.flush() == 20
    with tf._store.engine.connect() as conn:
        signed = conn.execute(text("SELECT seq FROM audit_checkpoint")).all()
    assert signed == [], "the edited stretch was not blessed"
    verdict = tf.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("modified", CHECKPOINT_EVERY - 20)


def test_readers_see_every_decision_this_process_deferred(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    tf.audit.flush()  # _rows reads the table directly
    [(_, _, decision)] = [r for r in _rows(tf) if r[1] == "decision"]
    with tf._store.begin() as conn:
        alias = tf._store.subjects.get(conn, "u1").alias
    tf._audit._queue.max_delay = 60.0  # the thread stays out of the way: readers must flush
    before = _stored(tf)

    tf._audit.defer("decision", decision, alias=alias)
    verdict = tf.audit.verify()
    assert verdict.ok and verdict.entries == before + 1

    tf._audit.defer("decision", decision, alias=alias)
    assert len(tf.rights.export("u1")["decisions"]) == 3

    tf._audit.defer("decision", decision, alias=alias)
    assert tf.report().report.decisions.total == 4

    tf._audit.defer("decision", decision, alias=alias)
    assert tf.audit.checkpoint() == _stored(tf)
    assert tf._audit.pending == 0


def test_close_writes_what_is_queued(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    tf = Tactful.open(db_url=db_url, key_file=key, policies=POLICIES)
    tf._audit._queue.max_delay = 60.0
    for n in range(3):
        tf._audit.defer("decision", {"n": n})
    assert tf._audit.pending == 3
    tf.close()
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as again:
        assert [p["n"] for _, k, p in _rows(again) if k == "decision"] == [0, 1, 2]
        assert again.audit.verify().ok


def test_sync_mode_writes_each_decision_before_defer_returns(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACTFUL_AUDIT", "sync")
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        assert not tf._audit.batched
        tf._audit.defer("decision", {"n": 0})
        assert tf._audit.pending == 0 and _stored(tf) == 1
        _block_writes(tf)
        with pytest.raises(Exception, match="audit writes blocked"):
            tf._audit.defer("decision", {"n": 1})
        _unblock_writes(tf)
        assert tf._audit.pending == 0 and _stored(tf) == 1
    monkeypatch.setenv("TACTFUL_AUDIT", "later")
    with pytest.raises(ConfigurationError, match="TACTFUL_AUDIT must be one of batched, sync"):
        Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES)


def test_defer_without_a_way_to_write_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"begin=store\.begin"):
        AuditLog().defer("decision", {})
    with pytest.raises(ValueError, match="max_pending"):
        AuditLog(max_pending=0)


def test_count_and_records_include_the_queue(tf: Tactful) -> None:
    audit = _log(tf)
    for n in range(4):
        audit.defer("decision", {"n": n})
    with tf._store.begin() as conn:
        assert audit.count(conn) == 4
    audit.defer("decision", {"n": 4})
    with tf._store.begin() as conn:
        assert [r.payload["n"] for r in audit.records(conn, kind="decision")] == [0, 1, 2, 3, 4]
    assert audit.pending == 0


def test_a_decision_queued_before_an_erasure_precedes_it_and_links_to_nobody(
    tf: Tactful,
) -> None:
    seed_small(tf)
    with tf._store.begin() as conn:
        alias = tf._store.subjects.get(conn, "u1").alias
    tf._audit._queue.max_delay = 60.0
    tf._audit.defer("decision", {"purpose": "personalization"}, alias=alias)
    tf.rights.erase("u1")
    kinds = [(k, p) for _, k, p in _rows(tf)]
    mine = [k for k, _ in kinds if k in ("decision", "subject.erased")]
    assert mine[-2:] == ["decision", "subject.erased"], "the erasure's append wrote it first"
    with tf._store.engine.connect() as conn:
        status = conn.execute(
            text("SELECT ref, status FROM subject WHERE alias = :a"), {"a": alias}
        ).one()
    assert status.ref is None and status.status == "erased"
    assert tf.audit.verify().ok
