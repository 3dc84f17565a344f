"""The key hierarchy at the store: providers, rotation (resumable, online), status, orphans."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from tactful import (
    ConfigurationError,
    EnvKeyProvider,
    FileKeyProvider,
    KeyRing,
    KeyUnavailable,
    Tactful,
    ValidationError,
)
from tests.conftest import POLICIES


def _open(db_url: str, tmp_path: Path, **kw: object) -> Tactful:
    return Tactful.open(
        db_url=db_url,
        key_file=tmp_path / "master.key",
        policies=POLICIES,
        **kw,  # type: ignore[arg-type]
    )


def test_status_counts_data_keys_per_master_key_version(tf: Tactful) -> None:
    for user in ("a", "b", "c"):
        tf.profiles.put(user, {"country": "DE"})
    st = tf.keys.status()
    assert st.current == 1 and st.versions == {1: 3}
    assert "master.key" in st.provider and "keys.db" in st.keystore


def test_rotation_rewraps_every_key_and_retires_the_old_version(
    tf: Tactful, tmp_path: Path
) -> None:
    for i in range(25):
        tf.profiles.put(f"user{i}", {"country": "DE", "email": f"u{i}@example.org"})
    seen: list[int] = []
    report = tf.keys.rotate(batch_size=7, progress=seen.append)
    assert (report.version, report.rewrapped, report.retired, report.resumed) == (
        2,
        25,
        (1,),
        False,
    )
    assert seen == [7, 14, 21, 25]
    assert tf.keys.status().versions == {2: 25}
    ring = json.loads((tmp_path / "master.key").read_text())
    assert set(ring["kek"]) == {"2"} and ring["current"] == 2
    tf._store.subjects.clear_cache()
    assert tf.profiles.get("user3") == {"country": "DE", "email": "u3@example.org"}
    with tf._store.engine.connect() as conn:
        (entry,) = tf._audit.records(conn, kind="keys.rotated")
    assert entry.payload == {"version": 2, "resumed": False, "rewrapped": 25, "retired": [1]}


def test_interrupted_rotation_resumes_without_a_new_version(
    tf: Tactful, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(10):
        tf.events.record(f"user{i}", "item")
    keystore = tf._store.keystore
    real = keystore._rewrap_batch
    calls = {"n": 0}

    def crash_after_one_batch(store_id: str, target: int, batch_size: int) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(store_id, target, batch_size)

    monkeypatch.setattr(keystore, "_rewrap_batch", crash_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        tf.keys.rotate(batch_size=4)
    monkeypatch.undo()
    assert tf.keys.status().versions == {1: 6, 2: 4}
    # Meanwhile, keys under both versions read fine, and new users get the new version.
    tf._store.subjects.clear_cache()
    assert all(len(tf.rights.export(f"user{i}")["events"]) == 1 for i in range(10))
    tf.events.record("newcomer", "item")
    report = tf.keys.rotate(batch_size=4)
    assert report.resumed and report.version == 2 and report.rewrapped == 6
    assert tf.keys.status().versions == {2: 11}


def test_reads_and_writes_go_on_during_rotation(db_url: str, tmp_path: Path) -> None:
    with _open(db_url, tmp_path) as tf:
        for i in range(60):
            tf.profiles.put(f"user{i}", {"country": "FR"})
    errors: list[BaseException] = []
    stop = threading.Event()
    working = threading.Event()  # the worker has read and written once: rotate from then on
    done: list[int] = []

    def work() -> None:
        try:
            with _open(db_url, tmp_path) as other:
                n = 0
                while not stop.is_set():
                    other._store.subjects.clear_cache()
                    assert other.profiles.get(f"user{n % 60}") == {"country": "FR"}
                    other.profiles.put(f"late{n}", {"country": "NL"})
                    n += 1
                    working.set()
                done.append(n)
        except BaseException as exc:
            errors.append(exc)
            working.set()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert working.wait(60), "the worker never got going"
        with _open(db_url, tmp_path) as tf:
            tf.keys.rotate(batch_size=5)
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    assert done and done[0] >= 1
    with _open(db_url, tmp_path) as tf:
        st = tf.keys.status()  # keys made during the rotation were rewrapped or born under v2
        assert set(st.versions) == {2} and st.current == 2
        tf._store.subjects.clear_cache()
        assert tf.profiles.get("late0") == {"country": "NL"}


def test_a_process_with_an_old_key_ring_reloads_after_rotation(db_url: str, tmp_path: Path) -> None:
    with _open(db_url, tmp_path) as stale, _open(db_url, tmp_path) as rotator:
        stale.profiles.put("ann", {"country": "IT"})
        rotator.keys.rotate()
        stale._store.subjects.clear_cache()
        assert stale.profiles.get("ann") == {"country": "IT"}
        stale.profiles.put("bob", {"country": "ES"})  # wrapped under v2, which it reloaded
        assert rotator.keys.status().versions == {2: 2}


def test_environment_variable_provider(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = KeyRing.generate()
    monkeypatch.setenv("TACTFUL_MASTER_KEY", base64.b64encode(ring.to_json().encode()).decode())
    with _open(db_url, tmp_path, key_provider=EnvKeyProvider()) as tf:
        tf.profiles.put("eve", {"country": "PT"})
        with pytest.raises(ConfigurationError, match="cannot be rotated in place"):
            tf.keys.rotate()
    monkeypatch.setenv("TACTFUL_MASTER_KEY", ring.to_json())
    with _open(db_url, tmp_path, key_provider=EnvKeyProvider()) as tf:
        assert tf.profiles.get("eve") == {"country": "PT"}
    monkeypatch.delenv("TACTFUL_MASTER_KEY")
    with pytest.raises(KeyUnavailable, match="TACTFUL_MASTER_KEY is not set"):
        _open(db_url, tmp_path, key_provider=EnvKeyProvider())


def test_an_app_can_bring_its_own_provider(db_url: str, tmp_path: Path) -> None:
    class Vault:
        """What an app's KMS adapter looks like: it hands tactful a key ring."""

        def __init__(self) -> None:
            self.ring = KeyRing.generate()

        def load(self) -> KeyRing:
            return self.ring

        def add_version(self) -> KeyRing:
            self.ring = self.ring.with_new_version()
            return self.ring

        def retire(self, version: int) -> KeyRing:
            self.ring = self.ring.without(version)
            return self.ring

        def describe(self) -> str:
            return "test vault"

    vault = Vault()
    with _open(db_url, tmp_path, key_provider=vault) as tf:
        tf.profiles.put("kim", {"country": "SE"})
        tf.keys.rotate()
        assert tf.keys.status().provider == "test vault"
        assert set(vault.ring.keks) == {2}
        tf._store.subjects.clear_cache()
        assert tf.profiles.get("kim") == {"country": "SE"}


def test_missing_key_version_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    with _open(db_url, tmp_path) as tf:
        tf.profiles.put("lou", {"country": "AT"})
        tf.keys.rotate()
    # An operator restores an older key file (only version 1): version 2 is needed.
    path = tmp_path / "master.key"
    ring = KeyRing.from_json(path.read_text(), source="test")
    old = KeyRing({1: b"\0" * 32}, 1, ring.pseudonym_key, ring.audit_key)
    path.write_text(old.to_json())
    with _open(db_url, tmp_path) as tf, pytest.raises(KeyUnavailable, match="version 2"):
        tf.profiles.get("lou")


def test_key_material_never_appears_in_reprs_status_or_errors(tf: Tactful, tmp_path: Path) -> None:
    tf.profiles.put("max", {"country": "BE"})
    ring = KeyRing.from_json((tmp_path / "master.key").read_text(), source="test")
    secrets = [ring.kek(1), ring.pseudonym_key, ring.audit_key]
    with tf._store.keystore.engine.connect() as conn:
        secrets += [bytes(r[0]) for r in conn.execute(text("SELECT wrapped FROM tactful_data_key"))]
    shown = " ".join(
        [
            repr(tf),
            repr(tf._store.keystore),
            repr(ring),
            repr(FileKeyProvider(tmp_path / "master.key")),
            repr(tf.keys.status()),
        ]
    )
    with tf._store.begin() as conn:
        shown += repr(tf._store.subjects.cipher(conn, tf._store.subjects.get(conn, "max")))
    path = tmp_path / "broken.key"
    path.write_text(ring.to_json().replace('"current": 1', '"current": "x"'))
    path.chmod(0o600)
    with pytest.raises(ConfigurationError) as info:
        FileKeyProvider(path).load()
    shown += str(info.value) + repr(info.value.__cause__) + repr(info.value.__context__)
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
            assert form not in shown


def test_orphaned_keys_of_rolled_back_writes_are_collected(tf: Tactful) -> None:
    from datetime import timedelta

    with pytest.raises(Exception, match="declared"):
        tf.profiles.put("nia", {"country": "DK", "not_a_field": 1})
    # The rejected write created no subject... (validation runs before any key is made)
    assert tf.keys.status().versions == {1: 0}
    # ...but a write that fails after its key was committed leaves an orphan.
    with pytest.raises(RuntimeError), tf._store.begin() as conn:
        tf._store.subjects.get_or_create(conn, "nia")
        raise RuntimeError("the app's transaction failed")
    assert tf.keys.status().versions == {1: 1}
    tf.profiles.put("oli", {"country": "DK"})
    assert tf._store.collect_orphans(grace=timedelta(0)) == 1
    assert tf.keys.status().versions == {1: 1}
    assert tf.profiles.get("oli") == {"country": "DK"}


def test_pseudonyms_kept_in_memory_match_the_keyed_hmac_and_stay_bounded(
    tf: Tactful, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from tactful.crypto import pseudonym
    from tactful.store import subjects as subjects_module

    monkeypatch.setattr(subjects_module, "PSEUDONYM_MEMO", 8)
    subjects = tf._store.subjects
    key = subjects.keys.pseudonym_key
    users = [f"user-{n}" for n in range(20)]
    for _ in range(2):  # computed, then (for the last ones) found in memory
        assert [subjects.pseudonym(u) for u in users] == [pseudonym(key, u) for u in users]
    assert len(subjects._current()[1]) <= 8
    with pytest.raises(ValidationError):
        subjects.pseudonym("")
    # Another pseudonym key (another key ring loaded) never answers from the old key's memory.
    other = dataclasses.replace(subjects.keys, pseudonym_key=bytes(32))
    monkeypatch.setattr(subjects.keystore, "_ring", other)
    assert (
        subjects.pseudonym(users[-1])
        == pseudonym(bytes(32), users[-1])
        != pseudonym(key, users[-1])
    )
