"""Helpers for policy tests: a copy of the default pack with other rules, and a state."""

from __future__ import annotations

import shutil
from pathlib import Path

from tactful.policy import CompiledPolicy, SubjectState, load_pack
from tactful.settings import Settings
from tests.conftest import POLICIES


def pack_with(tmp_path: Path, rules: str | None = None, **files: str) -> Path:
    """A copy of the default pack in tmp_path/pack, with rules.yaml (and other files) replaced."""
    root = tmp_path / "pack"
    shutil.copytree(POLICIES, root)
    if rules is not None:
        (root / "rules.yaml").write_text(rules, encoding="utf-8")
    for name, text in files.items():
        (root / name.replace("_yaml", ".yaml")).write_text(text, encoding="utf-8")
    return root


def compiled(root: Path) -> CompiledPolicy:
    return CompiledPolicy(load_pack(root))


def state(
    consent: tuple[str, ...] = ("personalization",),
    *,
    status: str = "active",
    settings: Settings | None = None,
    minor: bool = False,
    objections: tuple[str, ...] = (),
    jurisdiction: str | None = None,
    parental: tuple[str, ...] = (),
) -> SubjectState:
    return SubjectState(
        status,
        frozenset(consent) - frozenset(objections),
        settings or Settings(),
        jurisdiction,
        minor=minor,
        objections=frozenset(objections),
        parental=frozenset(parental),
    )
