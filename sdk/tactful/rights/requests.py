"""Data subject requests: deadlines (GDPR or CCPA), extension, identity pause, completion.

A request names its subject only by the random audit alias; after an erasure that alias links
to nobody, so the request register keeps no personal data.
"""

from __future__ import annotations

import calendar
import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Row, select

from tactful.audit import AuditLog
from tactful.errors import ValidationError
from tactful.store import SubjectRef, now, upsert, utc
from tactful.store.tables import RequestDetail, RightsRequest, table_of

_requests = table_of(RightsRequest)
_detail = table_of(RequestDetail)

RequestKind = Literal[
    "access", "portability", "erasure", "rectification", "restriction", "objection"
]
RequestStatus = Literal["open", "paused", "completed"]
DeadlineProfile = Literal["gdpr", "ccpa"]
KINDS: tuple[str, ...] = get_args(RequestKind)
MAX_REASON = 500
GDPR_MAX_EXTENSION_MONTHS = 2  # Art. 12(3): "extended by two further months where necessary"
CCPA_RESPONSE_DAYS = 45  # Cal. Code Regs. tit. 11, § 7021(b)
CCPA_ACK_DAYS = 10  # § 7021(a)
CCPA_MAX_EXTENSION_DAYS = 45  # 90 days in all


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar-month arithmetic: Jan 31 + 1 month = Feb 28/29 (GDPR Art. 12(3) deadlines)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(
    profile: DeadlineProfile, received: datetime, extension: int = 0, paused_seconds: int = 0
) -> datetime:
    """The deadline: GDPR one calendar month (+ extension months), CCPA 45 days (+ days).

    Time spent paused while the requester's identity was unverified does not count.
    """
    if profile == "gdpr":
        base = add_months(received, 1 + extension)
    else:
        base = received + timedelta(days=CCPA_RESPONSE_DAYS + extension)
    return base + timedelta(seconds=paused_seconds)


class RequestInfo(BaseModel):
    """One data subject request as the register holds it (the subject by alias only)."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    alias: str
    status: RequestStatus
    profile: DeadlineProfile
    received_at: datetime
    due_at: datetime
    acknowledge_due_at: datetime | None = None
    acknowledged_at: datetime | None = None
    extension: int = 0
    extension_reason: str | None = None
    paused_since: datetime | None = None
    completed_at: datetime | None = None
    receipt: dict[str, Any] | None = None
    overdue: bool = False


class RequestRegister:
    """Opens, lists, extends, pauses and completes requests; every change is audit-logged."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def open(
        self,
        conn: Connection,
        subject: SubjectRef,
        kind: str,
        *,
        profile: str = "gdpr",
        identity_verified: bool = True,
        received_at: datetime | None = None,
    ) -> RequestInfo:
        """Register a request received now (or at `received_at`); paused if identity unverified."""
        if kind not in KINDS:
            raise ValidationError(f"request type {kind!r} is unknown (types: {', '.join(KINDS)})")
        if profile not in get_args(DeadlineProfile):
            raise ValidationError(f"deadline profile {profile!r} is unknown (use gdpr or ccpa)")
        if received_at is not None and received_at.tzinfo is None:
            raise ValidationError("received_at must be timezone-aware (e.g. datetime.now(UTC))")
        received = utc(received_at) if received_at else now()
        request_id = uuid.uuid4().hex
        conn.execute(
            _requests.insert().values(
                id=request_id,
                kind=kind,
                alias=subject.alias,
                status="open" if identity_verified else "paused",
                received_at=received,
                due_at=due_date(profile, received),  # type: ignore[arg-type]
            )
        )
        if profile != "gdpr" or not identity_verified:
            conn.execute(
                _detail.insert().values(
                    request_id=request_id,
                    profile=profile,
                    acknowledge_due_at=(
                        received + timedelta(days=CCPA_ACK_DAYS) if profile == "ccpa" else None
                    ),
                    paused_at=None if identity_verified else received,
                )
            )
        self._log(conn, "request.opened", request_id, subject.alias, type=kind, profile=profile)
        return self.show(conn, request_id)

    def show(self, conn: Connection, request_id: str) -> RequestInfo:
        """One request; ValidationError if the id is unknown."""
        row = conn.execute(self._query().where(_requests.c.id == request_id)).first()
        if row is None:
            raise ValidationError("no request has this id; list them with `tactful requests list`")
        return _info(row)

    def list(
        self,
        conn: Connection,
        *,
        status: str | None = None,
        kind: str | None = None,
        alias: str | None = None,
        overdue: bool = False,
    ) -> list[RequestInfo]:
        """Requests, oldest first; `overdue` keeps the open ones past their deadline."""
        stmt = self._query()
        if status is not None:
            stmt = stmt.where(_requests.c.status == status)
        if kind is not None:
            stmt = stmt.where(_requests.c.kind == kind)
        if alias is not None:
            stmt = stmt.where(_requests.c.alias == alias)
        if overdue:
            # A paused request's clock is stopped: it cannot fall overdue while paused.
            stmt = stmt.where((_requests.c.status == "open") & (_requests.c.due_at < now()))
        return [_info(r) for r in conn.execute(stmt.order_by(_requests.c.received_at))]

    def extend(
        self, conn: Connection, request_id: str, reason: str, by: int | None = None
    ) -> RequestInfo:
        """Extend the deadline with a recorded reason: GDPR by months (at most 2 in all),
        CCPA by days (at most 45 more, 90 in all). `by` defaults to the most allowed."""
        info = self._open_one(conn, request_id)
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise ValidationError(
                f"an extension needs a reason (1 to {MAX_REASON} characters) to tell the "
                "requester why (GDPR Art. 12(3))"
            )
        limit = GDPR_MAX_EXTENSION_MONTHS if info.profile == "gdpr" else CCPA_MAX_EXTENSION_DAYS
        unit = "months" if info.profile == "gdpr" else "days"
        room = limit - info.extension
        amount = room if by is None else by
        if room <= 0:
            raise ValidationError(
                f"this {info.profile} request was already extended by the most allowed "
                f"({limit} {unit})"
            )
        if not isinstance(amount, int) or not 1 <= amount <= room:
            raise ValidationError(f"extension must be 1 to {room} {unit} for this request")
        extension = info.extension + amount
        paused = self._paused_seconds(conn, request_id)
        due = due_date(info.profile, info.received_at, extension, paused)
        self._set_detail(conn, info, extension=extension, extension_reason=reason.strip())
        conn.execute(_requests.update().where(_requests.c.id == request_id).values(due_at=due))
        self._log(conn, "request.extended", request_id, info.alias, by=amount, unit=unit)
        return self.show(conn, request_id)

    def pause(self, conn: Connection, request_id: str) -> RequestInfo:
        """Stop the clock while the requester's identity is unverified (GDPR Art. 12(6))."""
        info = self._open_one(conn, request_id)
        if info.status == "paused":
            return info
        self._set_detail(conn, info, paused_at=now())
        conn.execute(_requests.update().where(_requests.c.id == request_id).values(status="paused"))
        self._log(conn, "request.paused", request_id, info.alias)
        return self.show(conn, request_id)

    def resume(self, conn: Connection, request_id: str) -> RequestInfo:
        """Identity verified: the clock runs again and the deadline moves by the pause."""
        info = self._open_one(conn, request_id)
        if info.status != "paused" or info.paused_since is None:
            return info
        paused = self._paused_seconds(conn, request_id) + int(
            (now() - info.paused_since).total_seconds()
        )
        self._set_detail(conn, info, paused_at=None, paused_seconds=paused)
        due = due_date(info.profile, info.received_at, info.extension, paused)
        conn.execute(
            _requests.update().where(_requests.c.id == request_id).values(status="open", due_at=due)
        )
        self._log(conn, "request.resumed", request_id, info.alias)
        return self.show(conn, request_id)

    def acknowledge(self, conn: Connection, request_id: str) -> RequestInfo:
        """Record that the requester was told the request arrived (CCPA: within 10 days)."""
        info = self._open_one(conn, request_id)
        self._set_detail(conn, info, acknowledged_at=now())
        self._log(conn, "request.acknowledged", request_id, info.alias)
        return self.show(conn, request_id)

    def check_usable(
        self, conn: Connection, request_id: str, kind: str | tuple[str, ...], subject: SubjectRef
    ) -> RequestInfo:
        """The open request `request_id` of this subject and type, ready to be carried out."""
        info = self._open_one(conn, request_id)
        kinds = (kind,) if isinstance(kind, str) else kind
        if info.kind not in kinds:
            raise ValidationError(f"request is of type {info.kind!r}, not {' or '.join(kinds)}")
        if info.alias != subject.alias:
            raise ValidationError("request belongs to another user; check the request id")
        if info.status == "paused":
            raise ValidationError(
                "request is paused until the requester's identity is verified; "
                "resume it first (`tactful requests resume ID`)"
            )
        return info

    def complete(
        self,
        conn: Connection,
        request_id: str,
        receipt: dict[str, Any] | None = None,
    ) -> RequestInfo:
        """Close the request with its receipt (what was done; never personal data)."""
        info = self._open_one(conn, request_id)
        if info.status == "paused":
            raise ValidationError(
                "request is paused until the requester's identity is verified; resume it first"
            )
        conn.execute(
            _requests.update()
            .where(_requests.c.id == request_id)
            .values(
                status="completed",
                completed_at=now(),
                receipt=json.dumps(receipt or {}, sort_keys=True),
            )
        )
        self._log(conn, "request.completed", request_id, info.alias)
        return self.show(conn, request_id)

    def _open_one(self, conn: Connection, request_id: str) -> RequestInfo:
        info = self.show(conn, request_id)
        if info.status == "completed":
            raise ValidationError("request is already completed; open a new one if needed")
        return info

    def _paused_seconds(self, conn: Connection, request_id: str) -> int:
        row = conn.execute(
            select(_detail.c.paused_seconds).where(_detail.c.request_id == request_id)
        ).first()
        return 0 if row is None else int(row[0])

    def _set_detail(self, conn: Connection, info: RequestInfo, **values: object) -> None:
        current = {
            "request_id": info.id,
            "profile": info.profile,
            "acknowledge_due_at": info.acknowledge_due_at,
            "acknowledged_at": info.acknowledged_at,
            "extension": info.extension,
            "extension_reason": info.extension_reason,
            "paused_at": info.paused_since,
            "paused_seconds": self._paused_seconds(conn, info.id),
        }
        upsert(conn, _detail, [{**current, **values}], ["request_id"])

    def _log(
        self, conn: Connection, kind: str, request_id: str, alias: str, **extra: object
    ) -> None:
        self._audit.append(conn, kind, {"request_id": request_id, **extra}, alias=alias)

    @staticmethod
    def _query() -> Any:
        return select(
            _requests,
            _detail.c.profile,
            _detail.c.acknowledge_due_at,
            _detail.c.acknowledged_at,
            _detail.c.extension,
            _detail.c.extension_reason,
            _detail.c.paused_at,
        ).outerjoin(_detail, _detail.c.request_id == _requests.c.id)


def _opt(moment: datetime | None) -> datetime | None:
    return utc(moment) if moment is not None else None


def _info(row: Row[Any]) -> RequestInfo:
    due = utc(row.due_at)
    done = _opt(row.completed_at)
    status = row.status
    return RequestInfo(
        id=row.id,
        kind=row.kind,
        alias=row.alias,
        status=status,
        profile=row.profile or "gdpr",
        received_at=utc(row.received_at),
        due_at=due,
        acknowledge_due_at=_opt(row.acknowledge_due_at),
        acknowledged_at=_opt(row.acknowledged_at),
        extension=row.extension or 0,
        extension_reason=row.extension_reason,
        paused_since=_opt(row.paused_at),
        completed_at=done,
        receipt=json.loads(row.receipt) if row.receipt else None,
        overdue=(done > due) if done is not None else (status != "paused" and now() > due),
    )
