"""Policy packs compiled to a decision function, and the gate that enforces them."""

from tactful.policy.engine import DEFAULT_DENY, CompiledPolicy, Decision, SubjectState
from tactful.policy.gate import Gate, narrow
from tactful.policy.model import Outcome, Rule
from tactful.policy.pack import PolicyPack, default_directory, load_pack

__all__ = [
    "DEFAULT_DENY",
    "CompiledPolicy",
    "Decision",
    "Gate",
    "Outcome",
    "PolicyPack",
    "Rule",
    "SubjectState",
    "default_directory",
    "load_pack",
    "narrow",
]
