"""Purposes, the append-only consent ledger and its fold."""

from tactful.consent.ledger import ConsentLedger, ConsentReceipt, ConsentState, PurposeConsent
from tactful.consent.purposes import LawfulBasis, Purpose, PurposeCatalog

__all__ = [
    "ConsentLedger",
    "ConsentReceipt",
    "ConsentState",
    "LawfulBasis",
    "Purpose",
    "PurposeCatalog",
    "PurposeConsent",
]
