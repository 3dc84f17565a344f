"""Purposes of processing, declared in the policy pack's purposes.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LawfulBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interest",
    "public_task",
    "legitimate_interest",
]


class NoticeVersion(BaseModel):
    """One version of a purpose's consent notice; `material` changes need renewed consent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, max_length=32)
    material: bool = False
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class Purpose(BaseModel):
    """A declared purpose: its lawful basis, whether it profiles, and the data it may use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    description: str = ""
    lawful_basis: LawfulBasis
    profiling: bool = False
    data_categories: tuple[str, ...] = ()
    retention_days: int | None = Field(default=None, gt=0)
    explicit_consent: bool = False
    validity_days: int | None = Field(default=395, gt=0)
    dpv: str | None = None
    fideslang: str | None = None
    recipients: tuple[str, ...] = ()
    notices: tuple[NoticeVersion, ...] = ()

    @model_validator(mode="after")
    def _notice_versions_unique(self) -> Purpose:
        versions = [n.version for n in self.notices]
        if len(set(versions)) != len(versions):
            raise ValueError("notice versions must be unique (list them oldest first)")
        return self

    def notice_sufficient(self, version: str | None) -> bool:
        """True if consent given under notice `version` still covers the purpose.

        Notices are listed oldest first. A consent given under a version older than the newest
        `material` version (or under no recorded version, once a material version exists after
        the first) must be renewed. Versions the pack does not list are treated as too old.
        """
        order = [n.version for n in self.notices]
        material = [i for i, n in enumerate(self.notices) if n.material and i > 0]
        if not material:
            return True
        if version is None or version not in order:
            return False
        return order.index(version) >= material[-1]

    @property
    def needs_consent(self) -> bool:
        """True if processing for this purpose rests on the user's consent."""
        return self.lawful_basis == "consent"


class PurposeCatalog(BaseModel):
    """All declared purposes by id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purposes: dict[str, Purpose] = Field(min_length=1)

    def get(self, purpose_id: str) -> Purpose:
        """The purpose `purpose_id`; KeyError if undeclared (use `check` for a user error)."""
        return self.purposes[purpose_id]

    def ids(self) -> list[str]:
        """Declared purpose ids, sorted."""
        return sorted(self.purposes)
