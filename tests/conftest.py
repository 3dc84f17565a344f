"""Fixtures: real stores on SQLite (a temp file) and PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tactful import Tactful

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
PG_URL = os.environ.get("TACTFUL_TEST_POSTGRES_URL")
PG_SKIP = "TACTFUL_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server (.ci/run sets it)"


def _pg_admin_url() -> str:
    assert PG_URL is not None
    return PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_pg_schema(prefix: str = "t_") -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    import psycopg

    schema = prefix + uuid.uuid4().hex[:16]
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture
def pg_keystore_url() -> Iterator[str]:
    """A second fresh PostgreSQL schema, for a key store kept apart from the data."""
    with fresh_pg_schema("k_") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tactful.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def tf(db_url: str, tmp_path: Path) -> Iterator[Tactful]:
    """An open store on each database, with the repo's policy pack and a fresh key file."""
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as store:
        yield store


@pytest.fixture
def other(db_url: str, tmp_path: Path, tf: Tactful) -> Iterator[Tactful]:
    """A second instance on `tf`'s store: another process, as far as caches and connections
    go (what one writes reaches the other only through the database)."""
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as store:
        yield store


CATALOG = [
    {"item_id": "a", "title": "Alpha", "categories": ["action"]},
    {"item_id": "b", "title": "Bravo", "categories": ["action"]},
    {"item_id": "c", "title": "Charlie", "categories": ["comedy"]},
    {"item_id": "d", "title": "Delta", "categories": ["comedy"]},
    {"item_id": "e", "title": "Echo", "categories": ["horror"]},
    {"item_id": "f", "title": "Foxtrot", "categories": ["horror"]},
]


def seed_small(tf: Tactful) -> None:
    """Six items and four users; u1, u2 and u4 consent to personalization, u3 does not."""
    tf.catalog.upsert(CATALOG)
    tf.events.record_many("u1", [("a", "view", None), ("b", "view", None), ("e", "view", None)])
    tf.events.record_many("u2", [("a", "view", None), ("c", "view", None), ("e", "view", None)])
    tf.events.record_many("u3", [("c", "view", None), ("d", "view", None)])
    tf.events.record_many("u4", [("a", "view", None), ("b", "view", None), ("f", "view", None)])
    tf.consent.grant("u1", ["personalization"])
    tf.consent.grant("u2", ["personalization"])
    tf.consent.grant("u4", ["personalization"])


@contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Tactful, Path]]:
    """A store on a SQLite file of its own, and the file (for another connection to it)."""
    db = tmp_path / "tactful.db"
    with Tactful.open(
        db_url=f"sqlite:///{db}", key_file=tmp_path / "master.key", policies=POLICIES
    ) as tf:
        yield tf, db


@contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock (`BEGIN IMMEDIATE`, a long writer's
    transaction) until the block ends; it waits up to 5 s for the lock, like any writer."""
    import sqlite3

    writer = sqlite3.connect(db, timeout=5, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
    finally:
        writer.close()


def count_probe_statements(tf: Tactful, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, every statement the store runs on its own driver connections (the gate's
    probe) is appended to the returned list."""
    reads = tf._store.reads
    ran: list[str] = []
    real = reads.run

    def counted(sql: str, params: tuple[object, ...]) -> list[object]:
        ran.append(sql)
        return real(sql, params)

    monkeypatch.setattr(reads, "run", counted)
    return ran
