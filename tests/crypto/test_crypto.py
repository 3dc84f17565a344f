"""Field encryption, key wrapping and the key file."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tactful import ConfigurationError, IntegrityError
from tactful.crypto import (
    BlindIndexer,
    FieldCipher,
    KeyedHash,
    KeyRing,
    Pseudonyms,
    aad_prefix,
    associated_data,
    blind_index,
    fresh_nonces,
    load_or_create,
    new_data_key,
    pseudonym,
    unwrap_key,
    wrap_aad,
    wrap_aads,
    wrap_key,
)

names = st.text(st.characters(codec="utf-8", exclude_characters="|"), min_size=1, max_size=20)


@given(plaintext=st.binary(max_size=2048), ref=names, table=names, field=names)
def test_encrypt_then_decrypt_returns_the_plaintext(
    plaintext: bytes, ref: str, table: str, field: str
) -> None:
    cipher = FieldCipher(new_data_key())
    aad = associated_data(ref, table, field)
    assert cipher.decrypt(cipher.encrypt(plaintext, aad), aad) == plaintext


@given(
    plaintext=st.binary(max_size=256),
    place=st.tuples(names, names, names),
    other=st.tuples(names, names, names),
)
def test_ciphertext_moved_to_another_subject_table_or_field_fails(
    plaintext: bytes, place: tuple[str, str, str], other: tuple[str, str, str]
) -> None:
    cipher = FieldCipher(new_data_key())
    blob = cipher.encrypt(plaintext, associated_data(*place))
    if other == place:
        return
    with pytest.raises(IntegrityError):
        cipher.decrypt(blob, associated_data(*other))


def test_ciphertext_under_another_key_or_tampered_fails() -> None:
    aad = associated_data("s", "t", "f")
    blob = FieldCipher(new_data_key()).encrypt(b"secret", aad)
    with pytest.raises(IntegrityError):
        FieldCipher(new_data_key()).decrypt(blob, aad)
    cipher = FieldCipher(new_data_key())
    good = bytearray(cipher.encrypt(b"secret", aad))
    good[-1] ^= 1
    with pytest.raises(IntegrityError):
        cipher.decrypt(bytes(good), aad)


def test_wrapped_key_is_bound_to_its_store_key_id_and_version() -> None:
    kek, dek = new_data_key(), new_data_key()
    wrapped = wrap_key(kek, dek, store_id="s1", key_id="abc", kek_version=1)
    assert unwrap_key(kek, wrapped, store_id="s1", key_id="abc", kek_version=1) == dek
    for other in (
        {"store_id": "s2", "key_id": "abc", "kek_version": 1},
        {"store_id": "s1", "key_id": "abd", "kek_version": 1},
        {"store_id": "s1", "key_id": "abc", "kek_version": 2},
    ):
        with pytest.raises(IntegrityError):
            unwrap_key(kek, wrapped, **other)  # type: ignore[arg-type]


def test_pseudonym_is_keyed_and_stable() -> None:
    key1, key2 = new_data_key(), new_data_key()
    assert pseudonym(key1, "alice") == pseudonym(key1, "alice")
    assert pseudonym(key1, "alice") != pseudonym(key2, "alice")
    assert "alice" not in pseudonym(key1, "alice")


@given(user=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40), ref=names, table=names)
def test_bulk_helpers_give_the_same_values_as_the_one_by_one_functions(
    user: str, ref: str, table: str
) -> None:
    key = bytes(range(32))
    make = Pseudonyms(key)
    assert make(user) == pseudonym(key, user)
    assert make(user) == make(user)  # the precomputed state is not consumed
    assert aad_prefix(ref, table) + b"f" == associated_data(ref, table, "f")
    assert wrap_aads(ref, [table, user], 3) == [wrap_aad(ref, k, 3) for k in (table, user)]


@given(
    key=st.binary(min_size=0, max_size=200),
    prefix=st.binary(max_size=70),
    data=st.binary(max_size=300),
)
def test_keyed_hash_is_hmac_sha256_for_every_key_length(
    key: bytes, prefix: bytes, data: bytes
) -> None:
    # Keys shorter than, equal to and longer than SHA-256's 64-byte block (hashed first).
    expected = hmac.digest(key, prefix + data, hashlib.sha256)
    keyed = KeyedHash(key, prefix)
    assert keyed.digest(data) == expected
    assert keyed.hexdigest(data) == expected.hex()
    assert keyed.digest(data) == expected  # the precomputed states are not consumed


def test_keyed_hash_matches_rfc_4231_vectors() -> None:
    # RFC 4231 test cases 1, 2 and 6 (HMAC-SHA-256); case 6's key is longer than a block.
    cases = [
        (
            b"\x0b" * 20,
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            b"\xaa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ]
    for key, data, mac in cases:
        assert KeyedHash(key).hexdigest(data) == mac
        assert KeyedHash(key, data[:3]).hexdigest(data[3:]) == mac


@given(value=st.text(st.characters(codec="utf-8"), max_size=60))
def test_blind_indexer_gives_the_one_shot_blind_index(value: str) -> None:
    key = bytes(range(32))
    assert BlindIndexer(key)(value) == blind_index(key, value)


def test_bulk_encryption_and_decryption_round_trip_and_fail_as_one_by_one() -> None:
    cipher = FieldCipher(new_data_key())
    aads = [associated_data("s", "event", str(i)) for i in range(3)]
    nonces = fresh_nonces(3)
    blobs = [
        cipher.encrypt_drawn(nonces[12 * i : 12 * i + 12], b"v%d" % i, a)
        for i, a in enumerate(aads)
    ]
    assert len({b[:12] for b in blobs}) == 3
    assert cipher.decrypt_many(blobs, aads) == [b"v0", b"v1", b"v2"]
    assert [cipher.decrypt(b, a) for b, a in zip(blobs, aads, strict=True)] == [
        b"v0",
        b"v1",
        b"v2",
    ]
    with pytest.raises(IntegrityError, match="failed to verify"):
        cipher.decrypt_many([blobs[0], blobs[0], blobs[2]], aads)  # a row's ciphertext copied


def test_key_file_is_created_with_mode_0600_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "master.key"
    ring = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create(path)
    assert again.kek(1) == ring.kek(1) and again.pseudonym_key == ring.pseudonym_key


def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    load_or_create(path)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create(path)


def test_corrupt_key_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("not json")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigurationError, match="not a valid tactful key file"):
        load_or_create(path)


def test_key_material_never_appears_in_reprs() -> None:
    ring = KeyRing.generate()
    text = repr(ring) + repr(FieldCipher(ring.kek(1))) + repr(Pseudonyms(ring.pseudonym_key))
    text += repr(BlindIndexer(ring.pseudonym_key)) + repr(KeyedHash(ring.audit_key))
    for secret in (ring.kek(1), ring.pseudonym_key, ring.audit_key):
        assert secret.hex() not in text
        assert repr(secret) not in text
