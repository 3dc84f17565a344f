"""Segments in the gate, the decision record, export, erasure and DP, on both databases."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from tactful import BudgetExhausted, ConsentRequired, Tactful, ValidationError
from tactful.recommend import Rule
from tactful.store import now
from tests.conftest import POLICIES, REPO

SPORTS = [{"item_id": f"s{i}", "title": f"Match {i}", "categories": ["sports"]} for i in range(6)]
MOVIES = [{"item_id": f"m{i}", "title": f"Film {i}", "categories": ["drama"]} for i in range(4)]
AGG = "analytics.aggregate"


def _seed(tf: Tactful) -> None:
    """fan: DE, 3 sports views; far: FR, 3 sports views; old: DE, sports views 40 days ago;
    casual: DE, 1 sports view; none: DE, 3 sports views, no consent."""
    tf.catalog.upsert(SPORTS + MOVIES)
    old = now() - timedelta(days=40)
    views = {
        "fan": [("s0", "view", None), ("s1", "view", None), ("s2", "view", None)],
        "far": [("s0", "view", None), ("s1", "view", None), ("s3", "view", None)],
        "old": [("s0", "view", old), ("s1", "view", old), ("s2", "view", old)],
        "casual": [("s0", "view", None), ("m0", "view", None), ("m1", "view", None)],
        "none": [("s0", "view", None), ("s1", "view", None), ("s2", "view", None)],
    }
    for user, events in views.items():
        tf.events.record_many(user, events)
        tf.profiles.put(user, {"country": "FR" if user == "far" else "DE"})
        if user != "none":
            tf.consent.grant(user, ["personalization"])


def _last_decision(tf: Tactful, user: str) -> dict[str, object]:
    decisions: list[dict[str, object]] = tf.rights.export(user)["decisions"]
    return decisions[-1]


def test_segments_are_evaluated_on_the_view_and_recorded_in_the_decision(tf: Tactful) -> None:
    _seed(tf)
    for user in ("fan", "far", "old", "casual"):
        assert tf.recommend(user).mode == "personalized"
    fan = _last_decision(tf, "fan")
    assert fan["segments"] == ["sports-regulars", "dach-sports-fans"]
    assert fan["segments_skipped"] == []
    assert _last_decision(tf, "far")["segments"] == ["sports-regulars"]
    assert _last_decision(tf, "old")["segments"] == [], "views older than 30 days do not count"
    assert _last_decision(tf, "casual")["segments"] == [], "1 sports item is fewer than 3"
    tf.settings.update("casual", discovery=0.8)
    tf.recommend("casual")
    assert _last_decision(tf, "casual")["segments"] == ["explorers"]


def test_a_segment_needing_a_withheld_category_is_skipped_and_the_decision_says_so(
    tf: Tactful,
) -> None:
    _seed(tf)
    tf.settings.update("fan", use_location=False)
    recs = tf.recommend("fan")
    assert recs.mode == "personalized"
    assert "user.location.country" not in recs.categories_used
    record = _last_decision(tf, "fan")
    assert record["segments"] == ["sports-regulars"]
    assert record["segments_skipped"] == [
        {"segment": "dach-sports-fans", "withheld": ["user.location.country"]}
    ]
    tf.settings.update("fan", use_behavior=False)
    tf.recommend("fan")
    skipped = _last_decision(tf, "fan")["segments_skipped"]
    assert skipped == [
        {"segment": "sports-regulars", "withheld": ["user.behavior.interaction"]},
        {
            "segment": "dach-sports-fans",
            "withheld": ["user.behavior.interaction", "user.location.country"],
        },
    ]
    assert tf.rights.export("fan")["inferred"]["segments"] == []


def test_non_personalized_decisions_evaluate_no_segments(tf: Tactful) -> None:
    _seed(tf)
    recs = tf.recommend("none")
    assert recs.mode == "non_personalized"
    record = _last_decision(tf, "none")
    assert "segments" not in record and "segments_skipped" not in record
    assert tf.rights.export("none")["inferred"]["segments"] == []


def test_membership_is_in_the_export_and_dropped_on_withdrawal(tf: Tactful) -> None:
    _seed(tf)
    tf.recommend("fan")
    first = tf.rights.export("fan")["inferred"]["segments"]
    assert [(s["segment"], s["purpose"]) for s in first] == [
        ("dach-sports-fans", "personalization"),
        ("sports-regulars", "personalization"),
    ]
    assert first[0]["description"].startswith("Lives in Germany or Austria")
    tf.recommend("fan")
    assert tf.rights.export("fan")["inferred"]["segments"] == first, "since stays while matched"
    tf.consent.withdraw("fan", "personalization")
    assert tf.rights.export("fan")["inferred"]["segments"] == [], "dropped at withdrawal"
    assert tf.recommend("fan").mode == "non_personalized"
    assert tf.rights.export("fan")["inferred"]["segments"] == []


def test_memberships_go_with_an_objection_or_a_switched_off_personalization(tf: Tactful) -> None:
    _seed(tf)
    tf.recommend("fan")
    tf.recommend("far")
    tf.rights.object("fan", "personalization")
    assert tf.rights.export("fan")["inferred"]["segments"] == []
    tf.settings.update("far", personalization=False)
    assert tf.rights.export("far")["inferred"]["segments"] != [], "kept until the next decision"
    assert tf.recommend("far").mode == "non_personalized"
    assert tf.rights.export("far")["inferred"]["segments"] == []


def test_membership_is_stored_only_as_ciphertext(tf: Tactful, tmp_path: Path) -> None:
    _seed(tf)
    tf.recommend("fan")
    with tf._store.begin() as conn:
        blobs = [
            bytes(r[0]) for r in conn.exec_driver_sql("SELECT ciphertext FROM segment_membership")
        ]
    assert len(blobs) == 1
    assert b"sports" not in blobs[0] and b"personalization" not in blobs[0]


def test_membership_is_erased_with_the_user(tf: Tactful) -> None:
    _seed(tf)
    tf.recommend("fan")
    tf.recommend("far")
    receipt = tf.rights.erase("fan")
    assert receipt.segment_memberships == 1
    with tf._store.begin() as conn:
        left = conn.exec_driver_sql("SELECT count(*) FROM segment_membership").scalar_one()
    assert left == 1, "only the other user's memberships remain"
    tf.profiles.put("fan", {"country": "DE"})  # the same id is a new, unknown subject
    assert tf.rights.export("fan")["inferred"]["segments"] == []


def test_rules_can_boost_items_for_a_segment(tf: Tactful) -> None:
    _seed(tf)
    boost = Rule("pin", item={"item": "s5"}, when={"segment": "dach-sports-fans"}, reason="DACH")
    tf.configure_recommendations(rules=[boost])
    assert tf.recommend("fan", k=3).item_ids[0] == "s5"
    assert "s5" not in tf.recommend("far", k=3).item_ids[:1]
    with pytest.raises(ValidationError, match=r"segment.*'nope'.*declared: sports-regulars"):
        tf.configure_recommendations(
            rules=[Rule("boost", item={"item": "s5"}, when={"segment": "nope"})]
        )


def _with_country_analytics(tmp_path: Path) -> Path:
    """The default pack, with analytics.aggregate also declaring the country category."""
    root = tmp_path / "pack"
    shutil.copytree(POLICIES, root)
    purposes = root / "purposes.yaml"
    doc = yaml.safe_load(purposes.read_text())
    doc["purposes"][AGG]["data_categories"].append("user.location.country")
    purposes.write_text(yaml.safe_dump(doc))
    return root


def test_segment_sizes_are_released_with_dp_and_charge_the_budget(tf: Tactful) -> None:
    _seed(tf)
    for user in ("fan", "far", "old", "casual", "none"):
        tf.recommend(user)
        tf.consent.grant(user, [AGG])
    tf.aggregates.grant("segments", 50.0, operator="ops")
    runs = [
        tf.aggregates.segment_sizes(["sports-regulars"], epsilon=1.0, dataset="segments")
        for _ in range(40)
    ]
    assert tf.aggregates.budget("segments").spent == pytest.approx(40.0)
    # One segment, one row per user: discrete Laplace of scale 1 (standard deviation 1.36),
    # so the mean of 40 is within 0.85 of the truth (fan and far) except with probability
    # below 1e-4.
    est = runs[0].by_key["sports-regulars"]
    assert est.scale == pytest.approx(1.0) and est.low is not None and est.high is not None
    mean = sum(r.by_key["sports-regulars"].value for r in runs) / len(runs)
    assert mean == pytest.approx(2, abs=0.85)
    assert runs[0].kind == "segment_sizes" and runs[0].source == "segments"
    with pytest.raises(ConsentRequired, match=r"user\.location\.country"):
        tf.aggregates.segment_sizes(["dach-sports-fans"], epsilon=1.0, dataset="segments")
    with pytest.raises(ValidationError, match="segment 'nope' is not declared"):
        tf.aggregates.segment_sizes(["nope"], epsilon=1.0, dataset="segments")
    assert tf.aggregates.budget("segments").spent == pytest.approx(40.0), "refusals spend nothing"


def test_segment_sizes_refuse_when_the_budget_is_exhausted(tf: Tactful) -> None:
    _seed(tf)
    tf.recommend("fan")
    tf.consent.grant("fan", [AGG])
    with pytest.raises(BudgetExhausted, match="no privacy budget yet"):
        tf.aggregates.segment_sizes(["sports-regulars"], epsilon=0.5)
    tf.aggregates.grant("default", 0.75, operator="ops")
    tf.aggregates.segment_sizes(["sports-regulars"], epsilon=0.5)
    with pytest.raises(BudgetExhausted, match=r"0\.25 of 0\.75 is left"):
        tf.aggregates.segment_sizes(["sports-regulars"], epsilon=0.5)
    assert tf.aggregates.budget().spent == pytest.approx(0.5)
    kinds = [r.kind for r in tf.aggregates.releases()]
    assert kinds == ["segment_sizes"]


def test_segment_sizes_and_metrics_count_only_covered_members(db_url: str, tmp_path: Path) -> None:
    with Tactful.open(
        db_url=db_url, key_file=tmp_path / "master.key", policies=_with_country_analytics(tmp_path)
    ) as tf:
        _seed(tf)
        for user in ("fan", "far", "old", "casual"):
            tf.recommend(user)
        for user in ("fan", "far"):
            tf.consent.grant(user, [AGG])
        tf.aggregates.grant("default", 200.0, operator="ops")
        keys = ["sports-regulars", "dach-sports-fans", "explorers"]
        runs = [tf.aggregates.segment_sizes(keys, epsilon=1.0) for _ in range(40)]
        # A user counts in up to 3 segments: sensitivity 3, scale 3 (standard deviation 4.2);
        # the mean of 40 is within 2.6 of the truth except with probability below 1e-4.
        assert runs[0].by_key["explorers"].scale == pytest.approx(3.0)
        mean = {k: sum(r.by_key[k].value for r in runs) / len(runs) for k in keys}
        assert mean["sports-regulars"] == pytest.approx(2, abs=2.6)
        assert mean["dach-sports-fans"] == pytest.approx(1, abs=2.6)
        assert mean["explorers"] == pytest.approx(0, abs=2.6)
        # Events of members per segment: fan and far, 3 events each, in sports-regulars.
        metrics = [
            tf.aggregates.segment_metrics(
                "events",
                segments=["sports-regulars"],
                column="hour",
                bounds=(0, 23),
                epsilon=1.0,
                max_contributions=3,
            )
            for _ in range(100)
        ]
        group = metrics[0].by_group["sports-regulars"]
        assert metrics[0].kind == "segment_metrics" and set(group) == {"count", "mean"}
        # Half the epsilon on counts: scale 6, so the mean of 100 has standard deviation 0.85
        # and is within 3.5 of 6 except with probability below 1e-4.
        assert group["count"].scale == pytest.approx(6.0)
        mean_count = sum(m.by_group["sports-regulars"]["count"].value for m in metrics) / 100
        assert mean_count == pytest.approx(6, abs=3.5)
        tf.rights.erase("fan")
        after = [tf.aggregates.segment_sizes(["dach-sports-fans"], epsilon=1.0) for _ in range(40)]
        assert sum(r.by_key["dach-sports-fans"].value for r in after) / 40 == pytest.approx(
            0, abs=0.85
        ), "an erased member is never counted again"


HEALTH = """\
segments:
  - id: health-curious
    description: Told us about a health interest.
    purposes: [personalization]
    when: {field: health_interest, present: true}
    needs: [user.special]
"""


def test_a_special_category_segment_needs_explicit_consent(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(POLICIES, root)
    (root / "segments.yaml").write_text(HEALTH)
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=root) as tf:
        tf.catalog.upsert(SPORTS)
        tf.profiles.put("ana", {"health_interest": "running"})
        tf.consent.grant("ana", ["personalization"])
        tf.recommend("ana")
        record = _last_decision(tf, "ana")
        assert record["segments"] == []
        assert record["segments_skipped"] == [
            {"segment": "health-curious", "withheld": ["user.special.health"]}
        ], "GDPR Art. 9: without explicit consent the special category is not read"
        tf.consent.grant("ana", ["personalization"], explicit=True)
        tf.recommend("ana")
        assert _last_decision(tf, "ana")["segments"] == ["health-curious"]
        exported = tf.rights.export("ana")["inferred"]["segments"]
        assert [s["segment"] for s in exported] == ["health-curious"]
        assert "running" not in str(_last_decision(tf, "ana")), "ids only, never the value"


def test_memberships_are_in_the_csv_export_and_match_the_schema(tf: Tactful) -> None:
    _seed(tf)
    tf.recommend("fan")
    buffer = io.BytesIO()
    tf.rights.export_to("fan", buffer, format="csv")
    with zipfile.ZipFile(buffer) as zf:
        rows = list(csv.reader(io.TextIOWrapper(zf.open("inferred.csv"), encoding="utf-8")))
    segment_rows = [r for r in rows if r[0] == "segment:personalization"]
    assert [r[1] for r in segment_rows] == ["dach-sports-fans", "sports-regulars"]
    schema = json.loads((REPO / "docs" / "export-schema.json").read_text(encoding="utf-8"))
    doc = tf.rights.export("fan")
    jsonschema.Draft202012Validator(schema).validate(doc)
    item = schema["properties"]["inferred"]["properties"]["segments"]["items"]
    assert set(item["required"]) == set(doc["inferred"]["segments"][0])
