"""Validated queries and what a release returns; checks run before anything is spent."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tactful.consent import ConsentLedger
from tactful.dp import engine
from tactful.dp.budget import check_dataset
from tactful.dp.engine import Estimate
from tactful.dp.sources import SOURCES, check_categories, check_column
from tactful.errors import ValidationError
from tactful.store import Store

MAX_CONTRIBUTIONS = 100_000


@dataclass(frozen=True, slots=True)
class Release:
    """One differentially private release: the noisy numbers, their noise and 95% intervals.

    `value` holds a scalar query's estimate (count, sum, mean); `by_key` the per-key
    estimates of a histogram, top-k (in rank order) or quantiles (keyed by the quantile);
    `by_group` the per-key {"count", "mean"} estimates of a group-by. Every estimate carries
    its noise scale and the interval that covers the true (bounded) value with 95%
    probability; quantiles have none (low/high are None).
    """

    id: str
    kind: str
    dataset: str
    source: str
    epsilon: float
    created_at: datetime
    value: Estimate | None = None
    by_key: dict[str, Estimate] = field(default_factory=dict)
    by_group: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    confidence: float = engine.CONFIDENCE


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A past release as recorded (no values): id, dataset, kind, epsilon, time."""

    id: str
    dataset: str
    kind: str
    epsilon: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Query:
    """A validated query: what to compute, on what, under which purpose and budget."""

    kind: str
    source: str
    columns: tuple[str, ...]
    epsilon: float
    dataset: str
    purpose: str
    max_contributions: int
    where: tuple[tuple[str, str], ...]


def plan(
    store: Store,
    ledger: ConsentLedger,
    max_epsilon: float,
    kind: str,
    source: str,
    columns: tuple[str, ...],
    epsilon: float,
    max_contributions: int | None,
    where: Mapping[str, str] | None,
    dataset: str,
    purpose: str,
    *,
    numeric: bool | None = None,
) -> Query:
    """Validate a query before anything is read or spent; a bad one raises ValidationError."""
    if source not in SOURCES:
        raise ValidationError(
            f"unknown source {str(source)[:64]!r}; use one of: {', '.join(SOURCES)}"
        )
    for c in columns:
        check_column(
            store,
            source,
            c,
            None if numeric is None else ("number" if numeric else "text"),
        )
    conds = tuple(sorted((where or {}).items()))
    for c, v in conds:
        check_column(store, source, c, "text")
        if not isinstance(v, str):
            raise ValidationError(f"where[{c!r}] must be a string to compare with")
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, int | float)
        or not (math.isfinite(epsilon) and epsilon > 0)
    ):
        raise ValidationError("epsilon must be a finite number > 0")
    if epsilon > max_epsilon:
        raise ValidationError(
            f"epsilon {epsilon:g} is above the policy's maximum per release "
            f"({max_epsilon:g}, pack.yaml max_epsilon_per_release); ask for less"
        )
    if max_contributions is None:
        raise ValidationError(
            "unbounded contributions: declare max_contributions (rows kept per user), "
            "which bounds what one user can change in the result"
        )
    if (
        isinstance(max_contributions, bool)
        or not isinstance(max_contributions, int)
        or not 1 <= max_contributions <= MAX_CONTRIBUTIONS
    ):
        raise ValidationError(f"max_contributions must be an integer from 1 to {MAX_CONTRIBUTIONS}")
    check_dataset(dataset)
    definition = ledger.purposes.purposes.get(purpose)
    if definition is None:
        raise ValidationError(
            f"purpose {str(purpose)[:64]!r} is not declared in the policy pack's "
            f"purposes.yaml (declared: {', '.join(ledger.purposes.ids())})"
        )
    for c in {*columns, *(c for c, _ in conds)}:
        check_categories(store, purpose, definition, source, c)
    return Query(kind, source, columns, float(epsilon), dataset, purpose, max_contributions, conds)
