"""Key hierarchy, field encryption with associated data, pseudonyms (cryptography only)."""

from tactful.crypto.cipher import (
    FieldCipher,
    associated_data,
    keyed_digest,
    new_data_key,
    pseudonym,
    unwrap_key,
    wrap_key,
)
from tactful.crypto.keys import KeyRing, load_or_create

__all__ = [
    "FieldCipher",
    "KeyRing",
    "associated_data",
    "keyed_digest",
    "load_or_create",
    "new_data_key",
    "pseudonym",
    "unwrap_key",
    "wrap_key",
]
