"""docs/recommenders.md's example runs as written and prints what its `# ->` lines say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "recommenders.md"


def test_recommenders_doc_example_prints_its_expected_lines() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    expected = re.findall(r"^# -> (.*)$", code, flags=re.M)
    assert len(expected) >= 5
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "recommenders_doc"})
    assert out.getvalue().splitlines() == expected
