"""`Quiet`: SQLite's change generation, and the audit writer's commits that do not move it."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine

from tactful.store.engine import make_engine
from tactful.store.quiet import Quiet


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    return engine


def _commit_elsewhere(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")


def test_the_generation_moves_for_other_connections_commits_only(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    quiet = Quiet(engine)
    try:
        first = quiet.now()
        assert first is not None and quiet.now() == first, "nothing committed: unchanged"
        with quiet.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert quiet.now() == first, "its own commit does not count"
        _commit_elsewhere(engine)
        second = quiet.now()
        assert second is not None and second != first
        assert quiet.now() == second
    finally:
        quiet.close()
        engine.dispose()


def test_a_commit_before_the_writers_transaction_is_counted_inside_it(tmp_path: Path) -> None:
    # During the audit writer's transaction the watching connection is busy; the generation
    # is answered from memory then, so it must already count what was committed before the
    # writer took SQLite's write lock (nobody else can commit while it holds it).
    engine = _engine(tmp_path)
    quiet = Quiet(engine)
    try:
        before = quiet.now()
        _commit_elsewhere(engine)
        inside: list[int | None] = []
        with quiet.begin() as conn:
            asker = threading.Thread(target=lambda: inside.append(quiet.now()))
            asker.start()
            asker.join()
            conn.exec_driver_sql("INSERT INTO t VALUES (3)")
        assert inside[0] is not None and inside[0] != before
        assert quiet.now() == inside[0]
    finally:
        quiet.close()
        engine.dispose()


def test_a_failed_write_transaction_starts_a_fresh_generation(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    quiet = Quiet(engine)
    try:
        before = quiet.now()
        try:
            with quiet.begin() as conn:
                conn.exec_driver_sql("INSERT INTO missing VALUES (1)")
        except Exception:
            pass
        assert quiet.now() != before
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        quiet.close()
        engine.dispose()
