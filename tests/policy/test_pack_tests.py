"""The default pack ships YAML tests; `tactful policy test` runs them and catches regressions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tactful import PolicyError, check_policies, test_policies
from tests.conftest import POLICIES
from tests.policy.helpers import pack_with


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tactful_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_default_pack_passes_its_own_tests() -> None:
    report = test_policies(POLICIES)
    assert report.ok, [r.failures for r in report.results if not r.passed]
    assert report.passed >= 15


def test_every_rule_of_the_default_pack_is_exercised_by_a_test() -> None:
    report = test_policies(POLICIES)
    rules = set(check_policies(POLICIES).rules)
    covered = {r for case in report.results for r in case.reasons}
    assert rules <= covered, f"rules without a test case: {sorted(rules - covered)}"
    outcomes = {case.outcome for case in report.results}
    assert outcomes == {"personalized", "non_personalized", "denied"}


def test_a_rule_change_that_breaks_an_expectation_fails_with_what_differed(
    tmp_path: Path,
) -> None:
    root = pack_with(tmp_path)
    rules = (root / "rules.yaml").read_text()
    (root / "rules.yaml").write_text(
        rules.replace(
            "exclude_item_categories: [alcohol, gambling, adult]",
            "exclude_item_categories: [gambling, adult]",
        ),
        encoding="utf-8",
    )
    report = test_policies(root)
    assert not report.ok
    failed = [r for r in report.results if not r.passed]
    assert failed and all("exclude_item_categories" in r.failures[0] for r in failed)
    assert "'alcohol'" in failed[0].failures[0]


def test_a_broken_test_file_names_file_line_and_key(tmp_path: Path) -> None:
    root = pack_with(tmp_path)
    (root / "tests" / "bad.yaml").write_text(
        "tests:\n  - name: x\n    purpose: personalization\n    expect: {outcome: maybe}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"bad\.yaml:4: at tests\.0\.expect\.outcome"):
        test_policies(root)
    (root / "tests" / "bad.yaml").write_text(
        "tests:\n  - name: x\n    purpose: ads\n    expect: {outcome: denied}\n", encoding="utf-8"
    )
    with pytest.raises(PolicyError, match="purpose 'ads'"):
        test_policies(root)


def test_cli_policy_test_and_check(tmp_path: Path) -> None:
    ok = cli("policy", "test", str(POLICIES))
    assert ok.returncode == 0, ok.stderr
    assert " 0 failed" in ok.stdout and "PASS" in ok.stdout
    as_json = json.loads(cli("policy", "test", str(POLICIES), "--json").stdout)
    assert as_json["results"] and all(not r["failures"] for r in as_json["results"])
    checked = cli("policy", "check", str(POLICIES), "--json")
    assert json.loads(checked.stdout)["content_hash"] == check_policies(POLICIES).content_hash

    root = pack_with(tmp_path)
    (root / "rules.yaml").write_text(
        (root / "rules.yaml").read_text().replace("diversity_floor: 0.3", "diversity_floor: 0.1"),
        encoding="utf-8",
    )
    failing = cli("policy", "test", str(root))
    assert failing.returncode == 1 and "FAIL" in failing.stdout
    assert "diversity_floor: expected 0.3, got 0.1" in failing.stdout
    (root / "rules.yaml").write_text("rules: [\n", encoding="utf-8")
    broken = cli("policy", "check", str(root))
    assert broken.returncode == 1 and broken.stderr.startswith("error: ")
    assert "rules.yaml line" in broken.stderr and "Traceback" not in broken.stderr


def test_a_pack_without_tests_does_not_pass(tmp_path: Path) -> None:
    root = pack_with(tmp_path)
    for f in (root / "tests").iterdir():
        f.unlink()
    assert not test_policies(root).ok
    assert cli("policy", "test", str(root)).returncode == 1
