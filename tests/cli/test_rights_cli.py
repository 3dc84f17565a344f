"""The rights and requests commands, run as the real `tactful` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tactful import Tactful
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES, seed_small


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> str:
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        seed_small(tf)
        tf.recommend("u1")
    return db_url


def _one_line_error(result: object, code: int, starts: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert stderr.strip().startswith(starts), stderr


def test_export_as_a_zip_of_csv_and_a_json_summary(store: str, tmp_path: Path) -> None:
    target = tmp_path / "u1.zip"
    result = tactful(
        "export", "u1", "--format", "csv", "--out", str(target), "--json", db=store, home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events"] == 3 and summary["format"] == "csv"
    with zipfile.ZipFile(target) as zf:
        assert zf.read("events.csv").decode().count("\n") == 4
    no_out = tactful("export", "u1", "--format", "csv", db=store, home=tmp_path)
    assert no_out.returncode == 2 and "needs --out" in no_out.stderr


def test_erase_with_a_tracked_request_and_refusal_without_yes(store: str, tmp_path: Path) -> None:
    opened = tactful("requests", "open", "erasure", "u2", "--json", db=store, home=tmp_path)
    assert opened.returncode == 0, opened.stderr
    request_id = json.loads(opened.stdout)["id"]
    refused = tactful("erase", "u2", "--request", request_id, db=store, home=tmp_path, stdin="n\n")
    assert refused.returncode == 1
    done = tactful("erase", "u2", "--request", request_id, "--yes", db=store, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["request_id"] == request_id
    shown = tactful("requests", "show", request_id, "--json", db=store, home=tmp_path)
    assert json.loads(shown.stdout)["status"] == "completed"
    again = tactful("erase", "u2", "--yes", db=store, home=tmp_path)
    _one_line_error(again, 1, "error: no data is held")


def test_bulk_erase_from_a_file_with_dry_run_and_summary(store: str, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\nghost\nu3\nu1\n", encoding="utf-8")
    dry = tactful("erase", "--from-file", str(users), "--dry-run", db=store, home=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "2 would be erased, 1 not found" in dry.stdout
    assert tactful("export", "u1", db=store, home=tmp_path).returncode == 0
    bulk = tactful("erase", "--from-file", str(users), "--yes", "--json", db=store, home=tmp_path)
    assert bulk.returncode == 0, bulk.stderr
    summary = json.loads(bulk.stdout)
    assert (summary["erased"], summary["not_found"], summary["dry_run"]) == (2, 1, False)
    assert tactful("export", "u1", db=store, home=tmp_path).returncode == 1
    refused = tactful("erase", "--from-file", str(users), db=store, home=tmp_path, stdin="n\n")
    assert refused.returncode == 1


def test_erase_usage_errors_exit_2(store: str, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("u1\n", encoding="utf-8")
    both = tactful("erase", "u1", "--from-file", str(users), db=store, home=tmp_path)
    assert both.returncode == 2 and "either USER or --from-file" in both.stderr
    neither = tactful("erase", db=store, home=tmp_path)
    assert neither.returncode == 2
    dry_one = tactful("erase", "u1", "--dry-run", db=store, home=tmp_path)
    assert dry_one.returncode == 2
    missing = tactful("erase", "--from-file", str(tmp_path / "nope.csv"), db=store, home=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_rectify_restrict_and_object(store: str, tmp_path: Path) -> None:
    fixed = tactful("rectify", "u1", "birth_year", "1990", "--json", db=store, home=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["receipt"] == {"rectified": ["birth_year"]}
    bad = tactful("rectify", "u1", "birth_year", "soon", db=store, home=tmp_path)
    _one_line_error(bad, 1, "error: profile field 'birth_year' takes a value of type int")
    restricted = tactful("restrict", "u1", "--json", db=store, home=tmp_path)
    assert json.loads(restricted.stdout)["kind"] == "restriction"
    exported = json.loads(tactful("export", "u1", db=store, home=tmp_path).stdout)
    assert exported["subject"]["status"] == "restricted"
    lifted = tactful("unrestrict", "u1", "--json", db=store, home=tmp_path)
    assert json.loads(lifted.stdout) == {"unrestricted": True}
    objected = tactful("object", "u1", "--purpose", "marketing.email", db=store, home=tmp_path)
    assert objected.returncode == 0 and "objection to 'marketing.email' recorded" in objected.stdout
    unknown = tactful("object", "u1", "--purpose", "spam", db=store, home=tmp_path)
    _one_line_error(unknown, 1, "error: purpose 'spam' is not declared")
    lift = tactful(
        "object", "u1", "--purpose", "marketing.email", "--lift", "--json", db=store, home=tmp_path
    )
    assert json.loads(lift.stdout) == {"lifted": True, "purpose": "marketing.email"}


def test_requests_open_extend_list_overdue_and_complete(store: str, tmp_path: Path) -> None:
    opened = tactful(
        "requests", "open", "access", "u3", "--ccpa", "--json", db=store, home=tmp_path
    )
    info = json.loads(opened.stdout)
    assert info["profile"] == "ccpa" and info["acknowledge_due_at"]
    no_reason = tactful("requests", "extend", info["id"], db=store, home=tmp_path)
    assert no_reason.returncode == 2
    extended = tactful(
        "requests",
        "extend",
        info["id"],
        "--reason",
        "many accounts",
        "--json",
        db=store,
        home=tmp_path,
    )
    assert json.loads(extended.stdout)["extension"] == 45
    listed = tactful("requests", "list", "--overdue", "--json", db=store, home=tmp_path)
    assert json.loads(listed.stdout) == []
    everything = json.loads(tactful("requests", "list", "--json", db=store, home=tmp_path).stdout)
    assert info["id"] in {r["id"] for r in everything}
    paused = tactful("requests", "pause", info["id"], "--json", db=store, home=tmp_path)
    assert json.loads(paused.stdout)["status"] == "paused"
    blocked = tactful("requests", "complete", info["id"], db=store, home=tmp_path)
    _one_line_error(blocked, 1, "error: request is paused")
    tactful("requests", "resume", info["id"], db=store, home=tmp_path)
    closed = tactful(
        "requests",
        "complete",
        info["id"],
        "--note",
        "sent by post",
        "--json",
        db=store,
        home=tmp_path,
    )
    assert json.loads(closed.stdout)["receipt"] == {"note": "sent by post"}
    unknown = tactful("requests", "show", "f" * 32, db=store, home=tmp_path)
    _one_line_error(unknown, 1, "error: no request has this id")
    table = tactful("requests", "list", db=store, home=tmp_path)
    assert table.returncode == 0 and info["id"] in table.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["export"],
        ["erase"],
        ["rectify"],
        ["restrict"],
        ["unrestrict"],
        ["object"],
        ["requests", "list"],
        ["requests", "show"],
        ["requests", "open"],
        ["requests", "extend"],
        ["requests", "pause"],
        ["requests", "resume"],
        ["requests", "acknowledge"],
        ["requests", "complete"],
    ],
)
def test_every_rights_command_has_help_with_an_example(command: list[str], tmp_path: Path) -> None:
    result = tactful(*command, "--help", db=f"sqlite:///{tmp_path / 'x.db'}", home=tmp_path)
    assert result.returncode == 0 and "Example: tactful " + command[0] in result.stdout
