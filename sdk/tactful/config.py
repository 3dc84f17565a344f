"""Where things live: TACTFUL_HOME, TACTFUL_DB_URL, TACTFUL_KEY_FILE, TACTFUL_KEYSTORE_URL,
TACTFUL_POLICIES; how decision records are written: TACTFUL_AUDIT; the gate's subject cache:
TACTFUL_SUBJECT_CACHE; how many unwrapped data keys a process keeps: TACTFUL_DEK_CACHE; how a
process on PostgreSQL learns of other processes' writes: TACTFUL_PG_CHANGES."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tactful.errors import ConfigurationError
from tactful.policy.cache import DEFAULT_CAPACITY as DEFAULT_SUBJECT_CACHE
from tactful.store import PG_CHANGES
from tactful.store.subjects import CIPHER_CACHE as DEK_CACHE

DEFAULT_HOME = ".tactful"
DB_FILE = "tactful.db"
KEY_FILE = "master.key"
KEYSTORE_FILE = "keys.db"


@dataclass(frozen=True, slots=True)
class Config:
    """The resolved locations of a store: its database URL, master key file and policy pack."""

    home: Path
    db_url: str
    key_file: Path
    policies: Path | None
    keystore_url: str = ""
    dek_cache: int = DEK_CACHE

    @property
    def is_sqlite(self) -> bool:
        """True when the store is an embedded SQLite file."""
        return self.db_url.startswith("sqlite")


def normalize_db_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and select the psycopg 3 driver for them."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")):
        return url
    scheme = url.split("://", 1)[0] if "://" in url else url[:20]
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path/to/tactful.db "
        "or postgresql://host:port/dbname"
    )


def resolve(
    *,
    home: str | os.PathLike[str] | None = None,
    db_url: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    policies: str | os.PathLike[str] | None = None,
    keystore_url: str | None = None,
    dek_cache: int | None = None,
) -> Config:
    """Resolve explicit arguments, then TACTFUL_* environment variables, then defaults.

    The key store (wrapped data keys) defaults to keys.db next to the master key file, never
    inside the data database, so that database backups hold no data key.
    """
    home_path = Path(home or os.environ.get("TACTFUL_HOME") or DEFAULT_HOME).expanduser()
    url = db_url or os.environ.get("TACTFUL_DB_URL")
    if url is None:
        url = f"sqlite:///{(home_path / DB_FILE).resolve()}"
    key = Path(key_file or os.environ.get("TACTFUL_KEY_FILE") or home_path / KEY_FILE)
    pol = policies or os.environ.get("TACTFUL_POLICIES")
    key = key.expanduser()
    ks = keystore_url or os.environ.get("TACTFUL_KEYSTORE_URL")
    if ks is None:
        ks = f"sqlite:///{(key.parent / KEYSTORE_FILE).resolve()}"
    db = normalize_db_url(url)
    ks = normalize_db_url(ks)
    if ks == db:
        raise ConfigurationError(
            "the key store URL is the database URL: data keys must live apart from the data "
            "(or backups stay readable after erasure); use another database or file"
        )
    return Config(
        home=home_path,
        db_url=db,
        key_file=key,
        policies=Path(pol).expanduser() if pol else None,
        keystore_url=ks,
        dek_cache=_dek_cache(dek_cache),
    )


def _dek_cache(value: int | None) -> int:
    return _size(value, "dek_cache", "TACTFUL_DEK_CACHE", DEK_CACHE, "data keys")


def _size(value: int | None, option: str, env: str, default: int, unit: str) -> int:
    """A cache size: `value`, else the environment variable `env`, else `default`."""
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"{option}= (or {env}) must be a whole number of {unit}, 0 or more "
            f"(0 turns the cache off; default {default})"
        )
    return value


AUDIT_MODES = ("batched", "sync")


def audit_batched() -> bool:
    """TACTFUL_AUDIT: `batched` (default) group-commits decision records; `sync` writes each
    one before its answer is returned (see docs/architecture.md, "Audit group commit")."""
    mode = os.environ.get("TACTFUL_AUDIT", "batched").strip().lower() or "batched"
    if mode not in AUDIT_MODES:
        raise ConfigurationError(
            f"TACTFUL_AUDIT must be one of {', '.join(AUDIT_MODES)}, not {mode!r}"
        )
    return mode == "batched"


def pg_changes(given: str | None = None) -> str:
    """TACTFUL_PG_CHANGES (or `given`): `probe` (default) asks PostgreSQL on every gated call
    whether the user's rows changed; `notify` answers from memory until a commit of this
    process or a notification of another's says something changed (docs/architecture.md,
    "Probes answered from memory (PostgreSQL, opt-in)"). SQLite ignores it."""
    raw = given if given is not None else os.environ.get("TACTFUL_PG_CHANGES", "")
    mode = raw.strip().lower() or PG_CHANGES[0]
    if mode not in PG_CHANGES:
        raise ConfigurationError(
            f"pg_changes= (or TACTFUL_PG_CHANGES) must be one of {', '.join(PG_CHANGES)}, "
            f"not {mode!r}"
        )
    return mode


def subject_cache_size(given: int | None = None) -> int:
    """How many subjects the gate's cache holds: `given`, else TACTFUL_SUBJECT_CACHE, else
    4,096; 0 turns it off (docs/architecture.md, "The gate's per-call path")."""
    return _size(given, "subject_cache", "TACTFUL_SUBJECT_CACHE", DEFAULT_SUBJECT_CACHE, "users")
