"""The counting queries of the report: decisions, consent events, requests.

Aggregation runs in the database (JSON functions of SQLite and PostgreSQL over the audit
payloads), so a report over millions of decisions streams a few hundred rows, not the log.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Text,
    and_,
    cast,
    column,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased

from tactful.reports.model import (
    CategoryShare,
    ConsentTrendPoint,
    DecisionsSection,
    DecisionTrendPoint,
    OpenRequest,
    ReasonCount,
    RequestsSection,
    RequestTypeFacts,
)
from tactful.store import utc
from tactful.store.tables import (
    AuditEntry,
    ConsentRecord,
    RequestDetail,
    RightsRequest,
    table_of,
)

_audit = table_of(AuditEntry)
_consent = table_of(ConsentRecord)
_requests = table_of(RightsRequest)
_detail = table_of(RequestDetail)
OUTCOMES = ("personalized", "non_personalized", "denied")
Bucket = str  # "day" | "week" | "month"


def bucket_width(since: datetime, until: datetime) -> Bucket:
    """Trend bucket width that keeps a chart readable: day to 92 days, week to 2 years, month."""
    span = until - since
    if span <= timedelta(days=92):
        return "day"
    return "week" if span <= timedelta(days=731) else "month"


def bucket_of(day: date, width: Bucket) -> str:
    """The start of `day`'s bucket as YYYY-MM-DD (weeks start on Monday)."""
    if width == "week":
        day = day - timedelta(days=day.weekday())
    elif width == "month":
        day = day.replace(day=1)
    return day.isoformat()


def buckets(since: datetime, until: datetime, width: Bucket) -> list[str]:
    """Every bucket start of the period, in order (empty buckets included, for the charts)."""
    out: list[str] = []
    day = since.astimezone(UTC).date()
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    while day <= last:
        key = bucket_of(day, width)
        if not out or out[-1] != key:
            out.append(key)
        day += timedelta(days=1)
    return out


def window(column: Any, since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    """`column` in [since, until); an open end is no condition."""
    cond: ColumnElement[bool] = true()
    if since is not None:
        cond = and_(cond, column >= since)
    if until is not None:
        cond = and_(cond, column < until)
    return cond


def _decision_groups(conn: Connection, since: datetime | None, until: datetime | None) -> Any:
    # One scan of the log: decisions grouped by (day, purpose, outcome, reasons, categories
    # used), the arrays kept as JSON text. Distinct combinations are few (rule sets and category
    # sets), so the database hands back hundreds of rows, not millions. Each payload is parsed
    # once: PostgreSQL flattens a subquery's `payload::jsonb` into every `->` (four parses a
    # row, 3x slower at 1M decisions), so one json_to_record call takes the four fields;
    # SQLite's json_extract with four paths returns them as one JSON array.
    where = and_(_audit.c.kind == "decision", window(_audit.c.ts, since, until))
    if conn.dialect.name == "postgresql":
        fields = (
            func.json_to_record(cast(_audit.c.payload, JSON))
            .table_valued(
                column("purpose", Text),
                column("outcome", Text),
                column("reasons", Text),
                column("categories_used", Text),
            )
            .render_derived(name="d", with_types=True)
        )
        cols = [
            func.to_char(_audit.c.ts.op("AT TIME ZONE")("UTC"), "YYYY-MM-DD"),
            fields.c.purpose,
            fields.c.outcome,
            fields.c.reasons,
            fields.c.categories_used,
        ]
        return (
            select(*cols, func.count())
            .select_from(_audit.join(fields, true()))
            .where(where)
            .group_by(*cols)
        )
    both = [
        func.date(_audit.c.ts),
        func.json_extract(
            _audit.c.payload, "$.purpose", "$.outcome", "$.reasons", "$.categories_used"
        ),
    ]
    return select(*both, func.count()).where(where).group_by(*both)


def _decision_rows(
    conn: Connection, since: datetime | None, until: datetime | None
) -> Iterator[tuple[Any, Any, Any, list[Any], list[Any], int]]:
    """(day, purpose, outcome, reasons, categories used, count) per group."""
    rows = conn.execute(_decision_groups(conn, since, until))
    if conn.dialect.name == "postgresql":
        for day, pid, out, rules, used, count in rows:
            yield day, pid, out, json.loads(rules or "[]"), json.loads(used or "[]"), int(count)
        return
    for day, packed, count in rows:
        pid, out, rules, used = json.loads(packed)
        yield day, pid, out, rules or [], used or [], int(count)


def decisions(
    conn: Connection, since: datetime | None, until: datetime | None, width: Bucket
) -> DecisionsSection:
    """Gate decisions of the period by purpose, outcome, reason, category and bucket."""
    by_purpose: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {"non_personalized": Counter(), "denied": Counter()}
    cats: Counter[str] = Counter()
    per: dict[str, Counter[str]] = {}
    for day, pid, out, rules, used, n in _decision_rows(conn, since, until):
        by_purpose.setdefault(str(pid), Counter())[str(out)] += n
        per.setdefault(bucket_of(date.fromisoformat(str(day)), width), Counter())[str(out)] += n
        if out != "personalized":
            for rule in rules:
                reasons.setdefault(str(out), Counter())[str(rule)] += n
        if out != "denied":
            for cat in used:
                cats[str(cat)] += n
    total = sum(sum(v.values()) for v in by_purpose.values())
    recommendations = total - sum(v["denied"] for v in by_purpose.values())
    top = {
        k: [ReasonCount(rule=r, decisions=c) for r, c in sorted(v.items(), key=_by_count)[:10]]
        for k, v in reasons.items()
    }
    shares = [
        CategoryShare(
            category=cat,
            decisions=c,
            share=round(c / recommendations, 6) if recommendations else 0.0,
        )
        for cat, c in sorted(cats.items(), key=_by_count)
    ]
    trend = [
        DecisionTrendPoint(
            bucket=k,
            personalized=c["personalized"],
            non_personalized=c["non_personalized"],
            denied=c["denied"],
        )
        for k, c in sorted(per.items())
    ]
    return DecisionsSection(
        total=total,
        recommendations=recommendations,
        by_purpose={k: dict(sorted(v.items())) for k, v in sorted(by_purpose.items())},
        top_reasons=top,
        categories_used=shares,
        trend=trend,
    )


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def consent_events(
    conn: Connection,
    purposes: list[str],
    since: datetime | None,
    until: datetime | None,
    width: Bucket,
    moment: datetime,
) -> dict[str, dict[str, Counter[str]]]:
    """Grants, withdrawals and expiries per purpose and bucket: {purpose: {kind: {bucket: n}}}.

    An expiry counts when a grant's validity ended inside the period with no later record for
    the same subject and purpose before that moment (a renewal or withdrawal supersedes it).
    """
    out: dict[str, dict[str, Counter[str]]] = {
        p: {"granted": Counter(), "withdrawn": Counter(), "expired": Counter()} for p in purposes
    }
    kinds = {"given": "granted", "withdrawn": "withdrawn"}
    rows = conn.execute(
        select(_consent.c.purpose, _consent.c.state, _consent.c.recorded_at).where(
            _consent.c.state.in_(list(kinds)), window(_consent.c.recorded_at, since, until)
        )
    )
    for pid, state, ts in rows:
        if pid in out:
            out[pid][kinds[state]][bucket_of(utc(ts).date(), width)] += 1
    later = aliased(_consent)
    superseded = exists().where(
        later.c.subject_id == _consent.c.subject_id,
        later.c.purpose == _consent.c.purpose,
        or_(
            later.c.recorded_at > _consent.c.recorded_at,
            and_(later.c.recorded_at == _consent.c.recorded_at, later.c.id > _consent.c.id),
        ),
        later.c.recorded_at <= _consent.c.expires_at,
    )
    lapsed = conn.execute(
        select(_consent.c.purpose, _consent.c.expires_at).where(
            _consent.c.state == "given",
            _consent.c.expires_at.is_not(None),
            window(_consent.c.expires_at, since, min(until or moment, moment)),
            ~superseded,
        )
    )
    for pid, ts in lapsed:
        if pid in out:
            out[pid]["expired"][bucket_of(utc(ts).date(), width)] += 1
    return out


def trend_points(
    kinds: dict[str, Counter[str]], keys: list[str], value: Callable[[int], int | float]
) -> list[ConsentTrendPoint]:
    """Consent trend points over every bucket of the period, each count through `value`."""
    return [
        ConsentTrendPoint(
            bucket=k,
            granted=value(kinds["granted"][k]),
            withdrawn=value(kinds["withdrawn"][k]),
            expired=value(kinds["expired"][k]),
        )
        for k in keys
    ]


def requests(
    conn: Connection, since: datetime | None, until: datetime | None, moment: datetime
) -> RequestsSection:
    """Requests received/completed in the period per type, and those open now with days left.

    A request is on time when completed by its due date (which includes any extension and
    identity-check pause); an open request paused now has its deadline moved by the pause so far.
    """
    received: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    late: Counter[str] = Counter()
    extended: Counter[str] = Counter()
    days: dict[str, list[float]] = {}
    open_now: list[OpenRequest] = []
    in_period = window(_requests.c.received_at, since, until)
    done_in_period = window(_requests.c.completed_at, since, until)
    rows = conn.execute(
        select(
            _requests.c.id,
            _requests.c.kind,
            _requests.c.status,
            _requests.c.received_at,
            _requests.c.due_at,
            _requests.c.completed_at,
            in_period.label("received_in"),
            and_(_requests.c.completed_at.is_not(None), done_in_period).label("done_in"),
            _detail.c.profile,
            _detail.c.extension,
            _detail.c.paused_at,
        )
        .select_from(_requests.outerjoin(_detail, _detail.c.request_id == _requests.c.id))
        .where(or_(in_period, done_in_period, _requests.c.completed_at.is_(None)))
    )
    for rid, kind, status, got, due, done, received_in, done_in, profile, ext, paused in rows:
        got, due = utc(got), utc(due)
        if received_in:
            received[kind] += 1
            extended[kind] += bool(ext)
        if done is None:
            if paused is not None:  # the clock stops while the requester's identity is checked
                due += moment - utc(paused)
            left = (due - moment).total_seconds() / 86400
            open_now.append(
                OpenRequest(
                    id=rid,
                    type=kind,
                    status=status,
                    profile=profile or "gdpr",
                    extended=bool(ext),
                    received_at=got,
                    due_at=due,
                    days_left=round(left, 2),
                )
            )
        elif done_in:
            completed[kind] += 1
            late[kind] += utc(done) > due
            days.setdefault(kind, []).append((utc(done) - got).total_seconds() / 86400)
    open_count = Counter(r.type for r in open_now)
    kinds = sorted(set(received) | set(completed) | set(open_count))
    by_type = [
        RequestTypeFacts(
            type=k,
            received=received[k],
            completed=completed[k],
            on_time=completed[k] - late[k],
            late=late[k],
            extended=extended[k],
            median_days_to_complete=round(statistics.median(days[k]), 2) if k in days else None,
            open=open_count[k],
        )
        for k in kinds
    ]
    open_now.sort(key=lambda r: (r.due_at, r.id))
    return RequestsSection(
        by_type=by_type, open=open_now, overdue=[r for r in open_now if r.days_left < 0]
    )
