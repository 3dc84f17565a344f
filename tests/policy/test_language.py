"""The rule language: every matcher, effect, obligation and the precedence, on real packs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tactful import PolicyError
from tactful.policy import DEFAULT_DENY, CompiledPolicy, evaluate, load_pack
from tactful.settings import Settings
from tests.policy.helpers import compiled, pack_with, state

ALLOW = """
  - id: allow
    match: {purposes: [personalization], consent: given}
    effect: personalized
    obligations: {read: [user.behavior, user.preference, user.location, context]}
"""


def rules(*extra: str) -> str:
    return "rules:" + ALLOW + "".join(extra)


def with_rules(tmp_path: Path, *extra: str) -> CompiledPolicy:
    """The default pack compiled with its rules replaced by ALLOW and `extra`."""
    return compiled(pack_with(tmp_path, rules(*extra)))


def test_deny_wins_over_personalized_at_the_same_priority(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: no-tv
    match: {context: {device: [tv]}}
    effect: deny
""",
    )
    tv = evaluate(policy, "personalization", state(), {"device": "tv"})
    assert tv.outcome == "denied" and tv.reasons == ("no-tv",) and tv.read == frozenset()
    phone = evaluate(policy, "personalization", state(), {"device": "mobile"})
    assert phone.outcome == "personalized" and phone.reasons == ("allow",)


def test_a_higher_priority_rule_says_otherwise(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: no-tv
    match: {context: {device: [tv]}}
    effect: deny
  - id: tv-in-at
    priority: 10
    match: {purposes: [personalization], consent: given, jurisdiction: [AT]}
    effect: personalized
    obligations: {read: [user.behavior]}
""",
    )
    at = evaluate(policy, "personalization", state(jurisdiction="AT"), {"device": "tv"})
    assert at.outcome == "personalized" and at.reasons == ("tv-in-at",)
    assert at.read == frozenset({"user.behavior"}), "only the winning rule's read counts"
    de = evaluate(policy, "personalization", state(jurisdiction="DE"), {"device": "tv"})
    assert de.outcome == "denied"


def test_priority_cannot_lift_the_statutory_floors(tmp_path: Path) -> None:
    policy = compiled(
        pack_with(
            tmp_path,
            """rules:
  - id: everything-goes
    priority: 1000
    match: {purposes: ["*"]}
    effect: personalized
    obligations: {read: [user.behavior]}
""",
        )
    )
    restricted = evaluate(policy, "personalization", state(status="restricted"), {})
    assert restricted.outcome == "denied" and restricted.reasons == ("art18-restricted",)
    objected = evaluate(policy, "personalization", state(objections=("personalization",)), {})
    assert objected.outcome == "non_personalized"
    assert objected.reasons == ("art21-objection-profiling",)
    marketing = evaluate(policy, "marketing.email", state(objections=("marketing.email",)), {})
    assert marketing.outcome == "denied"
    assert marketing.reasons == ("art21-objection-direct-marketing",)
    child = evaluate(policy, "personalization", state(minor=True), {})
    assert child.outcome == "non_personalized"


def test_no_matching_rule_with_an_effect_is_denied_by_default(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: tag-only
    match: {purposes: ["*"]}
    obligations: {exclude_item_categories: [alcohol]}
""",
    )
    d = evaluate(policy, "marketing.email", state(("marketing.email",)), {})
    assert d.outcome == "denied" and d.reasons == (DEFAULT_DENY, "tag-only")
    assert d.exclude_item_categories == frozenset({"alcohol"})


def test_objection_minor_and_consent_to_matchers(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: objected
    match: {objection: true}
    effect: deny
  - id: kids
    match: {minor: true}
    obligations: {exclude_item_categories: [alcohol], diversity_floor: 0.4}
  - id: with-ads-consent
    match: {purposes: [personalization], consent: given, consent_to: [marketing.targeted]}
    effect: personalized
    obligations: {read: [user.demographic]}
""",
    )
    objected = evaluate(policy, "personalization", state(objections=("personalization",)), {})
    assert objected.reasons == ("objected",)
    plain = evaluate(policy, "personalization", state(), {})
    assert "user.demographic" not in plain.read and plain.diversity_floor == 0.0
    both = evaluate(policy, "personalization", state(("personalization", "marketing.targeted")), {})
    assert "user.demographic" in both.read
    assert both.reasons == ("allow", "with-ads-consent")
    # A minor (with parental authorization, so the Art. 8 floor lets personalization through).
    kid_state = state(minor=True, parental=("personalization",))
    kid = evaluate(policy, "personalization", kid_state, {})
    assert kid.outcome == "personalized" and "kids" in kid.reasons
    assert kid.exclude_item_categories == frozenset({"alcohol"}) and kid.diversity_floor == 0.4


def test_purpose_matchers_are_resolved_at_compile_time(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: contact-data
    match: {data_categories: [user.contact]}
    effect: deny
  - id: profiling-purposes
    match: {profiling: true}
    obligations: {diversity_floor: 0.1}
  - id: marketing-dpv
    match: {dpv: ["dpv:DirectMarketing"]}
    obligations: {exclude_item_categories: [ads]}
""",
    )
    assert [r.id for r in policy.rules_for("marketing.email")] == [
        "contact-data",
        "marketing-dpv",
    ]
    assert [r.id for r in policy.rules_for("personalization")] == ["allow", "profiling-purposes"]
    assert [r.id for r in policy.rules_for("analytics.aggregate")] == []
    assert evaluate(policy, "personalization", state(), {}).diversity_floor == 0.1


def test_settings_and_context_matchers(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: low-discovery-email
    match: {settings: {discovery: 0.0}, context: {channel: [email]}}
    effect: non_personalized
""",
    )
    zero = Settings(discovery=0.0)
    assert evaluate(
        policy, "personalization", state(settings=zero), {"channel": "email"}
    ).outcome == ("non_personalized")
    assert evaluate(
        policy, "personalization", state(settings=zero), {"channel": "web"}
    ).outcome == ("personalized")


def test_withhold_beats_read_even_for_a_broader_category(tmp_path: Path) -> None:
    policy = with_rules(
        tmp_path,
        """
  - id: no-location-in-fr
    match: {jurisdiction: [FR]}
    obligations: {withhold: [user.location]}
""",
    )
    ctx = {"coarse_location": "FR", "device": "mobile"}
    fr = evaluate(policy, "personalization", state(jurisdiction="FR"), ctx)
    assert not any(c.startswith("user.location") for c in fr.read)
    assert fr.context == frozenset({"device"})
    de = evaluate(policy, "personalization", state(jurisdiction="DE"), ctx)
    assert "user.location.coarse" in de.read and de.context == frozenset(ctx)


def test_every_decision_carries_the_pack_version_and_hash(tmp_path: Path) -> None:
    root = pack_with(tmp_path)
    pack = load_pack(root)
    policy = compiled(root)
    for purpose in pack.purposes.ids():
        d = evaluate(policy, purpose, state(), {})
        assert (d.policy_version, d.policy_hash) == (pack.meta.version, pack.content_hash)
    (root / "context.yaml").write_text(
        (root / "context.yaml").read_text() + "\n# edited\n", encoding="utf-8"
    )
    assert load_pack(root).content_hash != pack.content_hash, "context.yaml is hashed too"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("match: {consent_to: [nope]}\n    effect: deny", "names purpose 'nope'"),
        ("match: {settings: {volume: true}}\n    effect: deny", "setting 'volume'"),
        ("match: {settings: {personalization: 'yes'}}\n    effect: deny", "true/false"),
        ("obligations: {diversity_floor: 2}\n    effect: deny", r"rules\.yaml:\d+: at rules\.1"),
        ("match: {minor: maybe}\n    effect: deny", r"rules\.1\.match\.minor"),
        ("priority: high\n    effect: deny", r"rules\.1\.priority"),
    ],
)
def test_bad_rules_are_rejected_with_file_line_and_key(
    tmp_path: Path, rule: str, message: str
) -> None:
    root = pack_with(tmp_path, rules(f"  - id: bad\n    {rule}\n"))
    with pytest.raises(PolicyError, match=message):
        load_pack(root)


def test_bad_context_file_names_the_file_and_key(tmp_path: Path) -> None:
    root = pack_with(tmp_path, context_yaml="fields:\n  device: {category: Not A Category}\n")
    with pytest.raises(PolicyError, match=r"context\.yaml:2: at fields\.device\.category"):
        load_pack(root)
