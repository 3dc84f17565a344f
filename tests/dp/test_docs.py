"""docs/privacy.md's example runs as written: an estimate inside its interval, budget left."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def test_privacy_doc_example_runs_as_written() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/privacy.md", "exec"), {"__name__": "privacy_doc"})
    count, keyed, remaining = out.getvalue().splitlines()
    value, low, high = map(float, count.split())
    assert low < value < high
    assert set(eval(keyed)) == {"m0", "m1", "m2"}
    assert remaining == "1.0"
