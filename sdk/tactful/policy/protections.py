"""Protections the gate applies after the rules, whatever the policy pack says.

These are statutory floors and the user's own switches, so a pack cannot forget them:
- GDPR Art. 8: below the age of digital consent, a profiling purpose needs a parental
  authorization in force; without one the call is non-personalized.
- GDPR Art. 9: special categories (user.special.*) are read only for a purpose declared
  `explicit_consent: true` whose consent in force was recorded as explicit.
- GDPR Art. 18: a restricted subject's data is only stored; every purpose is denied even if
  a pack's higher-priority rule would allow it.
- The user's per-channel toggles: a channel the user switched off gets no recommendations.
Each override names its rule id in the decision, like a rule of the pack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from tactful.consent import Purpose
from tactful.policy.engine import Decision, SubjectState
from tactful.store import category_allowed

CHILD_RULE = "art8-child-needs-parental-authorization"
CHANNEL_RULE = "settings-channel-off"
RESTRICTED_RULE = "art18-restricted"
SPECIAL = frozenset({"user.special"})
EMAIL_CHANNEL = "email"


def channel_of(context: Mapping[str, str]) -> str:
    """The channel of a call: context["channel"], "recommendations" when not given."""
    return context.get("channel", "recommendations")


def protect(
    decision: Decision, purpose: Purpose, state: SubjectState, context: Mapping[str, str]
) -> Decision:
    """Apply the Art. 18 floor, the channel toggles and the Art. 8 protection to a decision.

    The Art. 9 protection (`special_allowed`, `drop_special`) is part of narrowing what may be
    read, which the gate applies to every personalized decision after this.
    """
    if decision.outcome == "denied":
        return decision
    if state.status == "restricted":
        return replace(
            decision,
            outcome="denied",
            reasons=(RESTRICTED_RULE,),
            read=frozenset(),
            descriptions=("processing of your data is restricted (GDPR Art. 18)",),
        )
    channel = channel_of(context)
    enabled = (
        state.settings.channel_email
        if channel == EMAIL_CHANNEL
        else state.settings.channel_recommendations
    )
    if state.status != "unknown" and not enabled:
        return replace(
            decision,
            outcome="denied",
            reasons=(CHANNEL_RULE,),
            read=frozenset(),
            descriptions=(f"you switched off recommendations by {channel}",),
        )
    if decision.outcome != "personalized":
        return decision
    if purpose.profiling and state.minor and decision.purpose not in state.parental:
        return replace(
            decision,
            outcome="non_personalized",
            reasons=(CHILD_RULE,),
            read=frozenset(),
            descriptions=(
                "not personalized: below the age of digital consent, personalized "
                "recommendations need a parent's authorization",
            ),
        )
    return decision


def special_allowed(purpose: Purpose, pid: str, state: SubjectState) -> bool:
    """GDPR Art. 9: special categories only for an explicit-consent purpose, given explicitly."""
    return purpose.explicit_consent and pid in state.explicit


def drop_special(read: frozenset[str]) -> frozenset[str]:
    """`read` without the special categories (user.special.*)."""
    return frozenset(c for c in read if not category_allowed(c, SPECIAL))
