"""What the policy tools show: a pack's summary and a decision explained."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tactful.policy.engine import CompiledPolicy, Decision
from tactful.policy.gate import explain
from tactful.policy.model import Outcome
from tactful.policy.pack import PolicyPack, load_pack


class PolicySummary(BaseModel):
    """A validated pack: name, version, content hash and what it declares."""

    model_config = ConfigDict(frozen=True)

    directory: str
    name: str
    version: str
    content_hash: str
    purposes: tuple[str, ...]
    rules: tuple[str, ...]
    context_fields: tuple[str, ...]

    @classmethod
    def of(cls, pack: PolicyPack) -> PolicySummary:
        """The summary of a loaded pack."""
        return cls(
            directory=str(pack.directory),
            name=pack.meta.name,
            version=pack.meta.version,
            content_hash=pack.content_hash,
            purposes=tuple(pack.purposes.ids()),
            rules=tuple(r.id for r in pack.rules.rules),
            context_fields=tuple(sorted(pack.context.fields)),
        )


class RuleReason(BaseModel):
    """A rule (or statutory protection) behind a decision, with its text."""

    model_config = ConfigDict(frozen=True)

    id: str
    description: str


class DecisionExplained(BaseModel):
    """One decision as `tactful policy explain` shows it: the outcome and the rules behind it."""

    model_config = ConfigDict(frozen=True)

    purpose: str
    outcome: Outcome
    explanation: str
    reasons: tuple[RuleReason, ...]
    categories_allowed: tuple[str, ...]
    context_fields: tuple[str, ...]
    excluded_item_categories: tuple[str, ...]
    diversity_floor: float
    dp_aggregate: bool
    policy_version: str
    policy_hash: str

    @classmethod
    def of(cls, decision: Decision, policy: CompiledPolicy) -> DecisionExplained:
        """Explain a decision made under `policy`."""
        texts = {r.id: r.description for r in policy.pack.rules.rules}
        own = list(decision.descriptions)
        reasons = []
        for rid in decision.reasons:
            text = texts.get(rid) or (own[0] if own else "")
            reasons.append(RuleReason(id=rid, description=text))
        return cls(
            purpose=decision.purpose,
            outcome=decision.outcome,
            explanation=explain(decision),
            reasons=tuple(reasons),
            categories_allowed=tuple(sorted(decision.read)),
            context_fields=tuple(sorted(decision.context)),
            excluded_item_categories=tuple(sorted(decision.exclude_item_categories)),
            diversity_floor=decision.diversity_floor,
            dp_aggregate=decision.dp_aggregate,
            policy_version=decision.policy_version,
            policy_hash=decision.policy_hash,
        )


def check_policies(directory: str | Path | None = None) -> PolicySummary:
    """Validate a pack (default: the shipped one) and compile it; PolicyError says what is wrong.

    The error names the file, the line and key, and what is wrong.
    """
    pack = load_pack(Path(directory) if directory is not None else None)
    CompiledPolicy(pack)
    return PolicySummary.of(pack)
