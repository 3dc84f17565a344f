"""Access and portability (GDPR Art. 15, 20): everything held about one subject.

Events and decisions are read in keyset-paginated chunks and written as they come, so the
memory an export needs does not grow with the history (docs/export-schema.json is the format).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Connection, select

from tactful.audit import AuditLog
from tactful.consent import ConsentLedger, PurposeCatalog
from tactful.experiments import Exposures
from tactful.segments import Memberships
from tactful.settings import SettingsStore
from tactful.store import Store, SubjectRef, now, utc
from tactful.store.tables import CatalogEntry, Objection, table_of

FORMAT = "tactful-export/2"
_encode_string: Callable[[str], str] = json.encoder.encode_basestring
CHUNK = 5000
_catalog = table_of(CatalogEntry)
_objection = table_of(Objection)

HOW_RECOMMENDATIONS_WORK = (
    "With your consent to personalized recommendations, items are recommended from what you "
    "viewed: items that people with similar viewing histories also viewed (item-item "
    "collaborative filtering), widened by your discovery setting and never from the topics you "
    "excluded. Without that consent, when you switched personalization off, restricted "
    "processing or objected to profiling, you see what is popular among consenting users "
    "instead (not based on profiling). Each decision, the rules behind it and the data "
    "categories it read are listed under 'decisions'. You can change your settings, withdraw "
    "consent, restrict processing or object at any time."
)


@dataclass
class ExportDocument:
    """One subject's export: small sections at once, events and decisions as iterators.

    `inferred()` is only complete after `events` was consumed (it is computed on the way).
    """

    head: dict[str, Any]
    events: Iterator[dict[str, str]]
    decisions: Iterator[dict[str, Any]]
    inferred: Callable[[], dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)


class Exporter:
    """Builds export documents and writes them as JSON or as a zip of CSV files."""

    def __init__(
        self,
        store: Store,
        ledger: ConsentLedger,
        settings: SettingsStore,
        audit: AuditLog,
        purposes: PurposeCatalog,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._audit = audit
        self._purposes = purposes
        self._segments = Memberships(store.subjects)
        self._exposures = Exposures(store.subjects)

    def document(
        self, conn: Connection, subject: SubjectRef, request_id: str, requests: list[dict[str, Any]]
    ) -> ExportDocument:
        """The export of `subject` inside the caller's transaction (a consistent snapshot)."""
        purposes = {
            pid: {
                "title": p.title,
                "description": p.description,
                "lawful_basis": p.lawful_basis,
                "profiling": p.profiling,
                "data_categories": list(p.data_categories),
                "recipients": list(p.recipients),
                "retention_days": p.retention_days,
            }
            for pid, p in self._purposes.purposes.items()
        }
        recipients = sorted({r for p in self._purposes.purposes.values() for r in p.recipients})
        head: dict[str, Any] = {
            "format": FORMAT,
            "generated_at": now().isoformat(),
            "request_id": request_id,
            "subject": {
                "alias": subject.alias,
                "status": subject.status,
                "jurisdiction": subject.jurisdiction,
            },
            "profile": self._store.profiles.get(conn, subject),
            "consent_history": self._ledger.history(conn, subject),
            "settings": self._settings.get(conn, subject).model_dump(mode="json"),
            "settings_history": self._settings.history(conn, subject),
            "objections": [
                {"purpose": r.purpose, "recorded_at": utc(r.recorded_at).isoformat()}
                for r in conn.execute(
                    select(_objection.c.purpose, _objection.c.recorded_at)
                    .where(_objection.c.subject_id == subject.id)
                    .order_by(_objection.c.purpose)
                )
            ],
            "requests": requests,
            "purposes": purposes,
            "recipients": recipients,
            "how_recommendations_work": HOW_RECOMMENDATIONS_WORK,
        }
        items: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        doc = ExportDocument(head, iter(()), iter(()), dict)

        def events() -> Iterator[dict[str, str]]:
            n = 0
            for event in self._events(conn, subject):
                items[event["item"]] += 1
                kinds[event["kind"]] += 1
                n += 1
                yield event
            doc.counts["events"] = n

        def decisions() -> Iterator[dict[str, Any]]:
            n = 0
            for r in self._audit.records(conn, kind="decision", alias=subject.alias):
                n += 1
                yield {"ts": r.ts.isoformat(), **r.payload}
            doc.counts["decisions"] = n

        doc.events = events()
        doc.decisions = decisions()
        doc.inferred = lambda: {
            **self._inferred(conn, items, kinds, subject),
            # Experiment variants the user was shown and the metric events counted since.
            "experiments": self._exposures.of_subject(conn, subject),
        }
        return doc

    def _events(self, conn: Connection, subject: SubjectRef) -> Iterator[dict[str, str]]:
        # The store decrypts and decodes (Events.stream: keyset pages of CHUNK events, so
        # memory holds one page whatever the history's length).
        for e in self._store.events.stream(conn, subject, chunk=CHUNK):
            yield {"ts": e.ts.isoformat(), "item": e.item, "kind": e.kind}

    def _inferred(
        self, conn: Connection, items: Counter[str], kinds: Counter[str], subject: SubjectRef
    ) -> dict[str, Any]:
        by_category: Counter[str] = Counter()
        ids = list(items)
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(_catalog.c.item_id, _catalog.c.categories).where(
                    _catalog.c.item_id.in_(ids[start : start + 500])
                )
            )
            for item_id, categories in rows:
                for c in json.loads(categories):
                    by_category[c] += items[item_id]
        total = sum(by_category.values())
        return {
            "category_affinity": {
                c: round(n / total, 4) for c, n in sorted(by_category.items()) if total
            },
            "interactions_by_kind": dict(sorted(kinds.items())),
            # Segment memberships as the gate last stored them (tactful.segments).
            "segments": self._segments.export(conn, subject),
        }


def to_dict(doc: ExportDocument) -> dict[str, Any]:
    """The whole export in memory (small histories; the streaming writers scale)."""
    out = dict(doc.head)
    out["events"] = list(doc.events)
    out["decisions"] = list(doc.decisions)
    out["inferred"] = doc.inferred()
    return out


def write_json(doc: ExportDocument, out: IO[str]) -> None:
    """Write the export as one JSON object, streaming events and decisions one per line."""
    out.write("{\n")
    for key, value in doc.head.items():
        out.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
    # Events are most of a long export: one preformatted line each, with the C string
    # encoder, instead of a json.dumps call per event (same output, a third of the time).
    enc = _encode_string
    out.write('  "events": [')
    sep = "\n    "
    for e in doc.events:
        out.write(f'{sep}{{"ts": "{e["ts"]}", "item": {enc(e["item"])}, "kind": {enc(e["kind"])}}}')
        sep = ",\n    "
    out.write('\n  ],\n  "decisions": [')
    sep = "\n    "
    for row in doc.decisions:
        out.write(sep)
        out.write(json.dumps(row, ensure_ascii=False))
        sep = ",\n    "
    out.write("\n  ],\n")
    out.write(f'  "inferred": {json.dumps(doc.inferred(), ensure_ascii=False)}\n}}\n')


def write_csv_zip(doc: ExportDocument, out: IO[bytes]) -> None:
    """Write the export as a zip of CSV files (one per section) plus README.txt."""
    head = doc.head
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:

        def table(
            name: str, columns: list[str], rows: Iterator[list[Any]] | list[list[Any]]
        ) -> None:
            with zf.open(name, "w", force_zip64=True) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = csv.writer(text)
                writer.writerow(columns)
                for row in rows:
                    writer.writerow(row)
                text.flush()
                text.detach()

        subject = head["subject"]
        table(
            "subject.csv",
            ["format", "generated_at", "request_id", "alias", "status", "jurisdiction"],
            [
                [
                    head["format"],
                    head["generated_at"],
                    head["request_id"],
                    subject["alias"],
                    subject["status"],
                    subject["jurisdiction"] or "",
                ]
            ],
        )
        table(
            "profile.csv", ["field", "value"], [[k, _cell(v)] for k, v in head["profile"].items()]
        )
        table(
            "events.csv",
            ["ts", "item", "kind"],
            ([e["ts"], e["item"], e["kind"]] for e in doc.events),
        )
        consent_cols = (
            list(head["consent_history"][0])
            if head["consent_history"]
            else ["purpose", "state", "recorded_at"]
        )
        table(
            "consent_history.csv",
            consent_cols,
            [[_cell(r.get(c)) for c in consent_cols] for r in head["consent_history"]],
        )
        table(
            "settings.csv",
            ["setting", "value"],
            [[k, _cell(v)] for k, v in head["settings"].items()],
        )
        table(
            "settings_history.csv",
            ["recorded_at", "settings"],
            [[r["recorded_at"], _cell(r["settings"])] for r in head["settings_history"]],
        )
        table(
            "objections.csv",
            ["purpose", "recorded_at"],
            [[r["purpose"], r["recorded_at"]] for r in head["objections"]],
        )
        table(
            "requests.csv",
            ["id", "kind", "status", "received_at", "due_at", "completed_at"],
            [
                [
                    r["id"],
                    r["kind"],
                    r["status"],
                    r["received_at"],
                    r["due_at"],
                    r["completed_at"] or "",
                ]
                for r in head["requests"]
            ],
        )
        table(
            "decisions.csv",
            [
                "ts",
                "decision_id",
                "purpose",
                "outcome",
                "reasons",
                "categories_used",
                "recommender",
            ],
            (
                [
                    d["ts"],
                    d.get("decision_id", ""),
                    d.get("purpose", ""),
                    d.get("outcome", ""),
                    " ".join(d.get("reasons", [])),
                    " ".join(d.get("categories_used", [])),
                    d.get("recommender", ""),
                ]
                for d in doc.decisions
            ),
        )
        inferred = doc.inferred()
        table(
            "inferred.csv",
            ["kind", "key", "value"],
            [["category_affinity", c, v] for c, v in inferred["category_affinity"].items()]
            + [["interactions_by_kind", k, v] for k, v in inferred["interactions_by_kind"].items()]
            + [[f"segment:{s['purpose']}", s["segment"], s["since"]] for s in inferred["segments"]]
            + [
                ["experiment_variant", e["experiment"], e["variant"]]
                for e in inferred.get("experiments", [])
            ],
        )
        table(
            "purposes.csv",
            [
                "purpose",
                "title",
                "lawful_basis",
                "profiling",
                "data_categories",
                "recipients",
                "retention_days",
            ],
            [
                [
                    pid,
                    p["title"],
                    p["lawful_basis"],
                    p["profiling"],
                    " ".join(p["data_categories"]),
                    "; ".join(p["recipients"]),
                    p["retention_days"] if p["retention_days"] is not None else "",
                ]
                for pid, p in head["purposes"].items()
            ],
        )
        zf.writestr(
            "README.txt",
            f"{head['format']} export generated {head['generated_at']}.\n\n"
            "How recommendations work (GDPR Art. 15(1)(h)):\n"
            f"{head['how_recommendations_work']}\n\n"
            "Recipients: " + ("; ".join(head["recipients"]) or "none") + "\n",
        )


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
