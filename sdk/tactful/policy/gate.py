"""The gate: reads the subject's state, decides, narrows what may be read, records the decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tactful.audit import AuditLog, canonical, json_string
from tactful.consent import AgeRules, ConsentLedger, Purpose
from tactful.errors import ValidationError
from tactful.policy.cache import CachedSubject, SubjectCache, clock, expiry, remember
from tactful.policy.engine import (
    DEFAULT_DENY_TEXT,
    CompiledPolicy,
    Decision,
    SubjectState,
    renewed,
)
from tactful.policy.protections import protect
from tactful.segments import CompiledSegments, Evaluation, Memberships, ViewLike
from tactful.settings import Settings, SettingsStore
from tactful.store import Connection, Probe, SubjectRef

MAX_CONTEXT = 32


def explain(decision: Decision) -> str:
    """The sentence a user reads about the mode of a decision (DSA Art. 27)."""
    if decision.outcome == "personalized":
        return "Personalized from your activity, with your consent."
    reason = decision.descriptions[0] if decision.descriptions else DEFAULT_DENY_TEXT
    if decision.outcome == "non_personalized":
        return f"{reason[0].upper()}{reason[1:]}; showing what is popular."
    return f"No recommendations: {reason}."


RECORD_TEMPLATES = 1024
DIRECT_MARKETING_DPV = frozenset({"dpv:DirectMarketing", "dpv:PersonalisedAdvertising"})
FLOOR_MARKETING = "art21-objection-direct-marketing"
FLOOR_PROFILING = "art21-objection-profiling"


def honor_objection(decision: Decision, purpose: Purpose, state: SubjectState) -> Decision:
    """The floor under the pack's objection rules (GDPR Art. 21); a pack cannot undo it.

    The default pack expresses objections as rules (`objection-direct-marketing`,
    `objection-profiling`). Whatever a pack says, after its rules: direct marketing (purpose
    id `marketing.*` or a DPV marketing concept) the subject objected to is denied (Art. 21(3)),
    and an objected profiling purpose is at most non-personalized. When the pack's own rules
    were already as strict, the decision and its reasons are left as they are.
    """
    if decision.purpose not in state.objections or decision.outcome == "denied":
        return decision
    if decision.purpose.startswith("marketing.") or purpose.dpv in DIRECT_MARKETING_DPV:
        return decision._replace(
            outcome="denied",
            reasons=(FLOOR_MARKETING,),
            read=frozenset(),
            context=frozenset(),
            descriptions=("you objected to direct marketing (GDPR Art. 21(3))",),
        )
    if purpose.profiling and decision.outcome == "personalized":
        return decision._replace(
            outcome="non_personalized",
            reasons=(FLOOR_PROFILING,),
            read=frozenset(),
            context=frozenset(),
            descriptions=("not personalized: you objected to profiling (GDPR Art. 21)",),
        )
    return decision


def evaluate(
    policy: CompiledPolicy, purpose: str, state: SubjectState, context: Mapping[str, str]
) -> Decision:
    """The whole decision for a known purpose, without a database: what the gate applies.

    The pack's rules (whose `read` is already narrowed to the purpose's declared categories,
    the user's data-source switches, Art. 9 and the rules' withholdings, and whose `context`
    is the context fields of the categories left: `CompiledPolicy.decide`), then the
    statutory protections and the objection floor.
    """
    declared = policy.pack.purposes.get(purpose)
    decision = policy.decide(purpose, state, context)
    decision = protect(decision, declared, state, context)
    return honor_objection(decision, declared, state)


def _payload(
    decision: Decision,
    decision_id: str,
    categories_used: frozenset[str],
    recommender: str,
    items: int,
    signals: Sequence[str],
    segments: Evaluation | None,
    experiment: Mapping[str, object] | None,
    failure: str | None = None,
) -> dict[str, object]:
    """A decision record's fields (`Gate.record`)."""
    extra: dict[str, object] = {}
    if failure is not None:
        extra["failure"] = failure
    if segments is not None:
        extra["segments"] = list(segments.matched)
        extra["segments_skipped"] = [
            {"segment": s.segment, "withheld": list(s.withheld)} for s in segments.skipped
        ]
    if experiment is not None:
        extra["experiment"] = dict(experiment)
    return {
        "decision_id": decision_id,
        "purpose": decision.purpose,
        "outcome": decision.outcome,
        "reasons": list(decision.reasons),
        "categories_allowed": sorted(decision.read),
        "categories_used": sorted(categories_used),
        "excluded_item_categories": sorted(decision.exclude_item_categories),
        "context_fields": sorted(decision.context),
        "diversity_floor": decision.diversity_floor,
        "dp_aggregate": decision.dp_aggregate,
        "explanation": explain(decision),
        "signals": sorted(set(signals)),
        "policy_version": decision.policy_version,
        "policy_hash": decision.policy_hash,
        "recommender": recommender,
        "items": items,
        **extra,
    }


class Gate:
    """Decides every personalization call and writes its audit record."""

    def __init__(
        self,
        policy: CompiledPolicy,
        ledger: ConsentLedger,
        settings: SettingsStore,
        audit: AuditLog,
        age: AgeRules | None = None,
        objections: Callable[[Connection, SubjectRef], frozenset[str]] | None = None,
        memberships: Memberships | None = None,
        cache: SubjectCache | None = None,
    ) -> None:
        self.policy = policy
        self._ledger = ledger
        self._settings = settings
        self._audit = audit
        self._age = age
        self._objections = objections
        # Segments are compiled once here, from the pack's segments.yaml.
        self.segments = CompiledSegments(policy.pack.segments, policy.pack.schema)
        self._memberships = memberships
        self.cache = cache if cache is not None else SubjectCache()
        # Canonical decision records around the decision id's place, as text and as JSON
        # string literals (see `record`).
        self._records: dict[object, tuple[str, str, str, str]] = {}
        # What is kept for unknown users under one compiled policy (`memo`).
        self._unknown: tuple[CompiledPolicy, dict[object, Any]] = (policy, {})

    def state(self, conn: Connection, subject: SubjectRef | None) -> tuple[SubjectState, Settings]:
        """Read the subject's consent (now), settings, status, jurisdiction and age facts.

        The age facts (GDPR Art. 8) come from the declared birth year even when the decision
        will not let a recommender read demographic data.
        """
        if subject is None:
            defaults = Settings()
            return SubjectState("unknown", frozenset(), defaults), defaults
        state, settings, _ = self._read_state(conn, subject)
        return state, settings

    def cached(self, read: Callable[[], Connection], probe: Probe) -> CachedSubject | None:
        """The subject's state for this call: the cached entry if the probe shows it still
        holds, else read now (through `read()`, a read-only snapshot) and kept. None for an
        unknown user."""
        subject = probe.subject
        if subject is None:
            return None
        policy = self.policy
        entry = self.cache.get(subject, probe.mark, policy, probe.events_added_since)
        if entry is None:
            read_at = clock()
            state, settings, expiries = self._read_state(read(), subject)
            entry = CachedSubject(
                subject,
                probe.mark,
                policy,
                expiry(read_at, self.cache.max_age, expiries),
                state,
                settings,
            )
            self.cache.put(entry)
        return entry

    def _read_state(
        self, conn: Connection, subject: SubjectRef
    ) -> tuple[SubjectState, Settings, list[datetime]]:
        consent = self._ledger.status(conn, subject)
        settings = self._settings.get(conn, subject)
        # An objection (Art. 21) outweighs any consent, given before or after it: objecting to
        # profiling stops personalization, and a direct-marketing objection is absolute.
        objected = self._objections(conn, subject) if self._objections else frozenset()
        given = frozenset(p for p, c in consent.items() if c.given) - objected
        minor = self._age.facts(conn, subject).minor if self._age is not None else False
        state = SubjectState(
            subject.status,
            given,
            settings,
            subject.jurisdiction,
            minor=minor,
            parental=frozenset(p for p, c in consent.items() if c.parental),
            explicit=frozenset(p for p, c in consent.items() if c.explicit),
            objections=objected,
        )
        expiries = [c.expires_at for c in consent.values() if c.expires_at is not None]
        return state, settings, expiries

    def decide(
        self,
        conn: Connection,
        subject: SubjectRef | None,
        purpose: str,
        context: Mapping[str, str] | None = None,
    ) -> tuple[Decision, Settings]:
        """Decide for one call (see `evaluate`); the context must be str -> str."""
        policy = self.policy  # read once: a concurrent reload swaps it whole
        ctx = self.check(policy, purpose, context)
        state, settings = self.state(conn, subject)
        return evaluate(policy, purpose, state, ctx), settings

    def decide_for(
        self, entry: CachedSubject | None, purpose: str, context: Mapping[str, str] | None
    ) -> tuple[Decision, Settings]:
        """`decide` on the state `cached` returned (an unknown user when None)."""
        policy = self.policy if entry is None else entry.policy
        ctx = self.check(policy, purpose, context)
        key = (purpose, tuple(sorted(ctx.items())))
        if entry is None:
            # An unknown user's decision depends on the policy, purpose and context alone.
            unknown = self.memo(None, policy)
            made = unknown.get(key)
            if made is None:
                defaults = Settings()
                state = SubjectState("unknown", frozenset(), defaults)
                made = (evaluate(policy, purpose, state, ctx), defaults)
                remember(unknown, key, made)
                return made
            return renewed(made[0]), made[1]
        known = entry.decisions.get(key)
        if known is None:
            known = remember(entry.decisions, key, evaluate(policy, purpose, entry.state, ctx))
            return known, entry.settings
        return renewed(known), entry.settings

    def memo(self, entry: CachedSubject | None, policy: CompiledPolicy) -> dict[object, Any]:
        """The table of what is kept between a subject's calls (use `remember` to add): the
        cache entry's, or for an unknown user (None) the one table of `policy`, which holds
        nothing of a user; another policy starts a new one."""
        if entry is not None:
            return entry.derived
        unknown = self._unknown
        if unknown[0] is not policy:
            unknown = self._unknown = (policy, {})
        return unknown[1]

    @staticmethod
    def check(
        policy: CompiledPolicy, purpose: str, context: Mapping[str, str] | None
    ) -> dict[str, str]:
        """The call's context as a dict; ValidationError for an undeclared purpose or a
        context that is not a small str -> str mapping."""
        if purpose not in policy.pack.purposes.purposes:
            raise ValidationError(
                f"purpose {purpose!r} is not declared in the policy pack's purposes.yaml "
                f"(declared: {', '.join(policy.pack.purposes.ids())})"
            )
        try:
            ctx: dict[str, str] | None = dict(context or {})
        except (TypeError, ValueError):  # not a mapping
            ctx = None
        if ctx is not None and len(ctx) <= MAX_CONTEXT:
            for name, value in ctx.items():  # a loop: a generator costs more for a few fields
                if not (isinstance(name, str) and isinstance(value, str)):
                    break
            else:
                return ctx
        raise ValidationError(f"context must be a dict of at most {MAX_CONTEXT} str -> str")

    def evaluate_segments(
        self,
        decision: Decision,
        view: ViewLike,
        settings: Settings,
        items_in: Callable[[str], frozenset[str]],
    ) -> Evaluation | None:
        """Evaluate the purpose's segments on a personalized decision's minimized view.

        Only the view (the categories `decision.read` allows), the user's settings and the
        public catalog are looked at; a segment reading a withheld category is skipped and
        named. None when the purpose uses no segments. Nothing is written: `segments_changed`
        and `store_segments` keep the stored memberships in step.
        """
        if decision.outcome != "personalized" or not self.segments.for_purpose(decision.purpose):
            return None
        return self.segments.evaluate(
            decision.purpose, decision.read, view, settings.model_dump(), items_in
        )

    def segments_changed(
        self,
        read: Callable[[], Connection],
        entry: CachedSubject,
        purpose: str,
        found: Evaluation | None,
    ) -> bool:
        """Whether the purpose's stored memberships differ from this call's (`found`; None:
        the call was not personalized, so none are held). Read once per cache entry."""
        if self._memberships is None or not self.segments.for_purpose(purpose):
            return False
        if entry.held is None:
            doc = self._memberships.get(read(), entry.subject)
            entry.held = {p: frozenset(segments) for p, segments in doc.items()}
        matched = frozenset(found.matched) if found is not None else frozenset()
        return entry.held.get(purpose, frozenset()) != matched

    def store_segments(
        self, conn: Connection, subject: SubjectRef, purpose: str, found: Evaluation | None
    ) -> None:
        """Store the purpose's memberships as this call found them (encrypted)."""
        if self._memberships is None:
            return
        matched = found.matched if found is not None else ()
        described = {sid: self.segments.segments[sid].description for sid in matched}
        self._memberships.record(conn, subject, purpose, described)

    def drop_segments(self, conn: Connection, subject: SubjectRef, purpose: str) -> None:
        """Forget the purpose's stored memberships (not personalized, withdrawn, objected)."""
        if self._memberships is not None and self.segments.for_purpose(purpose):
            self._memberships.clear(conn, subject, purpose)

    def record(
        self,
        conn: Connection | None,
        subject: SubjectRef | None,
        decision: Decision,
        *,
        categories_used: frozenset[str],
        recommender: str,
        items: int,
        signals: Sequence[str] = (),
        segments: Evaluation | None = None,
        experiment: Mapping[str, object] | None = None,
        memo: dict[object, tuple[str, str, str, str]] | None = None,
        failure: str | None = None,
    ) -> None:
        """Append the decision record (no personal data: alias, rule ids, categories, counts).

        It keeps the facts the user is shown: the explanation of the mode (`explain`), the data
        categories used, and the kinds of per-item explanations (`signals`: item_item,
        content, popularity, ...). The per-item texts name items the user viewed, so they are
        not recorded; neither are context values, only the names of the context fields a
        recommender saw. With `segments`, the record names the segments matched and those
        skipped, each with the data categories the decision withheld from it. `experiment`
        ({experiment, variant, enrolled}) traces the decision to the experiment variant that
        shaped it. With `conn` the record is appended in that transaction; without, it is
        queued for the audit log's next group commit (`AuditLog.defer`). `memo`, a dict kept
        by the caller for calls that differ only in the decision id, the recommender and the
        items (one decision, `categories_used` and `segments`), holds the canonical records
        in place of the gate's own table. `failure` (an exception's type name, never its
        message) records a call whose recommender failed after the decision was made.
        """
        facts = (categories_used, recommender, items, signals, segments, experiment)
        body: str
        quoted: str | None = None
        if experiment is not None or failure is not None or not decision.id.isalnum():
            body = canonical(_payload(decision, decision.id, *facts, failure))
        else:
            # The same decision, recommender, signals and segments give the same record but
            # for the decision id: its canonical JSON is kept around the id's place (the keys are
            # sorted and unique, and an alphanumeric id needs no escaping), and so is the JSON
            # string literal of it that the audit log's entry hash is taken over. The key is
            # the decision but for its id (a tuple slice) and the facts of the call.
            table = self._records
            key: tuple[object, ...]
            if memo is None:
                key = (
                    decision[1:],
                    categories_used,
                    recommender,
                    items,
                    frozenset(signals),
                    segments,
                )
            else:
                table, key = memo, (recommender, items, frozenset(signals))
            template = table.get(key)
            if template is None:
                text = canonical(_payload(decision, "", *facts))
                head, _, tail = text.partition('"decision_id":""')
                head, tail = head + '"decision_id":"', '"' + tail
                if len(table) >= RECORD_TEMPLATES:
                    table.clear()
                template = table[key] = (
                    head,
                    tail,
                    json_string(head)[:-1],
                    json_string(tail)[1:],
                )
            body = template[0] + decision.id + template[1]
            quoted = template[2] + decision.id + template[3]
        alias = subject.alias if subject else None
        if conn is None:
            self._audit.defer("decision", body, alias=alias, quoted=quoted)
        else:
            self._audit.append(conn, "decision", body, alias=alias)
