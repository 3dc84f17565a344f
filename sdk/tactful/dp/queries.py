"""Query plumbing: bounds and keys checks, row filters, and the grouped/top-k mechanisms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tactful.dp import engine
from tactful.dp.engine import Categorical, Estimate, Frame
from tactful.errors import ValidationError

MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Out:
    """What a mechanism released: a scalar, per-key or per-group estimates."""

    value: Estimate | None = None
    by_key: dict[str, Estimate] = field(default_factory=dict)
    by_group: dict[str, dict[str, Estimate]] = field(default_factory=dict)


def grouped(
    f: Frame,
    by: str,
    keys: Sequence[str],
    column: str | None,
    bounds: tuple[float, float] | None,
    d_in: int,
    epsilon: float,
) -> dict[str, dict[str, Estimate]]:
    """DP counts (and means of `column`) per public key of `by`, on an already bounded frame."""
    codes = text(f, by).codes  # already key positions (only_keys)
    if column is None or bounds is None:
        counts = engine.dp_histogram(codes, len(keys), d_in, epsilon)
        return {k: {"count": c} for k, c in zip(keys, counts, strict=True)}
    values = numbers(f, column)
    counts = engine.dp_histogram(codes, len(keys), d_in, epsilon / 2)
    sums = engine.dp_group_sums(codes, values, len(keys), bounds, d_in, epsilon / 2)
    return {
        k: {"count": c, "mean": engine.ratio_estimate(s, c, bounds)}
        for k, c, s in zip(keys, counts, sums, strict=True)
    }


def top(f: Frame, column: str, k: int, keys: Sequence[str], d_in: int, eps: float) -> Out:
    """The DP top-k keys (rank order) with noisy counts; the frame holds each user once per key."""
    if not keys:
        return Out()
    codes = text(f, column).codes  # already key positions (only_keys)
    chosen = engine.dp_top_k(codes, len(keys), k, d_in, eps)
    return Out(by_key={keys[i]: est for i, est in chosen})


def filter_rows(f: Frame, where: tuple[tuple[str, str], ...], columns: tuple[str, ...]) -> Frame:
    keep = np.ones(len(f.users), dtype=bool)
    for c, v in where:
        col = f.columns[c]
        assert isinstance(col, Categorical)
        code = col.categories.index(v) if v in col.categories else -2
        keep &= col.codes == code
    for c in columns:  # rows missing a value of the queried column do not count
        col = f.columns[c]
        keep &= (col.codes >= 0) if isinstance(col, Categorical) else ~np.isnan(col)
    return f if bool(keep.all()) else f.take(np.flatnonzero(keep))


def only_keys(f: Frame, column: str, keys: Sequence[str]) -> Frame:
    """Keep the rows whose `column` is one of the public keys, recoded as key positions."""
    positions = engine.key_codes(text(f, column), keys)
    keep = np.flatnonzero(positions >= 0)
    out = f.take(None if len(keep) == len(positions) else keep)
    cols = dict(out.columns)
    cols[column] = Categorical(positions[keep], tuple(keys))
    return Frame(out.users, cols)


def distinct(f: Frame, column: str) -> Frame:
    col = f.columns[column]
    assert isinstance(col, Categorical)
    if not len(f.users):
        return f
    pairs = f.users * (len(col.categories) + 1) + col.codes
    _, first = np.unique(pairs, return_index=True)
    return f.take(np.sort(first))


def numbers(f: Frame, column: str) -> engine.FloatArray:
    col = f.columns[column]
    assert not isinstance(col, Categorical)
    return col


def text(f: Frame, column: str) -> Categorical:
    col = f.columns[column]
    assert isinstance(col, Categorical)
    return col


def check_bounds(bounds: object) -> tuple[float, float]:
    if bounds is None:
        raise ValidationError(
            "unbounded values: declare bounds=(lower, upper); values are clamped into them"
        )
    if (
        not isinstance(bounds, tuple | list)
        or len(bounds) != 2
        or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)
            for b in bounds
        )
        or not bounds[0] < bounds[1]
    ):
        raise ValidationError("bounds must be two finite numbers (lower, upper) with lower < upper")
    return float(bounds[0]), float(bounds[1])


def check_keys(keys: object) -> list[str]:
    if isinstance(keys, str) or not isinstance(keys, Sequence | set | frozenset):
        raise ValidationError("keys must be a list of the public values to report on")
    out = list(dict.fromkeys(keys))
    if not out or len(out) > MAX_KEYS or not all(isinstance(k, str) for k in out):
        raise ValidationError(f"keys must be 1 to {MAX_KEYS} strings")
    return out
