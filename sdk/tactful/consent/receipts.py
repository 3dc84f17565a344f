"""Consent receipts: what a grant or a withdrawal recorded, in ISO/IEC TS 27560 terms."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ConsentState = Literal["given", "refused", "withdrawn", "expired", "invalidated", "not_asked"]
ConsentType = Literal["expressed", "explicit"]
GivenBy = Literal["subject", "guardian"]

RECEIPT_SCHEMA = "tactful-consent-receipt/1 (ISO/IEC TS 27560:2023 consent record)"
WITHDRAWAL = (
    "You can withdraw at any time, as easily as you gave it, in the app's privacy settings; "
    "withdrawal takes effect for the very next recommendation (GDPR Art. 7(3))."
)


class ReceiptPurpose(BaseModel):
    """One purpose as a receipt names it: what it is, what it may use, until when."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    dpv: str | None = None
    fideslang: str | None = None
    lawful_basis: str
    profiling: bool
    data_categories: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    retention_days: int | None = None
    expires_at: datetime | None = None


class ConsentReceipt(BaseModel):
    """What a grant, refusal or withdrawal recorded; show it to the user or e-mail it.

    It names the subject only by the audit alias (never the app's user id). `to_json()`
    gives the ISO/IEC TS 27560-shaped document.
    """

    model_config = ConfigDict(frozen=True)

    purposes: tuple[str, ...]
    state: ConsentState
    recorded_at: datetime
    method: str
    notice_id: str | None = None
    notice_version: str | None = None
    expires_at: datetime | None = None
    receipt_id: str = ""
    record_ids: tuple[int, ...] = ()
    subject_alias: str = ""
    notice_hash: str | None = None
    source: str | None = None
    consent_type: ConsentType = "expressed"
    given_by: GivenBy = "subject"
    controller: dict[str, str] = {}
    details: tuple[ReceiptPurpose, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The receipt as a JSON-ready dict with the ISO/IEC TS 27560 record fields."""
        return {
            "schema": RECEIPT_SCHEMA,
            "receipt_id": self.receipt_id,
            "record_ids": list(self.record_ids),
            "timestamp": self.recorded_at.isoformat(),
            "data_subject": {"pseudonymous_id": self.subject_alias},
            "controller": dict(self.controller),
            "notice": {
                "id": self.notice_id,
                "version": self.notice_version,
                "sha256": self.notice_hash,
            },
            "collection": {"method": self.method, "source": self.source},
            "consent": {
                "state": self.state,
                "type": self.consent_type,
                "given_by": self.given_by,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            },
            "purposes": [p.model_dump(mode="json") for p in self.details],
            "withdrawal": WITHDRAWAL,
        }

    def to_json(self) -> str:
        """The receipt as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
