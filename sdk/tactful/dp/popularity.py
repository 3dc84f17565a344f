"""DP popularity: the top-k item list the gate serves in non-personalized mode.

Released with differential privacy (a top-k over the events' items, each user counting once
per item) on its own budget dataset, cached in the store, reused until the next release.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select

from tactful.dp.budget import MICRO
from tactful.dp.plan import Release, ReleaseRecord
from tactful.errors import ValidationError
from tactful.store import Store, now, utc
from tactful.store.probe import LATEST_RELEASE
from tactful.store.tables import DPRelease, table_of

if TYPE_CHECKING:
    from tactful.dp.api import Aggregates

_release = table_of(DPRelease)
_RESULT = select(_release.c.result).where(_release.c.id == bindparam("id"))

DEFAULT_PURPOSE = "analytics.aggregate"
POPULARITY_DATASET = "popularity"


class DPPopularity:
    """tf.aggregates.popularity: release, refresh on a schedule, and read the cached list."""

    def __init__(self, aggregates: Aggregates, store: Store) -> None:
        self._aggregates = aggregates
        self._store = store
        self._cache: tuple[str, list[tuple[str, float]]] | None = None

    def release(
        self,
        *,
        k: int = 50,
        epsilon: float,
        max_contributions: int | None = None,
        purpose: str = DEFAULT_PURPOSE,
        dataset: str = POPULARITY_DATASET,
    ) -> Release:
        """Release the DP top-k item list that the gate's non-personalized mode serves.

        Charged to its own dataset (default 'popularity'); the latest one is cached in the
        store and used by every non-personalized recommendation from then on. The selection
        noise grows with k (scale about k / epsilon), so ask for no more items than the
        non-personalized pages show.
        """
        return self._aggregates.top_k(
            "events",
            "item",
            k=k,
            epsilon=epsilon,
            max_contributions=max_contributions,
            dataset=dataset,
            purpose=purpose,
        )

    def refresh(
        self,
        *,
        every: timedelta = timedelta(days=1),
        k: int = 50,
        epsilon: float,
        max_contributions: int | None = None,
        purpose: str = DEFAULT_PURPOSE,
        dataset: str = POPULARITY_DATASET,
    ) -> ReleaseRecord:
        """The scheduled release: a new DP popularity list only if the latest is older than
        `every` (run it from cron or a scheduler); returns the record in use."""
        if not isinstance(every, timedelta) or every <= timedelta(0):
            raise ValidationError("every must be a positive timedelta, e.g. timedelta(days=1)")
        with self._store.read() as conn:
            latest = self._latest(conn, dataset)
        if latest is not None and now() - utc(latest.created_at) < every:
            return ReleaseRecord(
                latest.id,
                latest.dataset,
                latest.kind,
                latest.epsilon_micro / MICRO,
                utc(latest.created_at),
            )
        rel = self.release(
            k=k,
            epsilon=epsilon,
            max_contributions=max_contributions,
            purpose=purpose,
            dataset=dataset,
        )
        return ReleaseRecord(rel.id, rel.dataset, "top_k", rel.epsilon, rel.created_at)

    def current(
        self, conn: Connection, dataset: str = POPULARITY_DATASET
    ) -> list[tuple[str, float]] | None:
        """The cached DP popularity list (item, noisy count), best first; None if none yet."""
        return self.of_release(
            lambda: conn, conn.execute(LATEST_RELEASE, {"dataset": dataset}).scalar()
        )

    def of_release(
        self, read: Callable[[], Connection], release: str | None
    ) -> list[tuple[str, float]] | None:
        """The list of release `release` (the latest, as the gate's probe found it), parsed
        once per release; `read()` is asked for a connection only to parse a new one."""
        if release is None:
            return None
        if self._cache is None or self._cache[0] != release:
            result = read().execute(_RESULT, {"id": release}).scalar_one()
            items = [(str(i), float(c)) for i, c in json.loads(result)]
            self._cache = (release, items)
        return self._cache[1]

    def _latest(self, conn: Connection, dataset: str) -> Any:
        return conn.execute(
            select(_release)
            .where(
                (_release.c.dataset == dataset)
                & (_release.c.kind == "top_k")
                & _release.c.result.is_not(None)
            )
            .order_by(_release.c.created_at.desc(), _release.c.id.desc())
            .limit(1)
        ).first()
