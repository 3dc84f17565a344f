"""Segment sizes and per-segment metrics: frames of (user, segment) rows for the DP queries.

Membership is inferred personal data, so it leaves the store only as a differentially private
release: a user counts once per segment (sizes), or each of their rows counts in every segment
they are in (metrics), and the rows kept per user are bounded before any noise is added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection

from tactful.consent import ConsentLedger
from tactful.consent.purposes import Purpose
from tactful.dp.engine import Categorical, Column, Frame
from tactful.dp.sources import build_frame
from tactful.errors import ConsentRequired, ValidationError
from tactful.segments import CompiledSegments, Memberships
from tactful.store import Store, SubjectRef, category_allowed

SEGMENT = "segment"


def check_segments(
    segments: CompiledSegments,
    wanted: Sequence[str] | None,
    purpose_id: str,
    purpose: Purpose,
) -> list[str]:
    """The segment ids to report on (all by default), each covered by the purpose's categories.

    Counting members reveals what their data says, so the aggregate's purpose must declare
    every data category the segment's rule reads (ConsentRequired otherwise).
    """
    declared = segments.ids()
    if wanted is None:
        ids = declared
    elif isinstance(wanted, str) or not all(isinstance(s, str) for s in wanted):
        raise ValidationError("segments must be a list of segment ids from segments.yaml")
    else:
        ids = list(dict.fromkeys(wanted))
    if not ids:
        raise ValidationError(
            "no segments to report on: segments.yaml declares none"
            if not declared
            else "segments must name at least one segment"
        )
    unknown = [s for s in ids if s not in segments.segments]
    if unknown:
        raise ValidationError(
            f"segment {unknown[0][:64]!r} is not declared in segments.yaml "
            f"(declared: {', '.join(declared) or 'none'})"
        )
    allowed = frozenset(purpose.data_categories)
    for sid in ids:
        missing = sorted(
            c for c in segments.segments[sid].reads if not category_allowed(c, allowed)
        )
        if missing:
            raise ConsentRequired(
                f"segment {sid!r} reads data category {missing[0]!r}, which purpose "
                f"{purpose_id!r} does not cover (it declares: "
                f"{', '.join(purpose.data_categories) or 'none'}); report it under a purpose "
                "that declares it",
                purpose=purpose_id,
            )
    return ids


def membership_frame(
    conn: Connection, memberships: Memberships, subjects: Sequence[SubjectRef]
) -> Frame:
    """One row per (covered user, segment they are in)."""
    users: list[int] = []
    names: list[str | None] = []
    for sid, segs in memberships.of_subjects(conn, subjects):
        users.extend([sid] * len(segs))
        names.extend(segs)
    return Frame(np.asarray(users, dtype=np.int64), {SEGMENT: Categorical.encode(names)})


def metric_frame(
    conn: Connection,
    store: Store,
    ledger: ConsentLedger,
    memberships: Memberships,
    source: str,
    columns: Sequence[str],
    subjects: Sequence[SubjectRef],
) -> Frame:
    """The source's rows of covered members, each repeated once per segment of its user."""
    of_user = dict(memberships.of_subjects(conn, subjects))
    members = [s for s in subjects if s.id in of_user]
    base = build_frame(conn, store, ledger, source, [c for c in columns if c != SEGMENT], members)
    rows: list[int] = []
    names: list[str | None] = []
    for i, user in enumerate(base.users.tolist()):
        for seg in of_user.get(int(user), ()):
            rows.append(i)
            names.append(seg)
    exploded = base.take(np.asarray(rows, dtype=np.int64))
    cols: dict[str, Column] = dict(exploded.columns)
    cols[SEGMENT] = Categorical.encode(names)
    return Frame(exploded.users, cols)
