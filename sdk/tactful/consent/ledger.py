"""The append-only consent ledger; the current state is a fold of its records.

The fold is the same everywhere (a user's status, the training set, the report counts): for
each subject and purpose, the record with the latest `recorded_at` wins, ties broken by the
higher record id (the later append). A `given` record then reads as `expired` once its expiry
has passed, and as `invalidated` when the purpose's notice changed materially since.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Row, bindparam, delete, func, select

from tactful.consent.purposes import Purpose, PurposeCatalog
from tactful.consent.receipts import (
    ConsentReceipt,
    ConsentState,
    ConsentType,
    GivenBy,
    ReceiptPurpose,
)
from tactful.errors import ValidationError
from tactful.store import SubjectRef, now, utc
from tactful.store.tables import ConsentDetail, ConsentRecord, table_of

METHODS: frozenset[str] = frozenset({"ui", "api", "import", "gpc", "tcf"})
FIRST_PARTY: frozenset[str] = frozenset({"ui", "api", "import"})
RECORDABLE: frozenset[str] = frozenset({"given", "refused", "withdrawn"})
MAX_PURPOSES = 64
MAX_TEXT = {"notice_id": 128, "notice_version": 32, "source": 128}
# A record may be backdated (imports from an earlier consent tool) but never dated ahead of
# the clock beyond ordinary skew: a future record would silently change past answers.
MAX_SKEW = timedelta(minutes=5)
_HASH = re.compile(r"^[0-9a-f]{64}$")

_consent = table_of(ConsentRecord)
_detail = table_of(ConsentDetail)
# A subject's ledger in fold order, with each record's detail; built once (the gate reads it
# on every cache miss, and building the statement cost more than running it).
_LEDGER = (
    select(_consent, _detail.c.consent_type, _detail.c.given_by)
    .outerjoin(_detail, _detail.c.record_id == _consent.c.id)
    .where(_consent.c.subject_id == bindparam("sid"))
    .order_by(_consent.c.recorded_at, _consent.c.id)
)
_LEDGER_UNTIL = _LEDGER.where(
    _consent.c.recorded_at <= bindparam("moment", type_=_consent.c.recorded_at.type)
)


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
    consent_type: ConsentType = "expressed"
    given_by: GivenBy = "subject"

    @property
    def given(self) -> bool:
        """True if consent is in force."""
        return self.state == "given"

    @property
    def explicit(self) -> bool:
        """True if consent is in force and was given explicitly (GDPR Art. 9(2)(a))."""
        return self.given and self.consent_type == "explicit"

    @property
    def parental(self) -> bool:
        """True if consent is in force and was given or authorized by a guardian (Art. 8)."""
        return self.given and self.given_by == "guardian"


@dataclass(frozen=True, slots=True)
class InForce:
    """Subjects whose consent for a purpose is in force now, and when that can next lapse."""

    subject_ids: list[int]
    next_expiry: datetime | None


def effective_state(
    purpose: Purpose, state: str, expires: datetime | None, notice: str | None, moment: datetime
) -> ConsentState:
    """The state a latest record has at `moment`: expiry and material notice changes apply."""
    if state != "given":
        return state  # type: ignore[return-value]
    if expires is not None and utc(expires) <= moment:
        return "expired"
    if not purpose.notice_sufficient(notice):
        return "invalidated"
    return "given"


class ConsentLedger:
    """Appends consent records and folds them into a state per purpose."""

    def __init__(
        self, purposes: PurposeCatalog, controller: Mapping[str, str] | None = None
    ) -> None:
        self.purposes = purposes
        self.controller = dict(controller or {})

    def check_purposes(self, purposes: Iterable[str], *, consent_only: bool = True) -> list[str]:
        """Validate purpose ids, naming any undeclared one and listing the declared ones."""
        if isinstance(purposes, str):
            purposes = [purposes]
        out = list(dict.fromkeys(purposes))
        if not out:
            raise ValidationError("no purpose given; pass at least one declared purpose id")
        if len(out) > MAX_PURPOSES:
            raise ValidationError(f"too many purposes in one call ({len(out)} > {MAX_PURPOSES})")
        for pid in out:
            if not isinstance(pid, str) or pid not in self.purposes.purposes:
                shown = repr(pid)[:80]
                raise ValidationError(
                    f"purpose {shown} is not declared in the policy pack's purposes.yaml "
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
        consent_type: ConsentType = "expressed",
        given_by: GivenBy = "subject",
    ) -> ConsentReceipt:
        """Append one record per purpose and return the receipt; ValidationError writes nothing."""
        ids = self.check_purposes(purposes)
        stamp = _check_record(
            state,
            method,
            at,
            consent_type,
            given_by,
            notice_hash,
            {"notice_id": notice_id, "notice_version": notice_version, "source": source},
        )
        record_ids: list[int] = []
        details: list[ReceiptPurpose] = []
        expiry: datetime | None = None
        for pid in ids:
            purpose = self.purposes.get(pid)
            validity = purpose.validity_days
            expires = stamp + timedelta(days=validity) if state == "given" and validity else None
            if expires is not None and (expiry is None or expires < expiry):
                expiry = expires
            row_id = conn.execute(
                _consent.insert()
                .values(
                    subject_id=subject.id,
                    purpose=pid,
                    state=state,
                    lawful_basis=purpose.lawful_basis,
                    notice_id=notice_id,
                    notice_version=notice_version,
                    notice_hash=notice_hash,
                    method=method,
                    source=source,
                    recorded_at=stamp,
                    expires_at=expires,
                )
                .returning(_consent.c.id)
            ).scalar_one()
            record_ids.append(int(row_id))
            if consent_type != "expressed" or given_by != "subject":
                conn.execute(
                    _detail.insert().values(
                        record_id=row_id, consent_type=consent_type, given_by=given_by
                    )
                )
            details.append(_receipt_purpose(pid, purpose, expires))
        return ConsentReceipt(
            purposes=tuple(ids),
            state=state,
            recorded_at=stamp,
            method=method,
            notice_id=notice_id,
            notice_version=notice_version,
            expires_at=expiry,
            receipt_id=uuid.uuid4().hex,
            record_ids=tuple(record_ids),
            subject_alias=subject.alias,
            notice_hash=notice_hash,
            source=source,
            consent_type=consent_type,
            given_by=given_by,
            controller=self.controller,
            details=tuple(details),
        )

    def status(
        self, conn: Connection, subject: SubjectRef, *, as_of: datetime | None = None
    ) -> dict[str, PurposeConsent]:
        """The state of every consent-based purpose for the subject, now or `as_of`."""
        moment = _moment(as_of)
        latest: dict[str, Row[Any]] = {}
        for r in self._rows(conn, subject, moment):
            latest[r.purpose] = r
        out: dict[str, PurposeConsent] = {}
        for pid in self.purposes.ids():
            purpose = self.purposes.get(pid)
            if not purpose.needs_consent:
                continue
            found = latest.get(pid)
            if found is None:
                out[pid] = PurposeConsent(purpose=pid, state="not_asked")
                continue
            r = found
            expires = utc(r.expires_at) if r.expires_at else None
            out[pid] = PurposeConsent(
                purpose=pid,
                state=effective_state(purpose, r.state, expires, r.notice_version, moment),
                since=utc(r.recorded_at),
                expires_at=expires,
                notice_id=r.notice_id,
                notice_version=r.notice_version,
                method=r.method,
                consent_type=r.consent_type or "expressed",
                given_by=r.given_by or "subject",
            )
        return out

    def latest_records(self, conn: Connection, subject: SubjectRef) -> dict[str, list[Row[Any]]]:
        """Every record per purpose in fold order (oldest first), for signal precedence."""
        out: dict[str, list[Row[Any]]] = {}
        for r in self._rows(conn, subject, now()):
            out.setdefault(r.purpose, []).append(r)
        return out

    def history(self, conn: Connection, subject: SubjectRef) -> list[dict[str, object]]:
        """Every ledger record of the subject, oldest first (for export)."""
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
                "consent_type": r.consent_type or "expressed",
                "given_by": r.given_by or "subject",
                "recorded_at": utc(r.recorded_at).isoformat(),
                "expires_at": utc(r.expires_at).isoformat() if r.expires_at else None,
            }
            for r in self._rows(conn, subject, None)
        ]

    def in_force(self, conn: Connection, purpose: str) -> InForce:
        """Live subjects whose consent for `purpose` is in force now, and the earliest expiry
        among them (after which this answer changes without any new record)."""
        moment = now()
        definition = self.purposes.get(purpose)
        ids: list[int] = []
        soonest: datetime | None = None
        for r in conn.execute(self._latest_per(moment, purpose)):
            expires = utc(r.expires_at) if r.expires_at else None
            if effective_state(definition, r.state, expires, r.notice_version, moment) != "given":
                continue
            ids.append(int(r.subject_id))
            if expires is not None and (soonest is None or expires < soonest):
                soonest = expires
        return InForce(sorted(ids), soonest)

    def consenting_subjects(self, conn: Connection, purpose: str) -> list[int]:
        """Ids of live subjects whose consent for `purpose` is in force now."""
        return self.in_force(conn, purpose).subject_ids

    def counts(self, conn: Connection) -> dict[str, dict[str, int]]:
        """Current number of subjects per purpose and state (for reports)."""
        moment = now()
        out: dict[str, dict[str, int]] = {pid: {} for pid in self.purposes.ids()}
        for r in conn.execute(self._latest_per(moment, None)):
            if r.purpose not in self.purposes.purposes:
                continue  # a purpose removed from the pack keeps its records, uncounted
            expires = utc(r.expires_at) if r.expires_at else None
            state = effective_state(
                self.purposes.get(r.purpose), r.state, expires, r.notice_version, moment
            )
            bucket = out.setdefault(r.purpose, {})
            bucket[state] = bucket.get(state, 0) + 1
        return out

    def delete_all(self, conn: Connection, subject: SubjectRef) -> int:
        """Delete the subject's ledger (erasure only)."""
        ids = select(_consent.c.id).where(_consent.c.subject_id == subject.id)
        conn.execute(delete(_detail).where(_detail.c.record_id.in_(ids)))
        return conn.execute(delete(_consent).where(_consent.c.subject_id == subject.id)).rowcount

    def _rows(
        self, conn: Connection, subject: SubjectRef, moment: datetime | None
    ) -> list[Row[Any]]:
        if moment is None:
            return list(conn.execute(_LEDGER, {"sid": subject.id}))
        return list(conn.execute(_LEDGER_UNTIL, {"sid": subject.id, "moment": moment}))

    @staticmethod
    def _latest_per(moment: datetime, purpose: str | None) -> Any:
        # One row per (subject, purpose): the fold's winner, by a window function (SQLite
        # 3.25+ and PostgreSQL), so the training set and the counts agree with `status`.
        where = _consent.c.recorded_at <= moment
        if purpose is not None:
            where = where & (_consent.c.purpose == purpose)
        rank = (
            func.row_number()
            .over(
                partition_by=(_consent.c.subject_id, _consent.c.purpose),
                order_by=(_consent.c.recorded_at.desc(), _consent.c.id.desc()),
            )
            .label("rank")
        )
        ranked = (
            select(
                _consent.c.subject_id,
                _consent.c.purpose,
                _consent.c.state,
                _consent.c.expires_at,
                _consent.c.notice_version,
                rank,
            )
            .where(where)
            .subquery()
        )
        return select(ranked).where(ranked.c.rank == 1)


def _moment(as_of: datetime | None) -> datetime:
    if as_of is None:
        return now()
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise ValidationError("as_of must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return utc(as_of)


def _check_record(
    state: str,
    method: str,
    at: datetime | None,
    consent_type: str,
    given_by: str,
    notice_hash: str | None,
    texts: Mapping[str, str | None],
) -> datetime:
    if state not in RECORDABLE:
        raise ValidationError(
            f"consent state {state!r} cannot be recorded; use {sorted(RECORDABLE)}"
        )
    if method not in METHODS:
        raise ValidationError(f"consent method {method!r} is unknown; use one of {sorted(METHODS)}")
    if consent_type not in ("expressed", "explicit"):
        raise ValidationError("consent_type must be 'expressed' or 'explicit'")
    if consent_type == "explicit" and state != "given":
        raise ValidationError("only a consent being given can be marked explicit")
    if given_by not in ("subject", "guardian"):
        raise ValidationError("given_by must be 'subject' or 'guardian' (parental authorization)")
    for name, value in texts.items():
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT[name]):
            raise ValidationError(f"{name} must be a string of at most {MAX_TEXT[name]} characters")
    if notice_hash is not None and (
        not isinstance(notice_hash, str) or not _HASH.match(notice_hash)
    ):
        raise ValidationError(
            "notice_hash must be the SHA-256 of the notice text, 64 lowercase hex"
        )
    if at is None:
        return now()
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValidationError("consent time must be timezone-aware (e.g. datetime.now(UTC))")
    stamp = utc(at)
    if stamp > now() + MAX_SKEW:
        raise ValidationError("consent time is in the future; record consent when it is given")
    return stamp


def _receipt_purpose(pid: str, purpose: Purpose, expires: datetime | None) -> ReceiptPurpose:
    return ReceiptPurpose(
        id=pid,
        title=purpose.title,
        dpv=purpose.dpv,
        fideslang=purpose.fideslang,
        lawful_basis=purpose.lawful_basis,
        profiling=purpose.profiling,
        data_categories=purpose.data_categories,
        recipients=purpose.recipients,
        retention_days=purpose.retention_days,
        expires_at=expires,
    )
