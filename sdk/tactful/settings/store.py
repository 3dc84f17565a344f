"""Reading and updating settings: one ciphertext per user, plus an encrypted history."""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, bindparam, select

from tactful.errors import ValidationError
from tactful.settings.model import Settings
from tactful.store import SubjectRef, Subjects, now, upsert, utc
from tactful.store.tables import SettingsHistory, UserSettings, table_of

_settings = table_of(UserSettings)
_GET = select(_settings.c.ciphertext).where(
    _settings.c.subject_id == bindparam("sid")
)  # built once
_history = table_of(SettingsHistory)
MAX_CHANGES = 32


class SettingsStore:
    """Reads and updates settings; every saved version is kept (encrypted) for export."""

    def __init__(self, subjects: Subjects) -> None:
        self._subjects = subjects

    def get(self, conn: Connection, subject: SubjectRef) -> Settings:
        """The subject's settings, or the defaults if none were saved."""
        row = conn.execute(_GET, {"sid": subject.id}).first()
        if row is None:
            return Settings()
        raw = self._subjects.unseal(conn, subject, "user_settings", "doc", row.ciphertext)
        return Settings.model_validate_json(raw)

    def update(self, conn: Connection, subject: SubjectRef, **changes: object) -> Settings:
        """Change some settings; unknown names or bad values raise ValidationError."""
        if not changes:
            raise ValidationError("no setting given; pass e.g. personalization=False")
        if len(changes) > MAX_CHANGES:
            raise ValidationError(f"too many settings in one call (at most {MAX_CHANGES})")
        current = self.get(conn, subject)
        try:
            merged = Settings.model_validate({**current.model_dump(), **changes})
        except PydanticValidationError as exc:
            # Name the setting and the rule, never echo the value (it may be personal).
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValidationError(f"invalid settings ({problems})") from None
        document = json.dumps(merged.model_dump(mode="json")).encode()
        stamp = now()
        blob = self._subjects.seal(conn, subject, "user_settings", "doc", document)
        upsert(
            conn,
            _settings,
            [{"subject_id": subject.id, "ciphertext": blob, "updated_at": stamp}],
            ["subject_id"],
        )
        row_id = uuid.uuid4().hex
        conn.execute(
            _history.insert().values(
                id=row_id,
                subject_id=subject.id,
                recorded_at=stamp,
                ciphertext=self._subjects.seal(conn, subject, "settings_history", row_id, document),
            )
        )
        return merged

    def history(self, conn: Connection, subject: SubjectRef) -> list[dict[str, Any]]:
        """Every saved version of the subject's settings, oldest first (for export)."""
        rows = conn.execute(
            select(_history.c.id, _history.c.recorded_at, _history.c.ciphertext)
            .where(_history.c.subject_id == subject.id)
            .order_by(_history.c.recorded_at, _history.c.id)
        ).all()
        return [
            {
                "recorded_at": utc(r.recorded_at).isoformat(),
                "settings": json.loads(
                    self._subjects.unseal(conn, subject, "settings_history", r.id, r.ciphertext)
                ),
            }
            for r in rows
        ]
