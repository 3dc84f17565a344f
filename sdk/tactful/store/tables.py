"""The tables of a tactful store (SQLModel). Personal data lives only in ciphertext columns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Dialect, Index, LargeBinary, Table, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from tactful.store.engine import blob_param

# Bump it (and add a step in store/migrate.py) for every change to an existing table; new
# tables need neither (create_all makes them). See docs/store.md, "Migrations".
SCHEMA_VERSION = 3


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table of a SQLModel table class (for Core statements)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


class Ciphertext(TypeDecorator[bytes]):
    """A BLOB (SQLite) / BYTEA (PostgreSQL) column handed to the driver without SQLAlchemy's
    LargeBinary conversion (`blob_param`: a bytearray on SQLite, the bytes as they are on
    PostgreSQL), read back as the driver's `bytes`.

    The DDL is LargeBinary's. LargeBinary wraps every bound value in the driver's `Binary`
    (a memoryview on SQLite), a Python call per value that cost as much as the AES-GCM call
    of a bulk insert, and sqlite3 then sends it through its adapter lookup (`blob_param`).
    """

    impl = LargeBinary
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[bytes | None], Any] | None:
        return blob_param(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> None:
        return None


def _ts(*, index: bool = False, nullable: bool = False) -> object:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), index=index, nullable=nullable),
    )


class Subject(SQLModel, table=True):
    """A data subject: keyed pseudonym of the app's user id (NULL once erased), status, alias."""

    __tablename__ = "subject"

    id: int | None = Field(default=None, primary_key=True)
    ref: str | None = Field(default=None, max_length=64, unique=True, index=True)
    status: str = Field(default="active", max_length=16)
    alias: str = Field(max_length=32, unique=True)
    jurisdiction: str | None = Field(default=None, max_length=8)
    created_at: datetime = _ts()  # type: ignore[assignment]
    erased_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]
    # The app's user id, encrypted under the subject's own DEK (so searchable-field lookups
    # can answer with user ids); unreadable once the DEK is shredded. Schema version 2.
    user_id_ct: bytes | None = Field(default=None, sa_column=Column(Ciphertext, nullable=True))


class ProfileField(SQLModel, table=True):
    """One encrypted profile field of a subject, with its data category."""

    __tablename__ = "profile_field"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    name: str = Field(primary_key=True, max_length=64)
    category: str = Field(max_length=128)
    ciphertext: bytes = Field(sa_column=Column(Ciphertext, nullable=False))
    updated_at: datetime = _ts()  # type: ignore[assignment]


class Event(SQLModel, table=True):
    """One encrypted behavioral event (item and kind inside the ciphertext)."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_subject_ts", "subject_id", "ts"),
        Index("ix_event_subject_seq", "subject_id", "seq"),
    )

    id: str = Field(primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id")
    category: str = Field(max_length=128)
    ts: datetime = _ts(index=True)  # type: ignore[assignment]
    ciphertext: bytes = Field(sa_column=Column(Ciphertext, nullable=False))
    # The write sequence (schema version 3): rising with every event written, store-wide
    # (`store.sequence`). The gate's probe reads a subject's latest from the index above
    # instead of counting the subject's events (docs/architecture.md, "The gate's subject
    # cache"). Nullable only for the upgrade, which fills it.
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class UserSettings(SQLModel, table=True):
    """A subject's own personalization settings, encrypted as one JSON document."""

    __tablename__ = "user_settings"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = _ts()  # type: ignore[assignment]


class CatalogEntry(SQLModel, table=True):
    """A catalog item (not personal data): title, categories and attributes as JSON."""

    __tablename__ = "catalog_item"

    item_id: str = Field(primary_key=True, max_length=128)
    title: str = Field(default="", max_length=512)
    categories: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    attributes: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    updated_at: datetime = _ts()  # type: ignore[assignment]


class ConsentRecord(SQLModel, table=True):
    """One append-only consent ledger record (ISO/IEC TS 27560 fields)."""

    __tablename__ = "consent_record"
    __table_args__ = (Index("ix_consent_subject_purpose", "subject_id", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    subject_id: int = Field(foreign_key="subject.id")
    purpose: str = Field(max_length=64)
    state: str = Field(max_length=16)
    lawful_basis: str = Field(max_length=32)
    notice_id: str | None = Field(default=None, max_length=128)
    notice_version: str | None = Field(default=None, max_length=32)
    notice_hash: str | None = Field(default=None, max_length=64)
    method: str = Field(max_length=16)
    source: str | None = Field(default=None, max_length=128)
    recorded_at: datetime = _ts(index=True)  # type: ignore[assignment]
    expires_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]


class AuditEntry(SQLModel, table=True):
    """One hash-chained audit record; `payload` is canonical JSON without personal data."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    ts: datetime = _ts(index=True)  # type: ignore[assignment]
    kind: str = Field(max_length=64, index=True)
    alias: str | None = Field(default=None, max_length=32, index=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class RightsRequest(SQLModel, table=True):
    """A data subject request (access, erasure, ...) with its deadline and receipt."""

    __tablename__ = "rights_request"

    id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)
    alias: str = Field(max_length=32, index=True)
    status: str = Field(max_length=16)
    received_at: datetime = _ts()  # type: ignore[assignment]
    due_at: datetime = _ts()  # type: ignore[assignment]
    completed_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]
    receipt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class StoreMeta(SQLModel, table=True):
    """Store-wide facts: schema version, audit chain head."""

    __tablename__ = "tactful_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class ConsentDetail(SQLModel, table=True):
    """How a consent record was given (ISO/IEC TS 27560 consent type and delegation).

    A separate table so that stores created before it need no column migration; a ledger
    record without a detail row is an ordinary ("expressed") consent given by the subject.
    """

    __tablename__ = "consent_detail"

    record_id: int = Field(primary_key=True, foreign_key="consent_record.id")
    consent_type: str = Field(max_length=16)  # expressed | explicit
    given_by: str = Field(max_length=16)  # subject | guardian


class SettingsHistory(SQLModel, table=True):
    """Every saved version of a subject's settings, encrypted, kept for export (Art. 15)."""

    __tablename__ = "settings_history"
    __table_args__ = (Index("ix_settings_history_subject", "subject_id", "recorded_at"),)

    id: str = Field(primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id")
    recorded_at: datetime = _ts()  # type: ignore[assignment]
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class BlindIndex(SQLModel, table=True):
    """The blind index of a searchable profile field: keyed HMAC of its value, never plaintext."""

    __tablename__ = "blind_index"
    __table_args__ = (Index("ix_blind_index_lookup", "name", "digest"),)

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    name: str = Field(primary_key=True, max_length=64)
    digest: bytes = Field(sa_column=Column(Ciphertext, nullable=False))


class RequestDetail(SQLModel, table=True):
    """Deadline facts of a data subject request (profile, extension, identity pause).

    A separate table so that `rights_request` of older stores needs no column migration; a
    request without a detail row is a GDPR request that was never extended nor paused.
    """

    __tablename__ = "rights_request_detail"

    request_id: str = Field(primary_key=True, foreign_key="rights_request.id", max_length=32)
    profile: str = Field(default="gdpr", max_length=8)  # gdpr | ccpa
    acknowledge_due_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]
    acknowledged_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]
    extension: int = Field(default=0)  # months (gdpr) or days (ccpa) added to the deadline
    extension_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    paused_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]
    paused_seconds: int = Field(default=0)  # identity-verification pauses so far


class Objection(SQLModel, table=True):
    """A subject's objection to a purpose (GDPR Art. 21); the gate stops that processing."""

    __tablename__ = "rights_objection"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    purpose: str = Field(primary_key=True, max_length=64)
    recorded_at: datetime = _ts()  # type: ignore[assignment]


class PrivacyBudget(SQLModel, table=True):
    """The differential-privacy budget of one dataset: epsilon granted and spent.

    Stored in integer micro-epsilons so that reservations add up exactly (no float drift).
    """

    __tablename__ = "dp_budget"

    dataset: str = Field(primary_key=True, max_length=64)
    total_micro: int = Field(default=0)
    spent_micro: int = Field(default=0)
    updated_at: datetime = _ts()  # type: ignore[assignment]


class DPRelease(SQLModel, table=True):
    """One differentially private release: what kind, on which dataset, at what epsilon.

    `result` holds the released (already private) output only where it is reused, e.g. the
    cached DP popularity list; never input data.
    """

    __tablename__ = "dp_release"
    __table_args__ = (Index("ix_dp_release_dataset_kind", "dataset", "kind", "created_at"),)

    id: str = Field(primary_key=True, max_length=32)
    dataset: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    epsilon_micro: int
    created_at: datetime = _ts()  # type: ignore[assignment]
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement "the audit chain had `seq` entries with head `head_hash`".

    `mac` is HMAC-SHA256 under the audit key over canonical JSON of (seq, head hash, ts), so
    truncating the chain or rewriting it from a point on (recomputing every hash) is caught by
    whoever lacks the audit key.
    """

    __tablename__ = "audit_checkpoint"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    ts: datetime = _ts()  # type: ignore[assignment]
    head_hash: str = Field(max_length=64)
    mac: str = Field(max_length=64)


class SegmentMembership(SQLModel, table=True):
    """A subject's segment memberships (inferred data), encrypted as one JSON document.

    Written by the gate when a personalized decision's segments change; deleted on erasure.
    """

    __tablename__ = "segment_membership"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = _ts()  # type: ignore[assignment]


class ErasureJournal(SQLModel, table=True):
    """An erased subject whose ciphertext rows still await the batched purge.

    The data key is already shredded, so those rows are unreadable. `ref` (the pseudonym) is
    kept only while the erasure hooks run, so that a re-run after an interruption finds the
    erasure by the user id; it is cleared as soon as the propagation is recorded.
    """

    __tablename__ = "rights_erasure"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    request_id: str = Field(max_length=32)
    ref: str | None = Field(default=None, max_length=64, index=True)
    erased_at: datetime = _ts()  # type: ignore[assignment]
    counted: bool = Field(default=True)  # False: the request left the row counts to the purge
    purged: bool = Field(default=False, index=True)


class ExperimentDef(SQLModel, table=True):
    """A declared experiment: its definition (variants, weights, purpose, metrics) as JSON.

    Not personal data. A definition never changes once declared (a changed design is a new
    experiment), so that a user's variant, recomputed from the keyed hash, never moves.
    """

    __tablename__ = "experiment"

    id: str = Field(primary_key=True, max_length=48)
    purpose: str = Field(max_length=64)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="running", max_length=16)  # running | stopped
    created_at: datetime = _ts()  # type: ignore[assignment]
    stopped_at: datetime | None = _ts(nullable=True)  # type: ignore[assignment]


class ExperimentExposure(SQLModel, table=True):
    """One enrolled subject's exposure to an experiment; variant and conversions encrypted.

    The ciphertext (under the subject's DEK, bound to the row) holds the variant, when it
    was first shown and the metric events counted since; it is inferred data, exported and
    erased with the subject.
    """

    __tablename__ = "experiment_exposure"

    experiment_id: str = Field(primary_key=True, foreign_key="experiment.id", max_length=48)
    subject_id: int = Field(primary_key=True, foreign_key="subject.id", index=True)
    exposed_at: datetime = _ts()  # type: ignore[assignment]
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
