"""tf.aggregates: differentially private aggregates charged to a persistent privacy budget.

Each query is validated first (a bad one spends nothing), then the covered users' data is
read, then one transaction reserves the epsilon, runs the OpenDP mechanism, records the
release and appends a `dp.release` audit entry; if anything in it fails, nothing is spent
and nothing is released.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from tactful.audit import AuditLog
from tactful.consent import ConsentLedger
from tactful.dp import engine
from tactful.dp.budget import MICRO, BudgetLedger, BudgetStatus, check_dataset, to_micro
from tactful.dp.engine import Frame
from tactful.dp.plan import Query, Release, ReleaseRecord, plan
from tactful.dp.popularity import DEFAULT_PURPOSE, DPPopularity
from tactful.dp.queries import (
    MAX_KEYS,
    Out,
    check_bounds,
    check_keys,
    distinct,
    filter_rows,
    grouped,
    numbers,
    only_keys,
    text,
    top,
)
from tactful.dp.segments import SEGMENT, check_segments, membership_frame, metric_frame
from tactful.dp.sources import (
    build_frame,
    check_categories,
    check_column,
    covered_subjects,
)
from tactful.errors import ValidationError
from tactful.segments import CompiledSegments, Memberships
from tactful.store import Store, SubjectRef, now, utc
from tactful.store.tables import DPRelease, table_of

_release = table_of(DPRelease)


class Aggregates:
    """Count, sum, mean, histogram, quantiles, top-k and group-by, with user-level DP.

    Every query names its bounds: `max_contributions` (rows kept per user) and, for numeric
    columns, `bounds` (values are clamped into them). Only users covered by `purpose` are
    read. `epsilon` must be > 0 and at most the pack's `max_epsilon_per_release`; it is
    charged to `dataset`'s budget (BudgetExhausted says what is left).
    """

    def __init__(
        self,
        store: Store,
        ledger: ConsentLedger,
        audit: AuditLog,
        max_epsilon: float,
        catalog_ids: Callable[[Connection], list[str]],
        segments: CompiledSegments | None = None,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._audit = audit
        self._max_epsilon = max_epsilon
        self._catalog_ids = catalog_ids
        self._segments = segments
        self._memberships = Memberships(store.subjects)
        self._budget = BudgetLedger()
        self.popularity = DPPopularity(self, store)

    # -- queries ---------------------------------------------------------------------------

    def count(
        self,
        source: str,
        *,
        epsilon: float,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """How many rows (events, profile rows, consent states) covered users have."""
        q = self._plan("count", source, (), epsilon, max_contributions, where, dataset, purpose)
        return self._run(q, lambda f, d, _: Out(value=engine.dp_count(len(f.users), d, epsilon)))

    def sum(
        self,
        source: str,
        column: str,
        *,
        bounds: tuple[float, float] | None = None,
        epsilon: float,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """The sum of a numeric column, each value clamped to `bounds`."""
        lo_hi = check_bounds(bounds)
        q = self._plan(
            "sum",
            source,
            (column,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=True,
        )
        return self._run(
            q, lambda f, d, _: Out(value=engine.dp_sum(numbers(f, column), lo_hi, d, epsilon))
        )

    def mean(
        self,
        source: str,
        column: str,
        *,
        bounds: tuple[float, float] | None = None,
        epsilon: float,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """The mean of a numeric column (clamped to `bounds`): noisy sum / noisy count."""
        lo_hi = check_bounds(bounds)
        q = self._plan(
            "mean",
            source,
            (column,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=True,
        )
        return self._run(
            q, lambda f, d, _: Out(value=engine.dp_mean(numbers(f, column), lo_hi, d, epsilon))
        )

    def histogram(
        self,
        source: str,
        column: str,
        *,
        keys: Sequence[str],
        epsilon: float,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """Counts per declared public key of a text column; other values are not counted.

        The keys must not come from the data itself (that would leak which values exist).
        """
        ks = check_keys(keys)
        q = self._plan(
            "histogram",
            source,
            (column,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=False,
        )

        def run(f: Frame, d: int, ks: list[str]) -> Out:
            codes = text(f, column).codes
            return Out(
                by_key=dict(zip(ks, engine.dp_histogram(codes, len(ks), d, epsilon), strict=True))
            )

        return self._run(q, run, keys=ks, key_column=column)

    def quantiles(
        self,
        source: str,
        column: str,
        *,
        alphas: Sequence[float] = (0.5,),
        bounds: tuple[float, float] | None = None,
        bins: int = 100,
        epsilon: float,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """Quantiles of a numeric column, chosen among `bins`+1 evenly spaced candidates
        within `bounds`; the epsilon is split evenly over the `alphas`."""
        lo, hi = check_bounds(bounds)
        if not alphas or not all(isinstance(a, float | int) and 0 <= a <= 1 for a in alphas):
            raise ValidationError("alphas must be a non-empty list of numbers in [0, 1]")
        if not isinstance(bins, int) or not 1 <= bins <= 10_000:
            raise ValidationError("bins must be an integer from 1 to 10000")
        q = self._plan(
            "quantiles",
            source,
            (column,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=True,
        )
        candidates = np.linspace(lo, hi, bins + 1).tolist()
        share = epsilon / len(alphas)

        def run(f: Frame, d: int, _: list[str]) -> Out:
            values = numbers(f, column)
            return Out(
                by_key={
                    f"{a:g}": engine.dp_quantile(values, float(a), candidates, d, share)
                    for a in alphas
                }
            )

        return self._run(q, run)

    def top_k(
        self,
        source: str,
        column: str,
        *,
        k: int,
        epsilon: float,
        keys: Sequence[str] | None = None,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """The k keys with the most users (each user counts once per key), with noisy counts.

        Candidates are `keys`, or for the events' `item` column the catalog's item ids (public).
        """
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_KEYS:
            raise ValidationError(f"k must be an integer from 1 to {MAX_KEYS}")
        q = self._plan(
            "top_k",
            source,
            (column,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=False,
        )
        if keys is None and not (source == "events" and column == "item"):
            raise ValidationError(
                "top_k needs the public candidate `keys` (only events' item defaults to the "
                "catalog)"
            )
        candidates = check_keys(keys) if keys is not None else self._catalog_ids
        return self._run(
            q,
            lambda f, d, ks: top(f, column, k, ks, d, epsilon),
            keys=candidates,
            key_column=column,
            dedupe=True,
        )

    def group_by(
        self,
        source: str,
        by: str,
        *,
        keys: Sequence[str],
        epsilon: float,
        column: str | None = None,
        bounds: tuple[float, float] | None = None,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """Count (and, with `column`, the mean of that column) per declared key of `by`.

        With a column the epsilon is split evenly between the counts and the sums.
        """
        ks = check_keys(keys)
        lo_hi = check_bounds(bounds) if column is not None else None
        q = self._plan(
            "group_by",
            source,
            (by,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=False,
        )
        if column is not None:
            check_column(self._store, source, column, "number")
            check_categories(
                self._store, purpose, self._ledger.purposes.get(purpose), source, column
            )
            q = dataclasses.replace(q, columns=(by, column))

        def run(f: Frame, d: int, ks: list[str]) -> Out:
            return Out(by_group=grouped(f, by, ks, column, lo_hi, d, epsilon))

        return self._run(q, run, keys=ks, key_column=by)

    # -- segments --------------------------------------------------------------------------

    def segment_sizes(
        self,
        segments: Sequence[str] | None = None,
        *,
        epsilon: float,
        max_contributions: int | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """How many covered users are in each segment (all of segments.yaml by default).

        A user counts once per segment; `max_contributions` (default: the number of segments
        asked) bounds how many segments one user counts in (a uniform sample of theirs when
        over). The purpose must declare every data category the segments' rules read.
        """
        ids = self._segment_ids(segments, purpose)
        if max_contributions is None:
            max_contributions = len(ids)
        # The common checks (epsilon, contributions, dataset, purpose) of a query without
        # columns; the membership frame replaces the source.
        q = self._plan(
            "segment_sizes", "consents", (), epsilon, max_contributions, None, dataset, purpose
        )
        q = dataclasses.replace(q, source="segments", columns=(SEGMENT,))

        def run(f: Frame, d: int, ks: list[str]) -> Out:
            counts = engine.dp_histogram(text(f, SEGMENT).codes, len(ks), d, epsilon)
            return Out(by_key=dict(zip(ks, counts, strict=True)))

        return self._run(
            q,
            run,
            keys=ids,
            key_column=SEGMENT,
            dedupe=True,
            frame_of=lambda conn, subjects, _cols: membership_frame(
                conn, self._memberships, subjects
            ),
        )

    def segment_metrics(
        self,
        source: str,
        *,
        epsilon: float,
        segments: Sequence[str] | None = None,
        column: str | None = None,
        bounds: tuple[float, float] | None = None,
        max_contributions: int | None = None,
        where: Mapping[str, str] | None = None,
        dataset: str = "default",
        purpose: str = DEFAULT_PURPOSE,
    ) -> Release:
        """Per segment: the count of the source's rows of its members (and, with `column`, the
        mean of that column clamped to `bounds`), in `by_group[segment]`.

        A member's rows count in every segment they are in; `max_contributions` bounds the
        rows kept per user across all segments. With a column the epsilon is split evenly
        between counts and sums, as in `group_by`.
        """
        ids = self._segment_ids(segments, purpose)
        lo_hi = check_bounds(bounds) if column is not None else None
        q = self._plan(
            "segment_metrics",
            source,
            () if column is None else (column,),
            epsilon,
            max_contributions,
            where,
            dataset,
            purpose,
            numeric=True,
        )
        q = dataclasses.replace(q, columns=(*q.columns, SEGMENT))
        store, ledger, memberships = self._store, self._ledger, self._memberships

        def run(f: Frame, d: int, ks: list[str]) -> Out:
            return Out(by_group=grouped(f, SEGMENT, ks, column, lo_hi, d, epsilon))

        return self._run(
            q,
            run,
            keys=ids,
            key_column=SEGMENT,
            frame_of=lambda conn, subjects, cols: metric_frame(
                conn, store, ledger, memberships, q.source, cols, subjects
            ),
        )

    def _segment_ids(self, segments: Sequence[str] | None, purpose: str) -> list[str]:
        definition = self._ledger.purposes.purposes.get(purpose)
        if definition is None:
            raise ValidationError(
                f"purpose {str(purpose)[:64]!r} is not declared in the policy pack's "
                f"purposes.yaml (declared: {', '.join(self._ledger.purposes.ids())})"
            )
        if self._segments is None:
            raise ValidationError("this store was opened without segments (segments.yaml)")
        return check_segments(self._segments, segments, purpose, definition)

    # -- DP popularity ---------------------------------------------------------------------

    # -- budget ----------------------------------------------------------------------------

    def budget(self, dataset: str = "default") -> BudgetStatus:
        """The privacy budget of one dataset (zero total if never granted)."""
        check_dataset(dataset)
        with self._store.read() as conn:
            return self._budget.status(conn, dataset)

    def budgets(self) -> list[BudgetStatus]:
        """Every dataset's privacy budget."""
        with self._store.read() as conn:
            return self._budget.all(conn)

    def grant(self, dataset: str, epsilon: float, *, operator: str) -> BudgetStatus:
        """Add epsilon to a dataset's total budget; audit-logged with the operator's name."""
        if not isinstance(operator, str) or not operator.strip() or len(operator) > 64:
            raise ValidationError("operator must name who grants the budget (1-64 characters)")
        with self._store.begin() as conn:
            status = self._budget.grant(conn, dataset, epsilon)
            self._audit.append(
                conn,
                "dp.budget.granted",
                {
                    "dataset": dataset,
                    "epsilon": epsilon,
                    "total": status.total,
                    "operator": operator.strip(),
                },
            )
        return status

    def releases(self, dataset: str | None = None) -> list[ReleaseRecord]:
        """Past releases, oldest first (what, where, how much epsilon, when; no values)."""
        query = select(
            _release.c.id,
            _release.c.dataset,
            _release.c.kind,
            _release.c.epsilon_micro,
            _release.c.created_at,
        )
        if dataset is not None:
            query = query.where(_release.c.dataset == check_dataset(dataset))
        with self._store.read() as conn:
            rows = conn.execute(query.order_by(_release.c.created_at, _release.c.id)).all()
        return [
            ReleaseRecord(r.id, r.dataset, r.kind, r.epsilon_micro / MICRO, utc(r.created_at))
            for r in rows
        ]

    # -- inside ----------------------------------------------------------------------------

    def _run(
        self,
        q: Query,
        mechanism: Callable[[Frame, int, list[str]], Out],
        *,
        keys: list[str] | Callable[[Connection], list[str]] | None = None,
        key_column: str | None = None,
        dedupe: bool = False,
        frame_of: Callable[[Connection, list[SubjectRef], tuple[str, ...]], Frame] | None = None,
    ) -> Release:
        """Read the covered users' rows, bound them, then reserve, release, record, audit.

        Rows whose `key_column` value is not a public key are dropped before bounding (so
        they do not use up a user's contributions); with `dedupe` a user counts once per key.
        """
        store = self._store
        needed = tuple(dict.fromkeys([*q.columns, *(c for c, _ in q.where)]))
        with store.begin() as conn:
            definition = self._ledger.purposes.get(q.purpose)
            subjects = covered_subjects(conn, self._ledger, q.purpose, definition)
            frame = (
                frame_of(conn, subjects, needed)
                if frame_of is not None
                else build_frame(conn, store, self._ledger, q.source, needed, subjects)
            )
            resolved = keys(conn) if callable(keys) else list(keys or [])
        frame = filter_rows(frame, q.where, q.columns)
        if key_column is not None:
            frame = only_keys(frame, key_column, resolved)
            if dedupe:
                frame = distinct(frame, key_column)
        frame = frame.take(engine.bound_rows(frame.users, q.max_contributions))
        release_id, stamp = uuid.uuid4().hex, now()
        with store.begin() as conn:
            self._budget.reserve(conn, q.dataset, q.epsilon)
            out = mechanism(frame, q.max_contributions, resolved)
            result = None
            if q.kind == "top_k" and q.source == "events" and q.columns == ("item",):
                result = json.dumps([[k, e.value] for k, e in out.by_key.items()])
            conn.execute(
                _release.insert().values(
                    id=release_id,
                    dataset=q.dataset,
                    kind=q.kind,
                    epsilon_micro=to_micro(q.epsilon),
                    created_at=stamp,
                    result=result,
                )
            )
            self._audit.append(
                conn,
                "dp.release",
                {
                    "release": release_id,
                    "query": q.kind,
                    "source": q.source,
                    "columns": list(q.columns),
                    "dataset": q.dataset,
                    "epsilon": q.epsilon,
                    "purpose": q.purpose,
                    "max_contributions": q.max_contributions,
                },
            )
        return Release(
            release_id,
            q.kind,
            q.dataset,
            q.source,
            q.epsilon,
            stamp,
            out.value,
            out.by_key,
            out.by_group,
        )

    def _plan(self, *args: Any, **kwargs: Any) -> Query:
        return plan(self._store, self._ledger, self._max_epsilon, *args, **kwargs)
