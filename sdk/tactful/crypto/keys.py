"""The master key file: key-encryption keys (versioned), the pseudonym key and the audit key.

The file is JSON with base64 keys, created with mode 0600 on first use. Key material never
appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from tactful.errors import ConfigurationError, KeyUnavailable

FORMAT = "tactful-keys/1"
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The master keys of one store. Secret values are hidden from repr."""

    keks: dict[int, bytes] = field(repr=False)
    current: int
    pseudonym_key: bytes = field(repr=False)
    audit_key: bytes = field(repr=False)

    def kek(self, version: int) -> bytes:
        """The key-encryption key of `version`; KeyUnavailable if this key file lacks it."""
        try:
            return self.keks[version]
        except KeyError:
            raise KeyUnavailable(
                f"master key version {version} is not in the key file; restore the key file "
                "that was in use when this data was written"
            ) from None

    @classmethod
    def generate(cls) -> KeyRing:
        """Fresh random keys, version 1."""
        return cls(
            keks={1: secrets.token_bytes(KEY_BYTES)},
            current=1,
            pseudonym_key=secrets.token_bytes(KEY_BYTES),
            audit_key=secrets.token_bytes(KEY_BYTES),
        )

    def to_json(self) -> str:
        """Serialize for the key file (the only place key material is ever written)."""
        return json.dumps(
            {
                "format": FORMAT,
                "current": self.current,
                "kek": {str(v): _b64(k) for v, k in sorted(self.keks.items())},
                "pseudonym": _b64(self.pseudonym_key),
                "audit": _b64(self.audit_key),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str) -> KeyRing:
        """Parse a key file's text; ConfigurationError naming `source` if it is malformed."""
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError("unknown format")
            keks = {int(v): _unb64(k) for v, k in data["kek"].items()}
            ring = cls(
                keks=keks,
                current=int(data["current"]),
                pseudonym_key=_unb64(data["pseudonym"]),
                audit_key=_unb64(data["audit"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"key file {source} is not a valid tactful key file ({FORMAT}); "
                "restore it from your key backup"
            ) from exc
        if ring.current not in ring.keks or any(
            len(k) != KEY_BYTES for k in [*keks.values(), ring.pseudonym_key, ring.audit_key]
        ):
            raise ConfigurationError(f"key file {source} is inconsistent; restore it from backup")
        return ring


def load_or_create(path: Path, *, create: bool = True) -> KeyRing:
    """Read the key file at `path`, creating it (mode 0600) if it does not exist and `create`.

    Refuses a key file that group or others can read: that is a leaked key.
    """
    if path.exists():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"key file {path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {path}` and check who may have copied it"
            )
        return KeyRing.from_json(path.read_text(encoding="utf-8"), source=str(path))
    if not create:
        raise KeyUnavailable(f"key file {path} does not exist; run `tactful init` first")
    ring = KeyRing.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
    return ring


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
