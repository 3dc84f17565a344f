"""segments.yaml is validated against the pack at load; errors name the file, line and key."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tactful import PolicyError
from tactful.policy import load_pack
from tactful.segments import CompiledSegments
from tests.conftest import POLICIES


def _pack_with(tmp_path: Path, segments: str) -> Path:
    root = tmp_path / "pack"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(POLICIES, root)
    (root / "segments.yaml").write_text(segments)
    return root


def _error(tmp_path: Path, segments: str) -> str:
    with pytest.raises(PolicyError) as info:
        load_pack(_pack_with(tmp_path, segments))
    return str(info.value)


def _line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


GOOD = """\
segments:
  - id: fans
    purposes: [personalization]
    when:
      all:
        - field: country
          in: [DE, AT]
        - behavior: {item_category: sports, within_days: 30, at_least: 3}
    needs: [user.location.country, user.behavior]
"""


def test_the_default_pack_declares_segments_and_compiles_them() -> None:
    pack = load_pack(POLICIES)
    compiled = CompiledSegments(pack.segments, pack.schema)
    assert compiled.ids() == ["sports-regulars", "dach-sports-fans", "explorers"]
    assert compiled.segments["dach-sports-fans"].reads == {
        "user.location.country",
        "user.behavior.interaction",
    }
    assert compiled.segments["explorers"].reads == frozenset()


def test_segments_change_the_policy_hash(tmp_path: Path) -> None:
    before = load_pack(POLICIES).content_hash
    after = load_pack(_pack_with(tmp_path, GOOD)).content_hash
    assert before != after


def test_a_pack_without_segments_yaml_has_no_segments(tmp_path: Path) -> None:
    root = _pack_with(tmp_path, GOOD)
    (root / "segments.yaml").unlink()
    assert load_pack(root).segments.segments == ()


@pytest.mark.parametrize(
    ("old", "new", "at", "message"),
    [
        ("field: country", "field: countri", "field: countri", "field 'countri' is not declared"),
        ("in: [DE, AT]", "in: [DE, NO]", "in: [DE, NO]", "quote it"),
        ("in: [DE, AT]", "gt: 3", "gt: 3", "compares numbers only"),
        ("in: [DE, AT]", "sorted: true", "sorted: true", "Extra inputs are not permitted"),
        ("at_least: 3}", "at_least: -1}", "behavior:", "greater than or equal to 0"),
        (
            "needs: [user.location.country, user.behavior]",
            "needs: [user.behavior]",
            "needs:",
            "reads data category 'user.location.country', which needs does not declare",
        ),
        (
            "needs: [user.location.country, user.behavior]",
            "needs: [user.location.country, user.behavior, user.contact]",
            "needs:",
            "needs declares 'user.contact', but no condition of the rule reads it",
        ),
        (
            "purposes: [personalization]",
            "purposes: [analytics.aggregate]",
            "purposes:",
            "not a profiling purpose",
        ),
        (
            "purposes: [personalization]",
            "purposes: [marketing.targeted]",
            "needs:",
            "purpose 'marketing.targeted' does not declare data category 'user.location.country'",
        ),
        ("purposes: [personalization]", "purposes: [ads]", "purposes:", "purpose 'ads'"),
        ("- id: fans", "- id: Fans!", "- id: Fans!", "String should match pattern"),
    ],
)
def test_bad_segments_are_rejected_naming_file_line_and_key(
    tmp_path: Path, old: str, new: str, at: str, message: str
) -> None:
    text = GOOD.replace(old, new)
    assert text != GOOD
    error = _error(tmp_path, text)
    assert f"segments.yaml:{_line(text, at)}: at segments.0." in error
    assert message in error


def test_a_condition_needs_exactly_one_kind_and_an_operator(tmp_path: Path) -> None:
    both = GOOD.replace("- field: country\n", "- field: country\n          setting: discovery\n")
    assert "exactly one of field, setting, behavior" in _error(tmp_path, both)
    bare = GOOD.replace("          in: [DE, AT]\n", "")
    error = _error(tmp_path, bare)
    assert "a field condition needs an operator" in error
    assert re.search(rf"segments\.yaml:{_line(bare, 'field: country')}: at segments\.0\.", error)
    stray = GOOD.replace("- behavior: {", "- eq: 1\n          behavior: {")
    assert "belong to a field or setting condition" in _error(tmp_path, stray)


def test_unknown_settings_and_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    setting = GOOD.replace(
        "- field: country\n          in: [DE, AT]", "- setting: volume\n          ge: 1"
    )
    assert "setting 'volume' is not a tactful setting" in _error(tmp_path, setting)
    twice = GOOD + GOOD.split("segments:\n", 1)[1]
    assert "segment id 'fans' is used twice" in _error(tmp_path, twice)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    assert re.search(r"segments\.yaml line \d+: not valid YAML", _error(tmp_path, "segments: [\n"))
