"""Purposes of processing, declared in the policy pack's purposes.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LawfulBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interest",
    "public_task",
    "legitimate_interest",
]


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
    recipients: tuple[str, ...] = ()

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
