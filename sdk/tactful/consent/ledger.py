"""The append-only consent ledger; the current state is a fold of its records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, delete, func, select

from tactful.consent.purposes import PurposeCatalog
from tactful.errors import ValidationError
from tactful.store import SubjectRef, now, utc
from tactful.store.tables import ConsentRecord, table_of

ConsentState = Literal["given", "refused", "withdrawn", "expired", "not_asked"]
Method = Literal["ui", "api", "import", "gpc", "tcf"]
METHODS: frozenset[str] = frozenset({"ui", "api", "import", "gpc", "tcf"})

_consent = table_of(ConsentRecord)


class PurposeConsent(BaseModel):
    """The consent state of one purpose for one user at one moment."""

    model_config = ConfigDict(frozen=True)

    purpose: str
    state: ConsentState
    since: datetime | None = None
    expires_at: datetime | None = None
    notice_id: str | None = None
    notice_version: str | None = None
    method: str | None = None

    @property
    def given(self) -> bool:
        """True if consent is in force."""
        return self.state == "given"


class ConsentReceipt(BaseModel):
    """What was recorded by a grant or a withdrawal (returned to the app; no user id in it)."""

    model_config = ConfigDict(frozen=True)

    purposes: tuple[str, ...]
    state: ConsentState
    recorded_at: datetime
    method: str
    notice_id: str | None = None
    notice_version: str | None = None
    expires_at: datetime | None = None


class ConsentLedger:
    """Appends consent records and folds them into a state per purpose."""

    def __init__(self, purposes: PurposeCatalog) -> None:
        self.purposes = purposes

    def check_purposes(self, purposes: Iterable[str], *, consent_only: bool = True) -> list[str]:
        """Validate purpose ids, naming any undeclared one and listing the declared ones."""
        if isinstance(purposes, str):
            purposes = [purposes]
        out = list(dict.fromkeys(purposes))
        if not out:
            raise ValidationError("no purpose given; pass at least one declared purpose id")
        for pid in out:
            if pid not in self.purposes.purposes:
                raise ValidationError(
                    f"purpose {pid!r} is not declared in the policy pack's purposes.yaml "
                    f"(declared: {', '.join(self.purposes.ids())})"
                )
            basis = self.purposes.get(pid).lawful_basis
            if consent_only and basis != "consent":
                raise ValidationError(
                    f"purpose {pid!r} rests on {basis}, not consent; there is no consent to record"
                )
        return out

    def record(
        self,
        conn: Connection,
        subject: SubjectRef,
        purposes: Iterable[str],
        state: ConsentState,
        *,
        method: str = "api",
        notice_id: str | None = None,
        notice_version: str | None = None,
        notice_hash: str | None = None,
        source: str | None = None,
        at: datetime | None = None,
    ) -> ConsentReceipt:
        """Append one record per purpose; returns the receipt."""
        ids = self.check_purposes(purposes)
        if method not in METHODS:
            raise ValidationError(
                f"consent method {method!r} is unknown; use one of {sorted(METHODS)}"
            )
        if at is not None and at.tzinfo is None:
            raise ValidationError("consent time must be timezone-aware (e.g. datetime.now(UTC))")
        stamp = utc(at) if at else now()
        rows = []
        expiry: datetime | None = None
        for pid in ids:
            validity = self.purposes.get(pid).validity_days
            expires = stamp + timedelta(days=validity) if state == "given" and validity else None
            expiry = expires
            rows.append(
                {
                    "subject_id": subject.id,
                    "purpose": pid,
                    "state": state,
                    "lawful_basis": "consent",
                    "notice_id": notice_id,
                    "notice_version": notice_version,
                    "notice_hash": notice_hash,
                    "method": method,
                    "source": source,
                    "recorded_at": stamp,
                    "expires_at": expires,
                }
            )
        conn.execute(_consent.insert(), rows)
        return ConsentReceipt(
            purposes=tuple(ids),
            state=state,
            recorded_at=stamp,
            method=method,
            notice_id=notice_id,
            notice_version=notice_version,
            expires_at=expiry,
        )

    def status(
        self, conn: Connection, subject: SubjectRef, *, as_of: datetime | None = None
    ) -> dict[str, PurposeConsent]:
        """The state of every consent-based purpose for the subject, now or `as_of`."""
        moment = utc(as_of) if as_of else now()
        rows = conn.execute(
            select(_consent)
            .where((_consent.c.subject_id == subject.id) & (_consent.c.recorded_at <= moment))
            .order_by(_consent.c.recorded_at, _consent.c.id)
        )
        latest: dict[str, PurposeConsent] = {}
        for r in rows:
            expires = utc(r.expires_at) if r.expires_at else None
            latest[r.purpose] = PurposeConsent(
                purpose=r.purpose,
                state=r.state,
                since=utc(r.recorded_at),
                expires_at=expires,
                notice_id=r.notice_id,
                notice_version=r.notice_version,
                method=r.method,
            )
        out: dict[str, PurposeConsent] = {}
        for pid in self.purposes.ids():
            if not self.purposes.get(pid).needs_consent:
                continue
            state = latest.get(pid, PurposeConsent(purpose=pid, state="not_asked"))
            if (
                state.state == "given"
                and state.expires_at is not None
                and state.expires_at <= moment
            ):
                state = state.model_copy(update={"state": "expired"})
            out[pid] = state
        return out

    def history(self, conn: Connection, subject: SubjectRef) -> list[dict[str, object]]:
        """Every ledger record of the subject, oldest first (for export)."""
        rows = conn.execute(
            select(_consent)
            .where(_consent.c.subject_id == subject.id)
            .order_by(_consent.c.recorded_at, _consent.c.id)
        )
        return [
            {
                "purpose": r.purpose,
                "state": r.state,
                "lawful_basis": r.lawful_basis,
                "notice_id": r.notice_id,
                "notice_version": r.notice_version,
                "notice_hash": r.notice_hash,
                "method": r.method,
                "source": r.source,
                "recorded_at": utc(r.recorded_at).isoformat(),
                "expires_at": utc(r.expires_at).isoformat() if r.expires_at else None,
            }
            for r in rows
        ]

    def consenting_subjects(self, conn: Connection, purpose: str) -> list[int]:
        """Ids of live subjects whose consent for `purpose` is in force now."""
        moment = now()
        last = (
            select(_consent.c.subject_id, func.max(_consent.c.id).label("last_id"))
            .where((_consent.c.purpose == purpose) & (_consent.c.recorded_at <= moment))
            .group_by(_consent.c.subject_id)
            .subquery()
        )
        rows = conn.execute(
            select(_consent.c.subject_id)
            .join(last, _consent.c.id == last.c.last_id)
            .where(
                (_consent.c.state == "given")
                & ((_consent.c.expires_at.is_(None)) | (_consent.c.expires_at > moment))
            )
            .order_by(_consent.c.subject_id)
        )
        return [int(r[0]) for r in rows]

    def counts(self, conn: Connection) -> dict[str, dict[str, int]]:
        """Current number of subjects per purpose and state (for reports)."""
        moment = now()
        last = (
            select(func.max(_consent.c.id).label("last_id"))
            .where(_consent.c.recorded_at <= moment)
            .group_by(_consent.c.subject_id, _consent.c.purpose)
            .subquery()
        )
        rows = conn.execute(
            select(_consent.c.purpose, _consent.c.state, _consent.c.expires_at).join(
                last, _consent.c.id == last.c.last_id
            )
        )
        out: dict[str, dict[str, int]] = {pid: {} for pid in self.purposes.ids()}
        for r in rows:
            state = r.state
            if state == "given" and r.expires_at is not None and utc(r.expires_at) <= moment:
                state = "expired"
            bucket = out.setdefault(r.purpose, {})
            bucket[state] = bucket.get(state, 0) + 1
        return out

    def delete_all(self, conn: Connection, subject: SubjectRef) -> int:
        """Delete the subject's ledger (erasure only)."""
        return conn.execute(delete(_consent).where(_consent.c.subject_id == subject.id)).rowcount
