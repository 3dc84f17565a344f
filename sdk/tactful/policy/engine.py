"""Compiling rules to a decision function, and the Decision it returns.

Compilation happens once at load. Conditions about the purpose (ids, declared data
categories, profiling, DPV concept) are resolved then, so each purpose keeps only the rules
that can apply to it, ordered by priority; the remaining conditions become predicate closures
over the subject's state and the request context. A decision is a few attribute lookups and
set memberships per rule.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from tactful.consent import Purpose
from tactful.policy.model import OUTCOME_OF, PRECEDENCE, Effect, Outcome, Rule
from tactful.policy.narrowing import drop_special, narrow, settings_filter, withhold
from tactful.policy.pack import PolicyPack
from tactful.settings import Settings
from tactful.store import category_allowed

DEFAULT_DENY = "default-deny"
# Precedence depends only on which rules matched, and narrowing only on the purpose, the
# winning rules' read, the withholdings, three switches and Art. 9, so both results are cached
# per compiled policy (a reload starts anew), at most this many entries each.
READABLE_CACHE = 4096
DEFAULT_DENY_TEXT = "no rule allows this processing"


@dataclass(frozen=True, slots=True)
class SubjectState:
    """What the gate knows about the user at decision time (no identifiers)."""

    status: str  # active | restricted | unknown
    consent: frozenset[str]  # purposes whose consent is in force now
    settings: Settings
    jurisdiction: str | None = None
    minor: bool = False  # possibly below the age of digital consent (GDPR Art. 8)
    parental: frozenset[str] = frozenset()  # purposes with a parental authorization in force
    explicit: frozenset[str] = frozenset()  # purposes whose consent in force is explicit
    # Purposes the subject objected to (GDPR Art. 21); the gate also removes them from `consent`.
    objections: frozenset[str] = frozenset()


class Decision(NamedTuple):
    """The gate's decision for one call, as recorded in the audit log (immutable).

    `read` are the data categories a recommender may read, `context` the request-context
    field names it may see; `exclude_item_categories`, `diversity_floor` (the lowest discovery
    level of the re-ranking) and `dp_aggregate` (the non-personalized list must be a
    differentially private release) are obligations of the call. `reasons` are the ids of the
    rules (or protections) behind it, `descriptions` their texts for the user. A named
    tuple: a memoized decision is renewed (a new id) on every call, where a frozen
    dataclass's thirteen attribute sets cost several times a tuple's copy.
    """

    id: str
    purpose: str
    outcome: Outcome
    reasons: tuple[str, ...]
    read: frozenset[str]
    exclude_item_categories: frozenset[str]
    policy_version: str
    policy_hash: str
    descriptions: tuple[str, ...] = ()
    withhold: frozenset[str] = frozenset()
    diversity_floor: float = 0.0
    dp_aggregate: bool = False
    context: frozenset[str] = frozenset()


# Decision ids are drawn from the OS's random source a block at a time: one system call per
# ID_BLOCK ids instead of one per call (it is a few µs on a virtual machine). A deque's
# popleft and extend are atomic, so threads never share an id; a forked child drops the ids
# its parent drew (they would repeat the parent's).
ID_BLOCK = 256
_ids: deque[str] = deque()
os.register_at_fork(after_in_child=_ids.clear)


def decision_id() -> str:
    """A new decision id: 128 random bits in hex (32 characters)."""
    try:
        return _ids.popleft()
    except IndexError:
        block = os.urandom(16 * ID_BLOCK).hex()
        _ids.extend(block[i : i + 32] for i in range(32, len(block), 32))
        return block[:32]


_new = tuple.__new__


def renewed(decision: Decision) -> Decision:
    """The same decision under a new id (a memoized decision made again for another call)."""
    return _new(Decision, (decision_id(), *decision[1:]))


Predicate = Callable[[str, SubjectState, Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    checks: tuple[Predicate, ...]
    effect: Effect | None
    priority: int
    read: frozenset[str]
    withhold: frozenset[str]
    exclude: frozenset[str]
    floor: float | None
    dp: bool


def _checks(rule: Rule) -> tuple[Predicate, ...]:
    m = rule.match
    checks: list[Predicate] = []
    if m.status is not None:
        statuses = frozenset(m.status)
        checks.append(lambda _p, s, _c: s.status in statuses)
    if m.consent == "given":
        checks.append(lambda p, s, _c: p in s.consent)
    elif m.consent == "missing":
        checks.append(lambda p, s, _c: p not in s.consent)
    if m.consent_to:
        needed = frozenset(m.consent_to)
        checks.append(lambda _p, s, _c: needed <= s.consent)
    if m.objection is not None:
        objected = m.objection
        checks.append(lambda p, s, _c: (p in s.objections) is objected)
    if m.minor is not None:
        minor = m.minor
        checks.append(lambda _p, s, _c: s.minor is minor)
    if m.settings:
        expected = tuple(m.settings.items())
        checks.append(lambda _p, s, _c: all(getattr(s.settings, k) == v for k, v in expected))
    if m.jurisdiction is not None:
        places = frozenset(m.jurisdiction)
        checks.append(lambda _p, s, _c: s.jurisdiction in places)
    if m.context:
        wanted = tuple((k, frozenset(v)) for k, v in m.context.items())
        checks.append(lambda _p, _s, c: all(c.get(k) in vs for k, vs in wanted))
    return tuple(checks)


def applies_to(rule: Rule, pid: str, purpose: Purpose) -> bool:
    """True if the rule's conditions about the purpose hold for `pid` (resolved at compile)."""
    m = rule.match
    if "*" not in m.purposes and pid not in m.purposes:
        return False
    if m.profiling is not None and purpose.profiling is not m.profiling:
        return False
    if m.dpv is not None and purpose.dpv not in m.dpv:
        return False
    if m.data_categories is not None:
        wanted = frozenset(m.data_categories)
        declared = frozenset(purpose.data_categories)
        if not any(
            category_allowed(c, wanted) or category_allowed(w, declared)
            for c in declared
            for w in wanted
        ):
            return False
    return True


def _compile(rule: Rule) -> _Compiled:
    o = rule.obligations
    return _Compiled(
        rule,
        _checks(rule),
        rule.effect,
        rule.priority,
        frozenset(o.read),
        frozenset(o.withhold),
        frozenset(o.exclude_item_categories),
        o.diversity_floor,
        o.dp_aggregate,
    )


_EMPTY: frozenset[str] = frozenset()
# What a set of matching rules decides, whatever the state that matched them: outcome,
# reasons, descriptions, read (winners), withhold, exclude, diversity floor, DP aggregate.
Combined = tuple[
    Outcome,
    tuple[str, ...],
    tuple[str, ...],
    frozenset[str],
    frozenset[str],
    frozenset[str],
    float,
    bool,
]


def _combine(matched: list[_Compiled]) -> Combined:
    """Apply precedence to the matching rules (sorted by priority, highest first)."""
    top: int | None = None
    effects: dict[Effect, list[_Compiled]] = {}
    for c in matched:
        if c.effect is None:
            continue
        if top is None:
            top = c.priority
        elif c.priority != top:
            break  # sorted by priority: the rest are lower
        effects.setdefault(c.effect, []).append(c)
    winners: list[_Compiled] = []
    effect: Effect | None = None
    for e in PRECEDENCE:
        if e in effects:
            effect, winners = e, effects[e]
            break
    read: set[str] = set()
    if effect == "personalized":
        for c in winners:
            read.update(c.read)
    withheld: set[str] = set()
    exclude: set[str] = set()
    floor = 0.0
    dp = False
    extra: list[_Compiled] = []
    for c in matched:
        withheld.update(c.withhold)
        exclude.update(c.exclude)
        if c.floor is not None and c.floor > floor:
            floor = c.floor
        dp = dp or c.dp
        if c.effect is None:
            extra.append(c)
    if effect is None:
        reasons: tuple[str, ...] = (DEFAULT_DENY,)
        descriptions: tuple[str, ...] = (DEFAULT_DENY_TEXT,)
        outcome: Outcome = "denied"
    else:
        reasons = tuple(c.rule.id for c in winners)
        descriptions = tuple(c.rule.description for c in winners if c.rule.description)
        outcome = OUTCOME_OF[effect]
    if extra:
        reasons += tuple(c.rule.id for c in extra)
        descriptions += tuple(c.rule.description for c in extra if c.rule.description)
    return (
        outcome,
        reasons,
        descriptions,
        frozenset(read),
        frozenset(withheld),
        frozenset(exclude),
        floor,
        dp,
    )


class CompiledPolicy:
    """A policy pack compiled to a decision function."""

    def __init__(self, pack: PolicyPack) -> None:
        self.pack = pack
        # (purpose, read, withhold, use_behavior, use_profile, use_location, special) ->
        # (categories a recommender may read, context field names of those categories)
        self.readable: dict[
            tuple[str, frozenset[str], frozenset[str], bool, bool, bool, bool],
            tuple[frozenset[str], frozenset[str]],
        ] = {}
        self.version = pack.meta.version
        self.hash = pack.content_hash
        self._declared = {pid: pack.purposes.get(pid) for pid in pack.purposes.ids()}
        # (purpose, indices of the matching rules) -> what they decide together.
        self._combined: dict[tuple[str, tuple[int, ...]], Combined] = {}
        self._context_fields = {k: f.category for k, f in pack.context.fields.items()}
        compiled = [_compile(r) for r in pack.rules.rules]
        # Highest priority first; the sort is stable, so file order holds within a priority.
        compiled.sort(key=lambda c: -c.priority)
        self._by_purpose: dict[str, tuple[_Compiled, ...]] = {
            pid: tuple(c for c in compiled if applies_to(c.rule, pid, pack.purposes.get(pid)))
            for pid in pack.purposes.ids()
        }

    def rules_for(self, purpose: str) -> tuple[Rule, ...]:
        """The rules that can apply to a purpose, in evaluation order."""
        return tuple(c.rule for c in self._by_purpose[purpose])

    def decide(self, purpose: str, state: SubjectState, context: Mapping[str, str]) -> Decision:
        """Evaluate the purpose's rules: the top-priority, most restrictive effect wins.

        Restrictive obligations (withhold, exclude, diversity floor, DP aggregate) of every
        matching rule apply; `read` comes from the winning personalized rules only. No
        matching rule with an effect means deny (default deny).
        """
        rules = self._by_purpose[purpose]
        hits: list[int] = []
        for i, c in enumerate(rules):
            for check in c.checks:
                if not check(purpose, state, context):
                    break
            else:
                hits.append(i)
        key = (purpose, tuple(hits))
        combined = self._combined.get(key)
        if combined is None:
            if len(self._combined) >= READABLE_CACHE:
                self._combined.clear()
            combined = self._combined[key] = _combine([rules[i] for i in hits])
        outcome, reasons, descriptions, read, withheld, exclude, floor, dp = combined
        final: frozenset[str] = _EMPTY
        names: frozenset[str] = _EMPTY
        if read:
            final, fields = self.readable_of(purpose, read, withheld, state)
            names = fields.intersection(context)
        return Decision(
            id=decision_id(),
            purpose=purpose,
            outcome=outcome,
            reasons=reasons,
            read=final,
            exclude_item_categories=exclude,
            policy_version=self.version,
            policy_hash=self.hash,
            descriptions=descriptions,
            withhold=withheld,
            diversity_floor=floor,
            dp_aggregate=dp,
            context=names,
        )

    def readable_of(
        self, purpose: str, read: frozenset[str], withheld: frozenset[str], state: SubjectState
    ) -> tuple[frozenset[str], frozenset[str]]:
        """What the winning rules' `read` leaves readable, and the context fields it covers.

        `read` narrowed to the purpose's declared categories, the user's data-source switches
        (use_behavior, use_profile, use_location), GDPR Art. 9 (special categories only for an
        `explicit_consent` purpose whose consent in force is explicit) and `withheld`.
        """
        declared = self._declared[purpose]
        st = state.settings
        special = declared.explicit_consent and purpose in state.explicit
        key = (purpose, read, withheld, st.use_behavior, st.use_profile, st.use_location, special)
        cached = self.readable.get(key)
        if cached is None:
            out = settings_filter(narrow(read, declared.data_categories), st)
            out = withhold(out if special else drop_special(out), withheld)
            fields = frozenset(
                k for k, c in self._context_fields.items() if category_allowed(c, out)
            )
            if len(self.readable) >= READABLE_CACHE:
                self.readable.clear()
            cached = self.readable[key] = (out, fields)
        return cached
