"""Deferred decision records across processes: one chain, each process's order kept, nothing
written twice by a forked child, nothing lost at a normal exit, and `tactful audit verify`
intact on a store written that way (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import textwrap
from multiprocessing.synchronize import Barrier
from pathlib import Path

from sqlalchemy import text

from tactful import Tactful
from tests.audit.workers import run_writers
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES, REPO

WORKERS = 4
ROUNDS = 40
DEFERRED = 3  # decisions deferred per round, then one synchronous append


def _entries(tf: Tactful) -> list[tuple[int, str, dict[str, object]]]:
    with tf._store.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, kind, payload FROM audit_log ORDER BY seq")).all()
    return [(r.seq, r.kind, json.loads(r.payload)) for r in rows]


def _work(url: str, key_file: str, worker: int, start: Barrier) -> None:
    with Tactful.open(db_url=url, key_file=key_file, policies=POLICIES) as tf:
        if worker % 2:
            tf._audit._queue.max_pending = 7  # half the workers also hit backpressure
        start.wait(timeout=120)
        for i in range(ROUNDS):
            for k in range(DEFERRED):
                tf._audit.defer("decision", {"w": worker, "i": i, "k": k})
            with tf._store.begin() as conn:
                tf._audit.append(conn, "test.sync", {"w": worker, "i": i, "k": DEFERRED})
            if i % 10 == 9:
                tf.audit.checkpoint()
        # The last round's tail stays queued until close() writes it.
        for k in range(DEFERRED):
            tf._audit.defer("decision", {"w": worker, "i": ROUNDS, "k": k})


def test_deferred_records_from_several_processes_form_one_chain_in_each_processs_order(
    db_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key_file, policies=POLICIES) as tf:
        before = len(_entries(tf))
    run_writers(_work, db_url, str(key_file), WORKERS)

    with Tactful.open(db_url=db_url, key_file=key_file, policies=POLICIES) as tf:
        verdict = tf.audit.verify()
        rows = _entries(tf)
        with tf._store.engine.connect() as conn:
            signed = conn.execute(text("SELECT seq FROM audit_checkpoint")).scalars().all()
    total = before + WORKERS * (ROUNDS * (DEFERRED + 1) + DEFERRED)
    assert verdict.ok, verdict.summary()
    assert verdict.entries == total and [s for s, _, _ in rows] == list(range(1, total + 1))
    for w in range(WORKERS):
        mine = [(p["i"], p["k"]) for _, _, p in rows if p.get("w") == w]
        expected = [(i, k) for i in range(ROUNDS) for k in range(DEFERRED + 1)]
        assert mine == expected + [(ROUNDS, k) for k in range(DEFERRED)], f"worker {w} order"
    periodic = {s for s in signed if s % 100 == 0}
    assert periodic == set(range(100, total + 1, 100)), "every periodic checkpoint was written"
    assert verdict.checkpoints == len(signed)


def _forked_child(tf: Tactful) -> None:
    tf._store.engine.dispose(close=False)  # the parent's pooled connections are not ours
    if tf._audit.pending != 0:
        sys.exit(2)
    tf._audit.defer("decision", {"n": "child"})
    if tf._audit.flush() != 1:
        sys.exit(3)


def test_a_forked_child_does_not_write_the_parents_queue(db_url: str, tmp_path: Path) -> None:
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        tf._audit._queue.max_delay = 60.0
        for n in range(3):
            tf._audit.defer("decision", {"n": n})
        assert tf._audit.pending == 3
        child = mp.get_context("fork").Process(target=_forked_child, args=(tf,))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == 0, "the child started with an empty queue and wrote its own"
        assert tf._audit.pending == 3 and tf._audit.flush() == 3
        rows = _entries(tf)
        assert [p["n"] for _, k, p in rows if k == "decision"] == ["child", 0, 1, 2]
        assert tf.audit.verify().ok


def test_a_normal_exit_writes_what_is_queued(db_url: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from tactful import Tactful
        tf = Tactful.open(db_url={db_url!r}, key_file={str(tmp_path / "master.key")!r},
                          policies={str(POLICIES)!r})
        tf._audit._queue.max_delay = 60.0
        for n in range(5):
            tf._audit.defer("decision", {{"n": n}})
        assert tf._audit.pending == 5
        # no close(): the interpreter's exit writes the queue
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        assert [p["n"] for _, k, p in _entries(tf) if k == "decision"] == [0, 1, 2, 3, 4]
        assert tf.audit.verify().ok


def test_audit_verify_command_is_intact_on_a_store_with_deferred_records(
    db_url: str, tmp_path: Path
) -> None:
    tf = Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES)
    try:
        tf._audit._queue.max_delay = 60.0
        tf.consent.grant("u1", ["personalization"])
        for n in range(120):
            tf._audit.defer("decision", {"n": n})
        shown = tactful("audit", "verify", db=db_url, home=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "audit chain intact: 1 entries" in shown.stdout, "another process sees no queue"
    finally:
        tf.close()
    doc = json.loads(tactful("audit", "verify", "--json", db=db_url, home=tmp_path).stdout)
    assert doc["ok"] is True and doc["entries"] == 121
    assert doc["checkpoint"]["seq"] == 100 and doc["unsigned_tail"] == 21
