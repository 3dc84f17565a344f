"""Facts the report reads from other areas: keys, retention, privacy budget, checkpoints.

Each reader returns an explicit `Unavailable` marker (rendered as such) when this store or
this tactful version does not keep the fact, so a report never shows a zero it cannot back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from tactful.audit import AuditLog
from tactful.dp.budget import BudgetLedger
from tactful.experiments import Experiments
from tactful.experiments.records import Definitions, exposed_counts
from tactful.reports.facts import window as _window
from tactful.reports.model import (
    BudgetDataset,
    BudgetSection,
    ExperimentFacts,
    ExperimentsSection,
    KeyFacts,
    KeyVersion,
    RetentionRun,
    Unavailable,
)
from tactful.store import Store, utc
from tactful.store.tables import AuditEntry, DPRelease, Subject, table_of

_audit = table_of(AuditEntry)
_subject = table_of(Subject)
_release = table_of(DPRelease)


def store_started(conn: Connection) -> datetime | None:
    """The earliest moment the store records: its first audit entry or first subject."""
    first = [
        conn.execute(select(func.min(_audit.c.ts))).scalar(),
        conn.execute(select(func.min(_subject.c.created_at))).scalar(),
    ]
    found = [utc(t) for t in first if t is not None]
    return min(found) if found else None


def key_facts(
    conn: Connection, store: Store, audit: AuditLog, moment: datetime
) -> KeyFacts | Unavailable:
    """Master key versions, data keys per version and age (from the `keys.rotated` records)."""
    status_of = getattr(store, "key_status", None)
    if status_of is None:
        return Unavailable(reason="this store does not report master key versions")
    status: Any = status_of()
    became_current: dict[int, datetime] = {}
    for rec in audit.records(conn, kind="keys.rotated"):
        version = rec.payload.get("version")
        if isinstance(version, int) and version not in became_current:
            became_current[version] = rec.ts
    started = store_started(conn)
    first = min(status.versions) if status.versions else None
    versions: list[KeyVersion] = []
    for version, count in sorted(status.versions.items()):
        since: datetime | None = became_current.get(version)
        origin: Literal["rotation", "store_start", "unknown"] = (
            "rotation" if since is not None else "unknown"
        )
        if since is None and version == first and started is not None:
            since, origin = started, "store_start"
        versions.append(
            KeyVersion(
                version=version,
                current=version == status.current,
                data_keys=int(count),
                age_days=round((moment - since).total_seconds() / 86400, 2) if since else None,
                since=origin,
            )
        )
    return KeyFacts(provider=str(status.provider), versions=versions, rotations=len(became_current))


def retention_facts(
    conn: Connection, audit: AuditLog, since: datetime | None, until: datetime | None
) -> RetentionRun | Unavailable:
    """The retention job's last run (its `retention.run` audit record) and runs in the period."""
    if not hasattr(Store, "retention"):
        return Unavailable(reason="this tactful version has no retention job")
    last = conn.execute(
        select(_audit.c.ts, _audit.c.payload)
        .where(_audit.c.kind == "retention.run")
        .order_by(_audit.c.seq.desc())
        .limit(1)
    ).first()
    runs = sum(1 for _ in audit.records(conn, kind="retention.run", since=since, until=until))
    if last is None:
        return RetentionRun(last_run=None, events={}, profile_fields={}, runs_in_period=runs)
    payload: dict[str, Any] = json.loads(last.payload)
    return RetentionRun(
        last_run=utc(last.ts),
        events={str(k): int(v) for k, v in payload.get("events", {}).items()},
        profile_fields={str(k): int(v) for k, v in payload.get("profile_fields", {}).items()},
        runs_in_period=runs,
    )


def budget_facts(conn: Connection, since: datetime | None, until: datetime | None) -> BudgetSection:
    """Privacy budget per dataset (granted, spent) and its releases in the period."""
    released: dict[str, int] = dict(
        conn.execute(
            select(_release.c.dataset, func.count())
            .where(_window(_release.c.created_at, since, until))
            .group_by(_release.c.dataset)
        ).all()
    )
    return BudgetSection(
        datasets=[
            BudgetDataset(
                dataset=s.dataset,
                granted=s.total,
                spent=s.spent,
                unit="epsilon",
                releases_in_period=int(released.get(s.dataset, 0)),
            )
            for s in BudgetLedger().all(conn)
        ]
    )


def experiment_facts(conn: Connection, *, public: bool) -> ExperimentsSection:
    """Every declared experiment with its budget and releases; exposure counts unless public."""
    exposed = exposed_counts(conn)
    budgets = {b.dataset: b for b in BudgetLedger().all(conn)}
    releases: dict[str, int] = dict(
        conn.execute(
            select(_release.c.dataset, func.count())
            .where(_release.c.kind == Experiments.RELEASE_KIND)
            .group_by(_release.c.dataset)
        ).all()
    )
    out = []
    for e in Definitions().all(conn):
        budget = budgets.get(e.dataset)
        out.append(
            ExperimentFacts(
                experiment=e.id,
                purpose=e.purpose,
                status=e.status,
                declared_at=e.created_at or utc(datetime.min),
                variants={v.name: v.weight for v in e.variants},
                control=e.control,
                metrics=list(e.metrics),
                exposed=None if public else exposed.get(e.id, 0),
                dataset=e.dataset,
                epsilon_granted=budget.total if budget else 0.0,
                epsilon_spent=budget.spent if budget else 0.0,
                releases=int(releases.get(e.dataset, 0)),
            )
        )
    return ExperimentsSection(experiments=out)
