"""Ways to damage a real audit log behind tactful's back, as an attacker with SQL access would.

Each function works on the database directly (raw SQL through the store's engine), never
through tactful, and returns nothing: the tests then ask `verify` what it sees.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, text

from tactful import Tactful
from tactful.audit import entry_hash
from tactful.store.tables import AuditEntry, table_of

_audit = table_of(AuditEntry)


def grow(tf: Tactful, n: int) -> int:
    """Append n real entries as tactful writes them (checkpoints included); returns the head."""
    seq = 0
    with tf._store.begin() as conn:
        for i in range(n):
            seq = tf._audit.append(conn, "test.event", {"i": i, "note": "padding"})
    return seq


def engine(tf: Tactful) -> Engine:
    return tf._store.engine


def modify_payload(tf: Tactful, seq: int) -> None:
    """Change an entry's payload without recomputing its hash."""
    with engine(tf).begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET payload = :p WHERE seq = :s"),
            {"p": '{"i":-1,"note":"edited"}', "s": seq},
        )


def delete_entry(tf: Tactful, seq: int) -> None:
    """Delete one entry, leaving a gap."""
    with engine(tf).begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})


def delete_and_renumber(tf: Tactful, seq: int) -> None:
    """Delete one entry and shift every later one down by one to close the gap."""
    with engine(tf).begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})
        later = conn.execute(
            text("SELECT seq FROM audit_log WHERE seq > :s ORDER BY seq"), {"s": seq}
        ).scalars()
        for s in list(later):
            conn.execute(text("UPDATE audit_log SET seq = :n WHERE seq = :o"), {"n": s - 1, "o": s})


def swap(tf: Tactful, a: int, b: int) -> None:
    """Swap two entries' sequence numbers (through a free number: seq is the primary key)."""
    with engine(tf).begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = :a"), {"a": a})
        conn.execute(text("UPDATE audit_log SET seq = :a WHERE seq = :b"), {"a": a, "b": b})
        conn.execute(text("UPDATE audit_log SET seq = :b WHERE seq = -1"), {"b": b})


def cut_tail(tf: Tactful, keep: int, *, with_checkpoints: bool = False) -> None:
    """Delete every entry after `keep` (and the checkpoints past it, if asked)."""
    with engine(tf).begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq > :k"), {"k": keep})
        if with_checkpoints:
            conn.execute(text("DELETE FROM audit_checkpoint WHERE seq > :k"), {"k": keep})


def delete_checkpoint(tf: Tactful, seq: int) -> None:
    with engine(tf).begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoint WHERE seq = :s"), {"s": seq})


def delete_all_checkpoints(tf: Tactful) -> None:
    with engine(tf).begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoint"))


def forge_from(tf: Tactful, seq: int, *, stop_after: int | None = None) -> None:
    """Rewrite entry `seq`'s payload and recompute every hash and link from it on.

    With `stop_after`, recompute only up to that entry (a careless forger), so the next
    entry still names the old hash.
    """
    with engine(tf).begin() as conn:
        rows = conn.execute(select(_audit).where(_audit.c.seq >= seq).order_by(_audit.c.seq)).all()
        prev = conn.execute(
            text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq - 1}
        ).scalar_one()
        for r in rows:
            if stop_after is not None and r.seq > stop_after:
                break
            payload = '{"i":-1,"note":"forged"}' if r.seq == seq else r.payload
            digest = entry_hash(r.seq, r.ts, r.kind, r.alias, payload, prev)
            conn.execute(
                text(
                    "UPDATE audit_log SET payload = :p, prev_hash = :prev, hash = :h WHERE seq = :s"
                ),
                {"p": payload, "prev": prev, "h": digest, "s": r.seq},
            )
            prev = digest


def alter_checkpoint(tf: Tactful, seq: int) -> None:
    """Point a signed checkpoint at another head without the audit key (its MAC no longer fits)."""
    with engine(tf).begin() as conn:
        head = conn.execute(
            text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq - 1}
        ).scalar_one()
        conn.execute(
            text("UPDATE audit_checkpoint SET head_hash = :h WHERE seq = :s"), {"h": head, "s": seq}
        )


def fake_checkpoint(tf: Tactful, seq: int) -> None:
    """Insert a checkpoint the attacker made up (a MAC not made with the audit key)."""
    with engine(tf).begin() as conn:
        head = conn.execute(
            text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq}
        ).scalar_one()
        ts = conn.execute(text("SELECT ts FROM audit_log WHERE seq = :s"), {"s": seq}).scalar_one()
        conn.execute(
            text("INSERT INTO audit_checkpoint (seq, ts, head_hash, mac) VALUES (:s, :t, :h, :m)"),
            {"s": seq, "t": ts, "h": head, "m": "ab" * 32},
        )
