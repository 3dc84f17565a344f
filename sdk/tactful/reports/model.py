"""The report's data model (pydantic): docs/report-schema.json is generated from `Report`.

Every count is about the store as a whole; nothing in a report names or links to a person.
A fact whose source this store does not have is an explicit `Unavailable` marker, never a zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT: Literal["tactful-audit-report/3"] = "tactful-audit-report/3"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Unavailable(_Frozen):
    """Marks a fact this store cannot supply; `reason` says why and what would supply it."""

    available: Literal[False] = False
    reason: str


class Period(_Frozen):
    """The reporting period [since, until); None is open-ended (since the first record / now)."""

    since: datetime | None
    until: datetime | None
    bucket: Literal["day", "week", "month"] = Field(
        description="Width of the trend buckets: day up to 92 days, week up to 2 years, month."
    )


class PackRef(_Frozen):
    """The policy pack in force when the report was generated."""

    name: str
    version: str
    hash: str = Field(description="SHA-256 over the pack's files, as recorded in decisions.")


class Controller(_Frozen):
    """Art. 30(1)(a): the controller and its data protection officer."""

    name: str
    contact: str
    dpo: str


class DataSubjects(_Frozen):
    """Art. 30(1)(c): the categories of data subjects and how many the store holds."""

    categories: list[str]
    by_status: dict[str, int] = Field(description="Subjects by status: active, restricted, ...")


class DataCategory(_Frozen):
    """Art. 30(1)(c),(f): a category of personal data, the fields holding it, its retention."""

    category: str
    fields: list[str] = Field(description="Profile fields of this category ('events' = events).")
    retention_days: int | None = Field(description="Erased after this many days; None = none.")


class Activity(_Frozen):
    """Art. 30(1)(b)-(f): one processing activity, i.e. one declared purpose."""

    purpose: str
    title: str
    description: str
    lawful_basis: str
    profiling: bool
    dpv: str | None
    data_categories: list[str]
    recipients: list[str]
    transfers: list[str]
    retention_days: int | None


class Security(_Frozen):
    """Art. 30(1)(g) / Art. 32: the technical measures in force."""

    encryption: str
    key_management: str
    pseudonymization: str
    audit_log: str
    key_rotation_age_days: float | None = Field(
        description="Days since the current master key version became current."
    )


class Records(_Frozen):
    """The records of processing activities (GDPR Art. 30(1)(a)-(g))."""

    controller: Controller
    data_subjects: DataSubjects
    activities: list[Activity]
    data_categories: list[DataCategory]
    transfers: list[str] = Field(
        description="Transfers to third countries declared (Art. 30(1)(e))."
    )
    transfers_note: str
    security: Security


class ConsentTrendPoint(_Frozen):
    """Consent events of one purpose in one bucket of the period."""

    bucket: str = Field(description="Bucket start, YYYY-MM-DD.")
    granted: int | float
    withdrawn: int | float
    expired: int | float


class PurposeConsentFacts(_Frozen):
    """One purpose: subjects by current state, and grants, withdrawals and expiries in the period.

    Counts are exact, or noisy estimates when the section was released with differential privacy.
    """

    purpose: str
    current: dict[str, int | float]
    granted: int | float | None = Field(description="None when withheld (public report).")
    withdrawn: int | float | None
    expired: int | float | None
    trend: list[ConsentTrendPoint]


class DPRelease(_Frozen):
    """How the consent counts of a public report were released with differential privacy."""

    mechanism: str
    epsilon_spent: float
    dataset: str


class ConsentSection(_Frozen):
    """Consent per purpose; in a public report released with DP or withheld."""

    public: bool
    dp: DPRelease | Unavailable | None = Field(
        description="null for an internal report (exact counts)."
    )
    withheld: str | None = Field(description="Why counts were withheld, if they were.")
    purposes: list[PurposeConsentFacts]


class RequestTypeFacts(_Frozen):
    """One request type (access, erasure, ...) over the period."""

    type: str
    received: int
    completed: int
    on_time: int
    late: int
    extended: int = Field(description="Received in the period and given a deadline extension.")
    median_days_to_complete: float | None
    open: int = Field(description="Open now, whenever received.")


class OpenRequest(_Frozen):
    """An open request (its random id, never the subject) and its deadline."""

    id: str
    type: str
    status: str = Field(description="open, or paused while the requester's identity is checked.")
    profile: str = Field(description="Deadline rules: gdpr (one month) or ccpa (45 days).")
    extended: bool
    received_at: datetime
    due_at: datetime
    days_left: float = Field(description="Negative once overdue.")


class RequestsSection(_Frozen):
    """Data subject requests: per type, the open ones with days left, the overdue ones."""

    by_type: list[RequestTypeFacts]
    open: list[OpenRequest]
    overdue: list[OpenRequest]


class ReasonCount(_Frozen):
    """A gate rule id and how many decisions it shaped."""

    rule: str
    decisions: int


class CategoryShare(_Frozen):
    """A data category and the share of recommendations made with it."""

    category: str
    decisions: int
    share: float = Field(ge=0, le=1)


class DecisionTrendPoint(_Frozen):
    """Gate decisions by outcome in one bucket of the period."""

    bucket: str
    personalized: int
    non_personalized: int
    denied: int


class DecisionsSection(_Frozen):
    """Gate decisions in the period: by purpose and outcome, reasons, categories used."""

    total: int
    recommendations: int = Field(description="Decisions that returned items (not denied).")
    by_purpose: dict[str, dict[str, int]]
    top_reasons: dict[str, list[ReasonCount]] = Field(
        description="Top 10 rule ids for 'non_personalized' and for 'denied'."
    )
    categories_used: list[CategoryShare]
    trend: list[DecisionTrendPoint]


class BudgetDataset(_Frozen):
    """A dataset's privacy budget: granted, spent, releases in the period."""

    dataset: str
    granted: float
    spent: float
    unit: str
    releases_in_period: int | None = Field(description="None: this store records no releases.")


class BudgetSection(_Frozen):
    """The differential privacy budget per dataset."""

    datasets: list[BudgetDataset]


class Checkpoint(_Frozen):
    """The latest signed audit checkpoint the chain verified to."""

    seq: int = Field(description="The entry the checkpoint covers (the chain's length then).")
    hash: str = Field(description="The chain's head hash at that entry, as signed.")
    signed_at: datetime
    signature_ok: bool
    checkpoints: int = Field(
        description="Signed checkpoints verified (signature and head) up to this one."
    )
    entries_after: int = Field(
        description="Entries verified after this checkpoint: covered by the hash chain only, "
        "so a cut tail past it would not show."
    )


class KeyVersion(_Frozen):
    """A master key version, how many data keys it wraps and how old it is."""

    version: int
    current: bool
    data_keys: int
    age_days: float | None
    since: Literal["rotation", "store_start", "unknown"]


class KeyFacts(_Frozen):
    """Master key versions of the store."""

    provider: str
    versions: list[KeyVersion]
    rotations: int


class RetentionRun(_Frozen):
    """The retention job's last run and what it deleted."""

    last_run: datetime | None
    events: dict[str, int]
    profile_fields: dict[str, int]
    runs_in_period: int


class Integrity(_Frozen):
    """Audit chain verification, checkpoint, keys and retention."""

    audit_chain_ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    damage: Literal["modified", "deleted", "reordered", "truncated", "forged"] | None = Field(
        description="The kind of damage found at first_bad_seq (None when intact)."
    )
    problem: str | None
    checkpoint: Checkpoint | Unavailable | None = Field(
        description="The last signed checkpoint the chain verified to; None: no checkpoint "
        "signed yet (or none before the damage), the chain rests on its hashes alone."
    )
    keys: KeyFacts | Unavailable
    retention: RetentionRun | Unavailable


class ExperimentFacts(_Frozen):
    """One declared experiment: what it tests under which purpose, and what it released."""

    experiment: str
    purpose: str = Field(description="The purpose whose consent enrols a user in it.")
    status: Literal["running", "stopped"]
    declared_at: datetime
    variants: dict[str, float] = Field(description="Variant name -> assignment weight.")
    control: str
    metrics: list[str] = Field(description="Event kinds counted as conversions.")
    exposed: int | None = Field(
        description="Stored exposures: enrolled users shown a variant (a user who withdrew is "
        "dropped when next seen and at the next release); None in a public report."
    )
    dataset: str = Field(description="The privacy-budget dataset its results are charged to.")
    epsilon_granted: float
    epsilon_spent: float
    releases: int = Field(description="Differentially private releases of its results.")


class ExperimentsSection(_Frozen):
    """The experiments run on users' data: consent-gated, results released with DP only."""

    experiments: list[ExperimentFacts]


class Report(_Frozen):
    """A tactful compliance audit report."""

    format: Literal["tactful-audit-report/3"] = FORMAT
    generated_at: datetime
    tactful_version: str
    database: str = Field(description="Database dialect of the store (sqlite, postgresql).")
    period: Period
    policy_pack: PackRef
    records: Records
    consent: ConsentSection
    requests: RequestsSection
    decisions: DecisionsSection
    privacy_budget: BudgetSection | Unavailable
    experiments: ExperimentsSection | None = Field(
        default=None, description="Declared experiments (None: a report from before issue 10)."
    )
    integrity: Integrity
