"""`tactful budget show|grant`, run as a subprocess on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from tactful import Tactful
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES


def test_grant_needs_an_operator_and_confirmation_then_is_audited(
    db_url: str, tmp_path: Path
) -> None:
    assert tactful("init", db=db_url, home=tmp_path).returncode == 0
    no_operator = tactful("budget", "grant", "default", "1", "--yes", db=db_url, home=tmp_path)
    assert no_operator.returncode == 2 and "--operator" in no_operator.stderr
    refused = tactful(
        "budget",
        "grant",
        "default",
        "1",
        "--operator",
        "alice",
        db=db_url,
        home=tmp_path,
        stdin="n\n",
    )
    assert refused.returncode == 1
    granted = tactful(
        "budget",
        "grant",
        "default",
        "1.5",
        "--operator",
        "alice",
        "--yes",
        db=db_url,
        home=tmp_path,
    )
    assert granted.returncode == 0, granted.stderr
    shown = tactful("budget", "show", "--json", db=db_url, home=tmp_path)
    assert json.loads(shown.stdout) == [
        {"dataset": "default", "total": 1.5, "spent": 0.0, "remaining": 1.5}
    ]
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        with tf._store.begin() as conn:
            grants = [r for r in tf._audit.records(conn) if r.kind == "dp.budget.granted"]
        assert [g.payload["operator"] for g in grants] == ["alice"]


def test_bad_grant_is_one_line_error(db_url: str, tmp_path: Path) -> None:
    bad = tactful(
        "budget",
        "grant",
        "Bad Name",
        "1",
        "--operator",
        "alice",
        "--yes",
        db=db_url,
        home=tmp_path,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: dataset must be")
    negative = tactful(
        "budget",
        "grant",
        "default",
        "--operator",
        "alice",
        "--yes",
        "--",
        "-1",
        db=db_url,
        home=tmp_path,
    )
    assert negative.returncode == 1 and "epsilon > 0" in negative.stderr
