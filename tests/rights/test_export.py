"""Export: a real export validates against the published schema; JSON and CSV stream."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

import tactful.rights.export as export_module
from tactful import SubjectNotFound, Tactful, ValidationError
from tests.conftest import REPO, seed_small

SCHEMA = json.loads((REPO / "docs" / "export-schema.json").read_text(encoding="utf-8"))


_formats = jsonschema.FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _aware_time(value: object) -> bool:
    # jsonschema checks date-time only with an extra package; this one needs a UTC offset.
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def _validate(document: object) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=_formats).validate(document)


def _rich_user(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "DE", "favorite_genres": ["drama", "noir"]})
    tf.settings.update("u1", discovery=0.7, excluded_topics=["horror"])
    tf.recommend("u1")
    tf.rights.object("u1", "marketing.email")


def test_a_real_export_validates_against_the_published_schema(tf: Tactful) -> None:
    _rich_user(tf)
    doc = tf.rights.export("u1")
    _validate(doc)
    assert doc["profile"] == {"country": "DE", "favorite_genres": ["drama", "noir"]}
    assert sorted(e["item"] for e in doc["events"]) == ["a", "b", "e"]
    assert [o["purpose"] for o in doc["objections"]] == ["marketing.email"]
    assert doc["settings"]["excluded_topics"] == ["horror"]
    assert doc["settings_history"], "every saved version of the settings is exported"
    assert doc["decisions"][0]["outcome"] == "personalized"
    assert doc["inferred"]["category_affinity"] == {"action": 0.6667, "horror": 0.3333}
    assert "e-mail delivery processor" in doc["recipients"]
    assert {r["kind"] for r in doc["requests"]} == {"objection", "access"}


def test_streamed_json_equals_the_in_memory_export(tf: Tactful, tmp_path: Path) -> None:
    _rich_user(tf)
    target = tmp_path / "u1.json"
    result = tf.rights.export_to("u1", target)
    streamed = json.loads(target.read_text(encoding="utf-8"))
    _validate(streamed)
    assert result.events == 3 and result.decisions == 1 and result.format == "json"
    in_memory = tf.rights.export("u1")
    for key in ("profile", "events", "consent_history", "settings", "decisions", "inferred"):
        assert streamed[key] == in_memory[key], key
    assert streamed["request_id"] == result.request_id
    assert tf.rights.requests.show(result.request_id).status == "completed"


def test_long_histories_are_paged_without_losing_or_repeating_events(
    tf: Tactful, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_small(tf)
    monkeypatch.setattr(export_module, "CHUNK", 7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Many events share one timestamp: the paging key must break ties by id.
    events = [(f"i{n}", "view", start + timedelta(minutes=n // 5)) for n in range(53)]
    tf.events.record_many("long", events)
    out = io.BytesIO()
    assert tf.rights.export_to("long", out).events == 53
    doc = json.loads(out.getvalue())
    assert sorted(e["item"] for e in doc["events"]) == sorted(i for i, _, _ in events)
    times = [e["ts"] for e in doc["events"]]
    assert times == sorted(times), "oldest first"


def test_csv_export_is_a_zip_of_one_csv_per_section(tf: Tactful, tmp_path: Path) -> None:
    _rich_user(tf)
    target = tmp_path / "u1.zip"
    result = tf.rights.export_to("u1", target, format="csv")
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
        assert {"events.csv", "profile.csv", "consent_history.csv", "decisions.csv"} <= names
        assert {"settings_history.csv", "inferred.csv", "purposes.csv", "README.txt"} <= names

        def rows(name: str) -> list[dict[str, str]]:
            return list(csv.DictReader(io.TextIOWrapper(zf.open(name), encoding="utf-8")))

        assert sorted(r["item"] for r in rows("events.csv")) == ["a", "b", "e"]
        profile = {r["field"]: r["value"] for r in rows("profile.csv")}
        assert profile == {"country": "DE", "favorite_genres": '["drama", "noir"]'}
        assert rows("subject.csv")[0]["request_id"] == result.request_id
        assert "Art. 15(1)(h)" in zf.read("README.txt").decode()


def test_a_failed_export_leaves_no_file(tf: Tactful, tmp_path: Path) -> None:
    seed_small(tf)
    target = tmp_path / "nobody.json"
    with pytest.raises(SubjectNotFound):
        tf.rights.export_to("nobody", target)
    with pytest.raises(ValidationError, match="json or csv"):
        tf.rights.export_to("u1", target, format="xml")  # type: ignore[arg-type]
    assert list(tmp_path.glob("*nobody*")) == [] and not target.exists()


def test_an_export_of_a_restricted_user_still_works(tf: Tactful) -> None:
    seed_small(tf)
    tf.rights.restrict("u1")
    doc = tf.rights.export("u1")
    _validate(doc)
    assert doc["subject"]["status"] == "restricted"
