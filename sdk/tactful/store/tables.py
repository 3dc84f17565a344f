"""The tables of a tactful store (SQLModel). Personal data lives only in ciphertext columns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, LargeBinary, Table, Text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 1


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table of a SQLModel table class (for Core statements)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


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


class SubjectKey(SQLModel, table=True):
    """A subject's data key (DEK), wrapped by the master key version `kek_version`."""

    __tablename__ = "subject_key"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    kek_version: int
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ProfileField(SQLModel, table=True):
    """One encrypted profile field of a subject, with its data category."""

    __tablename__ = "profile_field"

    subject_id: int = Field(primary_key=True, foreign_key="subject.id")
    name: str = Field(primary_key=True, max_length=64)
    category: str = Field(max_length=128)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = _ts()  # type: ignore[assignment]


class Event(SQLModel, table=True):
    """One encrypted behavioral event (item and kind inside the ciphertext)."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_subject_ts", "subject_id", "ts"),)

    id: str = Field(primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id")
    category: str = Field(max_length=128)
    ts: datetime = _ts(index=True)  # type: ignore[assignment]
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


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
