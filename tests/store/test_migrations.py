"""Schema versions: an older store is upgraded on open, a newer one is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tactful import ConfigurationError, Tactful
from tactful.crypto import wrap_key_v1
from tactful.store.tables import SCHEMA_VERSION
from tests.conftest import POLICIES

V1 = Path(__file__).parent / "vectors" / "v1"


def _open(url: str, home: Path) -> Tactful:
    return Tactful.open(db_url=url, key_file=home / "master.key", policies=POLICIES)


def test_a_store_written_by_schema_version_1_is_upgraded_on_open(tmp_path: Path) -> None:
    for name in ("tactful.db", "master.key"):
        shutil.copy(V1 / name, tmp_path / name)
    (tmp_path / "master.key").chmod(0o600)
    url = f"sqlite:///{tmp_path / 'tactful.db'}"
    with _open(url, tmp_path) as tf:
        assert tf.profiles.get("ana") == {"country": "DE", "email": "ana@example.org"}
        assert tf.profiles.get("ben") == {"country": "FR"}
        assert tf.settings.get("ben").excluded_topics == ("horror",)
        assert [e["item"] for e in tf.rights.export("ana")["events"]] == ["m1"]
        assert tf.keys.status().versions == {1: 2}  # ana and ben; cy was erased in v1
        # The old key table is gone, and its bytes with it (the file was rewritten).
        assert "subject_key" not in inspect(tf._store.engine).get_table_names()
        with tf._store.engine.connect() as conn:
            version = conn.execute(
                text("SELECT value FROM tactful_meta WHERE key = 'schema_version'")
            ).scalar_one()
        assert int(version) == SCHEMA_VERSION
        # Searchable fields written before blind indexes existed were indexed on upgrade; the
        # user id of a pre-v2 subject is learned at its next write (it cannot be recovered).
        tf.profiles.put("ana", {"email": "ana@example.org"})
        assert tf.profiles.find("email", "ana@example.org") == ["ana"]
    with _open(url, tmp_path) as again:  # opening an upgraded store changes nothing
        assert again.keys.status().versions == {1: 2}


def _downgrade_to_v2(tf: Tactful) -> None:
    """Rewrite a current store into the version 2 layout (events without write numbers)."""
    with tf._store.begin() as conn:
        conn.execute(text("DROP INDEX ix_event_subject_seq"))
        conn.execute(text("ALTER TABLE event DROP COLUMN seq"))
        conn.execute(text("DELETE FROM tactful_meta WHERE key = 'event_seq'"))
        if tf._store.dialect == "postgresql":
            conn.execute(text("DROP SEQUENCE tactful_event_seq"))
        conn.execute(text("UPDATE tactful_meta SET value = '2' WHERE key = 'schema_version'"))


def test_upgrade_numbers_the_events_written_before(db_url: str, tmp_path: Path) -> None:
    with _open(db_url, tmp_path) as tf:
        tf.events.record_batch([(u, "m1", "view", None) for u in ("ana", "ben", "cy")])
        tf.events.record("ana", "m2")
        _downgrade_to_v2(tf)
    with _open(db_url, tmp_path) as tf:
        with tf._store.begin() as conn:
            numbers = conn.execute(text("SELECT seq FROM event")).scalars().all()
            assert sorted(numbers) == sorted(set(numbers)) and None not in numbers
            assert len(numbers) == 4
        tf.events.record("ben", "m3")  # numbered after every event written before
        with tf._store.begin() as conn:
            newest = conn.execute(
                text("SELECT seq FROM event ORDER BY seq DESC LIMIT 1")
            ).scalar_one()
        assert newest > max(numbers)
        assert [e["item"] for e in tf.rights.export("ben")["events"]] == ["m1", "m3"]


def _downgrade_to_v1(tf: Tactful) -> None:
    """Rewrite a current store into the version 1 layout (keys back in the data database)."""
    _downgrade_to_v2(tf)
    store = tf._store
    with store.begin() as conn:
        rows = conn.execute(
            text("SELECT id, ref, alias FROM subject WHERE status <> 'erased'")
        ).all()
    deks = store.keystore.unwrap(store.store_id, [r.alias for r in rows])
    kek = store.keystore.kek(1)
    with store.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE subject_key (subject_id INTEGER PRIMARY KEY REFERENCES subject(id),"
                " kek_version INTEGER NOT NULL, wrapped BYTEA NOT NULL)"
                if store.dialect == "postgresql"
                else "CREATE TABLE subject_key (subject_id INTEGER PRIMARY KEY, "
                "kek_version INTEGER NOT NULL, wrapped BLOB NOT NULL)"
            )
        )
        for r in rows:
            conn.execute(
                text("INSERT INTO subject_key VALUES (:s, 1, :w)"),
                {"s": r.id, "w": wrap_key_v1(kek, deks[r.alias], subject_ref=r.ref, kek_version=1)},
            )
        conn.execute(text("ALTER TABLE subject DROP COLUMN user_id_ct"))
        conn.execute(text("DROP TABLE blind_index"))
        conn.execute(
            text("DELETE FROM tactful_meta WHERE key IN ('store_id', 'blind_index_fields')")
        )
        conn.execute(text("UPDATE tactful_meta SET value = '1' WHERE key = 'schema_version'"))
    store.keystore.delete(store.store_id, list(deks))


def test_upgrade_moves_the_keys_out_of_the_data_database(db_url: str, tmp_path: Path) -> None:
    with _open(db_url, tmp_path) as tf:
        tf.profiles.put("ana", {"country": "DE", "email": "ana@example.org"})
        tf.events.record("ana", "m1")
        tf.profiles.put("ben", {"country": "FR"})
        _downgrade_to_v1(tf)
    (tmp_path / "keys.db").unlink()
    with _open(db_url, tmp_path) as tf:
        assert tf.profiles.get("ana") == {"country": "DE", "email": "ana@example.org"}
        assert tf.keys.status().versions == {1: 2}
        assert "subject_key" not in inspect(tf._store.engine).get_table_names()
        tf.rights.erase("ben")
        assert tf.keys.status().versions == {1: 1}


def test_a_store_from_a_newer_tactful_is_refused_with_what_to_do(
    db_url: str, tmp_path: Path
) -> None:
    with _open(db_url, tmp_path) as tf, tf._store.begin() as conn:
        conn.execute(text("UPDATE tactful_meta SET value = '99' WHERE key = 'schema_version'"))
    with pytest.raises(ConfigurationError, match=r"schema version 99, newer.*upgrade tactful"):
        _open(db_url, tmp_path)


def test_migration_steps_reach_the_current_schema_version() -> None:
    from tactful.store.migrate import STEPS

    assert [s.version for s in STEPS] == list(range(2, SCHEMA_VERSION + 1))
