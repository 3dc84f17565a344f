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
    """Conditions of a rule; all given conditions must hold (an omitted one always holds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purposes: tuple[str, ...] = ("*",)
    status: tuple[Literal["active", "restricted", "unknown"], ...] | None = None
    consent: Literal["given", "missing"] | None = None
    settings: dict[str, bool | float | str] | None = None
    jurisdiction: tuple[str, ...] | None = None
    context: dict[str, tuple[str, ...]] | None = None


class Obligations(BaseModel):
    """What a matching rule requires of the recommender call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    read: tuple[str, ...] = ()
    exclude_item_categories: tuple[str, ...] = ()


class Rule(BaseModel):
    """One rule: an id (named in every decision it shapes), conditions, an effect, obligations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    match: Match = Match()
    effect: Effect
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
