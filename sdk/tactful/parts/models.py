"""The recommenders' learned state and who may train them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from numbers import Real
from typing import TYPE_CHECKING

from tactful.errors import ValidationError
from tactful.recommend import (
    CatalogItem,
    ContentRecommender,
    HybridRecommender,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
    Recommender,
    ScoredItem,
)
from tactful.store import (
    Connection,
    MarkedEvents,
    StoredEvent,
    SubjectRef,
    now,
)

TRAINING_PURPOSE = "personalization"
EPOCH = "model_epoch"

if TYPE_CHECKING:
    from tactful.client import Tactful


# A catch-up of more subjects than CATCH_UP_MIN plus 1/CATCH_UP_SHARE of the trained ones is
# left to a refit (bench/RESULTS.md, "a call right after the user's own event": a subject
# caught up costs 1-2x its share of a refit, so at the limit a catch-up is a quarter of one).
CATCH_UP_MIN = 64
CATCH_UP_SHARE = 10
# At most one look per this many seconds for events other processes wrote (`Models.sync`).
SYNC_INTERVAL = 5.0


def interactions(events: Sequence[StoredEvent]) -> tuple[Interaction, ...]:
    return tuple(Interaction(item=e.item, kind=e.kind, ts=e.ts.timestamp()) for e in events)


def _mark(held: MarkedEvents) -> tuple[int, int]:
    """What a model learned of a subject: how many events, and the latest write number."""
    return len(held.seqs), max(held.seqs, default=0)


def _learned_part(held: MarkedEvents, mark: tuple[int, int]) -> list[int] | None:
    """The places in `held` of the events a model learned under `mark`: those numbered up
    to its latest, if they are as many as it learned; None if they are not (not what was
    learned)."""
    count, last = mark
    was = [n for n, seq in enumerate(held.seqs) if seq <= last]
    return was if len(was) == count else None


class AppRecommender:
    """An app's registered recommender, its answers checked before they reach the blend.

    tactful's own recommenders answer ScoredItems by construction; an app's answer is
    checked item by item (a sequence of (item, score, signal, explanation) with a non-empty
    str item id, a real-number score, str signal and explanation), so that an ill-typed item
    is a ValidationError that names the recommender and the item's place, not a TypeError
    from inside the blend. Messages name types and places, never the values.
    """

    __slots__ = ("inner", "name")

    def __init__(self, inner: Recommender) -> None:
        self.inner = inner
        self.name = inner.name

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        self.inner.fit(bundles, catalog)

    def learn(self, bundle: Sequence[Interaction]) -> None:
        self.inner.learn(bundle)

    def forget(self, bundle: Sequence[Interaction]) -> None:
        self.inner.forget(bundle)

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        return checked_answer(self.name, self.inner.recommend(view, k, exclude))


def checked_answer(name: str, answer: object) -> list[ScoredItem]:
    """An app recommender's answer (a list, or any iterable of items) as a list of
    ScoredItems, or a ValidationError saying what is wrong."""
    fix = (
        f"; recommender {name!r} must return a list of ScoredItem(item: str, score: float, "
        "signal: str, explanation: str)"
    )
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
        raise ValidationError(f"the answer is a {type(answer).__name__}{fix}")
    out: list[ScoredItem] = []
    for n, s in enumerate(answer, 1):
        if type(s) is not ScoredItem and not (isinstance(s, tuple) and len(s) == 4):
            raise ValidationError(f"item {n} is a {type(s).__name__}{fix}")
        item, score, signal, explanation = s
        if not isinstance(item, str) or not item:
            raise ValidationError(f"item {n} has an item id that is not a non-empty str{fix}")
        if not isinstance(score, Real) or isinstance(score, bool):
            raise ValidationError(f"item {n} has a score of type {type(score).__name__}{fix}")
        if not isinstance(signal, str) or not isinstance(explanation, str):
            raise ValidationError(f"item {n} has a signal or explanation that is not a str{fix}")
        out.append(ScoredItem(item, float(score), signal, explanation))
    return out


def consents_to_training(tf: Tactful, conn: Connection, subject: SubjectRef) -> bool:
    """True if the models learned this subject: consent in force (a guardian's for a child),
    not restricted, no objection."""
    if subject.status != "active":
        return False
    state = tf._ledger.status(conn, subject).get(TRAINING_PURPOSE)
    if state is None or not state.given:
        return False
    if TRAINING_PURPOSE in tf._rights.controls.objections(conn, subject):
        return False
    return state.parental or not tf._age.possible_minors(conn, [subject])


def _children_without_authorization(tf: Tactful, conn: Connection, ids: list[int]) -> set[int]:
    """Those of `ids` who may be below the age of consent and whose consent to training was
    not given by a guardian (GDPR Art. 8): their events train nothing."""
    subjects = tf._store.subjects.refs(conn, ids)
    minors = tf._age.possible_minors(conn, subjects)
    out: set[int] = set()
    for subject in subjects:
        if subject.id in minors:
            state = tf._ledger.status(conn, subject).get(TRAINING_PURPOSE)
            if state is None or not state.parental:
                out.add(subject.id)
    return out


class Models:
    """The recommenders' learned state, fit on consented events, kept fresh across processes.

    A store-wide epoch (in tactful_meta) is bumped by every consent change and erasure; a
    process refits when the epoch moved. Events this process records are learned at its next
    recommendation, subject by subject (`catch_up`), without a refit. An erasure or a
    withdrawal in this process unlearns the user's contribution at once.

    What each trained subject contributed is known by a mark taken from the very rows the fit
    (or a catch-up) read: how many events, and the latest write number among them. Events
    are only ever added between refits (a deletion moves the epoch), so the events numbered
    up to that latest are exactly the ones learned when they are as many as the mark says;
    otherwise (on PostgreSQL an event numbered earlier may commit later) the process refits.
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
        # Trained subject id -> (events learned, the latest write number among them).
        self._learned: dict[int, tuple[int, int]] = {}
        # Trained subjects this process wrote events for since they were last learned.
        self._written: set[int] = set()
        # The store-wide latest event number drawn when this process last looked, and when
        # it may look again (`sync`); float("inf") never looks (models then change with
        # other processes' events only at a refit).
        self._drawn = 0
        self._next_sync = 0.0
        self.sync_interval = SYNC_INTERVAL
        self.fits = 0  # full fits this process made
        self.version = 0  # moved by every change of the learned state (derived results key on it)

    def bump(self, conn: Connection) -> None:
        """Move the store-wide epoch (inside the caller's transaction): others must refit."""
        self._tf._store.bump_counter(conn, EPOCH)

    def age_fields_written(self, conn: Connection, names: Iterable[str]) -> None:
        """Profile fields were written: if they decide a child's status (Art. 8), the
        training set may change, so every process refits (inside the caller's transaction)."""
        if self._tf._age.reads(names):
            self.bump(conn)
            self._dirty = True

    def mark_dirty(self) -> None:
        """This process changed what the models are fit from (catalog, recommenders, the
        training set): refit before the next recommendation."""
        self._dirty = True

    def events_written(self, subject_ids: Iterable[int]) -> None:
        """This process committed events of these subjects: those the models learned are
        learned again, with the new events, before the next recommendation (`catch_up`).
        Past a share of the trained subjects a refit is the cheaper way, and is made instead."""
        with self._lock:
            if self._dirty:
                return
            learned = self._learned
            self._written.update(s for s in subject_ids if s in learned)
            if len(self._written) > CATCH_UP_MIN + len(learned) // CATCH_UP_SHARE:
                self._dirty = True
                self._written.clear()

    def ensure_fresh(self, epoch: str | None = None, drawn: int | None = None) -> None:
        """Refit if this process's state is stale, or learn new events; `epoch` and `drawn`
        are the store's model epoch and latest event number drawn if the caller read them
        already (the gate's probe does), else they are read now."""
        if epoch is None or drawn is None:
            with self._tf._store.read() as conn:
                epoch = self._read_epoch(conn)
                drawn = self._tf._store.events_drawn(conn)
        lapsed = self._lapse is not None and now() >= self._lapse
        if self._dirty or epoch != self._epoch or lapsed:
            self.fit()
            return
        if drawn > self._drawn and time.monotonic() >= self._next_sync:
            self.sync(drawn)
            if self._dirty:  # too many to catch up
                self.fit()
                return
        if self._written:
            self.catch_up()

    def sync(self, drawn: int) -> None:
        """Find the trained subjects whose events moved past what was learned of them (other
        processes' writes; this process's own are known already), to be caught up.

        One statement reads every live subject's latest event number (a seek per subject in
        (subject_id, seq)); a subject whose number is above its mark has events the models
        did not learn. Looked at most once per `sync_interval` seconds, and only when the
        store-wide number drawn moved (`drawn`, from the probe).
        """
        with self._lock:
            if self._dirty:
                return
            with self._tf._store.read() as conn:
                latest = self._tf._store.events.latest_numbers(conn)
            moved = [sid for sid, (_, last) in self._learned.items() if latest.get(sid, 0) > last]
            self._drawn = max(self._drawn, drawn)
            self._next_sync = time.monotonic() + self.sync_interval
        self.events_written(moved)

    def fit(self) -> None:
        """Refit both recommenders from consented users' events.

        The fit only reads, in one snapshot without the write lock (`Store.read`): in a
        write transaction, SQLite's write lock was held for the whole fit, and every writer
        of every process waited for it (a settings write 330-430 ms behind a 380 ms fit of
        1,000 users)."""
        with self._lock, self._tf._store.read() as conn:
            epoch = self._read_epoch(conn)
            in_force = self._tf._ledger.in_force(conn, TRAINING_PURPOSE)
            # Restricted (Art. 18) and objecting (Art. 21) users' data trains nothing.
            blocked = self._tf._rights.controls.excluded_from(conn, TRAINING_PURPOSE)
            ids = [i for i in in_force.subject_ids if i not in blocked]
            # A child's own consent does not make profiling lawful (Art. 8): without a
            # guardian's, their events stay out of everyone's models, as out of their own.
            children = _children_without_authorization(self._tf, conn, ids)
            ids = [i for i in ids if i not in children]
            drawn = self._tf._store.events_drawn(conn)  # before the events: nothing is skipped
            learned = dict.fromkeys(ids, (0, 0))
            bundles = []
            for sid, marked in self._tf._store.events.marked_bundles(conn, ids):
                bundles.append(list(interactions(marked.events)))
                learned[sid] = _mark(marked)
            items = self._tf._store.catalog.all(conn)
            catalog = [CatalogItem(i.item_id, i.title, i.categories, i.attributes) for i in items]
            self.hybrid.fit(bundles, catalog)  # every component: popularity, item-item, ...
            by_cat: dict[str, set[str]] = {}
            for i in items:
                for c in i.categories:
                    by_cat.setdefault(c, set()).add(i.item_id)
            self._category_items = {c: frozenset(v) for c, v in by_cat.items()}
            self.fits += 1
            self.version += 1
            self._learned, self._written, self._drawn = learned, set(), drawn
            self._next_sync = time.monotonic() + self.sync_interval  # the fit read everything
            self._epoch, self._dirty, self._lapse = epoch, False, in_force.next_expiry

    def catch_up(self) -> None:
        """Learn the events this process wrote since the subjects were last learned: each
        subject's contribution, as learned, is replaced by all its events (`relearn`; every
        recommender's `forget` is exact), one read of those subjects' events.

        The epoch is read after the events: if it has not moved, no consent, restriction or
        erasure reached the store before the events were read, so the subjects were still
        in the training set. Anything else (the epoch moved, a mark that no longer matches
        the rows) refits instead.
        """
        with self._lock:
            if not self._written or self._dirty:
                return
            ids = sorted(self._written)
            store = self._tf._store
            with store.read() as conn:
                found = dict(store.events.marked_bundles(conn, ids))
                epoch = self._read_epoch(conn)
            if epoch != self._epoch:
                self.fit()
                return
            steps = []
            for sid in ids:
                now_held = found.get(sid, MarkedEvents([], []))
                was = _learned_part(now_held, self._learned[sid])
                if was is None:
                    self.fit()
                    return
                steps.append((sid, was, now_held))
            for sid, was, now_held in steps:
                bundle = list(interactions(now_held.events))  # made once: the old is a part
                self.hybrid.relearn([bundle[n] for n in was], bundle)
                self._learned[sid] = _mark(now_held)
            self._written = set()
            self.version += 1

    def forget(
        self,
        subject_id: int,
        held: MarkedEvents | None,
        conn: Connection,
        *,
        learned: bool,
    ) -> None:
        """Unlearn one contributor now (if it was learned), and tell other processes to refit.

        `held` are the subject's events as the store holds them now (None: the key was
        shredded by an interrupted erasure, they can no longer be read); `learned` says
        whether the contributor's consent was in force, i.e. whether the current state
        includes them. What is forgotten is what was learned (the subject's mark, see the
        class docstring); if that cannot be told, or this process's state is stale, it
        refits instead.
        """
        with self._lock:
            mark = self._learned.pop(subject_id, None)
            self._written.discard(subject_id)
            fresh = not self._dirty and self._read_epoch(conn) == self._epoch
            if fresh and learned:
                was = None if held is None or mark is None else _learned_part(held, mark)
                if was is None:
                    self._dirty = True
                elif was:
                    assert held is not None
                    self.hybrid.forget(list(interactions([held.events[n] for n in was])))
                    self.version += 1
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

    def items_in(self, category: str) -> frozenset[str]:
        """The catalog's item ids of one category (public data; segments count by it)."""
        return self._category_items.get(category, frozenset())

    def _read_epoch(self, conn: Connection) -> str:
        return self._tf._store.read_meta(conn, EPOCH) or "0"
