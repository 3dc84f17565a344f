"""tf.audit, tf.keys and tf.retention."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tactful.audit import AuditVerdict
from tactful.errors import ValidationError
from tactful.parts.base import Part
from tactful.store import (
    KeyStatus,
    RetentionReport,
    RotationReport,
)


class AuditAPI(Part):
    """tf.audit: the hash-chained audit log."""

    def verify(self) -> AuditVerdict:
        """Verify the whole chain; the verdict names the first broken entry.

        This process's queued decision records are written first; the chain is then walked
        in a snapshot, without the write lock, so writers (any process's) go on meanwhile.
        """
        audit = self._tf._audit
        audit.flush()
        with self._store.read() as conn:
            return audit.verify(conn)

    def flush(self) -> int:
        """Write the queued decision records now; returns how many.

        `tf.recommend` queues its decision record for a group commit that follows within
        0.2 s (docs/architecture.md, "Audit group commit"); reading the log through tactful
        writes the queue first, so this is for code that reads the database by other means,
        or before a backup.
        """
        return self._tf._audit.flush()

    def checkpoint(self) -> int:
        """Sign the chain's current head under the audit key; returns the entry it covers.

        One is also written every 100 entries. Take one before a backup or export of the
        log: a later truncation or rewrite of what it covers then fails `verify()`. Raises
        IntegrityError (nothing signed) if the entries since the last checkpoint do not verify.
        """
        with self._store.begin() as conn:
            return self._tf._audit.checkpoint(conn)


class KeysAPI(Part):
    """tf.keys: master key versions, rotation and orphaned data keys."""

    def status(self) -> KeyStatus:
        """KEK versions, the current one, and how many data keys each wraps."""
        return self._store.key_status()

    def rotate(
        self, *, batch_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> RotationReport:
        """Make a new master key version and rewrap every data key under it (no re-encryption).

        Runs in batches while the store is in use; if interrupted, run it again to resume
        (no further version is made). Versions no data key uses any more are retired from the
        key ring. Audit-logged.
        """
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise ValidationError("batch_size must be an integer from 1 to 100000")
        report = self._store.rotate_keys(batch_size=batch_size, progress=progress)
        with self._store.begin() as conn:
            self._tf._audit.append(
                conn,
                "keys.rotated",
                {
                    "version": report.version,
                    "resumed": report.resumed,
                    "rewrapped": report.rewrapped,
                    "retired": list(report.retired),
                },
            )
        return report

    def collect_orphans(self) -> int:
        """Delete data keys no live user has (rolled-back creations); returns how many."""
        return self._store.collect_orphans()


class RetentionAPI(Part):
    """tf.retention: delete what is kept longer than fields.yaml's retention allows."""

    def run(self, *, batch_size: int = 1000) -> RetentionReport:
        """Delete expired profile fields and events in one transaction, then purge erased
        users' rows (`tf.rights.purge`, `batch_size` rows per transaction); audit-logged."""
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise ValidationError("batch_size must be an integer from 1 to 100000")
        with self._store.begin() as conn:
            report = self._store.retention(conn, self._tf.pack.schema)
            self._tf._audit.append(
                conn,
                "retention.run",
                {"events": report.events, "profile_fields": report.profile_fields},
            )
            if report.events:
                self._tf._models.bump(conn)
        if report.events:
            self._tf._models.mark_dirty()
        purged = self._tf.rights.purge(batch_size=batch_size)
        return replace(report, purged=purged.rows, erased_purged=purged.subjects)
