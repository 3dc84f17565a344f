"""Master keys and where they come from: a key file, an environment variable, or the app's KMS.

A `KeyRing` holds the versioned key-encryption keys (KEKs), the pseudonym key and the audit
key. A `KeyProvider` loads it (and, for rotation, adds or retires KEK versions). Key material
never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tactful.errors import ConfigurationError, KeyUnavailable

FORMAT = "tactful-keys/1"
KEY_BYTES = 32
ENV_VAR = "TACTFUL_MASTER_KEY"


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The master keys of one store. Secret values are hidden from repr."""

    keks: dict[int, bytes] = field(repr=False)
    current: int
    pseudonym_key: bytes = field(repr=False)
    audit_key: bytes = field(repr=False)

    def kek(self, version: int) -> bytes:
        """The key-encryption key of `version`; KeyUnavailable if this key ring lacks it."""
        try:
            return self.keks[version]
        except KeyError:
            raise KeyUnavailable(
                f"master key version {version} is not in the key ring; restore the key file "
                "(or KMS key) that was in use when this data was written"
            ) from None

    def derived_key(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose (e.g. one field's blind index), derived by HKDF.

        Derived from the pseudonym key, which never rotates: blind indexes stay valid across
        KEK rotations, and no purpose's key reveals another's.
        """
        return HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()
        ).derive(self.pseudonym_key)

    @classmethod
    def generate(cls) -> KeyRing:
        """Fresh random keys, version 1."""
        return cls(
            keks={1: secrets.token_bytes(KEY_BYTES)},
            current=1,
            pseudonym_key=secrets.token_bytes(KEY_BYTES),
            audit_key=secrets.token_bytes(KEY_BYTES),
        )

    def with_new_version(self) -> KeyRing:
        """A copy with a fresh random KEK as the new current version."""
        version = max(self.keks) + 1
        keks = {**self.keks, version: secrets.token_bytes(KEY_BYTES)}
        return replace(self, keks=keks, current=version)

    def without(self, version: int) -> KeyRing:
        """A copy without KEK `version` (retired); the current version cannot be retired."""
        if version == self.current:
            raise ConfigurationError(f"master key version {version} is current; rotate first")
        return replace(self, keks={v: k for v, k in self.keks.items() if v != version})

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
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigurationError(
                f"{source} is not a valid tactful key file ({FORMAT}); "
                "restore it from your key backup"
            ) from None  # never chain: a parser's message could quote key material
        if ring.current not in ring.keks or any(
            len(k) != KEY_BYTES for k in [*keks.values(), ring.pseudonym_key, ring.audit_key]
        ):
            raise ConfigurationError(f"{source} is inconsistent; restore it from backup")
        return ring


@runtime_checkable
class KeyProvider(Protocol):
    """Where a store's master keys come from. Implement it to load keys from your KMS.

    `load` returns the key ring (called on open, and again when data names a KEK version the
    ring lacks, e.g. after another process rotated). `add_version` and `retire` persist a
    rotation; a provider that cannot change its keys raises ConfigurationError from them.
    `describe` names the source for `tactful keys status` and error messages (no secrets).
    """

    def load(self) -> KeyRing: ...

    def add_version(self) -> KeyRing: ...

    def retire(self, version: int) -> KeyRing: ...

    def describe(self) -> str: ...


class FileKeyProvider:
    """The master key file (JSON, mode 0600), created on first use when `create` is true.

    Refuses a key file that group or others can read. Rotations rewrite it atomically
    (temporary file, fsync, rename) under an exclusive lock, so concurrent rotations and
    readers never see half a file.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self._create = create

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self.path)!r})"

    def describe(self) -> str:
        """The key file's path."""
        return f"key file {self.path}"

    def load(self) -> KeyRing:
        """Read the key file, creating it if it does not exist (and creation is allowed)."""
        return load_or_create(self.path, create=self._create)

    def add_version(self) -> KeyRing:
        """Add a fresh KEK as the new current version and save the key file."""
        with self._locked():
            ring = load_or_create(self.path, create=False).with_new_version()
            self._save(ring)
        return ring

    def retire(self, version: int) -> KeyRing:
        """Remove KEK `version` from the key file (only once no data key uses it)."""
        with self._locked():
            ring = load_or_create(self.path, create=False).without(version)
            self._save(ring)
        return ring

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _save(self, ring: KeyRing) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(ring.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class EnvKeyProvider:
    """Master keys from an environment variable (default TACTFUL_MASTER_KEY).

    The value is the key file's JSON, or that JSON base64-encoded (handy for secret stores).
    It cannot be rotated in place: rotate with a key file or your KMS provider, then publish
    the new key file's content to the variable.
    """

    def __init__(self, var: str = ENV_VAR) -> None:
        self.var = var

    def __repr__(self) -> str:
        return f"EnvKeyProvider({self.var!r})"

    def describe(self) -> str:
        """The variable's name."""
        return f"environment variable {self.var}"

    def load(self) -> KeyRing:
        """Parse the variable; KeyUnavailable if it is unset."""
        value = os.environ.get(self.var)
        if not value:
            raise KeyUnavailable(
                f"environment variable {self.var} is not set; set it to the content of a "
                "tactful key file (JSON or base64 of it)"
            )
        text = value.strip()
        if not text.startswith("{"):
            try:
                text = base64.b64decode(text, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise ConfigurationError(
                    f"environment variable {self.var} is neither key-file JSON nor base64 of it"
                ) from None
        return KeyRing.from_json(text, source=f"environment variable {self.var}")

    def add_version(self) -> KeyRing:
        """Not possible for an environment variable: ConfigurationError saying what to do."""
        raise ConfigurationError(
            f"keys from environment variable {self.var} cannot be rotated in place; rotate "
            "with a key file (--key-file) and publish its new content to the variable"
        )

    def retire(self, version: int) -> KeyRing:
        """Not possible for an environment variable: ConfigurationError saying what to do."""
        return self.add_version()


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
        return KeyRing.from_json(path.read_text(encoding="utf-8"), source=f"key file {path}")
    if not create:
        raise KeyUnavailable(f"key file {path} does not exist; run `tactful init` first")
    ring = KeyRing.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our check and our open: use theirs.
        return load_or_create(path, create=False)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
    return ring


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
