"""The DP mechanisms: user-level bounding in numpy, noise and accounting by OpenDP.

Every query takes a `Frame` (one row per record, each tagged with its user) and a bound on
the rows per user. Keeping at most `max_contributions` rows of each user means adding or
removing one user changes the data by at most that many rows, which is the symmetric
distance `d_in` handed to OpenDP's privacy maps. Each mechanism is calibrated so that its
OpenDP privacy map at `d_in` is at most the epsilon asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as dp

dp.enable_features("contrib")

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
CodeArray = np.ndarray[Any, np.dtype[np.int32]]


@dataclass(frozen=True, slots=True)
class Categorical:
    """A text column, dictionary-encoded: `codes` index `categories`; -1 is missing."""

    codes: CodeArray
    categories: tuple[str, ...]

    @classmethod
    def encode(cls, values: Sequence[str | None]) -> Categorical:
        """Encode a sequence of strings (None = missing)."""
        index: dict[str, int] = {}
        codes = np.fromiter(
            (-1 if v is None else index.setdefault(v, len(index)) for v in values),
            dtype=np.int32,
            count=len(values),
        )
        return cls(codes, tuple(index))


Column = Categorical | FloatArray


@dataclass(frozen=True, slots=True)
class Frame:
    """Rows of many users: `users[i]` is row i's user (any int id); columns by name.

    Numeric columns are float64 arrays with NaN for missing; text columns are Categorical.
    """

    users: IntArray
    columns: Mapping[str, Column]

    def take(self, rows: IntArray | None) -> Frame:
        """The frame restricted to `rows` (None: all)."""
        if rows is None:
            return self
        cols: dict[str, Column] = {}
        for name, col in self.columns.items():
            if isinstance(col, Categorical):
                cols[name] = Categorical(col.codes[rows], col.categories)
            else:
                cols[name] = col[rows]
        return Frame(self.users[rows], cols)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A released number, its noise scale, and its 95% interval (None when not closed-form)."""

    value: float
    scale: float
    low: float | None
    high: float | None


def key_codes(col: Categorical, keys: Sequence[str]) -> CodeArray:
    """Map a column's codes to positions in the public `keys` (-1 where not a key)."""
    where = {k: i for i, k in enumerate(keys)}
    lut = np.array([where.get(c, -1) for c in col.categories] + [-1], dtype=np.int32)
    return lut[col.codes]  # code -1 indexes the trailing -1


def bound_rows(users: IntArray, max_contributions: int, seed: int | None = None) -> IntArray:
    """Indices of at most `max_contributions` rows per user (a uniform sample where over)."""
    n = len(users)
    order = np.argsort(users, kind="stable") if n and np.any(users[1:] < users[:-1]) else None
    u = users if order is None else users[order]
    if n == 0:
        return np.arange(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    lengths = np.diff(np.r_[starts, n])
    if int(lengths.max()) <= max_contributions:
        return np.arange(n, dtype=np.int64) if order is None else np.sort(order)
    # Rank each row of an over-bound user by a random key inside its user; keep ranks below
    # the bound. Which rows are kept depends only on that user's own rows, so the bound
    # holds for any neighboring dataset.
    over = np.flatnonzero(lengths > max_contributions)
    over_len = lengths[over]
    over_group = np.repeat(np.arange(len(over)), over_len)
    over_rows = np.repeat(starts[over], over_len) + (
        np.arange(len(over_group)) - np.repeat(np.cumsum(over_len) - over_len, over_len)
    )
    rng = np.random.default_rng(seed)
    # group index + uniform[0, 1) sorts by user first, then randomly within the user.
    order_in = np.argsort(over_group + rng.random(len(over_rows)), kind="stable")
    ranked = over_rows[order_in]
    ranked_group = over_group[order_in]  # non-decreasing
    position = np.arange(len(ranked)) - np.searchsorted(ranked_group, ranked_group)
    drop = np.zeros(n, dtype=bool)
    drop[ranked[position >= max_contributions]] = True
    kept = np.flatnonzero(~drop)
    return kept if order is None else np.sort(order[kept])


def calibrate(
    make: Callable[[float], dp.Measurement], d_in: Any, epsilon: float
) -> tuple[dp.Measurement, float]:
    """The measurement (and its scale) of the smallest scale found whose map at d_in <= epsilon.

    Loss is inversely proportional to the scale for these mechanisms; OpenDP's maps add a
    little float slack, so the estimate is nudged up until the map agrees.
    """
    probe = make(1.0).map(d_in)  # type: ignore[no-untyped-call]
    scale = max(float(probe) / epsilon, 1e-12)
    for _ in range(20):
        meas = make(scale)
        if meas.map(d_in) <= epsilon:  # type: ignore[no-untyped-call]
            return meas, scale
        scale *= 1 + 1e-6
    scale = float(dp.binary_search_param(make, d_in, epsilon))
    return make(scale), scale


_MEASUREMENTS: dict[tuple[Any, ...], tuple[dp.Measurement, float]] = {}


def _calibrated(
    key: tuple[Any, ...], make: Callable[[float], dp.Measurement], d_in: Any, epsilon: float
) -> tuple[dp.Measurement, float]:
    # A calibrated measurement is a pure function of its parameters: reuse it (building and
    # calibrating one costs milliseconds; repeated queries and tests run thousands).
    full = (*key, d_in, epsilon)
    hit = _MEASUREMENTS.get(full)
    if hit is None:
        if len(_MEASUREMENTS) >= 256:
            _MEASUREMENTS.clear()
        hit = _MEASUREMENTS[full] = calibrate(make, d_in, epsilon)
    return hit


@functools.lru_cache(maxsize=1024)
def _half(discrete: bool, scale: float, alpha: float) -> float:
    # Half-width of the (1 - alpha) interval from OpenDP's accuracy helpers.
    if discrete:
        return float(dp.discrete_laplacian_scale_to_accuracy(scale, alpha))
    return float(dp.laplacian_scale_to_accuracy(scale, alpha))


def _count_space() -> tuple[dp.Domain, dp.Metric]:
    return dp.vector_domain(dp.atom_domain(T=dp.i32)), dp.symmetric_distance()


def _float_space() -> tuple[dp.Domain, dp.Metric]:
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()


def _int_estimate(value: float, scale: float) -> Estimate:
    half = _half(True, scale, ALPHA)
    return Estimate(float(value), scale, float(value) - half, float(value) + half)


def _float_estimate(value: float, scale: float) -> Estimate:
    half = _half(False, scale, ALPHA)
    return Estimate(float(value), scale, float(value) - half, float(value) + half)


def dp_count(n_rows: int, d_in: int, epsilon: float) -> Estimate:
    """A noisy count of the bounded rows (OpenDP count + discrete Laplace)."""
    meas, scale = _calibrated(
        ("count",),
        lambda s: _count_space() >> dp.t.then_count() >> dp.m.then_laplace(scale=s),
        d_in,
        epsilon,
    )
    value = meas(np.zeros(n_rows, dtype=np.int32))
    return _int_estimate(value, scale)


def dp_histogram(codes: CodeArray, n_keys: int, d_in: int, epsilon: float) -> list[Estimate]:
    """Noisy counts per public key: numpy counts, OpenDP's discrete Laplace on the vector.

    One user's at most d_in rows change the vector of counts by at most d_in in L1 norm (the
    stability of OpenDP's count_by_categories, which would cost ~50 ms per million rows to
    feed through its FFI); that sensitivity is handed to OpenDP's vector Laplace.
    """
    counts = np.bincount(codes[codes >= 0], minlength=n_keys)[:n_keys].astype(np.int64)
    space = (dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64))
    meas, scale = _calibrated(
        ("laplace_i64",), lambda s: dp.m.make_laplace(*space, scale=s), d_in, epsilon
    )
    return [_int_estimate(c, scale) for c in meas(counts)]


def dp_sum(values: FloatArray, bounds: tuple[float, float], d_in: int, epsilon: float) -> Estimate:
    """A noisy sum of values clamped to `bounds` (OpenDP clamp + sum + Laplace)."""
    meas, scale = _calibrated(
        ("sum", bounds),
        lambda s: (
            _float_space()
            >> dp.t.then_clamp(bounds)
            >> dp.t.then_sum()  # type: ignore[no-untyped-call]
            >> dp.m.then_laplace(scale=s)
        ),
        d_in,
        epsilon,
    )
    return _float_estimate(meas(np.ascontiguousarray(values, dtype=np.float64)), scale)


def dp_mean(values: FloatArray, bounds: tuple[float, float], d_in: int, epsilon: float) -> Estimate:
    """Noisy sum / noisy count, half the epsilon each; the interval is conservative.

    The interval is the range of sum/count over both 97.5% intervals (a union bound), so it
    covers the true mean at least 95% of the time, usually more.
    """
    total = dp_sum(values, bounds, d_in, epsilon / 2)
    count = dp_count(len(values), d_in, epsilon / 2)
    return ratio_estimate(total, count, bounds)


def ratio_estimate(total: Estimate, count: Estimate, bounds: tuple[float, float]) -> Estimate:
    """The mean from a noisy sum and count, clamped to bounds, with a union-bound interval."""
    lo_b, hi_b = bounds
    value = total.value / count.value if count.value > 0 else (lo_b + hi_b) / 2
    value = min(max(value, lo_b), hi_b)
    sum_half = _half(False, total.scale, ALPHA / 2)
    cnt_half = _half(True, count.scale, ALPHA / 2)
    c_lo, c_hi = count.value - cnt_half, count.value + cnt_half
    if c_lo <= 0:
        return Estimate(value, total.scale, lo_b, hi_b)
    corners = [
        s / c for s in (total.value - sum_half, total.value + sum_half) for c in (c_lo, c_hi)
    ]
    low, high = max(min(corners), lo_b), min(max(corners), hi_b)
    return Estimate(value, total.scale, low, high)


def dp_group_sums(
    codes: CodeArray,
    values: FloatArray,
    n_keys: int,
    bounds: tuple[float, float],
    d_in: int,
    epsilon: float,
) -> list[Estimate]:
    """Noisy clamped sums per public key (numpy sums, OpenDP vector Laplace).

    One user's at most d_in rows change the vector of per-key sums by at most
    d_in * max(|lower|, |upper|) in L1 norm; that is the sensitivity handed to OpenDP.
    """
    keep = codes >= 0
    clamped = np.clip(values[keep], bounds[0], bounds[1])
    sums = np.bincount(codes[keep], weights=clamped, minlength=n_keys)[:n_keys]
    sensitivity = float(d_in) * max(abs(bounds[0]), abs(bounds[1]))
    space = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float))
    meas, scale = _calibrated(
        ("laplace",), lambda s: dp.m.make_laplace(*space, scale=s), sensitivity, epsilon
    )
    noisy = meas(sums.astype(np.float64))
    return [_float_estimate(v, scale) for v in noisy]


TOP_K_SELECTION_SHARE = 0.75


def dp_top_k(
    codes: CodeArray, n_keys: int, k: int, d_in: int, epsilon: float
) -> list[tuple[int, Estimate]]:
    """The k keys with the highest counts, best first, each with a noisy count.

    The rows must hold each user at most once per key and at most d_in keys per user. Adding
    or removing a user then moves every count by at most 1, and only upwards or downwards
    together: an L-infinity sensitivity of 1 whatever d_in is. So OpenDP's noisy top-k
    (permute-and-flip, monotonic) selects with 3/4 of epsilon at a noise scale of about
    k / epsilon, and the selected counts get discrete Laplace noise for the rest (L1
    sensitivity min(d_in, k)).
    """
    k = min(k, n_keys)
    if k == 0:
        return []
    counts = np.bincount(codes[codes >= 0], minlength=n_keys)[:n_keys].astype(np.int64)
    eps_select = epsilon * TOP_K_SELECTION_SHARE
    select_space = (
        dp.vector_domain(dp.atom_domain(T=dp.i64, nan=False)),
        dp.linf_distance(T=dp.i64, monotonic=True),
    )
    select, _ = _calibrated(
        ("top_k", k),
        lambda s: dp.m.make_noisy_top_k(*select_space, dp.max_divergence(), k=k, scale=s),
        1,
        eps_select,
    )
    chosen = [int(i) for i in select(counts)]
    count_space = (dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64))
    noisy, scale = _calibrated(
        ("laplace_i64",),
        lambda s: dp.m.make_laplace(*count_space, scale=s),
        min(d_in, k),
        epsilon - eps_select,
    )
    values = noisy(counts[chosen])
    return [(i, _int_estimate(v, scale)) for i, v in zip(chosen, values, strict=True)]


def dp_quantile(
    values: FloatArray, alpha: float, candidates: Sequence[float], d_in: int, epsilon: float
) -> Estimate:
    """The candidate chosen by OpenDP's private quantile (exponential mechanism).

    No closed-form interval: low/high are None; `scale` is the selection noise scale.
    """
    cands = [float(c) for c in candidates]
    meas, scale = _calibrated(
        ("quantile", alpha, tuple(cands)),
        lambda s: dp.m.make_private_quantile(
            *_float_space(), dp.max_divergence(), candidates=cands, alpha=alpha, scale=s
        ),
        d_in,
        epsilon,
    )
    value = meas(np.ascontiguousarray(values, dtype=np.float64))
    return Estimate(float(value), scale, None, None)
