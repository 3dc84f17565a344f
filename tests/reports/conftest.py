"""A store seeded with known consent, requests and decisions, and the truth to check against."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from tactful import Tactful
from tactful.store.tables import RightsRequest, table_of
from tests.conftest import CATALOG

DAY = timedelta(days=1)


@dataclass
class Truth:
    """What was seeded: the period and the counts a report over it must show."""

    since: datetime
    until: datetime
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    reasons: dict[str, Counter[str]] = field(default_factory=dict)
    categories: Counter[str] = field(default_factory=Counter)
    request_ids: dict[str, str] = field(default_factory=dict)


def seed_report(tf: Tactful) -> Truth:
    """Consent histories with backdated records, requests with known times, real decisions.

    Period [T-30d, T+1h). personalization: u1 granted T-400d (lapses T-5d: expired in period);
    u2 granted T-10d, withdrew T-3d; u3 granted T-2d; u4 granted T-400d and renewed T-20d (so
    its first grant never lapses); u5 refused T-1d. analytics.aggregate: u6 granted T-60d.
    """
    t = datetime.now(UTC)
    truth = Truth(since=t - 30 * DAY, until=t + timedelta(hours=1))
    tf.catalog.upsert(CATALOG)
    for user, items in {"u1": "abe", "u2": "ace", "u3": "cd", "u4": "abf", "u5": "ab"}.items():
        tf.events.record_many(user, [(i, "view", None) for i in items])
    tf.consent.grant("u1", "personalization", at=t - 400 * DAY)
    tf.consent.grant("u2", "personalization", at=t - 10 * DAY)
    tf.consent.withdraw("u2", "personalization", at=t - 3 * DAY)
    tf.consent.grant("u3", "personalization", at=t - 2 * DAY)
    tf.consent.grant("u4", "personalization", at=t - 400 * DAY)
    tf.consent.grant("u4", "personalization", at=t - 20 * DAY)
    tf.consent.refuse("u5", "personalization", at=t - 1 * DAY)
    tf.consent.grant("u6", "analytics.aggregate", at=t - 60 * DAY)
    calls = [(u, "personalization") for u in ("u1", "u2", "u3", "u4", "u5", "ghost", "u3")]
    calls += [("u6", "analytics.aggregate"), ("u3", "marketing.email")]
    for user, purpose in calls:
        rec = tf.recommend(user, purpose=purpose, k=3)
        truth.outcomes.setdefault(purpose, Counter())[rec.mode] += 1
        if rec.mode != "personalized":
            truth.reasons.setdefault(rec.mode, Counter()).update(rec.reasons)
        if rec.mode != "denied":
            truth.categories.update(rec.categories_used)
    _seed_requests(tf, t, truth)
    return truth


def _seed_requests(tf: Tactful, t: datetime, truth: Truth) -> None:
    # (name, type, received, due, completed); the report reads the register's own table.
    rows = [
        ("r1", "access", t - 20 * DAY, t + 10 * DAY, t - 15 * DAY),  # on time, 5 days
        ("r2", "access", t - 25 * DAY, t - 2 * DAY, t - 1 * DAY),  # late, 24 days
        ("r3", "erasure", t - 10 * DAY, t + 20 * DAY, t - 7 * DAY),  # on time, 3 days
        ("r4", "erasure", t - 40 * DAY, t - 9 * DAY, None),  # received before; overdue 9 days
        ("r5", "access", t - 5 * DAY, t + 25 * DAY, None),  # open, 25 days left
        ("r6", "access", t - 60 * DAY, t - 30 * DAY, t - 50 * DAY),  # wholly before the period
    ]
    requests = table_of(RightsRequest)
    with tf._store.begin() as conn:
        for name, kind, received, due, done in rows:
            rid = uuid.uuid4().hex
            truth.request_ids[name] = rid
            conn.execute(
                requests.insert().values(
                    id=rid,
                    kind=kind,
                    alias=uuid.uuid4().hex[:16],
                    status="open" if done is None else "completed",
                    received_at=received,
                    due_at=due,
                    completed_at=done,
                )
            )


@pytest.fixture
def seeded(tf: Tactful) -> tuple[Tactful, Truth]:
    """The `tf` store (SQLite and PostgreSQL) seeded by `seed_report`."""
    return tf, seed_report(tf)
