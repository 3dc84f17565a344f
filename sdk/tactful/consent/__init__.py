"""Purposes, the append-only consent ledger and its fold, signals (GPC, IAB TCF), age rules."""

from tactful.consent.age import AgeFacts, AgeRules, AgeTable
from tactful.consent.ledger import ConsentLedger, InForce, PurposeConsent
from tactful.consent.purposes import LawfulBasis, NoticeVersion, Purpose, PurposeCatalog
from tactful.consent.receipts import ConsentReceipt, ConsentState, ReceiptPurpose
from tactful.consent.signals import SignalMap, SignalOutcome, gpc_enabled
from tactful.consent.tcf import TCString, decode_tc_string

__all__ = [
    "AgeFacts",
    "AgeRules",
    "AgeTable",
    "ConsentLedger",
    "ConsentReceipt",
    "ConsentState",
    "InForce",
    "LawfulBasis",
    "NoticeVersion",
    "Purpose",
    "PurposeCatalog",
    "PurposeConsent",
    "ReceiptPurpose",
    "SignalMap",
    "SignalOutcome",
    "TCString",
    "decode_tc_string",
    "gpc_enabled",
]
