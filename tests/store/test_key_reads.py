"""The per-user key path: key reads on the key store's own connections, the DEK cache's size,
subject aliases (the keys' ids), and the random nonces of bulk writes."""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Collection
from pathlib import Path

import pytest
from sqlalchemy import text

from tactful import ConfigurationError, SubjectNotFound, Tactful
from tactful.config import DEK_CACHE
from tactful.store.subjects import CIPHER_CACHE, new_aliases
from tests.conftest import POLICIES, _pg_admin_url


def _with_cache(db_url: str, tmp_path: Path, size: int) -> Tactful:
    """A store whose DEK cache holds `size` keys."""
    return Tactful.open(
        db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES, dek_cache=size
    )


def _alias(tf: Tactful, user: str) -> str:
    with tf._store.begin() as conn:
        return tf._store.subjects.get(conn, user).alias


@pytest.mark.parametrize(
    "keystore", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_an_erasure_in_another_process_reaches_key_reads_at_once(
    db_url: str, tmp_path: Path, keystore: str, request: pytest.FixtureRequest
) -> None:
    ks = None if keystore == "sqlite" else request.getfixturevalue("pg_keystore_url")
    key = tmp_path / "master.key"
    with (
        Tactful.open(db_url=db_url, key_file=key, policies=POLICIES, keystore_url=ks) as reader,
        Tactful.open(db_url=db_url, key_file=key, policies=POLICIES, keystore_url=ks) as other,
    ):
        reader.profiles.put_many({"ann": {"country": "DE"}, "bob": {"country": "FR"}})
        alias = _alias(reader, "ann")
        store = reader._store
        assert set(store.keystore.unwrap(store.store_id, [alias])) == {alias}  # connection kept
        other.rights.erase("ann")
        assert store.keystore.unwrap(store.store_id, [alias]) == {}
        assert store.keystore.unwrap(store.store_id, [alias, _alias(reader, "bob")]).keys() == {
            _alias(reader, "bob")
        }
        reader._store.subjects.clear_cache()
        with pytest.raises(SubjectNotFound):
            reader.profiles.get("ann")
        assert reader.profiles.get("bob") == {"country": "FR"}


@pytest.mark.postgres
def test_a_broken_key_read_connection_is_replaced(
    pg_schema_url: str, pg_keystore_url: str, tmp_path: Path
) -> None:
    import psycopg

    with Tactful.open(
        db_url=pg_schema_url,
        key_file=tmp_path / "master.key",
        policies=POLICIES,
        keystore_url=pg_keystore_url,
    ) as tf:
        tf.profiles.put("ann", {"country": "DE"})
        tf._store.subjects.clear_cache()
        assert tf.profiles.get("ann") == {"country": "DE"}
        (reader,) = tf._store.keystore._reads.idle
        with psycopg.connect(_pg_admin_url(), autocommit=True) as admin:  # a server restart
            admin.execute("SELECT pg_terminate_backend(%s)", [reader.info.backend_pid])
        tf._store.subjects.clear_cache()
        assert tf.profiles.get("ann") == {"country": "DE"}


def test_the_dek_cache_holds_at_most_its_size(db_url: str, tmp_path: Path) -> None:
    assert DEK_CACHE == CIPHER_CACHE == 4096  # Tactful.open's default is the store's
    with _with_cache(db_url, tmp_path, 2) as tf:
        tf.profiles.put_many({u: {"country": "DE"} for u in ("a", "b", "c")})
        tf._store.subjects.clear_cache()
        for user in ("a", "b", "c", "a"):
            assert tf.profiles.get(user) == {"country": "DE"}
            assert len(tf._store.subjects._ciphers) <= 2
        with tf._store.begin() as conn:
            cached = set(tf._store.subjects._ciphers)
            assert cached == {tf._store.subjects.get(conn, u).id for u in ("c", "a")}


def test_bulk_reads_hand_out_every_subject_when_the_dek_cache_is_full(
    db_url: str, tmp_path: Path
) -> None:
    # A cache of 2 holding b (oldest) and c: unwrapping a's key for a training read must not
    # evict b's cipher before b's events are decrypted (they were skipped as if erased).
    with _with_cache(db_url, tmp_path, 2) as tf:
        tf.events.record_batch([(u, f"item-{u}", "view", None) for u in ("a", "b", "c")])
        store = tf._store
        store.subjects.clear_cache()
        with store.begin() as conn:
            for user in ("b", "c"):  # caches b's cipher, then c's
                store.subjects.cipher(conn, store.subjects.get(conn, user))
            ids = sorted(store.subjects.get(conn, u).id for u in ("a", "b", "c"))
            items = {e.item for _, events in store.events.bundles(conn, ids) for e in events}
        assert items == {"item-a", "item-b", "item-c"}
        assert len(store.subjects._ciphers) <= 2


def test_dek_cache_size_comes_from_the_environment_and_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = {"db_url": f"sqlite:///{tmp_path / 't.db'}", "key_file": tmp_path / "k"}
    monkeypatch.setenv("TACTFUL_DEK_CACHE", "0")
    with Tactful.open(**args, policies=POLICIES) as tf:  # type: ignore[arg-type]
        assert tf._store.subjects.cache_size == 0
        tf.profiles.put("a", {"country": "DE"})
        assert tf.profiles.get("a") == {"country": "DE"}  # no cache: unwrapped on every read
        assert not tf._store.subjects._ciphers
    for bad in ("lots", "-1"):
        monkeypatch.setenv("TACTFUL_DEK_CACHE", bad)
        with pytest.raises(ConfigurationError, match="TACTFUL_DEK_CACHE"):
            Tactful.open(**args, policies=POLICIES)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"dek_cache= .* whole number of data keys"):
        Tactful.open(**args, policies=POLICIES, dek_cache=-5)  # type: ignore[arg-type]


def test_aliases_are_unguessable_unique_and_ordered_by_creation() -> None:
    first = new_aliases(1000)
    time.sleep(0.002)
    later = new_aliases(1000)
    assert all(re.fullmatch("[0-9a-f]{32}", a) for a in first + later)
    assert len(set(first + later)) == 2000
    assert max(first) < min(later)
    assert len({a[12:] for a in first}) == 1000  # 80 random bits after the time


def test_every_value_of_a_bulk_write_has_its_own_nonce(tf: Tactful) -> None:
    tf.profiles.put_many({f"u{i}": {"country": "DE", "email": f"u{i}@x.org"} for i in range(50)})
    tf.events.record_batch([(f"u{i % 50}", f"i{i}", "view", None) for i in range(300)])
    with tf._store.begin() as conn:
        blobs = [
            bytes(r[0])
            for table in ("profile_field", "event")
            for r in conn.execute(text(f"SELECT ciphertext FROM {table}"))
        ]
        blobs += [bytes(r[0]) for r in conn.execute(text("SELECT user_id_ct FROM subject"))]
    assert len(blobs) == 100 + 300 + 50
    assert len({b[:12] for b in blobs}) == len(blobs)


def test_a_batch_wider_than_the_dek_cache_leaves_the_last_of_its_ciphers_cached(
    db_url: str, tmp_path: Path
) -> None:
    with _with_cache(db_url, tmp_path, 3) as tf:
        users = [f"u{i}" for i in range(6)]
        subjects = tf._store.subjects
        with tf._store.begin() as conn:
            made = subjects.resolve_many(conn, users)  # 6 new subjects
        ids = [made[u].id for u in users]
        assert list(subjects._ciphers) == ids[-3:]
        tf.profiles.put_many({u: {"country": "FR"} for u in users[:2]})  # narrower: 2 read
        assert next(iter(subjects._ciphers)) == ids[-1]
        assert set(subjects._ciphers) == {ids[-1], ids[0], ids[1]}
        tf.profiles.put_many({u: {"country": "IT"} for u in users[2:]})  # 3 of 4 read
        assert len(subjects._ciphers) == 3 and set(subjects._ciphers) < set(ids[2:])
        subjects.clear_cache()
        assert [tf.profiles.get(u)["country"] for u in users] == ["FR"] * 2 + ["IT"] * 4


def test_a_bulk_write_wider_than_the_dek_cache_reads_back_none_of_the_keys_it_made(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _with_cache(db_url, tmp_path, 3) as tf:
        store = tf._store
        read: list[str] = []
        real = store.keystore.unwrap

        def unwrap(store_id: str, key_ids: Collection[str]) -> dict[str, bytes]:
            read.extend(key_ids)
            return real(store_id, key_ids)

        monkeypatch.setattr(store.keystore, "unwrap", unwrap)
        users = [f"u{i}" for i in range(6)]
        tf.events.record_batch([(u, "item", "view", None) for u in users])  # 6 new subjects
        assert read == []
        subjects = store.subjects
        with store.begin() as conn:
            ids = [subjects.get(conn, u).id for u in users]
        assert list(subjects._ciphers) == ids[-3:]  # the cache keeps the last ones made
        assert not subjects._fresh  # the others are forgotten with the transaction
        subjects.clear_cache()
        with store.begin() as conn:  # one cached before the next batch, pushed out by it
            subjects.cipher(conn, subjects.get(conn, "u0"))
        tf.events.record_batch([(u, "again", "view", None) for u in users[1:]])  # key reads
        assert sorted(read) == sorted({_alias(tf, u) for u in users})
        assert len(subjects._ciphers) == 3 and set(subjects._ciphers) < set(ids[1:])
        subjects.clear_cache()
        with store.begin() as conn:
            assert [len(ev) for _, ev in store.events.bundles(conn, ids)] == [1, 2, 2, 2, 2, 2]


def test_a_rolled_back_bulk_write_keeps_no_cipher_of_the_subjects_it_made(
    db_url: str, tmp_path: Path
) -> None:
    with _with_cache(db_url, tmp_path, 2) as tf:
        store = tf._store
        with pytest.raises(RuntimeError), store.begin() as conn:
            store.subjects.resolve_many(conn, ["a", "b", "c", "d"])
            assert len(store.subjects._fresh) == 4
            raise RuntimeError("rolled back")
        assert not store.subjects._fresh and not store.subjects._ciphers


@pytest.mark.parametrize(
    "keystore", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_bulk_key_reads_unwrap_keys_of_every_kek_version_and_skip_erased_ones(
    db_url: str,
    tmp_path: Path,
    keystore: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ks = None if keystore == "sqlite" else request.getfixturevalue("pg_keystore_url")
    with Tactful.open(
        db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES, keystore_url=ks
    ) as tf:
        users = [f"u{i}" for i in range(250)]  # more than one SELECT's worth of keys
        tf.events.record_batch([(u, f"item-{u}", "view", None) for u in users])
        store = tf._store
        aliases = [_alias(tf, u) for u in users]
        one_by_one = {a: store.keystore.unwrap(store.store_id, [a])[a] for a in aliases}
        assert store.keystore.unwrap(store.store_id, aliases) == one_by_one
        real = store.keystore._rewrap_batch
        monkeypatch.setattr(  # a rotation interrupted after its first batch
            store.keystore,
            "_rewrap_batch",
            lambda s, t, n: real(s, t, n) if not tf.keys.status().versions.get(2) else 0,
        )
        tf.keys.rotate(batch_size=100)
        assert tf.keys.status().versions == {1: 150, 2: 100}
        tf.rights.erase("u7")
        del one_by_one[aliases[7]]
        assert store.keystore.unwrap(store.store_id, aliases) == one_by_one
        store.subjects.clear_cache()
        with store.begin() as conn:
            ids = [store.subjects.get(conn, u).id for u in users if u != "u7"]
            items = {e.item for _, events in store.events.bundles(conn, ids) for e in events}
        assert items == {f"item-{u}" for u in users if u != "u7"}
        store.subjects.clear_cache()
        tf.events.record_batch([(u, "again", "view", None) for u in users if u != "u7"])


def test_cached_and_bulk_data_keys_are_objects_the_garbage_collector_does_not_track(
    db_url: str, tmp_path: Path
) -> None:
    # A Python object per key (every class instance is tracked) outlived young collections on
    # bulk writes that miss the cache and set off full ones, each walking the whole process.
    with _with_cache(db_url, tmp_path, 4) as tf:
        users = [f"u{i}" for i in range(8)]
        tf.events.record_batch([(u, "a", "view", None) for u in users])  # 8 new, 4 cached
        subjects = tf._store.subjects
        subjects.clear_cache()
        with tf._store.begin() as conn:
            bulk = subjects.aeads_of(subjects.resolve_many(conn, users).values())
        assert len(bulk) == 8 and len(subjects._ciphers) == 4
        held = [*bulk.values(), *subjects._ciphers.values()]
        assert not any(gc.is_tracked(a) for a in held)
        with tf._store.begin() as conn:  # and they decrypt
            refs = subjects.resolve_many(conn, users)
            assert [len(tf._store.events.read(conn, refs[u])) for u in users] == [1] * 8
