"""The README's quickstart runs exactly as written, and its two set-up commands match CI."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_quickstart_runs_as_written() -> None:
    (code,) = _blocks("python")
    assert 10 <= len(code.strip().splitlines()) <= 25
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    mode, _ = lines[0].split(" ", 1)
    assert mode == "personalized" and "m2" in lines[0]
    assert lines[1:] == ["non_personalized", "3", "True"]


def test_ci_runs_the_readme_test_command() -> None:
    setup, tests = _blocks("bash")
    test_command = tests.strip().split(" && ", 2)[2]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci
    assert "tactful demo" in setup
