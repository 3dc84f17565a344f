"""AES-256-GCM field encryption with associated data, DEK wrapping, and keyed pseudonyms.

Every ciphertext is nonce(12) || ciphertext+tag. The associated data binds a ciphertext to
(subject, table, row/field), so a ciphertext moved elsewhere fails to decrypt. All failures
raise one uninformative IntegrityError (no oracle for an attacker).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tactful.errors import IntegrityError

NONCE_BYTES = 12
SCHEMA_VERSION = b"1"
_TAMPERED = (
    "a ciphertext failed to verify (tampered, moved to another row or field, or under the "
    "wrong key); restore the affected rows from a backup"
)


_AAD = b"tactful|" + SCHEMA_VERSION + b"|"


def associated_data(subject_ref: str, table: str, field: str) -> bytes:
    """The associated data that binds a ciphertext to its subject, table and field/row:
    b"tactful|1|<subject>|<table>|<field>"."""
    return _AAD + f"{subject_ref}|{table}|{field}".encode()


def aad_prefix(subject_ref: str, table: str) -> bytes:
    """`associated_data(subject_ref, table, "")`: append a field or row id's bytes to it."""
    return _AAD + f"{subject_ref}|{table}|".encode()


Aead = AESGCM
"""A subject's AES-256-GCM object as the DEK cache and the bulk paths keep it: cryptography's
own object, which Python's garbage collector does not track. A Python object per cached key
(every class instance is tracked) outlived young collections on bulk paths that miss the
cache, and set off full collections (docs/store.md, "Performance")."""


def data_aead(key: bytes) -> Aead:
    """The AES-256-GCM object of a data key."""
    return AESGCM(key)


def open_sealed(aead: Aead, blob: bytes, aad: bytes) -> bytes:
    """Decrypt nonce || ciphertext+tag; IntegrityError if it, its place or its key is wrong."""
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(_TAMPERED) from exc


def open_many(aead: Aead, blobs: Sequence[bytes], aads: Sequence[bytes]) -> list[bytes]:
    """`open_sealed` of several ciphertexts under one key (bulk reads), one call for all."""
    dec = aead.decrypt
    n = NONCE_BYTES
    try:
        return [dec(b[:n], b[n:], a) for b, a in zip(blobs, aads, strict=True)]
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(_TAMPERED) from exc


class FieldCipher:
    """Encrypts and decrypts one subject's values under that subject's data key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def over(cls, aead: Aead) -> FieldCipher:
        """A cipher over an AES-GCM object made already (`data_aead`)."""
        cipher = cls.__new__(cls)
        cipher._aead = aead
        return cipher

    def __repr__(self) -> str:
        return "FieldCipher(<key hidden>)"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt with a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def encrypt_drawn(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt with a nonce the caller took from `fresh_nonces` (bulk writes).

        Drawing the random nonces of a batch in one call saves a system call per value; each
        12-byte slice of the draw must be used for one encryption only, like `encrypt`'s own.
        """
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt; IntegrityError if the ciphertext, its place or its key is not right."""
        return open_sealed(self._aead, blob, aad)

    def decrypt_many(self, blobs: Sequence[bytes], aads: Sequence[bytes]) -> list[bytes]:
        """Decrypt several of this subject's ciphertexts (bulk reads), one call for all;
        IntegrityError if any fails, as `decrypt`."""
        return open_many(self._aead, blobs, aads)


def fresh_nonces(n: int) -> bytes:
    """Random nonces for `n` encryptions, drawn in one call: slice i is
    `[NONCE_BYTES * i : NONCE_BYTES * (i + 1)]`, each for one encryption only."""
    return os.urandom(NONCE_BYTES * n)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (DEK)."""
    return AESGCM.generate_key(bit_length=256)


def new_data_keys(n: int) -> bytes:
    """`n` fresh random 256-bit data keys, concatenated (32 bytes each), drawn in one call."""
    return os.urandom(32 * n)


def wrap_key(kek: bytes, dek: bytes, *, store_id: str, key_id: str, kek_version: int) -> bytes:
    """Encrypt a DEK under a KEK, bound to its store, its key id and the KEK version."""
    return FieldCipher(kek).encrypt(dek, wrap_aad(store_id, key_id, kek_version))


def unwrap_key(
    kek: bytes, wrapped: bytes, *, store_id: str, key_id: str, kek_version: int
) -> bytes:
    """Decrypt a wrapped DEK; IntegrityError if it does not belong to this key id/version."""
    return FieldCipher(kek).decrypt(wrapped, wrap_aad(store_id, key_id, kek_version))


def wrap_aad(store_id: str, key_id: str, kek_version: int) -> bytes:
    """The associated data of a wrapped DEK (key store format 2)."""
    return f"tactful-dek|2|{store_id}|{key_id}|{kek_version}".encode()


def wrap_aads(store_id: str, key_ids: Sequence[str], kek_version: int) -> list[bytes]:
    """`wrap_aad` of many key ids under one store and KEK version (bulk unwraps)."""
    head = f"tactful-dek|2|{store_id}|".encode()
    tail = f"|{kek_version}".encode()
    return [head + k.encode() + tail for k in key_ids]


def unwrap_key_v1(kek: bytes, wrapped: bytes, *, subject_ref: str, kek_version: int) -> bytes:
    """Decrypt a DEK wrapped by schema version 1 (in-database key table); for the migration."""
    aad = b"tactful-dek|" + SCHEMA_VERSION + f"|{subject_ref}|{kek_version}".encode()
    return FieldCipher(kek).decrypt(wrapped, aad)


def wrap_key_v1(kek: bytes, dek: bytes, *, subject_ref: str, kek_version: int) -> bytes:
    """Wrap a DEK the way schema version 1 did (only to build old stores in migration tests)."""
    aad = b"tactful-dek|" + SCHEMA_VERSION + f"|{subject_ref}|{kek_version}".encode()
    return FieldCipher(kek).encrypt(dek, aad)


_IPAD = bytes(b ^ 0x36 for b in range(256))  # HMAC's inner and outer pads (RFC 2104),
_OPAD = bytes(b ^ 0x5C for b in range(256))  # as bytes.translate tables


class KeyedHash:
    """HMAC-SHA256 under one key of `prefix + data`, with the two keyed SHA-256 states
    computed once (RFC 2104): a call copies them, about half the cost of going through the
    hmac module (its Python wrapper and its copy), a third of a one-shot `hmac.digest`.

    The same values as `hmac.digest(key, prefix + data, "sha256")`; bulk paths and per-read
    lookups (pseudonyms, blind indexes) call it once per user or value.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        if len(key) > 64:  # SHA-256's block size: longer keys are hashed first
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._inner.update(prefix)
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<key hidden>)"

    def digest(self, data: bytes) -> bytes:
        """The 32-byte HMAC of `prefix + data`."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def hexdigest(self, data: bytes) -> str:
        """The HMAC of `prefix + data` in hex (64 characters)."""
        return self.digest(data).hex()


class Pseudonyms(KeyedHash):
    """`pseudonym` under one key, with the HMAC's keyed states computed once."""

    __slots__ = ()

    def __init__(self, key: bytes) -> None:
        super().__init__(key, b"subject|")

    def __call__(self, user_id: str) -> str:
        """The same value as `pseudonym(key, user_id)`."""
        return self.hexdigest(user_id.encode("utf-8"))


class BlindIndexer(KeyedHash):
    """`blind_index` under one field's key, with the HMAC's keyed states computed once."""

    __slots__ = ()

    def __init__(self, key: bytes) -> None:
        super().__init__(key, b"index|")

    def __call__(self, value: str) -> bytes:
        """The same value as `blind_index(key, value)`."""
        return self.digest(value.encode("utf-8"))


def pseudonym(key: bytes, user_id: str) -> str:
    """The keyed pseudonym (HMAC-SHA256, hex) under which a user id is stored."""
    return hmac.digest(key, b"subject|" + user_id.encode("utf-8"), hashlib.sha256).hex()


def blind_index(key: bytes, value: str) -> bytes:
    """The blind index of a searchable value: HMAC-SHA256 under that field's derived key.

    Equality only: equal values give equal digests; nothing else about the value leaks
    beyond what equality reveals (how many users share a value).
    """
    return hmac.digest(key, b"index|" + value.encode("utf-8"), hashlib.sha256)


def keyed_digest(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of `data` under `key` (audit checkpoints, blind indexes)."""
    return hmac.new(key, data, hashlib.sha256).digest()
