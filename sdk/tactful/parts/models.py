"""The recommenders' learned state and who may train them."""

from __future__ import annotations

import threading
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
    StoredEvent,
    SubjectRef,
    now,
)

TRAINING_PURPOSE = "personalization"
EPOCH = "model_epoch"

if TYPE_CHECKING:
    from tactful.client import Tactful


def interactions(events: Sequence[StoredEvent]) -> tuple[Interaction, ...]:
    return tuple(Interaction(item=e.item, kind=e.kind, ts=e.ts.timestamp()) for e in events)


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
        self.fits = 0  # how many fits this process made (what is derived from a fit keys on it)

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
        """This process wrote events: refit before the next recommendation."""
        self._dirty = True

    def ensure_fresh(self, epoch: str | None = None) -> None:
        """Refit if this process's state is stale; `epoch` is the store's model epoch if the
        caller read it already (the gate's probe does), else it is read now."""
        if epoch is None:
            with self._tf._store.read() as conn:
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
            # A child's own consent does not make profiling lawful (Art. 8): without a
            # guardian's, their events stay out of everyone's models, as out of their own.
            children = _children_without_authorization(self._tf, conn, ids)
            ids = [i for i in ids if i not in children]
            bundles = [
                list(interactions(evs)) for _, evs in self._tf._store.events.bundles(conn, ids)
            ]
            items = self._tf._store.catalog.all(conn)
            catalog = [CatalogItem(i.item_id, i.title, i.categories, i.attributes) for i in items]
            self.hybrid.fit(bundles, catalog)  # every component: popularity, item-item, ...
            by_cat: dict[str, set[str]] = {}
            for i in items:
                for c in i.categories:
                    by_cat.setdefault(c, set()).add(i.item_id)
            self._category_items = {c: frozenset(v) for c, v in by_cat.items()}
            self.fits += 1
            self._epoch, self._dirty, self._lapse = epoch, False, in_force.next_expiry

    def forget(
        self, events: Sequence[StoredEvent] | None, conn: Connection, *, learned: bool
    ) -> None:
        """Unlearn one contributor now (if it was learned), and tell other processes to refit.

        `learned` says whether the contributor's consent was in force, i.e. whether the current
        state includes them. If this process's state is stale, or the events can no longer be
        read (None: the key was shredded by an interrupted erasure), it is refit instead.
        """
        with self._lock:
            bundle = list(interactions(events or ()))
            fresh = not self._dirty and self._read_epoch(conn) == self._epoch
            if fresh and learned and events is None:
                self._dirty = True
            elif fresh and learned and bundle:
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

    def items_in(self, category: str) -> frozenset[str]:
        """The catalog's item ids of one category (public data; segments count by it)."""
        return self._category_items.get(category, frozenset())

    def _read_epoch(self, conn: Connection) -> str:
        return self._tf._store.read_meta(conn, EPOCH) or "0"
