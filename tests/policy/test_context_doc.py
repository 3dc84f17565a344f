"""docs/experiments.md's Context example runs as written and prints what its `# ->` lines say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"


def test_context_doc_example_prints_its_expected_lines() -> None:
    section = DOC.read_text(encoding="utf-8").split("## Context", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    expected = re.findall(r"^# -> (.*)$", code, flags=re.M)
    assert len(expected) == 3
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "context_doc"})
    assert out.getvalue().splitlines() == expected
