"""GPC and TCF signals: recorded with their method, and the precedence of docs/consent.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tactful import Tactful, ValidationError
from tactful.consent.signals import gpc_enabled, plan
from tests.consent.tcf_encoder import encode

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "tcf.json").read_text())
ADS_ONLY = VECTORS["valid"][1]["tc_string"]  # TCF purposes 1, 3, 4
CONTENT = VECTORS["valid"][0]["tc_string"]  # TCF purposes 1, 5, 6, 8, 9, 10
NOTHING = VECTORS["valid"][2]["tc_string"]  # no purpose consent


def _states(tf: Tactful, user: str) -> dict[str, str]:
    return {p: s.state for p, s in tf.consent.status(user).items()}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Sec-GPC": "1"}, True),
        ({"sec-gpc": " 1 "}, True),
        ({"Sec-GPC": "0"}, False),
        ({"Sec-GPC": "true"}, False),
        ({"Accept": "*/*"}, False),
    ],
)
def test_gpc_header_is_read_as_the_spec_says(headers: dict[str, str], expected: bool) -> None:
    assert gpc_enabled(headers) is expected


def test_gpc_records_an_opt_out_of_targeted_use_with_method_gpc(tf: Tactful) -> None:
    tf.consent.grant("ann", ["marketing.targeted", "personalization"])
    outcomes = tf.consent.gpc("ann", {"Sec-GPC": "1"})
    assert [(o.purpose, o.action, o.state) for o in outcomes] == [
        ("marketing.targeted", "recorded", "withdrawn")
    ]
    status = tf.consent.status("ann")
    assert status["marketing.targeted"].state == "withdrawn"
    assert status["marketing.targeted"].method == "gpc"
    assert status["personalization"].state == "given", "GPC is about sale/sharing, not this"
    assert tf.consent.gpc("ann", {}) == []


def test_repeated_gpc_records_nothing_new(tf: Tactful) -> None:
    tf.consent.gpc("bob", {"Sec-GPC": "1"})
    again = tf.consent.gpc("bob", {"Sec-GPC": "1"})
    assert [o.action for o in again] == ["unchanged"]
    history = tf.rights.export("bob")["consent_history"]
    assert [(h["state"], h["method"]) for h in history] == [("refused", "gpc")]


def test_first_party_opt_in_after_gpc_wins_over_the_repeated_signal(tf: Tactful) -> None:
    tf.consent.gpc("cat", {"Sec-GPC": "1"})
    tf.consent.grant("cat", "marketing.targeted", method="ui")
    outcome = tf.consent.gpc("cat", {"Sec-GPC": "1"})
    assert [o.action for o in outcome] == ["overridden"]
    assert tf.consent.status("cat")["marketing.targeted"].state == "given"


def test_tcf_string_grants_and_refuses_the_mapped_purposes(tf: Tactful) -> None:
    outcomes = {o.purpose: (o.action, o.state) for o in tf.consent.tcf("dan", CONTENT)}
    assert outcomes == {
        "analytics.aggregate": ("recorded", "given"),
        "improve.models": ("recorded", "given"),
        "marketing.targeted": ("recorded", "refused"),
        "personalization": ("recorded", "given"),
    }
    status = tf.consent.status("dan")
    assert status["personalization"].method == "tcf"
    tf.consent.tcf("dan", NOTHING)
    assert _states(tf, "dan")["personalization"] == "withdrawn"


def test_tcf_never_grants_what_the_user_refused_first_party(tf: Tactful) -> None:
    tf.consent.refuse("eve", "personalization", method="ui")
    outcomes = {o.purpose: o.action for o in tf.consent.tcf("eve", CONTENT)}
    assert outcomes["personalization"] == "overridden"
    assert outcomes["analytics.aggregate"] == "recorded"
    assert tf.consent.status("eve")["personalization"].state == "refused"
    assert tf.recommend("eve").mode == "non_personalized"


def test_tcf_never_grants_what_gpc_opted_out_of(tf: Tactful) -> None:
    tf.consent.gpc("fay", {"Sec-GPC": "1"})
    outcomes = {o.purpose: o.action for o in tf.consent.tcf("fay", ADS_ONLY)}
    assert outcomes["marketing.targeted"] == "overridden"
    assert tf.consent.status("fay")["marketing.targeted"].state == "refused"


def test_first_party_withdrawal_after_tcf_grant_wins_until_the_user_grants_again(
    tf: Tactful,
) -> None:
    tf.consent.tcf("gus", CONTENT)
    tf.consent.withdraw("gus", "personalization", method="ui")
    assert [o.action for o in tf.consent.tcf("gus", CONTENT) if o.purpose == "personalization"] == [
        "overridden"
    ]
    assert tf.consent.status("gus")["personalization"].state == "withdrawn"


def test_tcf_grant_makes_the_next_recommendation_personalized(tf: Tactful) -> None:
    tf.catalog.upsert([{"item_id": "a", "title": "A"}, {"item_id": "b", "title": "B"}])
    tf.events.record_many("hal", [("a", "view", None)])
    tf.events.record_many("ida", [("a", "view", None), ("b", "view", None)])
    tf.consent.grant("ida", "personalization")
    tf.consent.tcf("hal", CONTENT)
    recs = tf.recommend("hal", k=1)
    assert recs.mode == "personalized" and recs.item_ids == ["b"]


@pytest.mark.parametrize(
    "bad", ["", "not a tc string!", encode(VECTORS["valid"][0]["expected"])[:20]]
)
def test_malformed_tc_string_is_rejected_and_writes_nothing(tf: Tactful, bad: str) -> None:
    tf.consent.grant("jon", "marketing.email")
    with pytest.raises(ValidationError, match="TC string"):
        tf.consent.tcf("jon", bad)
    assert len(tf.rights.export("jon")["consent_history"]) == 1


def test_pre_v22_tc_string_is_rejected_with_the_policy_version(tf: Tactful) -> None:
    old = VECTORS["published_pre_v22"][0]["tc_string"]
    with pytest.raises(ValidationError, match=r"policy version 2.*v2\.2"):
        tf.consent.tcf("kim", old)


class _R:
    def __init__(self, state: str, method: str) -> None:
        self.state, self.method = state, method


@pytest.mark.parametrize(
    ("records", "current", "method", "give", "action"),
    [
        ([], "not_asked", "gpc", False, "recorded"),
        ([_R("refused", "ui")], "refused", "gpc", False, "unchanged"),
        ([_R("given", "ui")], "expired", "gpc", False, "recorded"),
        ([_R("given", "ui")], "given", "gpc", False, "recorded"),
        ([_R("refused", "gpc"), _R("given", "ui")], "given", "gpc", False, "overridden"),
        ([_R("given", "tcf")], "given", "tcf", True, "unchanged"),
        ([_R("withdrawn", "api")], "withdrawn", "tcf", True, "overridden"),
        ([_R("refused", "gpc")], "refused", "tcf", True, "overridden"),
        ([_R("withdrawn", "ui"), _R("given", "ui")], "expired", "tcf", True, "recorded"),
        ([_R("given", "tcf"), _R("withdrawn", "ui")], "withdrawn", "tcf", True, "overridden"),
    ],
)
def test_precedence_table(
    records: list[_R], current: str, method: str, give: bool, action: str
) -> None:
    assert plan(records, current, method, give, "p").action == action
