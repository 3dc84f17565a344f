"""Rectification (Art. 16), restriction (Art. 18) and objection (Art. 21) of one subject."""

from __future__ import annotations

import json

from sqlalchemy import Connection, bindparam, delete, select, update

from tactful.audit import AuditLog
from tactful.consent import PurposeCatalog
from tactful.errors import ValidationError
from tactful.store import ProfileSchema, Store, SubjectRef, now
from tactful.store.engine import insert_ignore
from tactful.store.tables import Objection, Subject, table_of

_objection = table_of(Objection)
_OBJECTIONS = select(_objection.c.purpose).where(_objection.c.subject_id == bindparam("sid"))
_subject = table_of(Subject)
TRUE = {"true", "yes", "1", "on"}
FALSE = {"false", "no", "0", "off"}


def parse_value(schema: ProfileSchema, name: str, text: str) -> object:
    """A profile value typed from text (the CLI's argument): by the field's declared type.

    list[str] takes a JSON array or comma-separated words; an empty text deletes the field.
    """
    schema.check_names([name])
    kind = schema.fields[name].type
    if text == "":
        return None
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            low = text.strip().lower()
            if low not in TRUE | FALSE:
                raise ValueError(low)
            return low in TRUE
        if kind == "list[str]":
            if text.lstrip().startswith("["):
                value = json.loads(text)
                if not isinstance(value, list):
                    raise ValueError("not a list")
                return value
            return [w.strip() for w in text.split(",") if w.strip()]
    except ValueError as exc:
        raise ValidationError(
            f"profile field {name!r} takes a value of type {kind}; the value given is not one"
        ) from exc
    return text


class Controls:
    """Rectify profile fields, restrict and lift processing, record and lift objections."""

    def __init__(self, store: Store, audit: AuditLog, purposes: PurposeCatalog) -> None:
        self._store = store
        self._audit = audit
        self._purposes = purposes

    def rectify(self, conn: Connection, subject: SubjectRef, values: dict[str, object]) -> None:
        """Correct profile fields (validated like any write; None deletes a field)."""
        if not values:
            raise ValidationError("rectification needs at least one field to correct")
        self._store.profiles.put(conn, subject, values)
        self._audit.append(
            conn, "subject.rectified", {"fields": sorted(values)}, alias=subject.alias
        )

    def set_restricted(self, conn: Connection, subject: SubjectRef, restricted: bool) -> bool:
        """Restrict (or lift the restriction of) all processing but storage; True if changed."""
        target, source = ("restricted", "active") if restricted else ("active", "restricted")
        changed = conn.execute(
            update(_subject)
            .where((_subject.c.id == subject.id) & (_subject.c.status == source))
            .values(status=target)
        ).rowcount
        if changed:
            kind = "subject.restricted" if restricted else "subject.unrestricted"
            self._audit.append(conn, kind, {}, alias=subject.alias)
        return bool(changed)

    def object(self, conn: Connection, subject: SubjectRef, purpose: str) -> bool:
        """Record an objection to a declared purpose; True if it is new."""
        self._check_purpose(purpose)
        added = insert_ignore(
            conn,
            _objection,
            [{"subject_id": subject.id, "purpose": purpose, "recorded_at": now()}],
            ["subject_id", "purpose"],
        )
        if added:
            self._audit.append(conn, "subject.objected", {"purpose": purpose}, alias=subject.alias)
        return bool(added)

    def lift_objection(self, conn: Connection, subject: SubjectRef, purpose: str) -> bool:
        """Remove an objection (the subject changed their mind); True if there was one."""
        self._check_purpose(purpose)
        gone = conn.execute(
            delete(_objection).where(
                (_objection.c.subject_id == subject.id) & (_objection.c.purpose == purpose)
            )
        ).rowcount
        if gone:
            self._audit.append(
                conn, "subject.objection_lifted", {"purpose": purpose}, alias=subject.alias
            )
        return bool(gone)

    def objections(self, conn: Connection, subject: SubjectRef) -> frozenset[str]:
        """The purposes the subject objects to."""
        rows = conn.execute(_OBJECTIONS, {"sid": subject.id}).scalars()
        return frozenset(rows)

    def delete_all(self, conn: Connection, subject: SubjectRef) -> int:
        """Delete the subject's objections (erasure only); returns how many."""
        return conn.execute(
            delete(_objection).where(_objection.c.subject_id == subject.id)
        ).rowcount

    def excluded_from(self, conn: Connection, purpose: str) -> frozenset[int]:
        """Subject ids whose data must not serve `purpose`: restricted, or objecting to it."""
        restricted = conn.execute(
            select(_subject.c.id).where(_subject.c.status == "restricted")
        ).scalars()
        objecting = conn.execute(
            select(_objection.c.subject_id).where(_objection.c.purpose == purpose)
        ).scalars()
        return frozenset(restricted) | frozenset(objecting)

    def _check_purpose(self, purpose: str) -> None:
        if purpose not in self._purposes.purposes:
            raise ValidationError(
                f"purpose {purpose!r} is not declared in the policy pack's purposes.yaml "
                f"(declared: {', '.join(self._purposes.ids())})"
            )
