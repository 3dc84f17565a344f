"""Reload is atomic: a good pack takes over at once, a broken one leaves the old one in force."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tactful import PolicyError, Tactful
from tests.conftest import seed_small
from tests.policy.helpers import pack_with

NO_TV = """
  - id: no-tv
    description: "no personalized lists on shared TVs"
    match: {context: {device: [shared-tv]}}
    effect: non_personalized
"""


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[tuple[Tactful, Path]]:
    root = pack_with(tmp_path)
    tf = Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=root)
    seed_small(tf)
    try:
        yield tf, root
    finally:
        tf.close()


def test_a_valid_change_applies_to_the_next_decision_and_is_audited(
    live: tuple[Tactful, Path],
) -> None:
    tf, root = live
    before = tf.policy.current
    assert tf.recommend("u1", context={"device": "shared-tv"}).mode == "personalized"
    rules = root / "rules.yaml"
    rules.write_text(rules.read_text() + NO_TV, encoding="utf-8")
    (root / "pack.yaml").write_text(
        (root / "pack.yaml").read_text().replace('version: "2026.11.2"', 'version: "2026.12.0"'),
        encoding="utf-8",
    )
    after = tf.policy.reload()
    assert after.version == "2026.12.0" and after.content_hash != before.content_hash
    assert tf.policy.current == after and tf.pack.content_hash == after.content_hash
    tv = tf.recommend("u1", context={"device": "shared-tv"})
    assert tv.mode == "non_personalized" and "no-tv" in tv.reasons
    record = tf.rights.export("u1")["decisions"][-1]
    assert record["policy_hash"] == after.content_hash and record["policy_version"] == "2026.12.0"
    assert tf.audit.verify().ok


def test_an_unknown_users_remembered_decision_follows_a_reload(
    live: tuple[Tactful, Path],
) -> None:
    tf, root = live
    first = tf.recommend("nobody", context={"device": "shared-tv"})
    again = tf.recommend("nobody", context={"device": "shared-tv"})
    assert first.mode == again.mode == "non_personalized"
    assert first.reasons == again.reasons and first.decision_id != again.decision_id
    rules = root / "rules.yaml"
    rules.write_text(
        rules.read_text() + NO_TV.replace("effect: non_personalized", "effect: deny"),
        encoding="utf-8",
    )
    (root / "pack.yaml").write_text(
        (root / "pack.yaml").read_text().replace('version: "2026.11.2"', 'version: "2026.12.0"'),
        encoding="utf-8",
    )
    tf.policy.reload()
    after = tf.recommend("nobody", context={"device": "shared-tv"})
    assert after.mode == "denied" and "no-tv" in after.reasons and not after.items
    assert tf.recommend("nobody", context={"device": "phone"}).mode == "non_personalized"


@pytest.mark.parametrize(
    ("file", "edit", "why"),
    [
        ("rules.yaml", lambda t: t.replace("effect: deny", "effect: maybe", 1), r"rules\.yaml:\d+"),
        ("rules.yaml", lambda t: "rules: [\n", "not valid YAML"),
        ("context.yaml", lambda t: t + "  x: {category: 12 monkeys}\n", r"context\.yaml:\d+"),
        (
            "rules.yaml",
            lambda t: t.replace("diversity_floor: 0.3", "diversity_floor: 0.2"),
            "policy tests fail",
        ),
        (
            "purposes.yaml",
            lambda t: t.replace("validity_days: 395", "validity_days: 30", 1),
            "need the store reopened",
        ),
        (
            "pack.yaml",
            lambda t: t.replace("max_epsilon_per_release: 1.0", "max_epsilon_per_release: 2.0"),
            "reopened",
        ),
    ],
)
def test_a_broken_or_unsafe_pack_is_refused_and_the_old_policy_stays(
    live: tuple[Tactful, Path], file: str, edit: object, why: str
) -> None:
    tf, root = live
    before = tf.policy.current
    path = root / file
    path.write_text(edit(path.read_text()), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(PolicyError, match=why) as caught:
        tf.policy.reload()
    assert "policy reload refused" in str(caught.value)
    assert f"policy {before.version} ({before.content_hash[:12]}) stays in force" in str(
        caught.value
    )
    assert tf.policy.current == before
    recs = tf.recommend("u1")
    assert recs.mode == "personalized"
    assert tf.rights.export("u1")["decisions"][-1]["policy_hash"] == before.content_hash


def test_reload_from_another_directory(live: tuple[Tactful, Path], tmp_path: Path) -> None:
    tf, root = live
    other = pack_with(tmp_path / "other", (root / "rules.yaml").read_text() + NO_TV)
    tf.policy.reload(other)
    assert tf.policy.current.directory == str(other)
    assert tf.recommend("u1", context={"device": "shared-tv"}).mode == "non_personalized"
    with pytest.raises(PolicyError, match="does not exist"):
        tf.policy.reload(tmp_path / "nowhere")
    assert tf.policy.current.directory == str(other)
