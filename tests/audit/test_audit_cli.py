"""`tactful audit verify` and `tactful audit checkpoint`, run as real commands on a damaged
database (SQLite and PostgreSQL): exit code 3, a readable line, and --json for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tactful import Tactful
from tests.audit import damage
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES, seed_small

Damage = Callable[[Tactful], None]
CASES: list[tuple[str, Damage, str, int]] = [
    ("modified", lambda tf: damage.modify_payload(tf, 150), "modified", 150),
    ("deleted", lambda tf: damage.delete_entry(tf, 150), "deleted", 150),
    ("reordered", lambda tf: damage.swap(tf, 120, 180), "reordered", 120),
    ("truncated", lambda tf: damage.cut_tail(tf, 230), "truncated", 231),
    ("forged", lambda tf: damage.forge_from(tf, 150), "forged", 101),
    ("forged-checkpoint", lambda tf: damage.alter_checkpoint(tf, 200), "forged", 200),
]


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> str:
    """250 entries, checkpoints at 100 and 200 and one signed on demand at 250."""
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        seed_small(tf)
        tf.recommend("u1")
        damage.grow(tf, 250 - tf.audit.verify().entries)
    done = tactful("audit", "checkpoint", "--json", db=db_url, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"seq": 250}
    return db_url


def test_verify_reports_an_intact_chain_and_its_checkpoint(store: str, tmp_path: Path) -> None:
    shown = tactful("audit", "verify", db=store, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "audit chain intact: 250 entries" in shown.stdout
    assert "verified to signed checkpoint 250 (3 signed checkpoints)" in shown.stdout
    doc = json.loads(tactful("audit", "verify", "--json", db=store, home=tmp_path).stdout)
    assert doc["ok"] is True and doc["entries"] == 250 and doc["damage"] is None
    assert doc["checkpoints"] == 3 and doc["checkpoint"]["seq"] == 250
    assert doc["checkpoint"]["head"] == doc["head"] and doc["unsigned_tail"] == 0


@pytest.mark.parametrize(("name", "harm", "kind", "first_bad"), CASES, ids=[c[0] for c in CASES])
def test_verify_names_the_damage_and_exits_3(
    store: str, tmp_path: Path, name: str, harm: Damage, kind: str, first_bad: int
) -> None:
    with Tactful.open(db_url=store, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        harm(tf)
    shown = tactful("audit", "verify", db=store, home=tmp_path)
    assert shown.returncode == 3
    line = shown.stderr.strip()
    assert line.startswith(f"audit chain BROKEN ({kind}) at entry {first_bad}: "), line
    assert "Traceback" not in shown.stderr
    as_json = tactful("audit", "verify", "--json", db=store, home=tmp_path)
    assert as_json.returncode == 3
    doc = json.loads(as_json.stdout)
    assert (doc["ok"], doc["damage"], doc["first_bad_seq"]) == (False, kind, first_bad)
    assert doc["problem"]


def test_checkpoint_of_an_empty_log_signs_nothing(db_url: str, tmp_path: Path) -> None:
    done = tactful("audit", "checkpoint", db=db_url, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "empty" in done.stdout


def test_checkpoint_refuses_a_rewritten_tail_with_exit_3(store: str, tmp_path: Path) -> None:
    with Tactful.open(db_url=store, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        damage.grow(tf, 10)
        damage.modify_payload(tf, 255)
    refused = tactful("audit", "checkpoint", db=store, home=tmp_path)
    assert refused.returncode == 3
    assert "nothing was signed" in refused.stderr and "Traceback" not in refused.stderr
    signed = tactful("audit", "checkpoint", "--json", db=store, home=tmp_path)
    assert signed.returncode == 3
