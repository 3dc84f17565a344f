"""docs/policies.md: every YAML example loads, validates and compiles (test cases pass), the
Python example runs, and every field of the format is documented."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tactful import Tactful, check_policies, test_policies
from tactful.policy.model import ContextField, Match, Obligations, PackMeta, Rule
from tactful.policy.testing import Expect, Given
from tests.conftest import POLICIES
from tests.policy.helpers import pack_with

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.S)


def test_the_doc_has_examples_of_every_file() -> None:
    heads = [b.splitlines()[0] for b in BLOCKS]
    assert all(h.startswith("# ") for h in heads), "each example names its file"
    names = {h[2:] for h in heads}
    assert {"pack.yaml", "rules.yaml", "context.yaml"} <= names
    assert any(n.startswith("tests/") for n in names)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0][2:] for b in BLOCKS])
def test_each_yaml_example_loads_in_a_copy_of_the_default_pack(block: str, tmp_path: Path) -> None:
    name = block.splitlines()[0][2:]
    root = pack_with(tmp_path)
    (root / name).write_text(block, encoding="utf-8")
    summary = check_policies(root)
    if name.startswith("tests/"):
        for other in (root / "tests").glob("*.yaml"):
            if other.name != Path(name).name:
                other.unlink()
        report = test_policies(root)
        assert report.ok, [r.failures for r in report.results if not r.passed]
    if name == "rules.yaml":
        ids = re.findall(r"- id: (\S+)", block)
        assert list(summary.rules) == ids


def test_every_field_of_the_format_is_documented() -> None:
    models = (Rule, Match, Obligations, ContextField, PackMeta, Given, Expect)
    missing = [
        f"{m.__name__}.{f}"
        for m in models
        for f in m.model_fields
        if f"`{f}" not in TEXT and f"{f}:" not in TEXT
    ]
    assert not missing, f"docs/policies.md does not document {missing}"


def test_the_python_example_runs(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
    url = f"sqlite:///{tmp_path / 'tactful.db'}"
    with Tactful.open(
        db_url=url, key_file=tmp_path / "master.key", policies=pack_with(tmp_path)
    ) as tf:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {"tf": tf})
        assert out.getvalue().startswith("now in force: 2026.11.2")
    assert POLICIES.is_dir()
