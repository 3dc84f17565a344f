"""docs/experiments.md's worked example (its Experiments section) runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"


def test_experiments_doc_example_runs_as_written() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Experiments") :]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/experiments.md", "exec"), {"__name__": "experiments_doc"})
    outsider, control, similar, diff, remaining = out.getvalue().splitlines()
    assert outsider == "control False"
    exposed = 0
    for line, name in ((control, "control"), (similar, "similar")):
        variant, count, interval = line.split()
        low, high = map(float, interval.split(".."))
        assert variant == name and 0.0 <= low <= high <= 1.0
        exposed += int(count)
    assert abs(exposed - 45) <= 25, "45 enrolled users, each counted once, plus noise"
    assert diff.startswith("similar vs control ")
    assert remaining == "0.0"
