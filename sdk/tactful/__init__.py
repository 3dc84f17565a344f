"""tactful: privacy-first, consent-aware personalization.

Open a store with `Tactful.open()`, record profiles, events and consent, and ask
`tf.recommend(user)`: the policy gate decides what may be used, and every decision is audited.
"""

from tactful.audit import AuditVerdict
from tactful.client import Tactful
from tactful.consent import ConsentReceipt, PurposeConsent, SignalOutcome
from tactful.crypto import EnvKeyProvider, FileKeyProvider, KeyProvider, KeyRing
from tactful.dp import BudgetStatus, Estimate, Release, ReleaseRecord
from tactful.errors import (
    BudgetExhausted,
    ConfigurationError,
    ConsentRequired,
    IntegrityError,
    KeyUnavailable,
    PolicyError,
    SubjectErased,
    SubjectNotFound,
    TactfulError,
    ValidationError,
)
from tactful.experiments import (
    Assignment,
    Difference,
    Experiment,
    ExperimentResults,
    Variant,
    VariantResult,
)
from tactful.models import Recommendations, RecommendedItem
from tactful.policy import (
    CaseResult,
    DecisionExplained,
    PolicySummary,
    PolicyTestReport,
    RuleReason,
    check_policies,
    test_policies,
)
from tactful.reports import AuditReport
from tactful.rights import (
    BulkErasure,
    ErasureNotice,
    ErasureReceipt,
    ExportResult,
    PurgeReport,
    RequestInfo,
)
from tactful.settings import Settings
from tactful.store import KeyStatus, RetentionReport, RotationReport

__all__ = [
    "Assignment",
    "AuditReport",
    "AuditVerdict",
    "BudgetExhausted",
    "BudgetStatus",
    "BulkErasure",
    "CaseResult",
    "ConfigurationError",
    "ConsentReceipt",
    "ConsentRequired",
    "DecisionExplained",
    "Difference",
    "EnvKeyProvider",
    "ErasureNotice",
    "ErasureReceipt",
    "Estimate",
    "Experiment",
    "ExperimentResults",
    "ExportResult",
    "FileKeyProvider",
    "IntegrityError",
    "KeyProvider",
    "KeyRing",
    "KeyStatus",
    "KeyUnavailable",
    "PolicyError",
    "PolicySummary",
    "PolicyTestReport",
    "PurgeReport",
    "PurposeConsent",
    "Recommendations",
    "RecommendedItem",
    "Release",
    "ReleaseRecord",
    "RequestInfo",
    "RetentionReport",
    "RotationReport",
    "RuleReason",
    "Settings",
    "SignalOutcome",
    "SubjectErased",
    "SubjectNotFound",
    "Tactful",
    "TactfulError",
    "ValidationError",
    "Variant",
    "VariantResult",
    "check_policies",
    "test_policies",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("tactful."):
        _obj.__module__ = "tactful"
del _name, _obj
