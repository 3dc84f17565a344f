"""From noisy counts to rates and differences with 95% intervals (post-processing only).

The interval of a rate accounts for both sources of error: sampling (which users happened to
be in the variant: binomial variance p(1-p)/n) and the DP noise on the two counts (discrete
Laplace variance, carried through the ratio by the delta method). A difference of two
variants' rates adds their variances (the variants hold disjoint users). Normal
approximation; with a few dozen users per variant or more it holds well (bench/ checks the
A/A false-positive rate).
"""

from __future__ import annotations

import math

from tactful.dp import Estimate
from tactful.experiments.model import CountEstimate, Difference, RateEstimate

Z95 = 1.959963984540054


def noise_variance(scale: float) -> float:
    """Variance of discrete Laplace noise of this scale (≈ 2·scale² for large scales)."""
    if scale <= 0:
        return 0.0
    q = math.exp(-1.0 / scale)
    return 2.0 * q / (1.0 - q) ** 2


def count(e: Estimate) -> CountEstimate:
    """A released count with its DP interval, both clamped at 0 (post-processing).

    A count of users cannot be negative: the noisy value is clamped like its interval, so the
    value always lies inside the interval shown. Rates use the unclamped release (`rate`).
    """
    low = e.low if e.low is not None else e.value
    high = e.high if e.high is not None else e.value
    return CountEstimate(value=max(0.0, e.value), low=max(0.0, low), high=max(0.0, high))


def rate(converted: Estimate, exposed: Estimate) -> tuple[RateEstimate, float]:
    """The conversion rate, its 95% interval, and its variance (for differences)."""
    n = exposed.value
    if n < 1:
        return RateEstimate(value=0.0, low=0.0, high=1.0), 0.25
    c = min(max(converted.value, 0.0), n)
    p = c / n
    var = (
        p * (1 - p) / n
        + noise_variance(converted.scale) / n**2
        + p * p * noise_variance(exposed.scale) / n**2
    )
    half = Z95 * math.sqrt(var)
    return RateEstimate(value=p, low=max(0.0, p - half), high=min(1.0, p + half)), var


def difference(
    name: str, versus: str, a: RateEstimate, var_a: float, b: RateEstimate, var_b: float
) -> Difference:
    """Rate a minus rate b with its 95% interval; significant when it excludes 0."""
    d = a.value - b.value
    half = Z95 * math.sqrt(var_a + var_b)
    low, high = d - half, d + half
    return Difference(
        variant=name,
        versus=versus,
        value=d,
        low=max(-1.0, low),
        high=min(1.0, high),
        significant=low > 0 or high < 0,
    )
