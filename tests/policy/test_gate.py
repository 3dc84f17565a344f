"""The gate decides every call: default deny, consent, settings, restriction; and audits it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tactful import PolicyError, Tactful, ValidationError
from tactful.policy import load_pack
from tests.conftest import POLICIES, seed_small


def test_consented_user_gets_personalized_items_from_their_history(tf: Tactful) -> None:
    seed_small(tf)
    recs = tf.recommend("u1", k=3)
    assert recs.mode == "personalized"
    assert recs.reasons == ("personalization-consented",)
    assert "user.behavior.interaction" in recs.categories_used
    assert not {"a", "b", "e"} & set(recs.item_ids), "already-seen items are not recommended"
    assert recs.items[0].signal == "item_item"


def test_no_consent_means_non_personalized_popularity(tf: Tactful) -> None:
    seed_small(tf)
    recs = tf.recommend("u3", k=3)
    assert recs.mode == "non_personalized"
    assert recs.reasons == ("personalization-no-consent",)
    assert recs.categories_used == ()
    assert recs.item_ids[0] == "a", "the most popular item among consenting users"
    assert "not agreed" in recs.explanation


def test_unknown_user_gets_non_personalized_items_and_no_subject_is_created(tf: Tactful) -> None:
    seed_small(tf)
    recs = tf.recommend("stranger", k=2)
    assert recs.mode == "non_personalized" and len(recs.items) == 2
    assert tf.consent.status("stranger")["personalization"].state == "not_asked"


def test_withdrawal_makes_the_next_recommendation_non_personalized(tf: Tactful) -> None:
    seed_small(tf)
    assert tf.recommend("u1").mode == "personalized"
    tf.consent.withdraw("u1", "personalization")
    assert tf.recommend("u1").mode == "non_personalized"


def test_switching_personalization_off_is_honored(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u1", personalization=False)
    recs = tf.recommend("u1")
    assert recs.mode == "non_personalized"
    assert "switched personalization off" in recs.explanation


def test_excluded_topics_never_appear(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u3", excluded_topics=["action"])
    assert not {"a", "b"} & set(tf.recommend("u3", k=6).item_ids)
    tf.settings.update("u2", excluded_topics=["action"])
    assert not {"a", "b"} & set(tf.recommend("u2", k=6).item_ids)


def test_behavior_switched_off_means_no_history_is_read(tf: Tactful) -> None:
    seed_small(tf)
    tf.settings.update("u1", use_behavior=False)
    recs = tf.recommend("u1", k=3)
    assert "user.behavior.interaction" not in recs.categories_used
    assert recs.items[0].signal == "popularity"


def test_purpose_without_any_rule_is_denied_by_default(tf: Tactful) -> None:
    seed_small(tf)
    tf.consent.grant("u1", "marketing.email")
    recs = tf.recommend("u1", purpose="marketing.email")
    assert recs.mode == "denied" and recs.items == () and recs.reasons == ("default-deny",)


def test_every_decision_is_in_the_audit_log_without_personal_data(tf: Tactful) -> None:
    seed_small(tf)
    recs = tf.recommend("u1", k=2)
    decisions = tf.rights.export("u1")["decisions"]
    assert [d["decision_id"] for d in decisions] == [recs.decision_id]
    record = decisions[0]
    assert record["outcome"] == "personalized" and record["policy_hash"] == tf.pack.content_hash
    assert "u1" not in str(record) and not set(recs.item_ids) & set(str(record).split("'"))


def test_bad_arguments_are_rejected(tf: Tactful) -> None:
    with pytest.raises(ValidationError, match="purpose 'nope'"):
        tf.recommend("u1", purpose="nope")
    with pytest.raises(ValidationError, match="k must be"):
        tf.recommend("u1", k=0)
    for context in ({"device": 3}, {7: "app"}, {f"f{i}": "x" for i in range(33)}):
        with pytest.raises(ValidationError, match="context must be a dict"):
            tf.recommend("u1", context=context)  # type: ignore[arg-type]
    assert tf.recommend("u1", context={"device": "mobile"}).mode in {
        "personalized",
        "non_personalized",
    }


def test_broken_policy_file_names_the_file_and_key(tmp_path: Path) -> None:
    for f in POLICIES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    rules = tmp_path / "rules.yaml"
    text = rules.read_text()
    rules.write_text(text.replace("effect: deny", "effect: maybe", 1))
    line = (
        text.splitlines().index(
            next(ln for ln in text.splitlines() if ln.strip() == "effect: deny")
        )
        + 1
    )
    with pytest.raises(PolicyError, match=rf"rules\.yaml:{line}: at rules\.0\.effect"):
        load_pack(tmp_path)
    rules.write_text("rules: [\n")
    with pytest.raises(PolicyError, match=r"rules\.yaml line \d+: not valid YAML"):
        load_pack(tmp_path)


def test_rule_naming_an_undeclared_purpose_is_rejected(tmp_path: Path) -> None:
    for f in POLICIES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules.read_text().replace("purposes: [personalization]", "purposes: [ads]", 1))
    with pytest.raises(PolicyError, match="purpose 'ads'"):
        load_pack(tmp_path)


def test_pack_hash_changes_with_content(tmp_path: Path) -> None:
    for f in POLICIES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    before = load_pack(tmp_path).content_hash
    (tmp_path / "pack.yaml").write_text((tmp_path / "pack.yaml").read_text() + "\n# edited\n")
    assert load_pack(tmp_path).content_hash != before


def test_error_in_a_later_rule_names_its_own_line(tmp_path: Path) -> None:
    for f in POLICIES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    rules = tmp_path / "rules.yaml"
    lines = rules.read_text().splitlines()
    effects = [i for i, ln in enumerate(lines) if ln.strip().startswith("effect:")]
    last = effects[-1]
    lines[last] = lines[last].split("effect:")[0] + "effect: [not, a, string]"
    rules.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        PolicyError, match=rf"rules\.yaml:{last + 1}: at rules\.{len(effects) - 1}\."
    ):
        load_pack(tmp_path)


def test_each_call_is_recorded_with_its_own_decision_id_and_the_same_facts(tf: Tactful) -> None:
    # A repeated call reuses the record's canonical JSON around the decision id's place:
    # the stored payload must be exactly what encoding the full record gives.
    import json

    from sqlalchemy import text

    from tactful.audit import canonical

    seed_small(tf)
    calls = [tf.recommend("u1", k=3, context={"device": "mobile"}) for _ in range(3)]
    calls.append(tf.recommend("u3", k=3))
    tf.audit.flush()
    with tf._store.engine.connect() as conn:
        stored = [
            row.payload
            for row in conn.execute(
                text("SELECT payload FROM audit_log WHERE kind = 'decision' ORDER BY seq")
            )
        ][-4:]
    records = [json.loads(p) for p in stored]
    assert [r["decision_id"] for r in records] == [c.decision_id for c in calls]
    assert len({c.decision_id for c in calls}) == 4
    assert all(p == canonical(r) for p, r in zip(stored, records, strict=True))
    first = {k: v for k, v in records[0].items() if k != "decision_id"}
    assert all({k: v for k, v in r.items() if k != "decision_id"} == first for r in records[1:3])
    assert records[0]["outcome"] == "personalized" and records[3]["outcome"] == "non_personalized"
    assert tf.audit.verify().ok


def test_a_renewed_decision_differs_from_the_original_in_its_id_only() -> None:
    from tactful.policy.engine import Decision, renewed

    original = Decision(
        "0" * 32,
        "personalization",
        "personalized",
        ("personalization-consented",),
        frozenset({"user.behavior"}),
        frozenset({"alcohol"}),
        "1.0",
        "h" * 64,
        ("why",),
        frozenset({"user.location.precise"}),
        0.3,
        True,
        frozenset({"device"}),
    )
    again = renewed(original)
    assert again.id != original.id and len(again.id) == 32 and again.id.isalnum()
    assert again._replace(id=original.id) == original
    assert isinstance(again, Decision) and again.context == original.context


def test_decision_ids_are_unique_across_blocks_threads_and_a_fork() -> None:
    import os
    import threading

    from tactful.policy.engine import ID_BLOCK, decision_id

    drawn: list[str] = []

    def draw() -> None:
        drawn.extend(decision_id() for _ in range(ID_BLOCK + 7))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(drawn) == 4 * (ID_BLOCK + 7) == len(set(drawn))
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in drawn)
    # A forked child must not hand out the ids its parent drew but has not used yet.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, "".join(decision_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    child = {text[i : i + 32] for i in range(0, len(text), 32)}
    parent = {decision_id() for _ in range(8)}
    assert len(child) == 8 and not child & parent
