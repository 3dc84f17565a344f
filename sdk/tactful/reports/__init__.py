"""The compliance audit report: collect the store's own facts, render JSON or Markdown."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import Connection

from tactful.audit import AuditLog
from tactful.consent import ConsentLedger
from tactful.policy import PolicyPack
from tactful.rights import Rights
from tactful.store import now


def tactful_version() -> str:
    """The installed tactful version, or 'unknown' when running from a source tree."""
    try:
        return version("tactful")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """A compliance audit report: `data` is JSON-ready; render it with to_json/to_markdown."""

    data: dict[str, Any]

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.data, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        """The report as Markdown a person can read."""
        return to_markdown(self.data)


def collect(
    conn: Connection,
    *,
    pack: PolicyPack,
    ledger: ConsentLedger,
    rights: Rights,
    audit: AuditLog,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Gather every section of the report from the store (no personal data in it)."""
    outcomes: dict[str, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    for rec in audit.records(conn, kind="decision", since=since, until=until):
        p = rec.payload
        outcomes.setdefault(p["purpose"], Counter())[p["outcome"]] += 1
        if p["outcome"] != "personalized":
            reasons.update(p["reasons"])
    verdict = audit.verify(conn)
    return {
        "format": "tactful-audit-report/1",
        "generated_at": now().isoformat(),
        "tactful_version": tactful_version(),
        "period": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
        "policy_pack": {
            "name": pack.meta.name,
            "version": pack.meta.version,
            "hash": pack.content_hash,
        },
        "controller": pack.meta.controller.model_dump(),
        "purposes": [
            {
                "id": pid,
                "title": p.title,
                "lawful_basis": p.lawful_basis,
                "profiling": p.profiling,
                "data_categories": list(p.data_categories),
                "retention_days": p.retention_days,
                "recipients": list(p.recipients),
            }
            for pid, p in sorted(pack.purposes.purposes.items())
        ],
        "consent": ledger.counts(conn),
        "decisions": {
            "by_purpose": {k: dict(sorted(v.items())) for k, v in sorted(outcomes.items())},
            "top_reasons_not_personalized": dict(reasons.most_common(10)),
        },
        "requests": rights.request_counts(conn),
        "integrity": {
            "audit_chain_ok": verdict.ok,
            "entries": verdict.entries,
            "head": verdict.head,
            "first_bad_seq": verdict.first_bad_seq,
            "problem": verdict.problem,
        },
    }


def to_markdown(report: dict[str, Any]) -> str:
    """Render the report as Markdown a person can read."""
    lines = [
        "# tactful compliance audit report",
        "",
        f"Generated {report['generated_at']} by tactful {report['tactful_version']}; policy pack "
        f"{report['policy_pack']['name']} {report['policy_pack']['version']} "
        f"(`{report['policy_pack']['hash'][:16]}`).",
        f"Controller: {report['controller']['name']} ({report['controller']['contact']}).",
        "",
        "## Purposes of processing",
        "",
        "| purpose | lawful basis | profiling | data categories | retention (days) |",
        "|---|---|---|---|---|",
    ]
    for p in report["purposes"]:
        lines.append(
            f"| {p['id']} | {p['lawful_basis']} | {'yes' if p['profiling'] else 'no'} | "
            f"{', '.join(p['data_categories'])} | {p['retention_days'] or '-'} |"
        )
    lines += [
        "",
        "## Consent (subjects by current state)",
        "",
        "| purpose | given | withdrawn | expired | refused |",
        "|---|---|---|---|---|",
    ]
    for pid, states in sorted(report["consent"].items()):
        lines.append(
            f"| {pid} | {states.get('given', 0)} | {states.get('withdrawn', 0)} | "
            f"{states.get('expired', 0)} | {states.get('refused', 0)} |"
        )
    lines += [
        "",
        "## Gate decisions",
        "",
        "| purpose | personalized | non-personalized | denied |",
        "|---|---|---|---|",
    ]
    for pid, counts in report["decisions"]["by_purpose"].items():
        lines.append(
            f"| {pid} | {counts.get('personalized', 0)} | {counts.get('non_personalized', 0)} | "
            f"{counts.get('denied', 0)} |"
        )
    top = report["decisions"]["top_reasons_not_personalized"]
    if top:
        lines += [
            "",
            "Top reasons for not personalizing: "
            + ", ".join(f"`{k}` ({v})" for k, v in top.items())
            + ".",
        ]
    lines += [
        "",
        "## Data subject requests",
        "",
        "| type | completed | open | late |",
        "|---|---|---|---|",
    ]
    for kind, counts in sorted(report["requests"].items()):
        lines.append(
            f"| {kind} | {counts.get('completed', 0)} | {counts.get('open', 0)} | "
            f"{counts.get('late', 0)} |"
        )
    integ = report["integrity"]
    status = (
        f"intact ({integ['entries']} entries, head `{integ['head'][:16]}`)"
        if integ["audit_chain_ok"]
        else f"BROKEN at entry {integ['first_bad_seq']}: {integ['problem']}"
    )
    lines += ["", "## Integrity", "", f"Audit chain: {status}.", ""]
    return "\n".join(lines)


__all__ = ["AuditReport", "collect", "tactful_version", "to_markdown"]
