"""Key hierarchy, field encryption with associated data, pseudonyms (cryptography only)."""

from tactful.crypto.cipher import (
    FieldCipher,
    associated_data,
    blind_index,
    keyed_digest,
    new_data_key,
    pseudonym,
    unwrap_key,
    unwrap_key_v1,
    wrap_aad,
    wrap_key,
    wrap_key_v1,
)
from tactful.crypto.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    KeyRing,
    load_or_create,
)

__all__ = [
    "EnvKeyProvider",
    "FieldCipher",
    "FileKeyProvider",
    "KeyProvider",
    "KeyRing",
    "associated_data",
    "blind_index",
    "keyed_digest",
    "load_or_create",
    "new_data_key",
    "pseudonym",
    "unwrap_key",
    "unwrap_key_v1",
    "wrap_aad",
    "wrap_key",
    "wrap_key_v1",
]
