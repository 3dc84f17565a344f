"""docs/experiments.md's Segments example runs as written and prints what the text says."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"


def _segments_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split("## Segments", 1)[1].split("\n## ", 1)[0]


def test_segments_example_runs_as_written() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", _segments_section(), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/experiments.md", "exec"), {"__name__": "segments_doc"})
    ana, ben, matched, skipped, exported, dp = out.getvalue().splitlines()
    assert ana == "s4" and ben != "s4"
    assert ast.literal_eval(matched) == ["sports-regulars", "dach-sports-fans"]
    assert skipped == (
        "['sports-regulars'] [{'segment': 'dach-sports-fans', 'withheld': "
        "['user.location.country']}]"
    )
    assert ast.literal_eval(exported) == ["sports-regulars"]
    assert dp == "True 0.0"


def test_segments_yaml_example_is_the_default_packs() -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", _segments_section(), flags=re.S)
    shipped = (DOC.parents[1] / "policies" / "segments.yaml").read_text(encoding="utf-8")
    for line in ("field: country", "in: [DE, AT]", "item_category: sports, within_days: 30"):
        assert line in example and line in shipped
