"""docs/reports.md: its Python example runs as written and its screenshot is there."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from tests.conftest import REPO

DOC = REPO / "docs" / "reports.md"


def test_reports_doc_example_runs(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "doc", "HOME": tmp_path / "home"})
    assert out.getvalue().split() == ["1", "True"]


def test_reports_doc_screenshot_is_a_png() -> None:
    assert (REPO / "docs" / "report-demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
