"""Canaries: planted personal values never reach the database, the WAL, logs or audit log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from tactful import Tactful
from tests.conftest import POLICIES, seed_small

USER = "canary-user-5b1e0c"
VALUE = "canary-value-93d7aa"
ITEM = "canary-item-2f8c41"
EMAIL = "canary.person@example.org"


def _plant(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put(USER, {"display_name": VALUE, "email": EMAIL, "country": "DE"})
    tf.events.record(USER, ITEM, "like")
    tf.consent.grant(USER, ["personalization"], notice_version="v1")
    tf.settings.update(USER, excluded_topics=[VALUE])
    tf.recommend(USER)
    tf.rights.export(USER)
    tf.report()


def test_planted_values_never_appear_in_the_sqlite_file_or_wal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "tactful.db"
    with Tactful.open(db_url=f"sqlite:///{db}", key_file=tmp_path / "k", policies=POLICIES) as tf:
        _plant(tf)
        files = [p for p in tmp_path.iterdir() if p.name.startswith("tactful.db")]
        assert any(p.name.endswith("-wal") for p in files), "WAL file is checked too"
        blob = b"".join(p.read_bytes() for p in files)
        with tf._store.engine.connect() as conn:
            audit = " ".join(
                f"{r.kind} {r.alias} {r.payload}"
                for r in conn.execute(text("SELECT kind, alias, payload FROM audit_log"))
            )
    for canary in (USER, VALUE, ITEM, EMAIL):
        for encoding in ("utf-8", "utf-16-le"):
            assert canary.encode(encoding) not in blob, canary
        assert canary not in audit, canary
        assert canary not in caplog.text, canary


def test_planted_values_never_appear_in_postgres_rows(pg_schema_url: str, tmp_path: Path) -> None:
    with Tactful.open(db_url=pg_schema_url, key_file=tmp_path / "k", policies=POLICIES) as tf:
        _plant(tf)
        with tf._store.engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema()"
                    )
                )
            ]
            dump = " ".join(
                str(row)
                + " "
                + " ".join(bytes(v).hex() for v in row if isinstance(v, bytes | memoryview))
                for t in tables
                for row in conn.execute(text(f'SELECT * FROM "{t}"'))
            )
    for canary in (USER, VALUE, ITEM, EMAIL):
        assert canary not in dump, canary
        assert canary.encode().hex() not in dump, canary
