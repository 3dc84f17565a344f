"""One statement per gated call: the subject, a mark of everything the gate reads, the epoch.

The gate keeps a subject's decoded state (consent fold, settings, objections, age facts,
profile fields, history) between calls and must know, on every call and across processes,
whether any of it changed. Rather than a version counter every write would have to move
(a row lock on the subject for each event written), the mark is read from the rows
themselves, through the indexes they already have: the consent ledger's last record id (it is
append-only), the update time of the settings and segment-membership rows, for objections
and profile fields their count and latest time, for events the latest write sequence number
(`store.sequence`) and the store-wide count of retention runs that deleted events. Any
insert, update or delete through tactful moves one of them; see docs/architecture.md, "The
gate's subject cache".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Dialect,
    ScalarSelect,
    Select,
    Table,
    bindparam,
    func,
    literal,
    select,
)
from sqlalchemy.sql.util import find_tables

from tactful.store.engine import DriverReads, driver_sql
from tactful.store.sequence import DRAWN, PURGED
from tactful.store.subjects import SubjectRef
from tactful.store.tables import (
    ConsentRecord,
    DPRelease,
    Event,
    ExperimentDef,
    Objection,
    ProfileField,
    SegmentMembership,
    StoreMeta,
    Subject,
    UserSettings,
    table_of,
)

EPOCH = "model_epoch"

_subject = table_of(Subject)
_consent = table_of(ConsentRecord)
_settings = table_of(UserSettings)
_objection = table_of(Objection)
_profile = table_of(ProfileField)
_event = table_of(Event)
_membership = table_of(SegmentMembership)
_meta = table_of(StoreMeta)
_release = table_of(DPRelease)
_experiment = table_of(ExperimentDef)
_sid = _subject.c.id


def _of_subject(*columns: Any, table: Table) -> ScalarSelect[Any]:
    return select(*columns).where(table.c.subject_id == _sid).scalar_subquery()


# The subject's latest event write (`store.sequence`): one seek in (subject_id, seq), where
# a count of the subject's events grew with their history.
_EVENTS_MARK = _of_subject(func.max(_event.c.seq), table=_event)
# Correlated subqueries, each answered from an index on subject_id.
_MARKS = (
    _of_subject(func.max(_consent.c.id), table=_consent),
    _of_subject(_settings.c.updated_at, table=_settings),
    _of_subject(func.count(), table=_objection),
    _of_subject(func.max(_objection.c.recorded_at), table=_objection),
    _of_subject(func.count(), table=_profile),
    _of_subject(func.max(_profile.c.updated_at), table=_profile),
    _EVENTS_MARK,
    _of_subject(_membership.c.updated_at, table=_membership),
    # Retention runs that deleted events (deletions leave a subject's latest number alone).
    select(_meta.c.value).where(_meta.c.key == PURGED).scalar_subquery(),
)
EVENTS_AT = next(i for i, m in enumerate(_MARKS) if m is _EVENTS_MARK)  # its place in a mark
_EPOCH = select(_meta.c.value).where(_meta.c.key == EPOCH)
# The latest released DP top-k list of a dataset (bound as "dataset"): its id tells whether
# the non-personalized list a process parsed is still the one to show.
LATEST_RELEASE = (
    select(_release.c.id)
    .where(
        (_release.c.dataset == bindparam("dataset"))
        & (_release.c.kind == "top_k")
        & _release.c.result.is_not(None)
    )
    .order_by(_release.c.created_at.desc(), _release.c.id.desc())
    .limit(1)
)
# Experiment declarations and stops so far (a declaration never changes but for its stop,
# which sets `stopped_at`): a process keeps a user's experiment assignment while it holds.
_EXPERIMENTS = select(func.count() + func.count(_experiment.c.stopped_at)).scalar_subquery()
# One row whether or not the user is known: the subject is LEFT JOINed to a one-row source.
_ONE = select(literal(1).label("one")).subquery()


def _probe_select(dialect: str) -> Select[Any]:
    return select(
        _sid,
        _subject.c.alias,
        _subject.c.status,
        _subject.c.jurisdiction,
        _subject.c.user_id_ct.is_(None),
        _EPOCH.scalar_subquery(),
        LATEST_RELEASE.scalar_subquery(),
        DRAWN[dialect],  # the latest event number drawn store-wide (a hint)
        _EXPERIMENTS,
        *_MARKS,
    ).select_from(_ONE.outerjoin(_subject, _subject.c.ref == bindparam("ref")))


def watched_tables() -> tuple[str, ...]:
    """The names of the tables the probe reads (not the PostgreSQL sequence): the rows whose
    changes PostgreSQL notifications announce (`tactful.store.notified`)."""
    found = find_tables(_probe_select("postgresql"), include_joins=True)
    return tuple(sorted({t.name for t in found if isinstance(t, Table)}))


@dataclass(frozen=True, slots=True)
class Probe:
    """What one gated call learns in one statement.

    `subject` is None for a user id with no data (never recorded, or erased). `mark` changes
    whenever anything the gate reads of the subject changed; `epoch` is the store-wide model
    epoch ("0" before the first bump); `release` the id of the latest released DP top-k list
    of the dataset asked for (None before the first).
    """

    subject: SubjectRef | None
    mark: tuple[object, ...]
    epoch: str
    release: str | None = None
    events: int = 0  # the latest event number drawn store-wide (`store.sequence.DRAWN`)
    experiments: int = 0  # experiments declared plus experiments stopped, store-wide

    def events_added_since(self, mark: tuple[object, ...]) -> int | None:
        """If `mark` (an earlier probe's of this subject) differs from this probe's only in
        that the subject's latest event write number rose, that earlier number (0: the
        subject had no events then): events were added, nothing else changed. None
        otherwise."""
        new, i = self.mark, EVENTS_AT
        if len(mark) != len(new) or len(new) <= i or mark[:i] != new[:i]:
            return None
        if mark[i + 1 :] != new[i + 1 :]:
            return None
        was, now = mark[i], new[i]
        if not isinstance(now, int) or not (was is None or isinstance(was, int)):
            return None
        was = was or 0
        return was if now > was else None


def probe(reads: DriverReads, ref: str, dataset: str) -> Probe:
    """The subject of the pseudonym `ref` (`Subjects.pseudonym` of the app's user id), the
    mark of its gate-relevant rows, the model epoch, and the latest DP top-k release of
    `dataset`.

    One statement on a connection of the store's own, outside any transaction: it runs on
    every gated call (on SQLite unless `Store.probe` answers from memory), and SQLAlchemy's
    pool checkout (on PostgreSQL a pre-ping and a rollback, two more round trips) and
    per-execution work were most of its cost. What is read after it, in a snapshot of its
    own, is as new or newer: a cache entry never pairs a mark with older rows than it was
    read from.
    """
    sql, params = _compiled(reads.engine.dialect)
    row = reads.run(sql, params(ref, dataset))
    ((sid, alias, status, jurisdiction, legacy, epoch, release, drawn, declared, *marks),) = row
    epoch = "0" if epoch is None else str(epoch)
    release = None if release is None else str(release)
    events = 0 if drawn is None else int(drawn)
    experiments = int(declared or 0)
    if sid is None:
        return Probe(None, (), epoch, release, events, experiments)
    subject = SubjectRef(sid, ref, alias, status, jurisdiction, bool(legacy))
    return Probe(subject, tuple(marks), epoch, release, events, experiments)


_SQL: dict[str, tuple[str, Callable[[str, str], tuple[Any, ...]]]] = {}


def _compiled(dialect: Dialect) -> tuple[str, Callable[[str, str], tuple[Any, ...]]]:
    """The probe's SQL for a dialect's cursor, and how to bind a pseudonym and a dataset to
    it (rendered once)."""
    found = _SQL.get(dialect.name)
    if found is None:
        stmt = _probe_select(dialect.name)
        sql, order = driver_sql(stmt, dialect)
        constants = stmt.compile(dialect=dialect).params
        template = [constants.get(name) for name in order]
        slots: dict[str, list[int]] = {"ref": [], "dataset": []}
        for i, name in enumerate(order):
            if name in slots:
                slots[name].append(i)

        def bind(ref: str, dataset: str) -> tuple[Any, ...]:
            params = list(template)
            for i in slots["ref"]:
                params[i] = ref
            for i in slots["dataset"]:
                params[i] = dataset
            return tuple(params)

        found = _SQL[dialect.name] = (sql, bind)
    return found
