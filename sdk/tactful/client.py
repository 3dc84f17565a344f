"""Tactful: opens the store, loads the policy pack and wires the parts together."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

from tactful import config as _config
from tactful.audit import AuditLog
from tactful.consent import (
    AgeRules,
    AgeTable,
    ConsentLedger,
    SignalMap,
)
from tactful.crypto import FileKeyProvider, KeyProvider
from tactful.dp import Aggregates
from tactful.dp.popularity import POPULARITY_DATASET
from tactful.errors import ValidationError
from tactful.experiments import Assignment, Change, Experiments, Variant
from tactful.models import Recommendations, RecommendedItem, recommended_items
from tactful.parts.consent import ConsentAPI, SettingsAPI
from tactful.parts.data import CatalogAPI, EventsAPI, ProfilesAPI
from tactful.parts.experiments import ExperimentsAPI, shaped
from tactful.parts.models import AppRecommender, Models, interactions
from tactful.parts.operations import AuditAPI, KeysAPI, RetentionAPI
from tactful.parts.policy import PolicyAPI
from tactful.parts.rights import RightsAPI
from tactful.policy import CompiledPolicy, Decision, Gate, PolicyPack, explain, load_pack
from tactful.policy.cache import CachedSubject, SubjectCache, remember
from tactful.policy.engine import renewed
from tactful.recommend import (
    HybridRecommender,
    Interaction,
    MinimizedView,
    Recommender,
    Rule,
    ScoredItem,
    rerank,
)
from tactful.recommend.diversity import usual_categories
from tactful.recommend.hybrid import LoneMemo
from tactful.reports import AuditReport, Report, collect
from tactful.rights import (
    Rights,
)
from tactful.segments import Evaluation, Memberships
from tactful.settings import Settings, SettingsStore, pool_size
from tactful.store import (
    Connection,
    Store,
    category_allowed,
)

MAX_K = 1000


class _Plan:
    """What a gated call does on its decision, but for the recommender's items and the
    decision id: the view and exclusions the recommender gets, the pool and discovery level,
    whether segment memberships must be written, and the answer's fixed fields. Made for one
    call, or kept for repeated calls (`Tactful._planned`)."""

    __slots__ = (
        "blend",
        "decision",
        "exclude",
        "fields",
        "hybrid",
        "last",
        "level",
        "pool",
        "records",
        "restate",
        "segments",
        "used",
        "usual",
        "view",
    )

    def __init__(
        self,
        decision: Decision,
        view: MinimizedView | None,
        segments: Evaluation | None,
        exclude: frozenset[str],
        level: float,
        k: int,
        hybrid: HybridRecommender | None,
        restate: bool,
    ) -> None:
        self.decision = decision
        self.view = view
        self.segments = segments
        self.exclude = exclude
        self.level = level
        self.pool = pool_size(k, level)
        self.hybrid = hybrid
        self.restate = restate
        self.used: frozenset[str] = view.categories_read if view is not None else frozenset()
        self.fields: dict[str, object] = {
            "mode": decision.outcome,
            "purpose": decision.purpose,
            "explanation": explain(decision),
            "reasons": decision.reasons,
            "categories_used": tuple(sorted(self.used)),
        }
        # The hybrid's last lone answer (`HybridRecommender.recommend`'s memo).
        self.blend: LoneMemo = {}
        # Gate.record's canonical records of this decision, by recommender and items.
        self.records: dict[object, tuple[str, str, str, str]] = {}
        # The last answer's items, validated: the same items again are not looked up again.
        self.last: tuple[list[ScoredItem], tuple[RecommendedItem, ...]] | None = None
        # The view's usual categories for the discovery re-ranking (`rerank`), once needed.
        self.usual: frozenset[str] | None = None

    @property
    def asked(self) -> str:
        """The recommender this plan asks for items (before any is given)."""
        if self.hybrid is not None and self.view is not None:
            return self.hybrid.name
        return "popularity" if self.decision.outcome == "non_personalized" else "none"

    def answer(self, scored: list[ScoredItem], decision_id: str) -> Recommendations:
        """The call's answer; the items are validated once per content (`recommended_items`)."""
        last = self.last
        if last is not None and last[0] == scored:
            items = last[1]
        else:
            items = recommended_items(scored)
            self.last = (scored, items)
        return Recommendations.model_validate(
            {"items": items, "decision_id": decision_id, **self.fields}
        )


def _arm_key(experiment: str, declared: int) -> tuple[str, str, int]:
    """Where a subject's cache entry keeps its assignment in `experiment` (`Tactful._arm`)."""
    return ("arm", experiment, declared)


class _Snapshot:
    """The read-only snapshot of one gated call, opened on first use (`Store.read`) and
    closed with the call: most calls find everything in memory and never open it."""

    __slots__ = ("_conn", "_context", "_store")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._context: AbstractContextManager[Connection] | None = None
        self._conn: Connection | None = None

    def connection(self) -> Connection:
        if self._conn is None:
            context = self._store.read()
            self._conn = context.__enter__()
            self._context = context  # closed on exit only once it opened
        return self._conn

    def __enter__(self) -> _Snapshot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._context is not None:
            self._context.__exit__(kind, error, trace)


class Tactful:
    """A tactful store: profiles, events, consent, settings, gated recommendations, rights.

    Open it with `Tactful.open()`; use it as a context manager or call `close()`.
    """

    def __init__(self, store: Store, pack: PolicyPack, *, subject_cache: int | None = None) -> None:
        self._store = store
        self.pack = pack
        self._audit = AuditLog(
            audit_key=store.subjects.keys.audit_key,
            begin=store.audit_begin,
            batched=_config.audit_batched(),
        )
        self._ledger = ConsentLedger(pack.purposes, pack.meta.controller.model_dump())
        self._settings = SettingsStore(store.subjects)
        self._signals = SignalMap.load(pack.directory, pack.purposes)
        self._age = AgeRules(AgeTable.load(pack.directory), store.profiles)
        self._gate = Gate(
            CompiledPolicy(pack),
            self._ledger,
            self._settings,
            self._audit,
            self._age,
            objections=lambda conn, subject: self._rights.controls.objections(conn, subject),
            memberships=Memberships(store.subjects),
            cache=SubjectCache(_config.subject_cache_size(subject_cache)),
        )
        # No caching between calls: no probe answered from memory either.
        store.probe_memo = min(store.probe_memo, self._gate.cache.capacity)
        self._rights = Rights(store, self._ledger, self._settings, self._audit, pack.purposes)
        self._models = Models(self)
        self.profiles = ProfilesAPI(self)
        self.events = EventsAPI(self)
        self.catalog = CatalogAPI(self)
        self.consent = ConsentAPI(self)
        self.settings = SettingsAPI(self)
        self.rights = RightsAPI(self)
        self.audit = AuditAPI(self)
        self.keys = KeysAPI(self)
        self.retention = RetentionAPI(self)
        self.policy = PolicyAPI(self)
        self.aggregates = Aggregates(
            store,
            self._ledger,
            self._audit,
            pack.meta.max_epsilon_per_release,
            lambda conn: [i.item_id for i in store.catalog.all(conn)],
            segments=self._gate.segments,
        )
        self._experiments = Experiments(
            store, self._ledger, self._audit, pack.meta.max_epsilon_per_release
        )
        self.experiments = ExperimentsAPI(self)

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
        dek_cache: int | None = None,
        subject_cache: int | None = None,
        pg_changes: Literal["probe", "notify"] | None = None,
    ) -> Tactful:
        """Open (creating on first use) a store; an older store's schema is upgraded.

        With no arguments: TACTFUL_HOME (default ./.tactful) holds tactful.db (SQLite),
        master.key (mode 0600) and keys.db (the wrapped data keys, kept out of the data
        database so that its backups become unreadable after an erasure). TACTFUL_DB_URL,
        TACTFUL_KEY_FILE, TACTFUL_KEYSTORE_URL and TACTFUL_POLICIES override. `key_provider`
        replaces the key file (e.g. `EnvKeyProvider()`, or your KMS's implementation).
        `dek_cache` (or TACTFUL_DEK_CACHE) is how many unwrapped data keys the process keeps
        (default 4,096; docs/architecture.md weighs memory and exposure against key-store reads).
        `subject_cache` (or TACTFUL_SUBJECT_CACHE) is how many users' decoded state the gate
        keeps between their calls (default 4,096; 0 turns it off): see docs/architecture.md.
        `pg_changes` (or TACTFUL_PG_CHANGES), on PostgreSQL only: "probe" (default) asks the
        database on every gated call whether the user's rows changed; "notify" answers from
        memory until this process commits or a notification says another process did, so a
        change made elsewhere is seen a moment late (docs/architecture.md, "Probes answered
        from memory (PostgreSQL, opt-in)").
        """
        cfg = _config.resolve(
            home=home,
            db_url=db_url,
            key_file=key_file,
            policies=policies,
            keystore_url=keystore_url,
            dek_cache=dek_cache,
        )
        _config.audit_batched()  # a bad TACTFUL_AUDIT fails before anything is opened
        cache_size = _config.subject_cache_size(subject_cache)
        changes = _config.pg_changes(pg_changes)
        if cfg.is_sqlite or cfg.keystore_url.startswith("sqlite"):
            cfg.home.mkdir(parents=True, exist_ok=True)
        pack = load_pack(cfg.policies)
        provider = key_provider if key_provider is not None else FileKeyProvider(cfg.key_file)
        if cfg.keystore_url.startswith("sqlite"):
            Path(cfg.keystore_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        store = Store(
            cfg.db_url,
            provider,
            pack.schema,
            keystore_url=cfg.keystore_url,
            dek_cache=cfg.dek_cache,
            pg_changes=changes,
        )
        return cls(store, pack, subject_cache=cache_size)

    def close(self) -> None:
        """Write the queued decision records, then release database connections."""
        try:
            self._audit.close()
        finally:
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
        *,
        experiment: str | None = None,
    ) -> Recommendations:
        """Gated recommendations: the policy decides the mode; the recommender sees only a view.

        Returns personalized items when the policy allows it, otherwise the non-personalized
        popularity list, or no items when the policy denies processing. Every call is recorded
        in the audit log. With `experiment` (a declared experiment id) the user's variant
        chooses the personalized blend (enrolled users only; others get the control), a
        personalized answer counts as an exposure, and the decision record names the variant.
        """
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise ValidationError(f"k must be an integer from 1 to {MAX_K}")
        store, gate = self._store, self._gate
        # The probe (one statement; on SQLite answered from memory while nothing else was
        # committed) finds the subject, tells whether the gate's cached state of it still
        # holds, and gives the model epoch. Anything else is read in one snapshot
        # without the write lock, opened only if needed (a cache miss, an experiment, ...).
        probe = store.probe(user, POPULARITY_DATASET)
        self._models.ensure_fresh(probe.epoch, probe.events)
        snapshot = _Snapshot(store)
        read = snapshot.connection
        with snapshot:
            entry = gate.cached(read, probe)
            subject = probe.subject
            arm = None
            if experiment is None:
                plan, decision = self._planned(read, entry, purpose, k, context)
            else:
                decision, settings = gate.decide_for(entry, purpose, context)
                arm = self._arm(read, entry, experiment, probe.experiments)
                plan = self._plan(read, entry, decision, settings, k, context, arm)
            try:
                scored, recommender = self._run(plan, read, probe.release, k)
                answer = plan.answer(scored, decision.id)
            except Exception as exc:
                # The decision was made and its view handed out: it is recorded all the
                # same, with the failure's type (never its message), and nothing else is
                # written.
                gate.record(
                    None,
                    subject,
                    decision,
                    categories_used=plan.used,
                    recommender=plan.asked,
                    items=0,
                    segments=plan.segments,
                    experiment=None if arm is None else arm[0].model_dump(),
                    failure=type(exc).__name__,
                )
                raise
        # Writing, only when something changed: the memberships (a segment left or joined,
        # or the call was not personalized) and the experiment exposure (recorded, or
        # forgotten for a user no longer covered), in one transaction with the decision
        # record. Otherwise the record is queued for the audit log's next group commit
        # (docs/architecture.md, "Audit group commit").
        change = None if arm is None or subject is None else arm[2]
        if change == "expose" and decision.outcome != "personalized":
            change = None  # only a personalized answer is an exposure
        restate = plan.restate and subject is not None
        with store.begin() if restate or change else contextlib.nullcontext() as conn:
            if restate and subject is not None and conn is not None:
                gate.store_segments(conn, subject, purpose, plan.segments)
            if change and arm is not None and subject is not None and conn is not None:
                self.experiments._settle(conn, subject, arm[0], change)
                if entry is not None and experiment is not None:
                    # Recorded (or forgotten): the kept assignment has nothing left to change.
                    entry.derived[_arm_key(experiment, probe.experiments)] = (arm[0], arm[1], None)
            gate.record(
                conn,
                subject,
                decision,
                categories_used=plan.used,
                recommender=recommender,
                items=len(scored),
                signals=[s.signal for s in scored],
                segments=plan.segments,
                experiment=None if arm is None else arm[0].model_dump(),
                memo=plan.records,
            )
        return answer

    def _arm(
        self,
        read: Callable[[], Connection],
        entry: CachedSubject | None,
        experiment: str,
        declared: int,
    ) -> tuple[Assignment, Variant, Change]:
        """The user's assignment in `experiment` (`ExperimentsAPI._arm`), kept in the
        subject's cache entry: it holds while the entry does (the user's consent, objections
        and status, the entry's expiry at a consent's) and while no experiment was declared
        or stopped anywhere (`declared`: `Probe.experiments`). The stored exposure is not
        watched: a call that finds another process exposed the user first records nothing."""
        if entry is None or not isinstance(experiment, str):
            return self.experiments._arm(read(), entry.subject if entry else None, experiment)
        key = _arm_key(experiment, declared)
        found = entry.derived.get(key)
        if found is None:
            found = remember(
                entry.derived, key, self.experiments._arm(read(), entry.subject, experiment)
            )
        return found  # type: ignore[no-any-return]

    def _planned(
        self,
        read: Callable[[], Connection],
        entry: CachedSubject | None,
        purpose: str,
        k: int,
        context: Mapping[str, str] | None,
    ) -> tuple[_Plan, Decision]:
        """The plan of a call without an experiment, and its decision under a new id.

        A plan is a function of the cache entry (its subject's state under one policy), the
        purpose, k, the context and the models' state (`Models.version`), so it is kept in
        the entry's table (an unknown user's in the policy's, `Gate.memo`) under those: a
        repeated call makes only a new decision id. Only a context the gate accepted is ever
        a key; anything else misses and is refused by `Gate.decide_for`.
        """
        gate, version = self._gate, self._models.version
        plans = gate.memo(entry, gate.policy)
        try:
            key: object = ("plan", purpose, k, tuple(context.items()) if context else (), version)
            plan = plans.get(key)
        except (AttributeError, TypeError):  # not a mapping, or an unhashable value
            key, plan = None, None
        if plan is not None:
            return plan, renewed(plan.decision)
        decision, settings = gate.decide_for(entry, purpose, context)
        plan = self._plan(read, entry, decision, settings, k, context, None)
        if key is not None:
            remember(plans, key, plan)
        return plan, decision

    def _plan(
        self,
        read: Callable[[], Connection],
        entry: CachedSubject | None,
        decision: Decision,
        settings: Settings,
        k: int,
        context: Mapping[str, str] | None,
        arm: tuple[Assignment, Variant, Change] | None,
    ) -> _Plan:
        """What a call on this decision gives the recommender, and what it answers and
        writes besides the recommender's items (see `_Plan`)."""
        models, gate = self._models, self._gate
        purpose = decision.purpose
        if decision.outcome == "personalized" and entry is not None:
            # What the recommender is given (the view with its segments, and the items
            # excluded) depends only on the cache entry, the purpose, the decision's
            # obligations, the allowed context values and the model fit: made once, kept.
            given = context or {}
            key = (
                purpose,
                decision.read,
                decision.exclude_item_categories,
                tuple(sorted((name, given[name]) for name in decision.context)),
                models.fits,
            )
            prepared = entry.derived.get(key)
            if prepared is None:
                prepared = remember(
                    entry.derived, key, self._prepare(read, entry, decision, settings, given)
                )
            view, segments, exclude = prepared
            # The hybrid blends item-item, content, popularity and app-registered models
            # and falls back for cold-start users; the user's discovery level (at least
            # the policy's diversity floor) widens the pool and drives the MMR re-ranking.
            level = max(settings.discovery, decision.diversity_floor)
            hybrid = models.hybrid if arm is None else shaped(models.hybrid, arm[1])
            restate = gate.segments_changed(read, entry, purpose, segments)
            return _Plan(decision, view, segments, exclude, level, k, hybrid, restate)
        exclude = frozenset()
        if decision.outcome == "non_personalized":
            exclude = models.excluded(
                decision.exclude_item_categories | frozenset(settings.excluded_topics)
            )
        restate = entry is not None and gate.segments_changed(read, entry, purpose, None)
        return _Plan(decision, None, None, exclude, 0.0, k, None, restate)

    def _run(
        self, plan: _Plan, read: Callable[[], Connection], release: str | None, k: int
    ) -> tuple[list[ScoredItem], str]:
        """The call's items and the recommender that gave them."""
        models = self._models
        if plan.hybrid is not None and plan.view is not None:
            view, level = plan.view, plan.level
            pool = plan.hybrid.recommend(view, plan.pool, plan.exclude, plan.blend)
            explore = (
                models.popularity.recommend(MinimizedView(), 50, plan.exclude) if level > 0 else []
            )
            catalog = plan.hybrid.catalog
            if level > 0 and plan.usual is None:
                plan.usual = usual_categories(view.history, catalog)
            scored = rerank(pool, k, level, catalog, view.history, explore, usual=plan.usual)
            return scored, plan.hybrid.name
        if plan.decision.outcome == "non_personalized":
            released = self.aggregates.popularity.of_release(read, release)
            if released is not None:
                return _dp_popular(released, k, plan.exclude), "dp_popularity"
            if not plan.decision.dp_aggregate:  # no DP list yet: in-process popularity
                popular = models.popularity
                return popular.recommend(MinimizedView(), k, plan.exclude), popular.name
        return [], "none"

    def train(self) -> None:
        """Refit the recommenders from the events of users whose consent is in force now."""
        self._models.fit()

    def register_recommender(self, recommender: Recommender, weight: float = 1.0) -> None:
        """Add the app's own recommender (the Recommender protocol) to the personalized blend.

        It is gated like tactful's own: it learns only from consented, unrestricted users'
        anonymous bundles, is told to `forget` a bundle on withdrawal or erasure, and answers
        only for personalized decisions from the minimized view. Its items are blended with
        `weight`, re-ranked for discovery, and excluded topics and seen items never appear.
        Its answers are checked: an ill-typed item is a ValidationError naming the
        recommender (and the call's decision record says the call failed).
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
            hybrid.components.append(AppRecommender(recommender))
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
        for r in rules or ():
            unknown = sorted(r.segments() - set(self._gate.segments.ids()))
            if unknown:
                raise ValidationError(
                    f"rule names segment(s) {unknown} that segments.yaml does not declare "
                    f"(declared: {', '.join(self._gate.segments.ids()) or 'none'})"
                )
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

        def gather(conn: Connection) -> Report:
            return collect(
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

        def generated(conn: Connection, report: Report) -> None:
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

        if public:
            # The DP release of the consent counts charges its budget: one write transaction
            # with the report's record.
            with self._store.begin() as conn:
                report = gather(conn)
                generated(conn, report)
        else:
            # Gathered in a snapshot, without the write lock (it reads the whole period and
            # walks the audit chain); only the report's record is written after it.
            self._audit.flush()
            with self._store.read() as conn:
                report = gather(conn)
            with self._store.begin() as conn:
                generated(conn, report)
        return AuditReport(report)

    def _prepare(
        self,
        read: Callable[[], Connection],
        entry: CachedSubject,
        decision: Decision,
        settings: Settings,
        context: Mapping[str, str],
    ) -> tuple[MinimizedView, Evaluation | None, frozenset[str]]:
        """A personalized call's input: the minimized view (the request context is the app's,
        given for this call and never stored; the view gets only the fields the decision
        allows), the segments the gate evaluated on that view alone, and the items excluded
        (the decision's item categories, the user's excluded topics, what they have seen)."""
        models = self._models
        view = self._view(read, entry, decision, context)
        segments = self._gate.evaluate_segments(decision, view, settings, models.items_in)
        if segments is not None:
            view = dataclasses.replace(view, segments=frozenset(segments.matched))
        exclude = models.excluded(
            decision.exclude_item_categories | frozenset(settings.excluded_topics),
            seen=frozenset(i.item for i in view.history),
        )
        return view, segments, exclude

    def _view(
        self,
        read: Callable[[], Connection],
        entry: CachedSubject,
        decision: Decision,
        context: Mapping[str, str],
    ) -> MinimizedView:
        """The minimized view of a personalized decision: only the categories it allows.

        Profile fields (of those categories only) and the history are decrypted on the
        subject's first call and kept in the gate's cache entry while it holds.
        """
        store, subject = self._store, entry.subject
        fields: dict[str, object] = {}
        if decision.read:
            cached = entry.fields.get(decision.read)
            if cached is None:
                cached = store.profiles.get(read(), subject, categories=decision.read)
                entry.fields[decision.read] = cached
            fields = dict(cached)
        history: tuple[Interaction, ...] = ()
        cats = {store.profiles.schema.category(n) for n in fields}
        if category_allowed(store.events.category, decision.read):
            if entry.history is None or entry.history_stale:
                _read_history(store, read(), entry)
            assert entry.history is not None
            history = entry.history
            if history:
                cats.add(store.events.category)
        declared = self._gate.policy.pack.context.fields
        allowed = {n: context[n] for n in decision.context}
        cats.update(declared[n].category for n in allowed)
        return MinimizedView(
            fields=fields, history=history, context=allowed, categories_read=frozenset(cats)
        )


def _read_history(store: Store, conn: Connection, entry: CachedSubject) -> None:
    """Read the entry's history: whole, or (`history_stale`: events were added since) only
    the events numbered above the latest it holds, appended when they all come after it in
    the history's order (time, then row id). A backdated one among them: whole again."""
    subject = entry.subject
    if entry.history is not None and entry.history_stale:
        added = store.events.read_marked(conn, subject, after=entry.history_seq)
        last = entry.history[-1].ts if entry.history else None
        if not added.events:
            entry.history_stale = False
            return
        if last is None or added.events[0].ts.timestamp() > last:
            entry.history = entry.history + interactions(added.events)
            entry.history_seq = max(entry.history_seq, *added.seqs)
            entry.history_stale = False
            return
    held = store.events.read_marked(conn, subject)
    entry.history = interactions(held.events)
    entry.history_seq = max(held.seqs, default=0)
    entry.history_stale = False


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
