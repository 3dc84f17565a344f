"""`Quiet`: SQLite's change generation, and the audit writer's commits that do not move it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from tactful.store.engine import make_engine
from tactful.store.quiet import Quiet


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Engine, Quiet]]:
    """A SQLite store with one table, and a `Quiet` watching it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    quiet = Quiet(engine)
    try:
        yield engine, quiet
    finally:
        quiet.close()
        engine.dispose()


def _commit_elsewhere(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")


def test_the_generation_moves_for_other_connections_commits_only(
    watched: tuple[Engine, Quiet],
) -> None:
    engine, quiet = watched
    first = quiet.now()
    assert first is not None and quiet.now() == first, "nothing committed: unchanged"
    with quiet.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert quiet.now() == first, "its own commit does not count"
    _commit_elsewhere(engine)
    second = quiet.now()
    assert second is not None and second != first
    assert quiet.now() == second


def test_a_commit_before_the_writers_transaction_is_counted_inside_it(
    watched: tuple[Engine, Quiet],
) -> None:
    # During the audit writer's transaction the watching connection is busy; the generation
    # is answered from memory then, so it must already count what was committed before the
    # writer took SQLite's write lock (nobody else can commit while it holds it).
    engine, quiet = watched
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


def test_a_failed_write_transaction_starts_a_fresh_generation(
    watched: tuple[Engine, Quiet],
) -> None:
    engine, quiet = watched
    before = quiet.now()
    with pytest.raises(Exception, match="missing"), quiet.begin() as conn:
        conn.exec_driver_sql("INSERT INTO missing VALUES (1)")
    assert quiet.now() != before
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0


def _close_driver_connection(conn: Connection) -> None:
    conn.connection.dbapi_connection.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "breaks",
    [_close_driver_connection, Connection.invalidate],
    ids=["driver connection closed", "invalidated by SQLAlchemy"],
)
def test_a_broken_watching_connection_sends_the_caller_to_the_database(
    watched: tuple[Engine, Quiet], breaks: Callable[[Connection], None]
) -> None:
    # The question runs on a driver cursor kept between calls: once the connection under it
    # is gone, the cursor must not answer, and a fresh connection takes over.
    engine, quiet = watched
    before = quiet.now()
    assert quiet._conn is not None
    breaks(quiet._conn)
    assert quiet.now() is None, "no answer from a broken connection"
    after = quiet.now()
    assert after is not None and after != before, "a fresh connection, a fresh generation"
    _commit_elsewhere(engine)
    moved = quiet.now()
    assert moved is not None and moved != after, "the fresh connection sees other commits"


def test_a_question_during_the_writers_commit_goes_to_the_database(
    watched: tuple[Engine, Quiet],
) -> None:
    # SQLite may release the write lock before the commit call returns (an automatic
    # checkpoint runs after it), so another connection can commit then: from the commit on, a
    # question is not answered from memory.
    from sqlalchemy import event

    _, quiet = watched
    during: list[int | None] = []

    def ask(_conn: object) -> None:
        asker = threading.Thread(target=lambda: during.append(quiet.now()))
        asker.start()
        asker.join()

    with quiet.begin() as conn:
        event.listen(conn, "commit", ask)  # runs as the commit starts
        conn.exec_driver_sql("INSERT INTO t VALUES (4)")
    event.remove(conn, "commit", ask)
    assert during == [None]


def test_a_forked_child_starts_a_generation_of_its_own(watched: tuple[Engine, Quiet]) -> None:
    # The parent's connection (and the generation read on it) is never used by a child.
    import os

    _, quiet = watched
    before = quiet.now()
    pid = os.fork()
    if pid == 0:
        mine = quiet.now()
        os._exit(0 if mine is not None and mine != before else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert quiet.now() == before, "the parent's generation is untouched"
