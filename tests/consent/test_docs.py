"""docs/consent.md's example runs as written and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "consent.md"


def test_consent_doc_example_runs_and_prints_its_comments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TACTFUL_DB_URL", "TACTFUL_KEY_FILE", "TACTFUL_KEYSTORE_URL", "TACTFUL_HOME"):
        monkeypatch.delenv(name, raising=False)
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    expected = [m.strip() for m in re.findall(r"#\s*(.+)$", code, flags=re.M)]
    expected = [e for e in expected if not e.startswith("one call")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs"})
    assert out.getvalue().splitlines() == expected
