"""Compiling rules to a decision function, and the Decision it returns.

Compilation happens once at load: each rule becomes a tuple of predicate closures, and the
rules are grouped per purpose, so a decision is a few attribute lookups and comparisons.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tactful.policy.model import OUTCOME_OF, PRECEDENCE, Effect, Outcome, Rule
from tactful.policy.pack import PolicyPack
from tactful.settings import Settings

DEFAULT_DENY = "default-deny"


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


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's decision for one call, as recorded in the audit log."""

    id: str
    purpose: str
    outcome: Outcome
    reasons: tuple[str, ...]
    read: frozenset[str]
    exclude_item_categories: frozenset[str]
    policy_version: str
    policy_hash: str
    descriptions: tuple[str, ...] = field(default=())


Predicate = Callable[[str, SubjectState, Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    checks: tuple[Predicate, ...]


def _compile(rule: Rule) -> _Compiled:
    m = rule.match
    checks: list[Predicate] = []
    if m.status is not None:
        statuses = frozenset(m.status)
        checks.append(lambda _p, s, _c: s.status in statuses)
    if m.consent == "given":
        checks.append(lambda p, s, _c: p in s.consent)
    elif m.consent == "missing":
        checks.append(lambda p, s, _c: p not in s.consent)
    if m.settings:
        expected = tuple(m.settings.items())
        checks.append(lambda _p, s, _c: all(getattr(s.settings, k) == v for k, v in expected))
    if m.jurisdiction is not None:
        places = frozenset(m.jurisdiction)
        checks.append(lambda _p, s, _c: s.jurisdiction in places)
    if m.context:
        wanted = tuple((k, frozenset(v)) for k, v in m.context.items())
        checks.append(lambda _p, _s, c: all(c.get(k) in vs for k, vs in wanted))
    return _Compiled(rule, tuple(checks))


class CompiledPolicy:
    """A policy pack compiled to a decision function."""

    def __init__(self, pack: PolicyPack) -> None:
        self.pack = pack
        compiled = [_compile(r) for r in pack.rules.rules]
        self._by_purpose: dict[str, tuple[_Compiled, ...]] = {
            pid: tuple(
                c for c in compiled if "*" in c.rule.match.purposes or pid in c.rule.match.purposes
            )
            for pid in pack.purposes.ids()
        }

    def decide(self, purpose: str, state: SubjectState, context: Mapping[str, str]) -> Decision:
        """Evaluate every rule of the purpose; the most restrictive matching effect wins."""
        matched: dict[Effect, list[Rule]] = {}
        for c in self._by_purpose[purpose]:
            if all(check(purpose, state, context) for check in c.checks):
                matched.setdefault(c.rule.effect, []).append(c.rule)
        pack = self.pack
        for effect in PRECEDENCE:
            rules = matched.get(effect)
            if rules:
                read: set[str] = set()
                exclude: set[str] = set()
                for r in rules:
                    read.update(r.obligations.read)
                for group in matched.values():
                    for r in group:
                        exclude.update(r.obligations.exclude_item_categories)
                return Decision(
                    id=uuid.uuid4().hex,
                    purpose=purpose,
                    outcome=OUTCOME_OF[effect],
                    reasons=tuple(r.id for r in rules),
                    read=frozenset(read) if effect == "personalized" else frozenset(),
                    exclude_item_categories=frozenset(exclude),
                    policy_version=pack.meta.version,
                    policy_hash=pack.content_hash,
                    descriptions=tuple(r.description for r in rules if r.description),
                )
        return Decision(
            id=uuid.uuid4().hex,
            purpose=purpose,
            outcome="denied",
            reasons=(DEFAULT_DENY,),
            read=frozenset(),
            exclude_item_categories=frozenset(),
            policy_version=pack.meta.version,
            policy_hash=pack.content_hash,
            descriptions=("no rule allows this processing",),
        )
