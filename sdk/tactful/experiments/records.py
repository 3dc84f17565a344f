"""The experiments' tables: declarations (plain JSON) and exposures (encrypted per subject)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tactful.errors import ValidationError
from tactful.experiments.model import Experiment
from tactful.store import SubjectRef, Subjects, now, utc
from tactful.store.tables import ExperimentDef, ExperimentExposure, table_of

_def = table_of(ExperimentDef)
_exp = table_of(ExperimentExposure)
TABLE = "experiment_exposure"
CHUNK = 1000
_DEFINITION_FIELDS = {"variants", "metrics", "control", "description"}


def _insert_new(conn: Connection, table: Table, row: dict[str, object], keys: list[str]) -> bool:
    """Insert one row unless its key exists (a concurrent writer wins quietly); True if added.

    Told by RETURNING, not the row count (psycopg reports -1 for these inserts).
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(table)
        .values(row)
        .on_conflict_do_nothing(index_elements=keys)
        .returning(table.c[keys[0]])
    )
    return conn.execute(stmt).first() is not None


def exposed_counts(conn: Connection) -> dict[str, int]:
    """Stored exposure rows per experiment id (for the compliance report)."""
    rows = conn.execute(select(_exp.c.experiment_id, func.count()).group_by(_exp.c.experiment_id))
    return {str(e): int(n) for e, n in rows}


def _load(row: Any) -> Experiment:
    body = json.loads(row.definition)
    return Experiment.model_validate(
        {
            **body,
            "id": row.id,
            "purpose": row.purpose,
            "status": row.status,
            "created_at": utc(row.created_at),
        }
    )


class Definitions:
    """Declared experiments: insert once, read, stop."""

    def insert(self, conn: Connection, experiment: Experiment) -> Experiment:
        """Store a new declaration; ValidationError if the id is taken (they never change)."""
        body = experiment.model_dump(mode="json", include=_DEFINITION_FIELDS)
        stamp = now()
        added = _insert_new(
            conn,
            _def,
            {
                "id": experiment.id,
                "purpose": experiment.purpose,
                "definition": json.dumps(body, sort_keys=True),
                "status": "running",
                "created_at": stamp,
                "stopped_at": None,
            },
            ["id"],
        )
        if not added:
            raise ValidationError(
                f"experiment {experiment.id!r} is already declared; a declaration never "
                "changes (assignments must not move), so declare a new id for a new design"
            )
        return experiment.model_copy(update={"created_at": stamp})

    def get(self, conn: Connection, experiment_id: str) -> Experiment | None:
        """The experiment of this id, or None."""
        row = conn.execute(select(_def).where(_def.c.id == experiment_id)).first()
        return None if row is None else _load(row)

    def all(self, conn: Connection) -> list[Experiment]:
        """Every declared experiment, by id."""
        return [_load(r) for r in conn.execute(select(_def).order_by(_def.c.id))]

    def stop(self, conn: Connection, experiment_id: str) -> bool:
        """Mark a running experiment stopped; False if it was not running."""
        changed = conn.execute(
            update(_def)
            .where((_def.c.id == experiment_id) & (_def.c.status == "running"))
            .values(status="stopped", stopped_at=now())
        ).rowcount
        return bool(changed)


class Exposures:
    """Who was shown which variant and what they did since; encrypted under each subject's DEK.

    The row's ciphertext is JSON {"variant": ..., "metrics": {kind: count}}, bound by its
    associated data to (subject, table, experiment id).
    """

    def __init__(self, subjects: Subjects) -> None:
        self._subjects = subjects

    def _seal(self, conn: Connection, subject: SubjectRef, exp: str, body: dict[str, Any]) -> bytes:
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return self._subjects.seal(conn, subject, TABLE, exp, raw)

    def _unseal(
        self, conn: Connection, subject: SubjectRef, exp: str, blob: bytes
    ) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self._subjects.unseal(conn, subject, TABLE, exp, blob))
        return body

    def held(self, conn: Connection, subject: SubjectRef, exp: str) -> bool:
        """Whether an exposure of the subject to the experiment is stored."""
        return (
            conn.execute(
                select(_exp.c.subject_id).where(
                    (_exp.c.experiment_id == exp) & (_exp.c.subject_id == subject.id)
                )
            ).first()
            is not None
        )

    def expose(self, conn: Connection, subject: SubjectRef, exp: str, variant: str) -> bool:
        """Record the subject's first exposure; False if already exposed (nothing changes)."""
        if self.held(conn, subject, exp):
            return False
        blob = self._seal(conn, subject, exp, {"variant": variant, "metrics": {}})
        return _insert_new(
            conn,
            _exp,
            {
                "experiment_id": exp,
                "subject_id": subject.id,
                "exposed_at": now(),
                "ciphertext": blob,
            },
            ["experiment_id", "subject_id"],
        )

    def convert(self, conn: Connection, subject: SubjectRef, exp: str, kind: str) -> bool:
        """Count one metric event for an exposed subject; False if not exposed."""
        # FOR UPDATE: two processes counting the same user's events must not both start from
        # the same ciphertext (SQLite's BEGIN IMMEDIATE already serializes them).
        row = conn.execute(
            select(_exp.c.ciphertext)
            .where((_exp.c.experiment_id == exp) & (_exp.c.subject_id == subject.id))
            .with_for_update()
        ).first()
        if row is None:
            return False
        body = self._unseal(conn, subject, exp, row.ciphertext)
        metrics: dict[str, int] = body.setdefault("metrics", {})
        metrics[kind] = metrics.get(kind, 0) + 1
        conn.execute(
            update(_exp)
            .where((_exp.c.experiment_id == exp) & (_exp.c.subject_id == subject.id))
            .values(ciphertext=self._seal(conn, subject, exp, body))
        )
        return True

    def forget(self, conn: Connection, subject: SubjectRef, exp: str) -> int:
        """Delete one subject's exposure to one experiment (consent no longer covers it)."""
        return conn.execute(
            delete(_exp).where((_exp.c.experiment_id == exp) & (_exp.c.subject_id == subject.id))
        ).rowcount

    def outcomes(
        self, conn: Connection, exp: str, subjects: Iterable[SubjectRef]
    ) -> Iterator[tuple[str, dict[str, int]]]:
        """(variant, metric counts) of each given subject exposed to the experiment."""
        by_id = {s.id: s for s in subjects}
        ids = sorted(by_id)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = conn.execute(
                select(_exp.c.subject_id, _exp.c.ciphertext).where(
                    (_exp.c.experiment_id == exp) & _exp.c.subject_id.in_(chunk)
                )
            ).all()
            for r in rows:
                body = self._unseal(conn, by_id[r.subject_id], exp, r.ciphertext)
                yield str(body["variant"]), {str(k): int(v) for k, v in body["metrics"].items()}

    def prune(self, conn: Connection, exp: str, keep: Iterable[int]) -> int:
        """Delete the experiment's rows of subjects not in `keep` (no longer covered)."""
        kept = set(keep)
        stored = conn.execute(
            select(_exp.c.subject_id).where(_exp.c.experiment_id == exp)
        ).scalars()
        gone = sorted(set(stored) - kept)
        for start in range(0, len(gone), CHUNK):
            conn.execute(
                delete(_exp).where(
                    (_exp.c.experiment_id == exp)
                    & _exp.c.subject_id.in_(gone[start : start + CHUNK])
                )
            )
        return len(gone)

    def of_subject(self, conn: Connection, subject: SubjectRef) -> list[dict[str, Any]]:
        """The subject's exposures, decrypted (their export: inferred data)."""
        rows = conn.execute(
            select(_exp.c.experiment_id, _exp.c.exposed_at, _exp.c.ciphertext)
            .where(_exp.c.subject_id == subject.id)
            .order_by(_exp.c.experiment_id)
        ).all()
        out = []
        for r in rows:
            body = self._unseal(conn, subject, r.experiment_id, r.ciphertext)
            out.append(
                {
                    "experiment": r.experiment_id,
                    "variant": body["variant"],
                    "first_exposed_at": utc(r.exposed_at).isoformat(),
                    "metric_events": dict(sorted(body["metrics"].items())),
                }
            )
        return out

    def delete_all(self, conn: Connection, subject: SubjectRef) -> int:
        """Delete every exposure of the subject (erasure); returns how many rows."""
        return conn.execute(delete(_exp).where(_exp.c.subject_id == subject.id)).rowcount
