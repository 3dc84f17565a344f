"""Signing audit checkpoints: HMAC-SHA256 under the audit key (separate from the data keys)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac


def checkpoint_mac(audit_key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of `message` under the audit key, as hex."""
    mac = hmac.HMAC(audit_key, hashes.SHA256())
    mac.update(message)
    return mac.finalize().hex()


def checkpoint_mac_valid(audit_key: bytes, message: bytes, tag_hex: str) -> bool:
    """Whether `tag_hex` is the HMAC of `message` under the audit key (constant time)."""
    try:
        tag = bytes.fromhex(tag_hex)
    except ValueError:
        return False
    mac = hmac.HMAC(audit_key, hashes.SHA256())
    mac.update(message)
    try:
        mac.verify(tag)
    except InvalidSignature:
        return False
    return True
