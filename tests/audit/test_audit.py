"""The hash-chained audit log: verification finds the first broken link."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tactful import Tactful
from tests.conftest import seed_small


def _engine(tf: Tactful) -> Engine:
    return tf._store.engine


def test_intact_chain_verifies(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    verdict = tf.audit.verify()
    assert verdict.ok and verdict.entries >= 4 and verdict.first_bad_seq is None


def test_modified_entry_is_named(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    tf.audit.flush()  # the table is changed directly below
    with _engine(tf).begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_log SET payload = replace(payload, 'personalized', "
                "'denied') WHERE kind = 'decision'"
            )
        )
        seq = conn.execute(text("SELECT seq FROM audit_log WHERE kind='decision'")).scalar_one()
    verdict = tf.audit.verify()
    assert not verdict.ok and verdict.first_bad_seq == seq and "modified" in (verdict.problem or "")


def test_deleted_entry_is_named(tf: Tactful) -> None:
    seed_small(tf)
    with _engine(tf).begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    verdict = tf.audit.verify()
    assert not verdict.ok and verdict.first_bad_seq == 2 and "missing" in (verdict.problem or "")


def test_rewritten_entry_with_recomputed_hash_breaks_the_next_link(tf: Tactful) -> None:
    seed_small(tf)
    with _engine(tf).begin() as conn:
        conn.execute(text("UPDATE audit_log SET hash = :h WHERE seq = 1"), {"h": "f" * 64})
    verdict = tf.audit.verify()
    assert not verdict.ok and verdict.first_bad_seq == 1


def test_erasure_keeps_the_chain_verifiable(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    tf.rights.erase("u1")
    assert tf.audit.verify().ok
