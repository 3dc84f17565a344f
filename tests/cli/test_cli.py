"""The real `tactful` command, run as a subprocess against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tactful import Tactful
from tests.conftest import POLICIES, seed_small


def tactful(
    *args: str, db: str, home: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "tactful_cli",
        "--db",
        db,
        "--home",
        str(home),
        "--key-file",
        str(home / "master.key"),
        "--policies",
        str(POLICIES),
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, input=stdin, timeout=120, check=False
    )


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> str:
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        seed_small(tf)
        tf.recommend("u1")
        tf.recommend("u3")
    return db_url


def test_init_creates_the_store(db_url: str, tmp_path: Path) -> None:
    result = tactful("init", db=db_url, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "store ready" in result.stdout
    assert (tmp_path / "master.key").stat().st_mode & 0o077 == 0


def test_export_to_file_and_stdout(seeded: str, tmp_path: Path) -> None:
    out = tmp_path / "u1.json"
    result = tactful("export", "u1", "--out", str(out), db=seeded, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(out.read_text())["events"]) == 3
    result = tactful("export", "u3", db=seeded, home=tmp_path)
    assert json.loads(result.stdout)["profile"] == {}


def test_erase_needs_confirmation_then_export_fails_with_one_line(
    seeded: str, tmp_path: Path
) -> None:
    refused = tactful("erase", "u1", db=seeded, home=tmp_path, stdin="n\n")
    assert refused.returncode == 1
    assert tactful("export", "u1", db=seeded, home=tmp_path).returncode == 0
    erased = tactful("erase", "u1", "--yes", db=seeded, home=tmp_path)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["events"] == 3
    after = tactful("export", "u1", db=seeded, home=tmp_path)
    assert after.returncode == 1
    assert after.stderr.strip().startswith("error: no data is held")
    assert "Traceback" not in after.stderr and len(after.stderr.strip().splitlines()) == 1


def test_audit_verify_reports_intact_and_broken_chains(seeded: str, tmp_path: Path) -> None:
    ok = tactful("audit", "verify", db=seeded, home=tmp_path)
    assert ok.returncode == 0 and "intact" in ok.stdout
    from sqlalchemy import create_engine, text

    engine = create_engine(seeded.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET kind = 'forged' WHERE seq = 3"))
    engine.dispose()
    broken = tactful("audit", "verify", db=seeded, home=tmp_path)
    assert broken.returncode == 3 and "BROKEN (modified) at entry 3" in broken.stderr


def test_report_in_json_and_markdown(seeded: str, tmp_path: Path) -> None:
    as_json = tactful("report", "audit", "--format", "json", db=seeded, home=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["decisions"]["by_purpose"]["personalization"] == {
        "non_personalized": 1,
        "personalized": 1,
    }
    consent = {p["purpose"]: p["current"] for p in report["consent"]["purposes"]}
    assert consent["personalization"] == {"given": 3}
    assert report["integrity"]["audit_chain_ok"] is True
    md = tmp_path / "report.md"
    as_md = tactful("report", "audit", "--out", str(md), db=seeded, home=tmp_path)
    assert as_md.returncode == 0 and "## Gate decisions" in md.read_text()


def test_configuration_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = tactful("init", db="mysql://nowhere/db", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: unsupported database URL scheme 'mysql'")
    assert "Traceback" not in result.stderr


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = tactful("export", db=f"sqlite:///{tmp_path / 'x.db'}", home=tmp_path)
    assert result.returncode == 2
