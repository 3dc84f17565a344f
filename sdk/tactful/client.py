"""Tactful: opens the store, loads the policy pack and wires the parts together."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from tactful import config as _config
from tactful.audit import AuditLog, AuditVerdict
from tactful.consent import ConsentLedger, ConsentReceipt, PurposeConsent
from tactful.crypto import load_or_create
from tactful.errors import ValidationError
from tactful.models import Recommendations, RecommendedItem
from tactful.policy import CompiledPolicy, Decision, Gate, PolicyPack, load_pack
from tactful.recommend import (
    CatalogItem,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
    ScoredItem,
)
from tactful.reports import AuditReport, collect
from tactful.rights import ErasureReceipt, Rights
from tactful.settings import Settings, SettingsStore
from tactful.store import Connection, Store, StoredEvent, SubjectRef, category_allowed

MAX_K = 1000
TRAINING_PURPOSE = "personalization"
EPOCH = "model_epoch"


class Tactful:
    """A tactful store: profiles, events, consent, settings, gated recommendations, rights.

    Open it with `Tactful.open()`; use it as a context manager or call `close()`.
    """

    def __init__(self, store: Store, pack: PolicyPack) -> None:
        self._store = store
        self.pack = pack
        self._audit = AuditLog()
        self._ledger = ConsentLedger(pack.purposes)
        self._settings = SettingsStore(store.subjects)
        self._gate = Gate(CompiledPolicy(pack), self._ledger, self._settings, self._audit)
        self._rights = Rights(store, self._ledger, self._settings, self._audit, pack.purposes)
        self._models = _Models(self)
        self.profiles = _Profiles(self)
        self.events = _Events(self)
        self.catalog = _Catalog(self)
        self.consent = _Consent(self)
        self.settings = _SettingsAPI(self)
        self.rights = _Rights(self)
        self.audit = _Audit(self)

    @classmethod
    def open(
        cls,
        db_url: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
        policies: str | os.PathLike[str] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
    ) -> Tactful:
        """Open (creating on first use) a store.

        With no arguments: TACTFUL_HOME (default ./.tactful) holds tactful.db (SQLite) and
        master.key (mode 0600). TACTFUL_DB_URL, TACTFUL_KEY_FILE and TACTFUL_POLICIES override.
        """
        cfg = _config.resolve(home=home, db_url=db_url, key_file=key_file, policies=policies)
        if cfg.is_sqlite:
            cfg.home.mkdir(parents=True, exist_ok=True)
        pack = load_pack(cfg.policies)
        keys = load_or_create(cfg.key_file)
        return cls(Store(cfg.db_url, keys, pack.schema), pack)

    def close(self) -> None:
        """Release database connections."""
        self._store.close()

    def __enter__(self) -> Tactful:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Tactful(dialect={self._store.dialect!r}, policy={self.pack.meta.version!r})"

    def recommend(
        self,
        user: str,
        purpose: str = "personalization",
        k: int = 10,
        context: Mapping[str, str] | None = None,
    ) -> Recommendations:
        """Gated recommendations: the policy decides the mode; the recommender sees only a view.

        Returns personalized items when the policy allows it, otherwise the non-personalized
        popularity list, or no items when the policy denies processing. Every call is recorded
        in the audit log.
        """
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise ValidationError(f"k must be an integer from 1 to {MAX_K}")
        self._models.ensure_fresh()
        store = self._store
        with store.begin() as conn:
            subject = store.subjects.find(conn, user)
            decision, settings = self._gate.decide(conn, subject, purpose, context)
            used: frozenset[str] = frozenset()
            scored: list[ScoredItem] = []
            recommender = "none"
            if decision.outcome == "personalized" and subject is not None:
                view = self._view(conn, subject, decision)
                used = view.categories_read
                exclude = self._models.excluded(
                    decision.exclude_item_categories | frozenset(settings.excluded_topics),
                    seen=frozenset(i.item for i in view.history),
                )
                scored = self._models.itemitem.recommend(view, k, exclude) if view.history else []
                recommender = self._models.itemitem.name
                if len(scored) < k:
                    exclude = exclude | {s.item for s in scored}
                    scored += self._models.popularity.recommend(
                        MinimizedView(), k - len(scored), exclude
                    )
                    recommender = (
                        f"{recommender}+popularity" if scored and view.history else "popularity"
                    )
            elif decision.outcome == "non_personalized":
                exclude = self._models.excluded(
                    decision.exclude_item_categories | frozenset(settings.excluded_topics)
                )
                scored = self._models.popularity.recommend(MinimizedView(), k, exclude)
                recommender = self._models.popularity.name
            self._gate.record(
                conn,
                subject,
                decision,
                categories_used=used,
                recommender=recommender,
                items=len(scored),
            )
        return Recommendations(
            items=tuple(
                RecommendedItem(
                    item=s.item, score=s.score, signal=s.signal, explanation=s.explanation
                )
                for s in scored
            ),
            mode=decision.outcome,
            decision_id=decision.id,
            purpose=purpose,
            explanation=_explain(decision),
            reasons=decision.reasons,
            categories_used=tuple(sorted(used)),
        )

    def train(self) -> None:
        """Refit the recommenders from the events of users whose consent is in force now."""
        self._models.fit()

    def report(self, since: datetime | None = None, until: datetime | None = None) -> AuditReport:
        """The compliance audit report of the period; generating it is itself audited."""
        with self._store.begin() as conn:
            report = collect(
                conn,
                pack=self.pack,
                ledger=self._ledger,
                rights=self._rights,
                audit=self._audit,
                since=since,
                until=until,
            )
            self._audit.append(
                conn,
                "report.generated",
                {
                    "format": report["format"],
                    "policy_hash": self.pack.content_hash,
                    "period": report["period"],
                },
            )
        return AuditReport(report)

    def _view(self, conn: Connection, subject: SubjectRef, decision: Decision) -> MinimizedView:
        store = self._store
        fields = (
            store.profiles.get(conn, subject, categories=decision.read) if decision.read else {}
        )
        history: tuple[Interaction, ...] = ()
        cats = {store.profiles.schema.category(n) for n in fields}
        if category_allowed(store.events.category, decision.read):
            history = _interactions(store.events.read(conn, subject))
            if history:
                cats.add(store.events.category)
        return MinimizedView(fields=fields, history=history, categories_read=frozenset(cats))


def _explain(decision: Decision) -> str:
    if decision.outcome == "personalized":
        return "Personalized from your activity, with your consent."
    reason = decision.descriptions[0] if decision.descriptions else "no rule allows this processing"
    if decision.outcome == "non_personalized":
        return f"{reason[0].upper()}{reason[1:]}; showing what is popular."
    return f"No recommendations: {reason}."


def _interactions(events: Sequence[StoredEvent]) -> tuple[Interaction, ...]:
    return tuple(Interaction(item=e.item, kind=e.kind, ts=e.ts.timestamp()) for e in events)


def _consents_to_training(tf: Tactful, conn: Connection, subject: SubjectRef) -> bool:
    state = tf._ledger.status(conn, subject).get(TRAINING_PURPOSE)
    return state is not None and state.given


class _Models:
    """The recommenders' learned state, fit on consented events, kept fresh across processes.

    A store-wide epoch (in tactful_meta) is bumped by every consent change and erasure; a
    process refits when the epoch moved or when it recorded events itself. An erasure or a
    withdrawal in this process unlearns the user's contribution at once.
    """

    def __init__(self, tf: Tactful) -> None:
        self._tf = tf
        self._lock = threading.RLock()
        self.popularity = PopularityRecommender()
        self.itemitem = ItemItemRecommender()
        self._epoch: str | None = None
        self._dirty = True
        self._category_items: dict[str, frozenset[str]] = {}

    def bump(self, conn: Connection) -> None:
        """Move the store-wide epoch (inside the caller's transaction): others must refit."""
        self._tf._store.bump_counter(conn, EPOCH)

    def mark_dirty(self) -> None:
        """This process wrote events: refit before the next recommendation."""
        self._dirty = True

    def ensure_fresh(self) -> None:
        """Refit if this process's state is stale."""
        with self._tf._store.begin() as conn:
            epoch = self._read_epoch(conn)
        if self._dirty or epoch != self._epoch:
            self.fit()

    def fit(self) -> None:
        """Refit both recommenders from consented users' events."""
        with self._lock, self._tf._store.begin() as conn:
            epoch = self._read_epoch(conn)
            ids = self._tf._ledger.consenting_subjects(conn, TRAINING_PURPOSE)
            bundles = [
                list(_interactions(evs)) for _, evs in self._tf._store.events.bundles(conn, ids)
            ]
            items = self._tf._store.catalog.all(conn)
            catalog = [CatalogItem(i.item_id, i.title, i.categories, i.attributes) for i in items]
            self.popularity.fit(bundles, catalog)
            self.itemitem.fit(bundles, catalog)
            by_cat: dict[str, set[str]] = {}
            for i in items:
                for c in i.categories:
                    by_cat.setdefault(c, set()).add(i.item_id)
            self._category_items = {c: frozenset(v) for c, v in by_cat.items()}
            self._epoch, self._dirty = epoch, False

    def forget(self, events: Sequence[StoredEvent], conn: Connection, *, learned: bool) -> None:
        """Unlearn one contributor now (if it was learned), and tell other processes to refit.

        `learned` says whether the contributor's consent was in force, i.e. whether the current
        state includes them. If this process's state is stale it is refit instead.
        """
        with self._lock:
            bundle = list(_interactions(events))
            fresh = not self._dirty and self._read_epoch(conn) == self._epoch
            if fresh and learned and bundle:
                self.popularity.forget(bundle)
                self.itemitem.forget(bundle)
            elif not fresh:
                self._dirty = True
            self.bump(conn)
            if fresh:
                self._epoch = self._read_epoch(conn)

    def excluded(
        self, categories: Iterable[str], seen: frozenset[str] = frozenset()
    ) -> frozenset[str]:
        """Item ids never to recommend: those of excluded categories, and those already seen."""
        out = set(seen)
        for c in categories:
            out |= self._category_items.get(c, frozenset())
        return frozenset(out)

    def _read_epoch(self, conn: Connection) -> str:
        return self._tf._store.read_meta(conn, EPOCH) or "0"


class _Part:
    def __init__(self, tf: Tactful) -> None:
        self._tf = tf
        self._store = tf._store


class _Profiles(_Part):
    """tf.profiles: encrypted profile fields."""

    def put(self, user: str, values: Mapping[str, object]) -> None:
        """Write declared profile fields (None deletes one); unknown fields are rejected."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            self._store.profiles.put(conn, subject, values)

    def get(self, user: str) -> dict[str, object]:
        """All of the user's profile fields, decrypted."""
        with self._store.begin() as conn:
            return self._store.profiles.get(conn, self._store.subjects.get(conn, user))


class _Events(_Part):
    """tf.events: encrypted behavioral events."""

    def record(self, user: str, item: str, kind: str = "view", ts: datetime | None = None) -> None:
        """Record one event (ts defaults to now; must be timezone-aware)."""
        self.record_many(user, [(item, kind, ts)])

    def record_many(self, user: str, events: Iterable[tuple[str, str, datetime | None]]) -> int:
        """Record many (item, kind, ts) events of one user in one transaction."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            n = self._store.events.record_many(conn, subject, events)
        self._tf._models.mark_dirty()
        return n


class _Catalog(_Part):
    """tf.catalog: items (not personal data)."""

    def upsert(self, items: Iterable[Mapping[str, object]]) -> int:
        """Insert or update items: dicts with item_id, title, categories, attributes."""
        with self._store.begin() as conn:
            n = self._store.catalog.upsert(conn, items)
        self._tf._models.mark_dirty()
        return n


class _Consent(_Part):
    """tf.consent: the append-only consent ledger."""

    def grant(
        self,
        user: str,
        purposes: str | Iterable[str],
        *,
        notice_id: str | None = None,
        notice_version: str | None = None,
        method: str = "api",
        source: str | None = None,
    ) -> ConsentReceipt:
        """Record consent given for the purposes; returns a receipt the app can show."""
        return self._append(
            user,
            purposes,
            "given",
            notice_id=notice_id,
            notice_version=notice_version,
            method=method,
            source=source,
        )

    def withdraw(
        self, user: str, purposes: str | Iterable[str], *, method: str = "api"
    ) -> ConsentReceipt:
        """Withdraw consent; effective for the very next decision (Art. 7(3))."""
        return self._append(user, purposes, "withdrawn", method=method)

    def status(self, user: str, as_of: datetime | None = None) -> dict[str, PurposeConsent]:
        """The consent state per consent-based purpose, now or as of a past moment."""
        with self._store.begin() as conn:
            subject = self._store.subjects.find(conn, user)
            if subject is None:
                return {
                    p: PurposeConsent(purpose=p, state="not_asked")
                    for p in self._tf.pack.purposes.ids()
                    if self._tf.pack.purposes.get(p).needs_consent
                }
            return self._tf._ledger.status(conn, subject, as_of=as_of)

    def _append(
        self, user: str, purposes: str | Iterable[str], state: Any, **kw: Any
    ) -> ConsentReceipt:
        ids = [purposes] if isinstance(purposes, str) else list(purposes)
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            was_learned = _consents_to_training(tf, conn, subject)
            receipt = tf._ledger.record(conn, subject, ids, state, **kw)
            tf._audit.append(
                conn,
                f"consent.{state}",
                {
                    "purposes": list(receipt.purposes),
                    "method": receipt.method,
                    "notice_version": receipt.notice_version,
                },
                alias=subject.alias,
            )
            if TRAINING_PURPOSE in receipt.purposes:
                if state == "withdrawn":
                    tf._models.forget(
                        self._store.events.read(conn, subject), conn, learned=was_learned
                    )
                else:
                    tf._models.bump(conn)
                    tf._models.mark_dirty()
        return receipt


class _SettingsAPI(_Part):
    """tf.settings: each user's own personalization settings."""

    def get(self, user: str) -> Settings:
        """The user's settings (defaults if never set)."""
        with self._store.begin() as conn:
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


class _Rights(_Part):
    """tf.rights: access/export and erasure."""

    def export(self, user: str) -> dict[str, Any]:
        """Everything held about the user, decrypted and JSON-ready; SubjectNotFound if none."""
        with self._store.begin() as conn:
            return self._tf._rights.export(conn, self._store.subjects.get(conn, user))

    def erase(self, user: str) -> ErasureReceipt:
        """Erase the user: rows deleted, data key shredded, models unlearned, tombstone logged."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            was_learned = _consents_to_training(self._tf, conn, subject)
            erased = self._tf._rights.erase(conn, subject)
            self._tf._models.forget(erased.events, conn, learned=was_learned)
        return erased.receipt.model_copy(update={"models_unlearned": True})


class _Audit(_Part):
    """tf.audit: the hash-chained audit log."""

    def verify(self) -> AuditVerdict:
        """Verify the whole chain; the verdict names the first broken entry."""
        with self._store.begin() as conn:
            return self._tf._audit.verify(conn)
