"""The policy file format (rules.yaml and pack.yaml), validated with pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["personalized", "non_personalized", "denied"]
Effect = Literal["personalized", "non_personalized", "deny"]

# Most restrictive first: when several rules match, the first effect in this order wins.
PRECEDENCE: tuple[Effect, ...] = ("deny", "non_personalized", "personalized")
OUTCOME_OF: dict[Effect, Outcome] = {
    "deny": "denied",
    "non_personalized": "non_personalized",
    "personalized": "personalized",
}


class Match(BaseModel):
    """Conditions of a rule; all given conditions must hold (an omitted one always holds).

    Static conditions (purposes, data_categories, profiling, dpv) are about the purpose and are
    resolved once at compile time; the others are checked per call against the subject's state
    and the request context.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The purpose: ids ("*" for any), the data it declares, what it is.
    purposes: tuple[str, ...] = ("*",)
    data_categories: tuple[str, ...] | None = None
    profiling: bool | None = None
    dpv: tuple[str, ...] | None = None
    # The subject's state.
    status: tuple[Literal["active", "restricted", "unknown"], ...] | None = None
    consent: Literal["given", "missing"] | None = None
    consent_to: tuple[str, ...] | None = None
    objection: bool | None = None
    minor: bool | None = None
    settings: dict[str, bool | float | str] | None = None
    jurisdiction: tuple[str, ...] | None = None
    # The request context (channel, device, country, ...): key -> accepted values.
    context: dict[str, tuple[str, ...]] | None = None


class Obligations(BaseModel):
    """What a matching rule requires of the recommender call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    read: tuple[str, ...] = ()
    withhold: tuple[str, ...] = ()
    exclude_item_categories: tuple[str, ...] = ()
    diversity_floor: float | None = Field(default=None, ge=0.0, le=1.0)
    dp_aggregate: bool = False


class Rule(BaseModel):
    """One rule: an id (named in every decision it shapes), conditions, an effect, obligations.

    `priority` (default 0) is how a rule "says otherwise": among the matching rules with an
    effect only those of the highest priority decide the outcome, and among them deny >
    non_personalized > personalized. A rule without an effect never decides the outcome; it
    only adds its obligations.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    priority: int = Field(default=0, ge=-1000, le=1000)
    match: Match = Match()
    # No effect: the rule only adds its obligations to the decisions it matches.
    effect: Effect | None = None
    obligations: Obligations = Obligations()


class RuleFile(BaseModel):
    """rules.yaml: the ordered list of gate rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[Rule, ...] = Field(min_length=1)


class Controller(BaseModel):
    """Who is responsible for the processing (GDPR Art. 30(1)(a))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    contact: str = ""
    dpo: str = ""


class PackMeta(BaseModel):
    """pack.yaml: the pack's name, version and controller."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    controller: Controller
    non_personalized_fallback: Literal["popularity"] = "popularity"
    # The most epsilon one differentially private release may spend (tactful.dp rejects more).
    max_epsilon_per_release: float = Field(default=1.0, gt=0, le=10)


class ContextField(BaseModel):
    """One request-context field an app may pass: its data category and what it means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
    description: str = ""


class ContextCatalog(BaseModel):
    """context.yaml: the request-context fields a recommender may be shown, by data category.

    A context field reaches a recommender only when the decision allows its category (like a
    profile field); fields not declared here never do, though rules may still match on them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: dict[str, ContextField] = Field(default_factory=dict)
