"""Consent counts for a public report, released with differential privacy.

The current consent states form one histogram over the public keys (purpose, state). A user
holds exactly one state per purpose, so adding or removing a user changes at most one count
per purpose: the histogram's L1 sensitivity is the number of purposes. It is released with
tactful.dp's OpenDP histogram (discrete Laplace), the epsilon is charged to the `reports`
dataset's privacy budget and the release is recorded and audit-logged like any other.
Period totals and trends are per-event counts with no per-user bound: a public report withholds
them rather than release them without a guarantee.
"""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import Connection

from tactful.audit import AuditLog
from tactful.dp.budget import BudgetLedger, to_micro
from tactful.dp.engine import dp_histogram
from tactful.reports.model import ConsentSection, DPRelease, PurposeConsentFacts
from tactful.store import now
from tactful.store.tables import DPRelease as ReleaseRow
from tactful.store.tables import table_of

DATASET = "reports"
STATES = ("given", "refused", "withdrawn", "expired", "invalidated", "not_asked")
MECHANISM = "OpenDP count_by_categories + discrete Laplace, user-level (one state per purpose)"
WITHHELD = (
    "grants, withdrawals and expiries in the period are not released publicly: a user can "
    "contribute any number of them, so no per-user bound makes them private"
)


def release_consent(
    conn: Connection,
    audit: AuditLog,
    purposes: list[str],
    current: dict[str, dict[str, int]],
    epsilon: float,
) -> ConsentSection:
    """Release current consent counts with DP, charging `epsilon` to the `reports` budget.

    Raises BudgetExhausted (nothing released, nothing charged) when the budget is short; an
    operator grants it with `tactful budget grant reports EPSILON --operator NAME`.
    """
    keys = [(p, s) for p in purposes for s in STATES]
    counts = [int(current.get(p, {}).get(s, 0)) for p, s in keys]
    # The mechanism only sees the histogram, so the codes are rebuilt from the exact counts.
    codes = np.repeat(np.arange(len(keys), dtype=np.int32), counts)
    BudgetLedger().reserve(conn, DATASET, epsilon)
    noisy = dp_histogram(codes, len(keys), max(len(purposes), 1), epsilon)
    release_id = uuid.uuid4().hex
    conn.execute(
        table_of(ReleaseRow)
        .insert()
        .values(
            id=release_id,
            dataset=DATASET,
            kind="report.consent",
            epsilon_micro=to_micro(epsilon),
            created_at=now(),
        )
    )
    audit.append(
        conn,
        "dp.release",
        {
            "release": release_id,
            "query": "report.consent",
            "source": "consent",
            "columns": ["purpose", "state"],
            "dataset": DATASET,
            "epsilon": epsilon,
            "purpose": "accountability",
            "max_contributions": len(purposes),
        },
    )
    released: dict[str, dict[str, int | float]] = {p: {} for p in purposes}
    for (p, s), estimate in zip(keys, noisy, strict=True):
        released[p][s] = max(0, round(estimate.value))
    return ConsentSection(
        public=True,
        dp=DPRelease(mechanism=MECHANISM, epsilon_spent=epsilon, dataset=DATASET),
        withheld=WITHHELD,
        purposes=[
            PurposeConsentFacts(
                purpose=p,
                current={s: v for s, v in released[p].items() if v},
                granted=None,
                withdrawn=None,
                expired=None,
                trend=[],
            )
            for p in purposes
        ],
    )
