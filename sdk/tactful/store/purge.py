"""The row purge after crypto-shredding: counting and deleting an erased subject's ciphertexts.

An erasure shreds the data key at once (every ciphertext of the subject becomes unreadable)
and leaves the rows to `purge_rows`, which deletes them in bounded batches, one transaction
each, so that the erasure request costs the same whatever the history size.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, ScalarSelect, Table, bindparam, delete, func, select, tuple_

from tactful.store.tables import (
    BlindIndex,
    Event,
    ProfileField,
    SettingsHistory,
    UserSettings,
    table_of,
)

_index = table_of(BlindIndex)
_event = table_of(Event)
_profile = table_of(ProfileField)
_history = table_of(SettingsHistory)
_settings = table_of(UserSettings)

# The tables the purge empties, with the key columns a bounded delete selects by.
PURGED: tuple[tuple[str, Table, tuple[str, ...]], ...] = (
    ("events", _event, ("id",)),
    ("settings_history", _history, ("id",)),
    ("profile_fields", _profile, ("subject_id", "name")),
    ("settings", _settings, ("subject_id",)),
)


COUNT_CAP = 1000  # the request counts up to this many rows per table; the purge counts more


def _capped_count(table: Table, key: str) -> ScalarSelect[int]:
    capped = (
        select(table.c[key])
        .where(table.c.subject_id == bindparam("sid"))
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    return select(func.count()).select_from(capped).scalar_subquery()


# One statement, built once: the capped count of every purged table.
_HELD = select(*(_capped_count(t, keys[0]).label(name) for name, t, keys in PURGED))


def held_rows(conn: Connection, subject_id: int) -> dict[str, int | None]:
    """How many rows of each purged table the subject has; None above COUNT_CAP.

    Each count reads at most COUNT_CAP + 1 index entries, so the request stays constant-time.
    """
    row = conn.execute(_HELD, {"sid": subject_id}).one()
    return {
        name: (int(n) if n <= COUNT_CAP else None)
        for name, n in zip((p[0] for p in PURGED), row, strict=True)
    }


def count_rows(conn: Connection, subject_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Exact rows per purged table of each subject (the purge's count, before it deletes)."""
    names = [n for n, _, _ in PURGED]
    out: dict[int, dict[str, int]] = {sid: dict.fromkeys(names, 0) for sid in subject_ids}
    for name, table, _ in PURGED:
        rows = conn.execute(
            select(table.c.subject_id, func.count())
            .where(table.c.subject_id.in_(list(subject_ids)))
            .group_by(table.c.subject_id)
        )
        for sid, n in rows:
            out[int(sid)][name] = int(n)
    return out


def drop_blind_index(conn: Connection, subject_id: int) -> int:
    """Delete the subject's blind-index digests at once: they are keyed hashes of values, not
    ciphertexts, so shredding the data key does not make them unlinkable."""
    return conn.execute(delete(_index).where(_index.c.subject_id == subject_id)).rowcount


def purge_rows(
    conn: Connection, subject_ids: Sequence[int], budget: int
) -> tuple[dict[str, int], bool]:
    """Delete at most `budget` rows of these subjects (inside the caller's transaction).

    Returns the rows deleted per table and whether the subjects are now clean (every table
    had fewer rows left than the budget allowed).
    """
    ids = list(subject_ids)
    left = budget
    deleted: dict[str, int] = {}
    for name, table, keys in PURGED:
        if left <= 0:
            return deleted, False
        cols = [table.c[k] for k in keys]
        chosen = select(*cols).where(table.c.subject_id.in_(ids)).limit(left)
        target = cols[0].in_(chosen) if len(cols) == 1 else tuple_(*cols).in_(chosen)
        n = conn.execute(delete(table).where(target)).rowcount
        if n:
            deleted[name] = n
        left -= n
    return deleted, left > 0
