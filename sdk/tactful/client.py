"""Tactful: opens the store, loads the policy pack and wires the parts together."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from tactful import config as _config
from tactful.audit import AuditLog, AuditVerdict
from tactful.consent import (
    AgeRules,
    AgeTable,
    ConsentLedger,
    ConsentReceipt,
    PurposeConsent,
    SignalMap,
    SignalOutcome,
    decode_tc_string,
    gpc_enabled,
)
from tactful.consent.signals import plan as _signal_plan
from tactful.crypto import FileKeyProvider, KeyProvider
from tactful.dp import Aggregates
from tactful.errors import SubjectNotFound, ValidationError
from tactful.models import Recommendations, RecommendedItem
from tactful.policy import CompiledPolicy, Decision, Gate, PolicyPack, load_pack
from tactful.recommend import (
    CatalogItem,
    ContentRecommender,
    HybridRecommender,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
    Recommender,
    Rule,
    ScoredItem,
    rerank,
)
from tactful.reports import AuditReport, collect
from tactful.rights import (
    BulkErasure,
    ErasureNotice,
    ErasureReceipt,
    ExportResult,
    RequestInfo,
    Rights,
    parse_value,
    to_dict,
    write_csv_zip,
    write_json,
)
from tactful.settings import Settings, SettingsStore, pool_size
from tactful.store import (
    Connection,
    KeyStatus,
    RetentionReport,
    RotationReport,
    Store,
    StoredEvent,
    SubjectRef,
    category_allowed,
    now,
)

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
        self._ledger = ConsentLedger(pack.purposes, pack.meta.controller.model_dump())
        self._settings = SettingsStore(store.subjects)
        self._signals = SignalMap.load(pack.directory, pack.purposes)
        self._gate = Gate(
            CompiledPolicy(pack),
            self._ledger,
            self._settings,
            self._audit,
            AgeRules(AgeTable.load(pack.directory), store.profiles),
            objections=lambda conn, subject: self._rights.controls.objections(conn, subject),
        )
        self._rights = Rights(store, self._ledger, self._settings, self._audit, pack.purposes)
        self._models = _Models(self)
        self.profiles = _Profiles(self)
        self.events = _Events(self)
        self.catalog = _Catalog(self)
        self.consent = _Consent(self)
        self.settings = _SettingsAPI(self)
        self.rights = _Rights(self)
        self.audit = _Audit(self)
        self.keys = _Keys(self)
        self.retention = _Retention(self)
        self.aggregates = Aggregates(
            store,
            self._ledger,
            self._audit,
            pack.meta.max_epsilon_per_release,
            lambda conn: [i.item_id for i in store.catalog.all(conn)],
        )

    @classmethod
    def open(
        cls,
        db_url: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
        policies: str | os.PathLike[str] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        key_provider: KeyProvider | None = None,
        keystore_url: str | None = None,
    ) -> Tactful:
        """Open (creating on first use) a store; an older store's schema is upgraded.

        With no arguments: TACTFUL_HOME (default ./.tactful) holds tactful.db (SQLite),
        master.key (mode 0600) and keys.db (the wrapped data keys, kept out of the data
        database so that its backups become unreadable after an erasure). TACTFUL_DB_URL,
        TACTFUL_KEY_FILE, TACTFUL_KEYSTORE_URL and TACTFUL_POLICIES override. `key_provider`
        replaces the key file (e.g. `EnvKeyProvider()`, or your KMS's implementation).
        """
        cfg = _config.resolve(
            home=home,
            db_url=db_url,
            key_file=key_file,
            policies=policies,
            keystore_url=keystore_url,
        )
        if cfg.is_sqlite or cfg.keystore_url.startswith("sqlite"):
            cfg.home.mkdir(parents=True, exist_ok=True)
        pack = load_pack(cfg.policies)
        provider = key_provider if key_provider is not None else FileKeyProvider(cfg.key_file)
        if cfg.keystore_url.startswith("sqlite"):
            Path(cfg.keystore_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        store = Store(cfg.db_url, provider, pack.schema, keystore_url=cfg.keystore_url)
        return cls(store, pack)

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
                # The request context (device, time of day) is the app's, given for this call
                # and never stored: the rules of the hybrid read it from the view.
                view = MinimizedView(
                    fields=view.fields,
                    history=view.history,
                    context=dict(context or {}),
                    categories_read=view.categories_read,
                )
                used = view.categories_read
                exclude = self._models.excluded(
                    decision.exclude_item_categories | frozenset(settings.excluded_topics),
                    seen=frozenset(i.item for i in view.history),
                )
                # The hybrid blends item-item, content, popularity and app-registered models
                # and falls back for cold-start users; the user's discovery level widens the
                # pool and drives the MMR re-ranking with an exploration slot.
                level = settings.discovery
                hybrid = self._models.hybrid
                pool = hybrid.recommend(view, pool_size(k, level), exclude)
                explore = (
                    self._models.popularity.recommend(MinimizedView(), 50, exclude)
                    if level > 0
                    else []
                )
                scored = rerank(pool, k, level, hybrid.catalog, view.history, explore)
                recommender = hybrid.name
            elif decision.outcome == "non_personalized":
                exclude = self._models.excluded(
                    decision.exclude_item_categories | frozenset(settings.excluded_topics)
                )
                released = self.aggregates.popularity.current(conn)
                if released is None:  # no DP list released yet: in-process popularity
                    scored = self._models.popularity.recommend(MinimizedView(), k, exclude)
                    recommender = self._models.popularity.name
                else:
                    scored = _dp_popular(released, k, exclude)
                    recommender = "dp_popularity"
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

    def register_recommender(self, recommender: Recommender, weight: float = 1.0) -> None:
        """Add the app's own recommender (the Recommender protocol) to the personalized blend.

        It is gated like tactful's own: it learns only from consented, unrestricted users'
        anonymous bundles, is told to `forget` a bundle on withdrawal or erasure, and answers
        only for personalized decisions from the minimized view. Its items are blended with
        `weight`, re-ranked for discovery, and excluded topics and seen items never appear.
        """
        if not isinstance(recommender, Recommender):
            raise ValidationError(
                "recommender must implement name, fit, learn, forget and recommend "
                "(tactful.recommend.Recommender)"
            )
        hybrid = self._models.hybrid
        if recommender.name in {c.name for c in hybrid.components}:
            raise ValidationError(
                f"a recommender named {recommender.name!r} is already registered; "
                "give yours another name"
            )
        if not weight >= 0:
            raise ValidationError("weight must be a number >= 0")
        with self._models._lock:
            hybrid.components.append(recommender)
            hybrid.weights[recommender.name] = float(weight)
            self._models.mark_dirty()

    def configure_recommendations(
        self,
        *,
        weights: Mapping[str, float] | None = None,
        rules: Sequence[Rule] | None = None,
    ) -> None:
        """Set the app's blend weights (by recommender name) and business rules.

        Names: "item_item", "content", "popularity", or a registered recommender's name.
        Rules (tactful.recommend.Rule) boost, bury, pin or filter items, optionally only in
        a context; they never bring back an excluded or already-seen item.
        """
        hybrid = self._models.hybrid
        known = {c.name for c in hybrid.components}
        if weights is not None:
            unknown = sorted(set(weights) - known)
            if unknown:
                raise ValidationError(
                    f"unknown recommender(s) {unknown} in weights (known: {sorted(known)})"
                )
            if any(not w >= 0 for w in weights.values()):
                raise ValidationError("blend weights must be numbers >= 0")
        if rules is not None and not all(isinstance(r, Rule) for r in rules):
            raise ValidationError("rules must be tactful.recommend.Rule objects")
        with self._models._lock:
            if weights is not None:
                hybrid.weights.update(weights)
            if rules is not None:
                hybrid.rules = list(rules)

    def report(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        public: bool = False,
        epsilon: float = 1.0,
    ) -> AuditReport:
        """The compliance audit report of the period [since, until); generating it is audited.

        `public=True` is for outside eyes: consent counts are released with differential
        privacy, `epsilon` charged to the `reports` budget (BudgetExhausted if short; grant it
        with `tf.aggregates.grant("reports", ...)`). Naive datetimes raise ValidationError.
        """
        with self._store.begin() as conn:
            report = collect(
                conn,
                pack=self.pack,
                store=self._store,
                ledger=self._ledger,
                audit=self._audit,
                since=since,
                until=until,
                public=public,
                epsilon=epsilon,
            )
            self._audit.append(
                conn,
                "report.generated",
                {
                    "format": report.format,
                    "policy_hash": self.pack.content_hash,
                    "period": report.period.model_dump(mode="json"),
                    "public": public,
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


def _dp_popular(
    released: Sequence[tuple[str, float]], k: int, exclude: frozenset[str]
) -> list[ScoredItem]:
    """The first k items of the released DP popularity list that are not excluded."""
    return [
        ScoredItem(
            item=item,
            score=count,
            signal="dp_popularity",
            explanation="Popular with many users (a differentially private count).",
        )
        for item, count in released
        if item not in exclude
    ][:k]


def _interactions(events: Sequence[StoredEvent]) -> tuple[Interaction, ...]:
    return tuple(Interaction(item=e.item, kind=e.kind, ts=e.ts.timestamp()) for e in events)


def _consents_to_training(tf: Tactful, conn: Connection, subject: SubjectRef) -> bool:
    """True if the models learned this subject: consent in force, not restricted, no objection."""
    if subject.status != "active":
        return False
    state = tf._ledger.status(conn, subject).get(TRAINING_PURPOSE)
    if state is None or not state.given:
        return False
    return TRAINING_PURPOSE not in tf._rights.controls.objections(conn, subject)


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
        self.content = ContentRecommender()
        self.hybrid = HybridRecommender([self.itemitem, self.content, self.popularity])
        self._epoch: str | None = None
        self._dirty = True
        # The earliest expiry among the consents the fit included: a consent lapsing by time
        # writes nothing and moves no epoch, so the fit itself must notice the moment.
        self._lapse: datetime | None = None
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
        lapsed = self._lapse is not None and now() >= self._lapse
        if self._dirty or epoch != self._epoch or lapsed:
            self.fit()

    def fit(self) -> None:
        """Refit both recommenders from consented users' events."""
        with self._lock, self._tf._store.begin() as conn:
            epoch = self._read_epoch(conn)
            in_force = self._tf._ledger.in_force(conn, TRAINING_PURPOSE)
            # Restricted (Art. 18) and objecting (Art. 21) users' data trains nothing.
            blocked = self._tf._rights.controls.excluded_from(conn, TRAINING_PURPOSE)
            ids = [i for i in in_force.subject_ids if i not in blocked]
            bundles = [
                list(_interactions(evs)) for _, evs in self._tf._store.events.bundles(conn, ids)
            ]
            items = self._tf._store.catalog.all(conn)
            catalog = [CatalogItem(i.item_id, i.title, i.categories, i.attributes) for i in items]
            self.hybrid.fit(bundles, catalog)  # every component: popularity, item-item, ...
            by_cat: dict[str, set[str]] = {}
            for i in items:
                for c in i.categories:
                    by_cat.setdefault(c, set()).add(i.item_id)
            self._category_items = {c: frozenset(v) for c, v in by_cat.items()}
            self._epoch, self._dirty, self._lapse = epoch, False, in_force.next_expiry

    def forget(self, events: Sequence[StoredEvent], conn: Connection, *, learned: bool) -> None:
        """Unlearn one contributor now (if it was learned), and tell other processes to refit.

        `learned` says whether the contributor's consent was in force, i.e. whether the current
        state includes them. If this process's state is stale it is refit instead.
        """
        with self._lock:
            bundle = list(_interactions(events))
            fresh = not self._dirty and self._read_epoch(conn) == self._epoch
            if fresh and learned and bundle:
                self.hybrid.forget(bundle)
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
        self._store.profiles.schema.check(values)  # before a data key is made for a new user
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            fields = self._store.profiles.schema.fields
            if any(n in fields and fields[n].searchable for n in values):
                self._store.subjects.remember_user_id(conn, subject, user)
            self._store.profiles.put(conn, subject, values)

    def get(self, user: str, fields: Sequence[str] | None = None) -> dict[str, object]:
        """The user's profile fields, decrypted: all, or only the named `fields`.

        With `fields`, only those are read and decrypted; absent ones are left out.
        """
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            return self._store.profiles.get(conn, subject, fields=fields)

    def put_many(self, profiles: Mapping[str, Mapping[str, object]]) -> int:
        """Write the profile fields of many users ({user: {field: value}}) in one transaction.

        The bulk path for imports: all values are validated first; nothing is written if any
        is rejected. Returns how many users were written.
        """
        store = self._store
        for values in profiles.values():
            store.profiles.schema.check(values)
        with store.begin() as conn:
            subjects = store.subjects.resolve_many(conn, profiles)
            fields = store.profiles.schema.fields
            for user, values in profiles.items():
                if any(n in fields and fields[n].searchable for n in values):
                    store.subjects.remember_user_id(conn, subjects[user], user)
            store.profiles.put_many(conn, [(subjects[u], v) for u, v in profiles.items()])
        return len(profiles)

    def find(self, field: str, value: object) -> list[str]:
        """User ids whose searchable `field` equals `value` (blind-index lookup, equality only).

        The field must be declared `searchable: true` in fields.yaml; the lookup uses a keyed
        HMAC of the value, never the plaintext.
        """
        store = self._store
        with store.begin() as conn:
            ids = store.profiles.find(conn, field, value)
            found = (store.subjects.user_id(conn, sid) for sid in ids)
            return sorted(u for u in found if u is not None)


class _Events(_Part):
    """tf.events: encrypted behavioral events."""

    def record(self, user: str, item: str, kind: str = "view", ts: datetime | None = None) -> None:
        """Record one event (ts defaults to now; must be timezone-aware)."""
        self.record_many(user, [(item, kind, ts)])

    def record_batch(self, events: Iterable[tuple[str, str, str, datetime | None]]) -> int:
        """Record (user, item, kind, ts) events of many users in one transaction (bulk ingestion).

        Everything is validated first; nothing is written if any event is rejected.
        """
        store = self._store
        batch = list(events)
        for row in batch:
            if not isinstance(row, tuple) or len(row) != 4:
                raise ValidationError("each event must be a (user, item, kind, ts) tuple")
        store.events.check_all([(item, kind, ts) for _, item, kind, ts in batch])
        with store.begin() as conn:
            subjects = store.subjects.resolve_many(conn, (u for u, _, _, _ in batch))
            n = store.events.record_rows(
                conn, ((subjects[u], item, kind, ts) for u, item, kind, ts in batch)
            )
        self._tf._models.mark_dirty()
        return n

    def record_many(self, user: str, events: Iterable[tuple[str, str, datetime | None]]) -> int:
        """Record many (item, kind, ts) events of one user in one transaction."""
        batch = self._store.events.check_all(events)  # before a data key is made for a new user
        with self._store.begin() as conn:
            subject = self._store.subjects.get_or_create(conn, user)
            n = self._store.events.record_many(conn, subject, batch)
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
        with self._store.begin() as conn:
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
                        {"purpose": o.purpose, "action": o.action, "state": o.state}
                        for o in out
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
        was_learned = _consents_to_training(tf, conn, subject)
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
        if TRAINING_PURPOSE in receipt.purposes:
            if state != "given":
                tf._models.forget(self._store.events.read(conn, subject), conn, learned=was_learned)
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

    def history(self, user: str) -> list[dict[str, Any]]:
        """Every saved version of the user's settings, oldest first ([] if never set)."""
        with self._store.begin() as conn:
            subject = self._store.subjects.find(conn, user)
            return [] if subject is None else self._tf._settings.history(conn, subject)


class _Rights(_Part):
    """tf.rights: requests, export, erasure, rectification, restriction and objection.

    Every action completes a data subject request (a new one, or the open one named by
    `request_id`) and is audit-logged under the subject's random alias.
    """

    def __init__(self, tf: Tactful) -> None:
        super().__init__(tf)
        self._hooks: list[Callable[[ErasureNotice], object]] = []
        self.requests = _Requests(tf)

    def export(self, user: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Everything held about the user, decrypted and JSON-ready; SubjectNotFound if none.

        Holds the whole export in memory; for long histories use `export_to`.
        """
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            return to_dict(self._tf._rights.export_document(conn, subject, request_id))

    def export_to(
        self,
        user: str,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        format: Literal["json", "csv"] = "json",
        request_id: str | None = None,
    ) -> ExportResult:
        """Stream the export to a file path or binary stream: JSON, or a zip of CSV files.

        Memory stays flat in the history size. A path is written to a temporary file first and
        renamed when complete, so a failed export leaves no partial file.
        """
        if format not in ("json", "csv"):
            raise ValidationError(f"export format must be json or csv, not {format!r}")
        if isinstance(target, str | os.PathLike):
            path = Path(target)
            partial = path.with_name(f".{path.name}.partial")
            try:
                with partial.open("wb") as fh:
                    result = self._stream(user, fh, format, request_id)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
            return result
        return self._stream(user, target, format, request_id)

    def _stream(
        self, user: str, out: IO[bytes], fmt: str, request_id: str | None
    ) -> ExportResult:
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            doc = self._tf._rights.export_document(conn, subject, request_id)
            if fmt == "json":
                text = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
                write_json(doc, text)
                text.flush()
                text.detach()
            else:
                write_csv_zip(doc, out)
        return ExportResult(
            request_id=doc.head["request_id"],
            format=fmt,
            events=doc.counts.get("events", 0),
            decisions=doc.counts.get("decisions", 0),
        )

    def on_erasure(
        self, callback: Callable[[ErasureNotice], object]
    ) -> Callable[[ErasureNotice], object]:
        """Register a hook called after each erasure commits, to propagate it to processors.

        The hook gets the request id, the alias and the app's user id (in-process only; tactful
        never stores or logs it). A failing hook does not undo the erasure: the receipt counts
        it and names its exception type. Usable as a decorator.
        """
        if not callable(callback):
            raise ValidationError("on_erasure needs a callable taking an ErasureNotice")
        self._hooks.append(callback)
        return callback

    def erase(self, user: str, *, request_id: str | None = None) -> ErasureReceipt:
        """Erase the user: rows deleted, data key shredded, consents withdrawn, models
        unlearned, tombstone logged; then the erasure hooks run. SubjectNotFound if none."""
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            was_learned = _consents_to_training(tf, conn, subject)
            erased = tf._rights.erase(conn, subject, request_id, read_events=was_learned)
            tf._models.forget(erased.events, conn, learned=was_learned)
        receipt = erased.receipt.model_copy(update={"models_unlearned": True})
        notice = ErasureNotice(receipt.request_id, subject.alias, user)
        errors: list[str] = []
        for hook in self._hooks:
            try:
                hook(notice)
            except Exception as exc:  # the erasure is committed; report, never undo
                errors.append(type(exc).__name__)
        if self._hooks:
            with self._store.begin() as conn:
                tf._audit.append(
                    conn,
                    "erasure.propagated",
                    {
                        "request_id": receipt.request_id,
                        "hooks": len(self._hooks),
                        "failed": len(errors),
                        "errors": errors,
                    },
                    alias=subject.alias,
                )
        return receipt.model_copy(
            update={
                "hooks_called": len(self._hooks),
                "hooks_failed": len(errors),
                "hook_errors": tuple(errors),
            }
        )

    def erase_many(
        self,
        users: Iterable[str],
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BulkErasure:
        """Erase many users, each in its own transaction (one request and receipt each).

        Users with no data are counted as not found; with `dry_run` nothing is written and
        `erased` counts who would be. `progress(n)` is called after each user.
        """
        erased = missing = 0
        ids: list[str] = []
        for n, user in enumerate(users, 1):
            if dry_run:
                with self._store.begin() as conn:
                    found = self._store.subjects.find(conn, user) is not None
                erased, missing = erased + found, missing + (not found)
            else:
                try:
                    ids.append(self.erase(user).request_id)
                    erased += 1
                except SubjectNotFound:
                    missing += 1
            if progress is not None:
                progress(n)
        return BulkErasure(
            dry_run=dry_run, erased=erased, not_found=missing, request_ids=tuple(ids)
        )

    def rectify(
        self, user: str, field: str, value: object, *, request_id: str | None = None
    ) -> RequestInfo:
        """Correct one profile field (Art. 16); a text value is parsed by the field's type
        (None or "" deletes the field). Returns the completed request."""
        schema = self._store.profiles.schema
        if isinstance(value, str) and field in schema.fields and schema.fields[field].type != "str":
            value = parse_value(schema, field, value)
        rights = self._tf._rights
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            rid = rights.start(conn, subject, "rectification", request_id)
            rights.controls.rectify(conn, subject, {field: value})
            return rights.requests.complete(conn, rid, {"rectified": [field]})

    def restrict(self, user: str, *, request_id: str | None = None) -> RequestInfo:
        """Restrict processing (Art. 18): the gate denies everything but storage until lifted,
        and the models stop using the user's data. Returns the completed request."""
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            rid = tf._rights.start(conn, subject, "restriction", request_id)
            learned = _consents_to_training(tf, conn, subject)
            changed = tf._rights.controls.set_restricted(conn, subject, True)
            if changed:
                events = self._store.events.read(conn, subject) if learned else []
                tf._models.forget(events, conn, learned=learned)
            return tf._rights.requests.complete(conn, rid, {"restricted": True})

    def unrestrict(self, user: str) -> bool:
        """Lift a restriction; True if the user was restricted. Audit-logged."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            changed = self._tf._rights.controls.set_restricted(conn, subject, False)
            if changed:
                self._tf._models.bump(conn)
        if changed:
            self._tf._models.mark_dirty()
        return changed

    def object(self, user: str, purpose: str, *, request_id: str | None = None) -> RequestInfo:
        """Record an objection to a purpose (Art. 21): the gate treats that purpose as having
        no consent from now on, whatever is granted later, until the objection is lifted.
        Objecting to profiling stops personalization; a direct-marketing objection is absolute.
        """
        tf = self._tf
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            rid = tf._rights.start(conn, subject, "objection", request_id)
            learned = _consents_to_training(tf, conn, subject)
            added = tf._rights.controls.object(conn, subject, purpose)
            if added and purpose == TRAINING_PURPOSE:
                events = self._store.events.read(conn, subject) if learned else []
                tf._models.forget(events, conn, learned=learned)
            return tf._rights.requests.complete(conn, rid, {"objection": purpose})

    def lift_objection(self, user: str, purpose: str) -> bool:
        """Remove the user's objection to a purpose; True if there was one. Audit-logged."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            lifted = self._tf._rights.controls.lift_objection(conn, subject, purpose)
            if lifted and purpose == TRAINING_PURPOSE:
                self._tf._models.bump(conn)
        if lifted and purpose == TRAINING_PURPOSE:
            self._tf._models.mark_dirty()
        return lifted


class _Requests(_Part):
    """tf.rights.requests: the register of data subject requests and their deadlines."""

    def open(
        self,
        kind: str,
        user: str,
        *,
        profile: str = "gdpr",
        identity_verified: bool = True,
        received_at: datetime | None = None,
    ) -> RequestInfo:
        """Register a request: due one calendar month later (GDPR) or 45 days (CCPA, with a
        10-day acknowledgement); paused until `resume` if the identity is unverified."""
        with self._store.begin() as conn:
            subject = self._store.subjects.get(conn, user)
            return self._tf._rights.requests.open(
                conn,
                subject,
                kind,
                profile=profile,
                identity_verified=identity_verified,
                received_at=received_at,
            )

    def list(
        self, *, status: str | None = None, kind: str | None = None, overdue: bool = False
    ) -> list[RequestInfo]:
        """Requests, oldest first; `overdue` keeps the open ones past their deadline."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.list(conn, status=status, kind=kind, overdue=overdue)

    def show(self, request_id: str) -> RequestInfo:
        """One request by id; ValidationError if unknown."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.show(conn, request_id)

    def extend(self, request_id: str, reason: str, *, by: int | None = None) -> RequestInfo:
        """Extend the deadline with a reason: GDPR by up to two months in all, CCPA to 90 days."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.extend(conn, request_id, reason, by)

    def pause(self, request_id: str) -> RequestInfo:
        """Stop the clock while the requester's identity is unverified."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.pause(conn, request_id)

    def resume(self, request_id: str) -> RequestInfo:
        """Identity verified: the clock runs again; the deadline moves by the pause."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.resume(conn, request_id)

    def acknowledge(self, request_id: str) -> RequestInfo:
        """Record that the requester was told the request arrived (CCPA: within 10 days)."""
        with self._store.begin() as conn:
            return self._tf._rights.requests.acknowledge(conn, request_id)

    def complete(self, request_id: str, note: str | None = None) -> RequestInfo:
        """Close a request handled outside tactful, with an optional note (no personal data)."""
        with self._store.begin() as conn:
            receipt = {"note": note} if note else {"completed": "manually"}
            return self._tf._rights.requests.complete(conn, request_id, receipt)


class _Audit(_Part):
    """tf.audit: the hash-chained audit log."""

    def verify(self) -> AuditVerdict:
        """Verify the whole chain; the verdict names the first broken entry."""
        with self._store.begin() as conn:
            return self._tf._audit.verify(conn)


class _Keys(_Part):
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


class _Retention(_Part):
    """tf.retention: delete what is kept longer than fields.yaml's retention allows."""

    def run(self) -> RetentionReport:
        """Delete expired profile fields and events in one transaction; audit-logged."""
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
        return report
