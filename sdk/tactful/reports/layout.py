"""The report's reading order: sections of paragraphs, tables and charts, shared by Markdown
and HTML so that both say the same thing (HTML adds the charts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tactful.reports import svg
from tactful.reports.model import (
    BudgetSection,
    Checkpoint,
    KeyFacts,
    OpenRequest,
    Report,
    RetentionRun,
    Unavailable,
)

OUTCOMES = ("personalized", "non_personalized", "denied")
STATES = ("given", "withdrawn", "expired", "refused", "invalidated", "not_asked")


@dataclass(frozen=True, slots=True)
class Table:
    """A table: header cells and rows of text cells."""

    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True, slots=True)
class Chart:
    """An inline SVG chart (HTML only); `alt` is what Markdown readers get instead."""

    svg: str
    alt: str


Block = str | Table | Chart


@dataclass(slots=True)
class Section:
    """A titled section of the report."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def n(value: float | None) -> str:
    """A count or amount as text: thousands separated, two decimals for non-integers."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def when(moment: datetime | None) -> str:
    """A timestamp in UTC, to the minute."""
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def unavailable(marker: Unavailable) -> str:
    """How a missing fact reads."""
    return f"Not available in this store: {marker.reason}."


def sections(r: Report) -> list[Section]:
    """Every section of the report in reading order."""
    return [
        _scope(r),
        _records(r),
        _consent(r),
        _requests(r),
        _decisions(r),
        _budget(r),
        _experiments(r),
        _integrity(r),
    ]


def _scope(r: Report) -> Section:
    p = r.period
    s = Section("scope", "Period and scope")
    s.blocks.append(
        f"Period: {when(p.since) if p.since else 'the beginning of the store'} to "
        f"{when(p.until) if p.until else 'the time of generation'} (end excluded). Generated "
        f"{when(r.generated_at)} by tactful {r.tactful_version} on {r.database}; policy pack "
        f"{r.policy_pack.name} {r.policy_pack.version}, SHA-256 {r.policy_pack.hash}. "
        "Generating this report was itself written to the audit log."
    )
    return s


def _records(r: Report) -> Section:
    rec = r.records
    s = Section("records", "Records of processing activities (GDPR Art. 30)")
    c = rec.controller
    s.blocks.append(f"Controller: {c.name} ({c.contact}); data protection officer: {c.dpo or '–'}.")
    subjects = ", ".join(f"{n(v)} {k}" for k, v in rec.data_subjects.by_status.items()) or "none"
    s.blocks.append(
        f"Categories of data subjects: {'; '.join(rec.data_subjects.categories)} "
        f"(in the store: {subjects})."
    )
    s.blocks.append(
        Table(
            [
                "purpose",
                "lawful basis",
                "profiling",
                "data categories",
                "recipients",
                "transfers",
                "retention (days)",
            ],
            [
                [
                    f"{a.title} ({a.purpose})",
                    a.lawful_basis,
                    "yes" if a.profiling else "no",
                    ", ".join(a.data_categories) or "–",
                    ", ".join(a.recipients) or "none",
                    ", ".join(a.transfers) or "none",
                    n(a.retention_days),
                ]
                for a in rec.activities
            ],
        )
    )
    s.blocks.append(
        Table(
            ["category of personal data", "fields", "retention (days)"],
            [
                [
                    d.category,
                    ", ".join(d.fields),
                    n(d.retention_days) if d.retention_days else "kept until erasure",
                ]
                for d in rec.data_categories
            ],
        )
    )
    s.blocks.append(f"Transfers to third countries: {rec.transfers_note}")
    sec = rec.security
    age = (
        f"{n(sec.key_rotation_age_days)} days"
        if sec.key_rotation_age_days is not None
        else "unknown"
    )
    s.blocks.append(
        Table(
            ["security measure", "in force"],
            [
                ["encryption", sec.encryption],
                ["key management", sec.key_management],
                ["current master key age", age],
                ["pseudonymization", sec.pseudonymization],
                ["audit log", sec.audit_log],
            ],
        )
    )
    return s


def _consent(r: Report) -> Section:
    con = r.consent
    s = Section("consent", "Consent")
    if con.public:
        if isinstance(con.dp, Unavailable) or con.dp is None:
            s.blocks.append(f"Public report: {con.withheld or 'counts withheld'}.")
            return s
        s.blocks.append(
            f"Public report: counts released with differential privacy ({con.dp.mechanism}, "
            f"dataset {con.dp.dataset}), epsilon spent {con.dp.epsilon_spent:g}. They are "
            "noisy estimates, not exact numbers."
        )
    states = [st for st in STATES if any(st in p.current for p in con.purposes)]
    states += sorted({k for p in con.purposes for k in p.current} - set(states))
    period = [] if con.public else ["granted in period", "withdrawn in period", "expired in period"]
    s.blocks.append(
        Table(
            ["purpose", *states, *period],
            [
                [p.purpose, *(n(p.current.get(st, 0)) for st in states)]
                + ([] if con.public else [n(p.granted), n(p.withdrawn), n(p.expired)])
                for p in con.purposes
            ],
        )
    )
    if con.public and con.withheld:
        s.blocks.append(f"Withheld: {con.withheld}.")
    if con.purposes and states:
        s.blocks.append(
            Chart(
                svg.stacked_bars(
                    "consent-states",
                    "Subjects by current consent state, per purpose",
                    [
                        (p.purpose, [float(p.current.get(st, 0)) for st in states])
                        for p in con.purposes
                    ],
                    states,
                ),
                "Subjects by current consent state, per purpose (table above).",
            )
        )
    trend = con.purposes[0].trend if con.purposes else []
    if trend:
        total = {k: [0.0] * len(trend) for k in ("granted", "withdrawn", "expired")}
        for p in con.purposes:
            for i, pt in enumerate(p.trend):
                total["granted"][i] += pt.granted
                total["withdrawn"][i] += pt.withdrawn
                total["expired"][i] += pt.expired
        s.blocks.append(
            Chart(
                svg.lines(
                    "consent-trend",
                    f"Grants, withdrawals and expiries per {r.period.bucket}, all purposes",
                    [pt.bucket for pt in trend],
                    [(k, v) for k, v in total.items()],
                ),
                "Consent grants, withdrawals and expiries over the period.",
            )
        )
    return s


def _requests(r: Report) -> Section:
    req = r.requests
    s = Section("requests", "Data subject requests")
    s.blocks.append(
        Table(
            [
                "type",
                "received",
                "completed",
                "on time",
                "late",
                "median days",
                "open now",
                "extended",
            ],
            [
                [
                    t.type,
                    n(t.received),
                    n(t.completed),
                    n(t.on_time),
                    n(t.late),
                    n(t.median_days_to_complete),
                    n(t.open),
                    n(t.extended),
                ]
                for t in req.by_type
            ],
        )
        if req.by_type
        else "No requests in the period and none open."
    )
    if req.by_type:
        s.blocks.append(
            Chart(
                svg.stacked_bars(
                    "requests",
                    "Completed requests on time and late, and open ones, per type",
                    [
                        (t.type, [float(t.on_time), float(t.late), float(t.open)])
                        for t in req.by_type
                    ],
                    ["on time", "late", "open"],
                ),
                "Requests on time, late and open per type.",
            )
        )
    s.blocks.append(f"Open requests: {len(req.open)}; overdue: {len(req.overdue)}.")
    if req.overdue:
        s.blocks.append(
            Table(
                ["request id", "type", "rules", "status", "received", "due", "days overdue"],
                [
                    [
                        o.id,
                        o.type,
                        _rules(o),
                        o.status,
                        when(o.received_at),
                        when(o.due_at),
                        n(-o.days_left),
                    ]
                    for o in req.overdue
                ],
            )
        )
    upcoming = [o for o in req.open if o.days_left >= 0][:20]
    if upcoming:
        s.blocks.append(
            Table(
                ["open request id", "type", "rules", "status", "due", "days left"],
                [
                    [o.id, o.type, _rules(o), o.status, when(o.due_at), n(o.days_left)]
                    for o in upcoming
                ],
            )
        )
    return s


def _rules(o: OpenRequest) -> str:
    return o.profile.upper() + (", extended" if o.extended else "")


def _decisions(r: Report) -> Section:
    d = r.decisions
    s = Section("decisions", "Gate decisions")
    s.blocks.append(
        f"{n(d.total)} decisions in the period; {n(d.recommendations)} returned recommendations."
    )
    s.blocks.append(
        Table(
            ["purpose", "personalized", "non-personalized", "denied"],
            [[pid, *(n(c.get(o, 0)) for o in OUTCOMES)] for pid, c in d.by_purpose.items()],
        )
    )
    if d.by_purpose:
        s.blocks.append(
            Chart(
                svg.stacked_bars(
                    "decisions",
                    "Gate decisions by purpose and outcome",
                    [
                        (pid, [float(c.get(o, 0)) for o in OUTCOMES])
                        for pid, c in d.by_purpose.items()
                    ],
                    list(OUTCOMES),
                ),
                "Gate decisions by purpose and outcome.",
            )
        )
    for outcome, top in d.top_reasons.items():
        if top:
            s.blocks.append(
                Table(
                    [f"rule behind {outcome.replace('_', '-')}", "decisions"],
                    [[t.rule, n(t.decisions)] for t in top],
                )
            )
    if d.categories_used:
        s.blocks.append(
            Table(
                ["data category", "recommendations using it", "share"],
                [[c.category, n(c.decisions), f"{c.share:.1%}"] for c in d.categories_used],
            )
        )
        s.blocks.append(
            Chart(
                svg.stacked_bars(
                    "categories",
                    "Share of recommendations made with each data category (%)",
                    [(c.category, [round(100 * c.share, 2)]) for c in d.categories_used],
                    ["% of recommendations"],
                ),
                "Share of recommendations per data category.",
            )
        )
    if d.trend:
        s.blocks.append(
            Chart(
                svg.lines(
                    "decisions-trend",
                    f"Gate decisions per {r.period.bucket} by outcome",
                    [t.bucket for t in d.trend],
                    [(o, [float(getattr(t, o)) for t in d.trend]) for o in OUTCOMES],
                ),
                "Gate decisions over the period.",
            )
        )
    return s


def _budget(r: Report) -> Section:
    s = Section("budget", "Privacy budget")
    b = r.privacy_budget
    if isinstance(b, Unavailable):
        s.blocks.append(unavailable(b))
        return s
    assert isinstance(b, BudgetSection)
    if not b.datasets:
        s.blocks.append("No privacy budget has been granted.")
        return s
    s.blocks.append(
        Table(
            ["dataset", "granted", "spent", "remaining", "releases in period"],
            [
                [
                    x.dataset,
                    f"{x.granted:g} {x.unit}",
                    f"{x.spent:g}",
                    f"{max(0.0, x.granted - x.spent):g}",
                    n(x.releases_in_period) if x.releases_in_period is not None else "not recorded",
                ]
                for x in b.datasets
            ],
        )
    )
    s.blocks.append(
        Chart(
            svg.stacked_bars(
                "budget",
                "Privacy budget per dataset: spent and remaining (epsilon)",
                [(x.dataset, [x.spent, max(0.0, x.granted - x.spent)]) for x in b.datasets],
                ["spent", "remaining"],
            ),
            "Privacy budget spent and remaining.",
        )
    )
    return s


def _integrity(r: Report) -> Section:
    i = r.integrity
    s = Section("integrity", "Integrity")
    if i.audit_chain_ok:
        s.blocks.append(f"Audit chain: intact, {n(i.entries)} entries verified, head {i.head}.")
    else:
        s.blocks.append(
            f"Audit chain: BROKEN ({i.damage}) at entry {i.first_bad_seq}: {i.problem}. "
            f"{n(i.entries)} entries verified before it."
        )
    cp = i.checkpoint
    if isinstance(cp, Checkpoint):
        after = (
            f" The {n(cp.entries_after)} entries after it are covered by the hash chain only."
            if cp.entries_after
            else ""
        )
        s.blocks.append(
            f"{'Verified to' if i.audit_chain_ok else 'Last good'} signed checkpoint at entry "
            f"{cp.seq} ({n(cp.checkpoints)} signed checkpoints verified; head {cp.hash}, signed "
            f"{when(cp.signed_at)}; signature {'valid' if cp.signature_ok else 'INVALID'})." + after
        )
    elif isinstance(cp, Unavailable):
        s.blocks.append(f"Checkpoint: {unavailable(cp)}")
    else:
        s.blocks.append(
            "Signed checkpoint: none verified (one is signed every 100 entries and by "
            "`tactful audit checkpoint`); the chain rests on its hashes alone."
        )
    if isinstance(i.keys, KeyFacts):
        s.blocks.append(
            Table(
                ["master key version", "current", "data keys", "age (days)", "since"],
                [
                    [
                        str(v.version),
                        "yes" if v.current else "",
                        n(v.data_keys),
                        n(v.age_days),
                        v.since.replace("_", " "),
                    ]
                    for v in i.keys.versions
                ],
            )
        )
    else:
        s.blocks.append(f"Keys: {unavailable(i.keys)}")
    ret = i.retention
    if isinstance(ret, RetentionRun):
        if ret.last_run is None:
            s.blocks.append("Retention job: never run.")
        else:
            deleted = {
                **{f"events ({k})": v for k, v in ret.events.items()},
                **{f"field {k}": v for k, v in ret.profile_fields.items()},
            }
            what = ", ".join(f"{n(v)} {k}" for k, v in deleted.items()) or "nothing"
            s.blocks.append(
                f"Retention job: last run {when(ret.last_run)}, deleted {what}; "
                f"{ret.runs_in_period} run(s) in the period."
            )
    else:
        s.blocks.append(f"Retention: {unavailable(ret)}")
    return s


def _experiments(r: Report) -> Section:
    s = Section("experiments", "Experiments")
    x = r.experiments
    if x is None:
        s.blocks.append("This report predates experiments.")
        return s
    if not x.experiments:
        s.blocks.append("No experiments are declared.")
        return s
    s.blocks.append(
        "Only users whose consent covers an experiment's purpose are enrolled and counted; "
        "everyone else gets the control. Results are released only with differential privacy, "
        "charged to each experiment's own budget."
    )
    s.blocks.append(
        Table(
            [
                "experiment",
                "purpose",
                "status",
                "variants (weight)",
                "metrics",
                "exposed",
                "epsilon spent / granted",
                "releases",
            ],
            [
                [
                    e.experiment,
                    e.purpose,
                    e.status,
                    ", ".join(
                        f"{name} ({w:g})" + (" control" if name == e.control else "")
                        for name, w in e.variants.items()
                    ),
                    ", ".join(e.metrics),
                    n(e.exposed) if e.exposed is not None else "withheld (public)",
                    f"{e.epsilon_spent:g} / {e.epsilon_granted:g}",
                    n(e.releases),
                ]
                for e in x.experiments
            ],
        )
    )
    return s
