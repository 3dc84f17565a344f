"""`tf.policy.explain` and `tactful policy explain`: the decision a user gets now, and why."""

from __future__ import annotations

import json
from pathlib import Path

from tactful import Tactful
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES, seed_small


def test_explain_names_the_rules_and_records_nothing(tf: Tactful) -> None:
    seed_small(tf)
    entries = len(tf.rights.export("u1")["decisions"])
    why = tf.policy.explain("u1", "personalization", {"device": "tv", "ip": "x"})
    assert why.outcome == "personalized"
    assert [r.id for r in why.reasons] == ["personalization-consented"]
    assert why.reasons[0].description == "personalized with your consent"
    assert why.context_fields == ("device",)
    assert "user.behavior" in why.categories_allowed
    assert why.policy_hash == tf.pack.content_hash
    assert len(tf.rights.export("u1")["decisions"]) == entries, "explaining is not deciding"
    tf.rights.object("u1", "personalization")
    objected = tf.policy.explain("u1")
    assert objected.outcome == "non_personalized"
    assert [r.id for r in objected.reasons] == ["objection-profiling"]
    assert "objected to profiling" in objected.explanation
    assert tf.recommend("u1").mode == objected.outcome, "explain matches the real call"


def test_cli_explain(db_url: str, tmp_path: Path) -> None:
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        seed_small(tf)
    shown = tactful("policy", "explain", "u3", "-c", "channel=web", db=db_url, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "non_personalized" in shown.stdout and "personalization-no-consent" in shown.stdout
    as_json = tactful(
        "policy", "explain", "u1", "--purpose", "marketing.email", "--json",
        db=db_url, home=tmp_path,
    )  # fmt: skip
    data = json.loads(as_json.stdout)
    assert data["outcome"] == "denied" and data["reasons"][0]["id"] == "default-deny"
    bad = tactful("policy", "explain", "u1", "-c", "novalue", db=db_url, home=tmp_path)
    assert bad.returncode == 1 and "KEY=VALUE" in bad.stderr
    unknown = tactful("policy", "explain", "u1", "--purpose", "nope", db=db_url, home=tmp_path)
    assert unknown.returncode == 1 and "purpose 'nope'" in unknown.stderr
