"""Policy packs compiled to a decision function, and the gate that enforces them."""

from tactful.policy.engine import DEFAULT_DENY, CompiledPolicy, Decision, SubjectState
from tactful.policy.gate import Gate, evaluate, explain
from tactful.policy.info import DecisionExplained, PolicySummary, RuleReason, check_policies
from tactful.policy.model import Outcome, Rule
from tactful.policy.narrowing import narrow
from tactful.policy.pack import PolicyPack, default_directory, load_pack
from tactful.policy.testing import CaseResult, PolicyTestReport, test_policies

__all__ = [
    "DEFAULT_DENY",
    "CaseResult",
    "CompiledPolicy",
    "Decision",
    "DecisionExplained",
    "Gate",
    "Outcome",
    "PolicyPack",
    "PolicySummary",
    "PolicyTestReport",
    "Rule",
    "RuleReason",
    "SubjectState",
    "check_policies",
    "default_directory",
    "evaluate",
    "explain",
    "load_pack",
    "narrow",
    "test_policies",
]
