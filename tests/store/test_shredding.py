"""Crypto-shredding: after an erasure, a backup of the database taken before it is unreadable."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tactful import ConfigurationError, SubjectNotFound, Tactful
from tests.conftest import POLICIES, _pg_admin_url


def _plant(tf: Tactful) -> None:
    for user in ("victim", "bystander"):
        tf.profiles.put(user, {"email": f"{user}@example.org", "country": "DE"})
        tf.events.record_many(user, [("item-1", "view", None), ("item-2", "like", None)])
        tf.settings.update(user, excluded_topics=["horror"])


def _backup_sqlite(db: Path, to: Path) -> str:
    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{to}"


def _backup_postgres(url: str, request: pytest.FixtureRequest) -> str:
    """Copy every table of the store's schema into a new schema (a logical backup), dropped
    when the test ends."""
    schema = url.rsplit("search_path%3D", 1)[1]
    copy = "b_" + uuid.uuid4().hex[:16]
    engine = create_engine(_pg_admin_url().replace("postgresql://", "postgresql+psycopg://"))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{copy}" CASCADE'))
        engine.dispose()

    request.addfinalizer(drop)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{copy}"'))
        tables = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        ).scalars()
        for t in list(tables):
            conn.execute(text(f'CREATE TABLE "{copy}"."{t}" (LIKE "{schema}"."{t}" INCLUDING ALL)'))
            conn.execute(text(f'INSERT INTO "{copy}"."{t}" SELECT * FROM "{schema}"."{t}"'))
    return url.rsplit("search_path%3D", 1)[0] + "search_path%3D" + copy


def test_backup_taken_before_erasure_is_unreadable_after_it(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        _plant(tf)
        if db_url.startswith("sqlite"):
            backup = _backup_sqlite(Path(db_url.split(":///", 1)[1]), tmp_path / "backup.db")
        else:
            backup = _backup_postgres(db_url, request)
        with Tactful.open(db_url=backup, key_file=key, policies=POLICIES) as before:
            assert before.profiles.get("victim")["country"] == "DE"  # the backup is good...
        tf.rights.erase("victim")

    # ...until the erasure: the attacker has the backup, the master key and the key store.
    with Tactful.open(db_url=backup, key_file=key, policies=POLICIES) as restored:
        with pytest.raises(SubjectNotFound, match="data key is gone"):
            restored.profiles.get("victim")
        with pytest.raises(SubjectNotFound, match="data key is gone"):
            restored.rights.export("victim")
        assert restored.profiles.get("bystander")["country"] == "DE"
        assert len(restored.rights.export("bystander")["events"]) == 2
        # Not even the key store's remaining keys open the victim's rows.
        with restored._store.engine.connect() as conn:
            victim = conn.execute(
                text("SELECT id, alias FROM subject WHERE ref = :r"),
                {"r": restored._store.subjects.pseudonym("victim")},
            ).one()
        assert restored._store.keystore.unwrap(restored._store.store_id, [victim.alias]) == {}


def test_keystore_cannot_be_the_data_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tactful.db'}"
    with pytest.raises(ConfigurationError, match="data keys must live apart"):
        Tactful.open(db_url=url, key_file=tmp_path / "k", policies=POLICIES, keystore_url=url)


def test_wrong_keystore_is_refused_instead_of_losing_data(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        tf.profiles.put("ann", {"country": "DE"})
    elsewhere = f"sqlite:///{tmp_path / 'other' / 'keys.db'}"
    with pytest.raises(ConfigurationError, match="holds no data keys for this store"):
        Tactful.open(db_url=db_url, key_file=key, policies=POLICIES, keystore_url=elsewhere)


def test_erased_key_bytes_are_overwritten_in_the_keystore_file(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(
        db_url=f"sqlite:///{tmp_path / 't.db'}", key_file=key, policies=POLICIES
    ) as tf:
        tf.profiles.put("zoe", {"country": "DE"})
        with tf._store.keystore.engine.connect() as conn:
            wrapped = bytes(conn.execute(text("SELECT wrapped FROM tactful_data_key")).scalar_one())
        tf.rights.erase("zoe")
    with sqlite3.connect(tmp_path / "keys.db") as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("keys.db*"))
    assert wrapped not in blob
