"""Collect every section of the report from the store, inside one read transaction."""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import Connection

from tactful.audit import AuditLog, AuditVerdict
from tactful.consent import ConsentLedger
from tactful.errors import ValidationError
from tactful.policy import PolicyPack
from tactful.reports import facts
from tactful.reports.model import (
    Checkpoint,
    ConsentSection,
    Integrity,
    PackRef,
    Period,
    PurposeConsentFacts,
    Report,
)
from tactful.reports.public import release_consent
from tactful.reports.records import records
from tactful.reports.sources import (
    budget_facts,
    experiment_facts,
    key_facts,
    retention_facts,
    store_started,
)
from tactful.store import Store, now

MAX_EPSILON = 10.0


def tactful_version() -> str:
    """The installed tactful version, or 'unknown' when running from a source tree."""
    try:
        return version("tactful")
    except PackageNotFoundError:
        return "unknown"


def check_period(since: datetime | None, until: datetime | None) -> None:
    """Reject naive datetimes and an empty or reversed period with a clear error."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise ValidationError(
                f"{name} must be timezone-aware (e.g. datetime(2026, 11, 1, tzinfo=UTC))"
            )
    if since is not None and until is not None and since >= until:
        raise ValidationError(
            f"the period is empty: since ({since.isoformat()}) must be before until "
            f"({until.isoformat()})"
        )


def collect(
    conn: Connection,
    *,
    pack: PolicyPack,
    store: Store,
    ledger: ConsentLedger,
    audit: AuditLog,
    since: datetime | None = None,
    until: datetime | None = None,
    public: bool = False,
    epsilon: float = 1.0,
) -> Report:
    """Gather every section of the report (aggregates only, no personal data).

    `since`/`until` bound the period [since, until); current counts (consent states, open
    requests, keys) are as of generation. `public=True` releases the consent counts with
    differential privacy, charging `epsilon` to the `reports` budget (BudgetExhausted if short).
    """
    check_period(since, until)
    # The pack's cap on one DP release (pack.yaml `max_epsilon_per_release`) applies here too.
    cap = float(getattr(pack.meta, "max_epsilon_per_release", MAX_EPSILON))
    if public and not (
        isinstance(epsilon, int | float) and not isinstance(epsilon, bool) and 0 < epsilon <= cap
    ):
        raise ValidationError(
            f"epsilon of a public report must be a number in (0, {cap:g}] (the policy pack's "
            "max_epsilon_per_release); smaller is more private"
        )
    # Some facts read the audit table directly: this process's queued decisions go in first.
    audit.drain(conn)
    moment = now()
    start = since or store_started(conn) or moment
    end = until or moment
    width = facts.bucket_width(start, end) if start < end else "day"
    keys = key_facts(conn, store, audit, moment)
    verdict = audit.verify(conn)
    return Report(
        generated_at=moment,
        tactful_version=tactful_version(),
        database=conn.dialect.name,
        period=Period(since=since, until=until, bucket=width),
        policy_pack=PackRef(name=pack.meta.name, version=pack.meta.version, hash=pack.content_hash),
        records=records(conn, pack, keys),
        consent=_consent(
            conn, pack, ledger, since, until, start, end, width, public, audit, epsilon
        ),
        requests=facts.requests(conn, since, until, moment),
        decisions=facts.decisions(conn, since, until, width),
        privacy_budget=budget_facts(conn, since, until),
        experiments=experiment_facts(conn, public=public),
        integrity=Integrity(
            audit_chain_ok=verdict.ok,
            entries=verdict.entries,
            head=verdict.head,
            first_bad_seq=verdict.first_bad_seq,
            damage=verdict.damage,
            problem=verdict.problem,
            checkpoint=_checkpoint(verdict),
            keys=keys,
            retention=retention_facts(conn, audit, since, until),
        ),
    )


def _checkpoint(verdict: AuditVerdict) -> Checkpoint | None:
    cp = verdict.checkpoint
    if cp is None:
        return None
    return Checkpoint(
        seq=cp.seq,
        hash=cp.head,
        signed_at=cp.signed_at,
        signature_ok=True,
        checkpoints=verdict.checkpoints,
        entries_after=verdict.unsigned_tail,
    )


def _consent(
    conn: Connection,
    pack: PolicyPack,
    ledger: ConsentLedger,
    since: datetime | None,
    until: datetime | None,
    start: datetime,
    end: datetime,
    width: facts.Bucket,
    public: bool,
    audit: AuditLog,
    epsilon: float,
) -> ConsentSection:
    purposes = [p for p in pack.purposes.ids() if pack.purposes.get(p).needs_consent]
    current = ledger.counts(conn)
    if public:
        return release_consent(conn, audit, purposes, current, epsilon)
    events = facts.consent_events(conn, purposes, since, until, width, now())
    keys = facts.buckets(start, end, width) if start < end else []
    return ConsentSection(
        public=False,
        dp=None,
        withheld=None,
        purposes=[
            PurposeConsentFacts(
                purpose=pid,
                current=dict(sorted(current.get(pid, {}).items())),
                granted=sum(events[pid]["granted"].values()),
                withdrawn=sum(events[pid]["withdrawn"].values()),
                expired=sum(events[pid]["expired"].values()),
                trend=facts.trend_points(events[pid], keys, int),
            )
            for pid in purposes
        ],
    )
