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

from tactful.consent import Purpose
from tactful.policy.engine import Decision, SubjectState

CHILD_RULE = "art8-child-needs-parental-authorization"
CHANNEL_RULE = "settings-channel-off"
RESTRICTED_RULE = "art18-restricted"
EMAIL_CHANNEL = "email"


def channel_of(context: Mapping[str, str]) -> str:
    """The channel of a call: context["channel"], "recommendations" when not given."""
    return context.get("channel", "recommendations")


def protect(
    decision: Decision, purpose: Purpose, state: SubjectState, context: Mapping[str, str]
) -> Decision:
    """Apply the Art. 18 floor, the channel toggles and the Art. 8 protection to a decision.

    The Art. 9 protection (special categories only for an `explicit_consent` purpose with an
    explicit consent in force) is part of narrowing what may be read, done while deciding.
    """
    if decision.outcome == "denied":
        return decision
    if state.status == "restricted":
        return decision._replace(
            outcome="denied",
            reasons=(RESTRICTED_RULE,),
            read=frozenset(),
            context=frozenset(),
            descriptions=("processing of your data is restricted (GDPR Art. 18)",),
        )
    channel = channel_of(context)
    enabled = (
        state.settings.channel_email
        if channel == EMAIL_CHANNEL
        else state.settings.channel_recommendations
    )
    if state.status != "unknown" and not enabled:
        return decision._replace(
            outcome="denied",
            reasons=(CHANNEL_RULE,),
            read=frozenset(),
            context=frozenset(),
            descriptions=(f"you switched off recommendations by {channel}",),
        )
    if decision.outcome != "personalized":
        return decision
    if purpose.profiling and state.minor and decision.purpose not in state.parental:
        return decision._replace(
            outcome="non_personalized",
            reasons=(CHILD_RULE,),
            read=frozenset(),
            context=frozenset(),
            descriptions=(
                "not personalized: below the age of digital consent, personalized "
                "recommendations need a parent's authorization",
            ),
        )
    return decision
