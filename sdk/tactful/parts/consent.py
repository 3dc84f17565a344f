"""tf.consent and tf.settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tactful.consent import (
    ConsentReceipt,
    PurposeConsent,
    SignalOutcome,
    decode_tc_string,
    gpc_enabled,
)
from tactful.consent.signals import plan as _signal_plan
from tactful.errors import ValidationError
from tactful.parts.base import Part
from tactful.parts.models import TRAINING_PURPOSE, consents_to_training
from tactful.settings import Settings
from tactful.store import (
    Connection,
    SubjectRef,
)


class ConsentAPI(Part):
    """tf.consent: the append-only consent ledger, its signals and receipts."""

    def grant(
        self,
        user: str,
        purposes: str | Iterable[str],
        *,
        notice_id: str | None = None,
        notice_version: str | None = None,
        notice_hash: str | None = None,
        method: str = "api",
        source: str | None = None,
        explicit: bool = False,
        given_by: str = "subject",
        at: datetime | None = None,
    ) -> ConsentReceipt:
        """Record consent given for the purposes; returns a receipt the app can show.

        `explicit=True` records an explicit consent (needed for special categories, Art. 9);
        `given_by="guardian"` records a parental authorization (Art. 8). `at` backdates an
        imported record (timezone-aware, not in the future). Bad input writes nothing.
        """
        if not isinstance(explicit, bool):
            raise ValidationError("explicit must be True or False")
        return self._append(
            user,
            purposes,
            "given",
            notice_id=notice_id,
            notice_version=notice_version,
            notice_hash=notice_hash,
            method=method,
            source=source,
            consent_type="explicit" if explicit else "expressed",
            given_by=given_by,
            at=at,
        )

    def refuse(
        self,
        user: str,
        purposes: str | Iterable[str],
        *,
        notice_id: str | None = None,
        notice_version: str | None = None,
        method: str = "api",
        source: str | None = None,
        at: datetime | None = None,
    ) -> ConsentReceipt:
        """Record that the user was asked and said no; returns the receipt."""
        return self._append(
            user,
            purposes,
            "refused",
            notice_id=notice_id,
            notice_version=notice_version,
            method=method,
            source=source,
            at=at,
        )

    def withdraw(
        self,
        user: str,
        purposes: str | Iterable[str],
        *,
        method: str = "api",
        source: str | None = None,
        given_by: str = "subject",
        at: datetime | None = None,
    ) -> ConsentReceipt:
        """Withdraw consent; effective for the very next decision (Art. 7(3)).

        `at` backdates an imported withdrawal (timezone-aware, not in the future).
        """
        return self._append(
            user, purposes, "withdrawn", method=method, source=source, given_by=given_by, at=at
        )

    def status(self, user: str, as_of: datetime | None = None) -> dict[str, PurposeConsent]:
        """The consent state per consent-based purpose, now or as of a past moment."""
        with self._store.read() as conn:
            subject = self._store.subjects.find(conn, user)
            if subject is None:
                return {
                    p: PurposeConsent(purpose=p, state="not_asked")
                    for p in self._tf.pack.purposes.ids()
                    if self._tf.pack.purposes.get(p).needs_consent
                }
            return self._tf._ledger.status(conn, subject, as_of=as_of)

    def gpc(self, user: str, headers: Mapping[str, str]) -> list[SignalOutcome]:
        """Honor a Global Privacy Control signal: `Sec-GPC: 1` in the request's headers.

        Records an opt-out (method "gpc") of the purposes signals.yaml maps it to, by the
        precedence in docs/consent.md; returns what happened per purpose ([] without GPC).
        """
        if not gpc_enabled(headers):
            return []
        wanted = dict.fromkeys(self._tf._signals.gpc.opt_out, False)
        return self._signal(user, "gpc", wanted, "Sec-GPC")

    def tcf(self, user: str, tc_string: str) -> list[SignalOutcome]:
        """Apply an IAB TCF v2.2 TC string (from the CMP) to the purposes signals.yaml maps.

        ValidationError for a malformed or pre-v2.2 string (nothing written). Returns what
        happened per mapped purpose, by the precedence in docs/consent.md.
        """
        tc = decode_tc_string(tc_string)
        return self._signal(user, "tcf", self._tf._signals.tcf_states(tc), f"tcf:cmp{tc.cmp_id}")

    def _signal(
        self, user: str, method: str, wanted: Mapping[str, bool], source: str
    ) -> list[SignalOutcome]:
        tf = self._tf
        out: list[SignalOutcome] = []
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            records = tf._ledger.latest_records(conn, subject)
            current = tf._ledger.status(conn, subject)
            for pid, give in sorted(wanted.items()):
                out.append(
                    _signal_plan(records.get(pid, []), current[pid].state, method, give, pid)
                )
            for state in ("given", "withdrawn", "refused"):
                ids = [o.purpose for o in out if o.action == "recorded" and o.state == state]
                if ids:
                    self._write(conn, subject, ids, state, method=method, source=source)
            tf._audit.append(
                conn,
                "consent.signal",
                {
                    "method": method,
                    "outcomes": [
                        {"purpose": o.purpose, "action": o.action, "state": o.state} for o in out
                    ],
                },
                alias=subject.alias,
            )
        return out

    def _append(
        self, user: str, purposes: str | Iterable[str], state: Any, **kw: Any
    ) -> ConsentReceipt:
        ids = [purposes] if isinstance(purposes, str) else list(purposes)
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            return self._write(conn, subject, ids, state, **kw)

    def _write(
        self, conn: Connection, subject: SubjectRef, ids: list[str], state: Any, **kw: Any
    ) -> ConsentReceipt:
        tf = self._tf
        was_learned = consents_to_training(tf, conn, subject)
        receipt = tf._ledger.record(conn, subject, ids, state, **kw)
        tf._audit.append(
            conn,
            f"consent.{state}",
            {
                "purposes": list(receipt.purposes),
                "method": receipt.method,
                "notice_version": receipt.notice_version,
                "consent_type": receipt.consent_type,
                "given_by": receipt.given_by,
                "receipt_id": receipt.receipt_id,
            },
            alias=subject.alias,
        )
        if state != "given":  # memberships inferred for a purpose go with its consent
            for pid in receipt.purposes:
                tf._gate.drop_segments(conn, subject, pid)
        if TRAINING_PURPOSE in receipt.purposes:
            if state != "given":
                held = self._store.events.read_marked(conn, subject) if was_learned else None
                tf._models.forget(subject.id, held, conn, learned=was_learned)
            else:
                tf._models.bump(conn)
                tf._models.mark_dirty()
        return receipt


class SettingsAPI(Part):
    """tf.settings: each user's own personalization settings."""

    def get(self, user: str) -> Settings:
        """The user's settings (defaults if never set)."""
        with self._store.read() as conn:
            subject = self._store.subjects.find(conn, user)
            return Settings() if subject is None else self._tf._settings.get(conn, subject)

    def update(self, user: str, **changes: object) -> Settings:
        """Change settings, e.g. update(user, personalization=False, excluded_topics=["horror"])."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            result = self._tf._settings.update(conn, subject, **changes)
            self._tf._audit.append(
                conn, "settings.updated", {"changed": sorted(changes)}, alias=subject.alias
            )
            return result

    def history(self, user: str) -> list[dict[str, Any]]:
        """Every saved version of the user's settings, oldest first ([] if never set)."""
        with self._store.read() as conn:
            subject = self._store.subjects.find(conn, user)
            return [] if subject is None else self._tf._settings.history(conn, subject)
