"""The layering of shared/DESIGN.md, checked on the import statements of every module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import tactful

SDK = Path(tactful.__file__).resolve().parent
CLI = SDK.parents[1] / "cli" / "tactful_cli"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _area_imports(area: str) -> set[str]:
    root = SDK / area
    files = list(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    return set().union(*(_imports(f) for f in files))


def _top(name: str) -> str:
    return name.split(".")[0]


def test_recommenders_import_only_numpy_scipy_and_themselves() -> None:
    bad = {
        m
        for m in _area_imports("recommend")
        if _top(m) not in STDLIB | {"numpy", "scipy"} and not m.startswith("tactful.recommend")
    }
    assert not bad, f"tactful.recommend must stay pure, but imports {sorted(bad)}"


def test_crypto_imports_only_cryptography() -> None:
    bad = {
        m
        for m in _area_imports("crypto")
        if _top(m) not in STDLIB | {"cryptography"}
        and not m.startswith(("tactful.crypto", "tactful.errors"))
    }
    assert not bad, sorted(bad)


def test_store_imports_only_crypto_among_tactful_areas() -> None:
    bad = {
        m
        for m in _area_imports("store")
        if m.startswith("tactful.")
        and not m.startswith(("tactful.store", "tactful.crypto", "tactful.errors"))
    }
    assert not bad, sorted(bad)


@pytest.mark.parametrize("area", ["consent", "settings", "audit"])
def test_state_areas_build_on_the_store_only(area: str) -> None:
    allowed = ("tactful.store", "tactful.errors", f"tactful.{area}", "tactful.consent.purposes")
    bad = {m for m in _area_imports(area) if m.startswith("tactful") and not m.startswith(allowed)}
    bad |= {m for m in _area_imports(area) if _top(m) in {"cryptography", "numpy", "scipy"}}
    assert not bad, sorted(bad)


def test_policy_never_touches_store_internals_or_recommenders() -> None:
    imports = _area_imports("policy")
    bad = {
        m
        for m in imports
        if m.startswith(("tactful.store.", "tactful.recommend", "tactful.crypto"))
        or _top(m) in {"sqlalchemy", "sqlmodel", "cryptography"}
    }
    assert not bad, sorted(bad)


def test_only_store_and_table_owning_areas_import_the_database_library() -> None:
    for area in ("policy", "recommend", "crypto", "client", "models", "config", "errors"):
        db = {m for m in _area_imports(area) if _top(m) in {"sqlalchemy", "sqlmodel"}}
        assert not db, f"tactful.{area} imports {sorted(db)}"


def test_cli_uses_only_the_public_api() -> None:
    imports = set().union(*(_imports(f) for f in CLI.rglob("*.py")))
    private = {m for m in imports if m.startswith("tactful.")}
    assert not private, f"the CLI must import from `tactful` only, not {sorted(private)}"


def test_public_api_is_complete_sorted_and_renamed() -> None:
    assert list(tactful.__all__) == sorted(tactful.__all__)
    public = {n for n in dir(tactful) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(tactful.__all__), public - set(tactful.__all__)
    for name in tactful.__all__:
        assert getattr(tactful, name).__module__ == "tactful", name


def test_segments_build_on_store_and_settings_only() -> None:
    allowed = ("tactful.segments", "tactful.store", "tactful.settings", "tactful.errors")
    imports = _area_imports("segments")
    bad = {m for m in imports if m.startswith("tactful") and not m.startswith(allowed)}
    assert not bad, sorted(bad)
    db = set().union(
        *(_imports(f) for f in (SDK / "segments").rglob("*.py") if f.name != "membership.py")
    )
    assert not {m for m in db if _top(m) in {"sqlalchemy", "sqlmodel"}}


def test_experiments_build_on_store_consent_dp_and_audit_only() -> None:
    # A table-owning area (like consent or dp): it runs its own queries, reads consent and
    # spends DP budget, but never reaches the policy, the recommenders, rights or raw crypto.
    allowed = (
        "tactful.experiments",
        "tactful.store",
        "tactful.consent",
        "tactful.dp",
        "tactful.audit",
        "tactful.errors",
    )
    imports = _area_imports("experiments")
    bad = {m for m in imports if m.startswith("tactful") and not m.startswith(allowed)}
    bad |= {m for m in imports if _top(m) in {"cryptography", "opendp", "scipy"}}
    assert not bad, sorted(bad)
