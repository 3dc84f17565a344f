"""Each user's own personalization settings, stored encrypted under the user's data key."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, delete, select

from tactful.errors import ValidationError
from tactful.store import SubjectRef, Subjects, now, upsert
from tactful.store.tables import UserSettings, table_of

_settings = table_of(UserSettings)


class Settings(BaseModel):
    """A user's choices about how they are personalized.

    personalization: False means the option not based on profiling (DSA Art. 38).
    discovery: 0 = only what is closest to your taste, 1 = show me new things.
    excluded_topics: item categories never to recommend.
    use_behavior / use_profile: which of the user's data may be used for personalization.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    personalization: bool = True
    discovery: float = Field(default=0.2, ge=0.0, le=1.0)
    excluded_topics: tuple[str, ...] = Field(default=(), max_length=256)
    use_behavior: bool = True
    use_profile: bool = True


class SettingsStore:
    """Reads and updates settings; one ciphertext per user."""

    def __init__(self, subjects: Subjects) -> None:
        self._subjects = subjects

    def get(self, conn: Connection, subject: SubjectRef) -> Settings:
        """The subject's settings, or the defaults if none were saved."""
        row = conn.execute(
            select(_settings.c.ciphertext).where(_settings.c.subject_id == subject.id)
        ).first()
        if row is None:
            return Settings()
        raw = self._subjects.unseal(conn, subject, "user_settings", "doc", row.ciphertext)
        return Settings.model_validate_json(raw)

    def update(self, conn: Connection, subject: SubjectRef, **changes: object) -> Settings:
        """Change some settings; unknown names or bad values raise ValidationError."""
        current = self.get(conn, subject)
        try:
            merged = Settings.model_validate({**current.model_dump(), **changes})
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValidationError(f"invalid settings ({problems})") from None
        document = json.dumps(merged.model_dump(mode="json")).encode()
        blob = self._subjects.seal(conn, subject, "user_settings", "doc", document)
        upsert(
            conn,
            _settings,
            [{"subject_id": subject.id, "ciphertext": blob, "updated_at": now()}],
            ["subject_id"],
        )
        return merged

    def delete_all(self, conn: Connection, subject: SubjectRef) -> int:
        """Delete the subject's settings (erasure)."""
        return conn.execute(delete(_settings).where(_settings.c.subject_id == subject.id)).rowcount


__all__ = ["Settings", "SettingsStore"]
