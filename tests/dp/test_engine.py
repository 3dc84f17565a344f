"""The mechanisms without a store: user-level bounds and the stated 95% intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tactful.dp import engine

REPS = 1000
P_MIN = 1e-4  # like OpenDP's statistical tests: fail only if this unlikely under the claim


def _covered(est: engine.Estimate, truth: float) -> bool:
    assert est.low is not None and est.high is not None
    return est.low <= truth <= est.high


def test_bounding_keeps_at_most_max_contributions_rows_per_user() -> None:
    users = np.array([3, 1, 3, 3, 1, 2, 3, 3], dtype=np.int64)
    kept = engine.bound_rows(users, 2)
    assert sorted(np.bincount(users[kept]).tolist()) == [0, 1, 2, 2]
    assert len(set(kept.tolist())) == len(kept)
    assert engine.bound_rows(users, 10).tolist() == list(range(8))


def test_bounding_samples_over_bound_users_uniformly() -> None:
    users = np.zeros(4, dtype=np.int64)
    picks = np.concatenate([engine.bound_rows(users, 1, seed=s) for s in range(2000)])
    counts = np.bincount(picks, minlength=4)
    assert stats.chisquare(counts).pvalue > P_MIN


@pytest.mark.parametrize(
    ("name", "release", "truth"),
    [
        ("count", lambda: engine.dp_count(500, 3, 0.5), 500),
        (
            "sum",
            lambda: engine.dp_sum(np.full(200, 2.0), (0.0, 5.0), 2, 0.5),
            400.0,
        ),
        (
            "histogram",
            lambda: engine.dp_histogram(np.array([0, 1, 1], dtype=np.int32), 2, 1, 0.5)[1],
            2,
        ),
        (
            "group sums",
            lambda: engine.dp_group_sums(
                np.array([0, 0, 1], dtype=np.int32), np.array([1.0, 2.0, 9.0]), 2, (0, 4), 1, 1.0
            )[1],
            4.0,  # 9 clamped to 4
        ),
    ],
)
def test_stated_95_percent_interval_covers_the_truth_95_percent_of_the_time(
    name: str, release: object, truth: float
) -> None:
    hits = sum(_covered(release(), truth) for _ in range(REPS))  # type: ignore[operator]
    # Two-sided: a wrong scale or interval shows as too few or too many hits.
    assert stats.binomtest(hits, REPS, engine.CONFIDENCE).pvalue > P_MIN, (name, hits / REPS)


def test_mean_interval_covers_the_truth_at_least_95_percent_of_the_time() -> None:
    values = np.linspace(0, 10, 300)
    hits = sum(_covered(engine.dp_mean(values, (0.0, 10.0), 2, 1.0), 5.0) for _ in range(REPS))
    # The mean's interval is conservative by construction (a union bound over sum and count).
    assert stats.binomtest(hits, REPS, engine.CONFIDENCE, alternative="less").pvalue > P_MIN


def test_each_mechanism_spends_no_more_than_asked() -> None:
    meas, scale = engine.calibrate(
        lambda s: (
            engine._float_space()
            >> engine.dp.t.then_clamp((0.0, 1.0))
            >> engine.dp.t.then_sum()
            >> engine.dp.m.then_laplace(scale=s)
        ),
        7,
        0.37,
    )
    assert meas.map(7) <= 0.37
    assert scale == pytest.approx(7 / 0.37, rel=1e-4)


def test_quantile_lands_near_the_true_median() -> None:
    values = np.random.default_rng(1).uniform(0, 100, 5000)
    picks = [
        engine.dp_quantile(values, 0.5, np.linspace(0, 100, 101), 1, 1.0).value for _ in range(20)
    ]
    assert abs(float(np.median(picks)) - 50) <= 5


def test_top_k_selects_clearly_popular_keys_with_noisy_counts() -> None:
    counts = [500, 400, 300] + [5] * 97
    codes = np.repeat(np.arange(100, dtype=np.int32), counts)
    chosen = engine.dp_top_k(codes, 100, 3, 50, 1.0)
    assert [i for i, _ in chosen] == [0, 1, 2]
    for i, est in chosen:
        assert est.low is not None and est.high is not None
        assert est.scale == pytest.approx(3 / 0.25)  # min(d_in, k) / (epsilon / 4)
        assert abs(est.value - counts[i]) < 20 * est.scale
