"""Several OS processes appending to one store at once keep one valid chain.

Each process (spawned, so nothing is shared but the database and the key file) opens its own
Tactful and grants consent, asks for recommendations and signs checkpoints. Appends are
serialized by a transaction-scoped advisory lock on PostgreSQL and by SQLite's write lock
(BEGIN IMMEDIATE with a busy timeout), checkpoint writes included.
"""

from __future__ import annotations

from multiprocessing.synchronize import Barrier
from pathlib import Path

from sqlalchemy import text

from tactful import Tactful
from tests.audit.workers import run_writers
from tests.conftest import CATALOG, POLICIES

WORKERS = 4
ROUNDS = 30


def _work(url: str, key_file: str, worker: int, start: Barrier) -> None:
    with Tactful.open(db_url=url, key_file=key_file, policies=POLICIES) as tf:
        start.wait(timeout=120)
        for i in range(ROUNDS):
            user = f"w{worker}-u{i}"
            tf.consent.grant(user, ["personalization"])
            tf.recommend(user)
            if i % 10 == 9:
                tf.audit.checkpoint()


def _round(tf: Tactful, user: str) -> int:
    """How many entries one round appends (measured, not assumed)."""
    before = tf.audit.verify().entries
    tf.consent.grant(user, ["personalization"])
    tf.recommend(user)
    return tf.audit.verify().entries - before


def test_concurrent_processes_keep_one_contiguous_verified_chain(
    db_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key_file, policies=POLICIES) as tf:
        tf.catalog.upsert(CATALOG)
        per_round = _round(tf, "calibration")
        before = tf.audit.verify().entries
    assert per_round >= 2

    run_writers(_work, db_url, str(key_file), WORKERS)

    with Tactful.open(db_url=db_url, key_file=key_file, policies=POLICIES) as tf:
        verdict = tf.audit.verify()
        with tf._store.engine.connect() as conn:
            seqs = conn.execute(text("SELECT seq FROM audit_log ORDER BY seq")).scalars().all()
            signed = conn.execute(text("SELECT seq FROM audit_checkpoint")).scalars().all()
    total = before + WORKERS * ROUNDS * per_round
    assert verdict.ok, verdict.summary()
    assert verdict.entries == total and seqs == list(range(1, total + 1))
    periodic = {s for s in signed if s % 100 == 0}
    assert periodic == set(range(100, total + 1, 100)), "every periodic checkpoint was written"
    assert len(signed) > len(periodic), "on-demand checkpoints were written too"
    assert verdict.checkpoints == len(signed)
