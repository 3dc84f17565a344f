"""YAML test cases for a policy pack: given a state and a context, expect an outcome.

A pack's tests live in DIR/tests/*.yaml (the default pack ships its own). Each case names a
purpose, the subject's state and the request context (`given`), and what the decision must
be (`expect`); the runner evaluates it with the same function the gate uses (`evaluate`), so
a passing test is a statement about production behaviour, not about a copy of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tactful.errors import PolicyError
from tactful.policy.engine import CompiledPolicy, Decision, SubjectState
from tactful.policy.gate import evaluate, explain
from tactful.policy.model import Outcome
from tactful.policy.pack import load_pack, parse_yaml
from tactful.settings import Settings

TESTS_DIR = "tests"


class Given(BaseModel):
    """The subject's state and the request context of a test case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["active", "restricted", "unknown"] = "active"
    consent: tuple[str, ...] = ()
    explicit: tuple[str, ...] = ()
    parental: tuple[str, ...] = ()
    objections: tuple[str, ...] = ()
    minor: bool = False
    jurisdiction: str | None = None
    settings: Settings = Settings()
    context: dict[str, str] = Field(default_factory=dict)


class Expect(BaseModel):
    """What the decision must be; an omitted key is not checked. Lists compare as sets,
    except `reasons`, which compares in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    reasons: tuple[str, ...] | None = None
    read: tuple[str, ...] | None = None
    context: tuple[str, ...] | None = None
    exclude_item_categories: tuple[str, ...] | None = None
    diversity_floor: float | None = None
    dp_aggregate: bool | None = None
    explanation_contains: str | None = None


class Case(BaseModel):
    """One test case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    purpose: str
    given: Given = Given()
    expect: Expect


class CaseFile(BaseModel):
    """A tests/*.yaml file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tests: tuple[Case, ...] = Field(min_length=1)


class CaseResult(BaseModel):
    """The verdict on one case: `failures` says what differed (empty when it passed)."""

    model_config = ConfigDict(frozen=True)

    file: str
    name: str
    purpose: str
    outcome: Outcome
    reasons: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True if the decision met every expectation."""
        return not self.failures


class PolicyTestReport(BaseModel):
    """Every case of a pack's tests/ and its verdict."""

    model_config = ConfigDict(frozen=True)

    directory: str
    policy_version: str
    policy_hash: str
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        """How many cases failed."""
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        """True if there was at least one case and none failed."""
        return bool(self.results) and self.failed == 0


def state_of(given: Given) -> SubjectState:
    """The SubjectState the gate would build (objected purposes lose their consent)."""
    objected = frozenset(given.objections)
    return SubjectState(
        given.status,
        frozenset(given.consent) - objected,
        given.settings,
        given.jurisdiction,
        minor=given.minor,
        parental=frozenset(given.parental),
        explicit=frozenset(given.explicit),
        objections=objected,
    )


def _check(decision: Decision, expect: Expect) -> list[str]:
    out: list[str] = []

    def differs(what: str, want: object, got: object) -> None:
        out.append(f"{what}: expected {want!r}, got {got!r}")

    if decision.outcome != expect.outcome:
        differs("outcome", expect.outcome, decision.outcome)
    if expect.reasons is not None and decision.reasons != expect.reasons:
        differs("reasons", list(expect.reasons), list(decision.reasons))
    sets = (
        ("read", expect.read, decision.read),
        ("context", expect.context, decision.context),
        (
            "exclude_item_categories",
            expect.exclude_item_categories,
            decision.exclude_item_categories,
        ),
    )
    for what, want, got in sets:
        if want is not None and frozenset(want) != got:
            differs(what, sorted(want), sorted(got))
    if expect.diversity_floor is not None and decision.diversity_floor != expect.diversity_floor:
        differs("diversity_floor", expect.diversity_floor, decision.diversity_floor)
    if expect.dp_aggregate is not None and decision.dp_aggregate != expect.dp_aggregate:
        differs("dp_aggregate", expect.dp_aggregate, decision.dp_aggregate)
    if expect.explanation_contains is not None:
        text = explain(decision)
        if expect.explanation_contains not in text:
            differs("explanation", f"...{expect.explanation_contains}...", text)
    return out


def run_cases(policy: CompiledPolicy, path: Path, cases: CaseFile) -> list[CaseResult]:
    """Evaluate each case of one file against a compiled policy."""
    results: list[CaseResult] = []
    purposes = policy.pack.purposes.purposes
    for case in cases.tests:
        unknown = [p for p in (case.purpose, *case.given.consent) if p not in purposes]
        if unknown:
            raise PolicyError(
                f"{path}: test {case.name!r} names purpose {unknown[0]!r}, which purposes.yaml "
                f"does not declare (declared: {', '.join(policy.pack.purposes.ids())})"
            )
        decision = evaluate(policy, case.purpose, state_of(case.given), case.given.context)
        results.append(
            CaseResult(
                file=path.name,
                name=case.name,
                purpose=case.purpose,
                outcome=decision.outcome,
                reasons=decision.reasons,
                failures=tuple(_check(decision, case.expect)),
            )
        )
    return results


def test_policies(directory: str | Path | None = None) -> PolicyTestReport:
    """Load the pack in `directory` (default: the shipped pack) and run its tests/*.yaml.

    PolicyError if the pack or a test file is invalid (file, line and key named); a pack
    without tests gives a report with no results (`ok` is False).
    """
    return run_tests(CompiledPolicy(load_pack(Path(directory) if directory is not None else None)))


def run_tests(policy: CompiledPolicy) -> PolicyTestReport:
    """Run the tests/*.yaml of a compiled pack's directory."""
    pack = policy.pack
    results: list[CaseResult] = []
    tests_dir = pack.directory / TESTS_DIR
    files = sorted(tests_dir.glob("*.yaml")) if tests_dir.is_dir() else []
    for path in files:
        results.extend(run_cases(policy, path, parse_yaml(path, path.read_bytes(), CaseFile)))
    return PolicyTestReport(
        directory=str(pack.directory),
        policy_version=pack.meta.version,
        policy_hash=pack.content_hash,
        results=tuple(results),
    )


test_policies.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
