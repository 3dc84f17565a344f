"""`tactful keys ...` and `tactful retention run`, run as subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tactful import Tactful
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES


def test_keys_status_rotate_and_status_again(db_url: str, tmp_path: Path) -> None:
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        tf.profiles.put_many({f"u{i}": {"country": "DE"} for i in range(5)})
    before = tactful("keys", "status", "--json", db=db_url, home=tmp_path)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["versions"] == {"1": 5}
    rotated = tactful("keys", "rotate", "--batch-size", "2", db=db_url, home=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "rotated to master key version 2: 5 data keys rewrapped" in rotated.stdout
    assert "retired versions: 1" in rotated.stdout
    after = json.loads(tactful("keys", "status", "--json", db=db_url, home=tmp_path).stdout)
    assert after["current"] == 2 and after["versions"] == {"2": 5}
    table = tactful("keys", "status", db=db_url, home=tmp_path)
    assert "current" in table.stdout and table.returncode == 0


def test_retention_run_reports_what_it_deleted(db_url: str, tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(days=1000)
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        tf.events.record_batch([("u1", "a", "view", old), ("u1", "b", "view", None)])
    done = tactful("retention", "run", "--json", db=db_url, home=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"] == {"user.behavior.interaction": 1} and report["total"] == 1
    again = tactful("retention", "run", db=db_url, home=tmp_path)
    assert "0 rows deleted" in again.stdout


def test_retention_run_purges_erased_users_rows(db_url: str, tmp_path: Path) -> None:
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        tf.events.record_batch([("u1", "a", "view", None), ("u1", "b", "view", None)])
        tf.settings.update("u1", discovery=0.5)
        tf.events.record("u2", "a")
    erased = tactful("erase", "u1", "--yes", db=db_url, home=tmp_path)
    assert erased.returncode == 0, erased.stderr
    receipt = json.loads(erased.stdout)
    assert receipt["purge_pending"] and receipt["events"] == 2 and receipt["purged_at"] is None
    done = tactful("retention", "run", "--batch-size", "1", db=db_url, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "erased users' rows purged: 4" in done.stdout  # 2 events, settings + history
    assert "erased users now without any row: 1" in done.stdout
    shown = tactful("requests", "show", receipt["request_id"], "--json", db=db_url, home=tmp_path)
    stored = json.loads(shown.stdout)["receipt"]
    assert stored["purged_at"] and not stored["purge_pending"]
    again = json.loads(tactful("retention", "run", "--json", db=db_url, home=tmp_path).stdout)
    assert again["purged"] == {} and again["total"] == 0
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        assert len(tf.rights.export("u2")["events"]) == 1


def test_group_readable_key_file_makes_the_cli_fail_with_the_fix(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tactful.db'}"
    assert tactful("init", db=db, home=tmp_path).returncode == 0
    (tmp_path / "master.key").chmod(0o644)
    done = tactful("keys", "status", db=db, home=tmp_path)
    assert done.returncode == 1
    assert "chmod 600" in done.stderr and "Traceback" not in done.stderr
