"""Key hierarchy, field encryption with associated data, pseudonyms (cryptography only)."""

from tactful.crypto.cipher import (
    FieldCipher,
    Pseudonyms,
    aad_prefix,
    associated_data,
    blind_index,
    fresh_nonces,
    keyed_digest,
    new_data_key,
    new_data_keys,
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
from tactful.crypto.signing import checkpoint_mac, checkpoint_mac_valid

__all__ = [
    "EnvKeyProvider",
    "FieldCipher",
    "FileKeyProvider",
    "KeyProvider",
    "KeyRing",
    "Pseudonyms",
    "aad_prefix",
    "associated_data",
    "blind_index",
    "checkpoint_mac",
    "checkpoint_mac_valid",
    "fresh_nonces",
    "keyed_digest",
    "load_or_create",
    "new_data_key",
    "new_data_keys",
    "pseudonym",
    "unwrap_key",
    "unwrap_key_v1",
    "wrap_aad",
    "wrap_key",
    "wrap_key_v1",
]
