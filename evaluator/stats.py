"""Small-sample statistics for verification: Student's t quantile, Welch's interval and an exact rank-sum
test, no scipy.

With three seeds per side, a normal approximation would claim far too much: the 97.5% quantile of
t with 2 degrees of freedom is 4.30, not 1.96. The t distribution's CDF is the regularized
incomplete beta function, evaluated with the continued fraction of Numerical Recipes (6.4), and the
quantile is found by bisection; both are accurate to ~1e-10, far below what a verdict needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import mean, stdev


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1]; got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, not necessarily whole) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0; got {df}")
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1); got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval for mean(x) - mean(y) (Welch: unequal variances)."""

    diff: float
    low: float
    high: float
    df: float | None  # None when both samples have zero spread: the interval is the point


def welch_interval(x: list[float], y: list[float], confidence: float = 0.95) -> Interval:
    """Welch's interval; needs at least two values on each side."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need at least 2 values per side for a spread; got {len(x)} and {len(y)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    diff = mean(x) - mean(y)
    vx, vy = stdev(x) ** 2 / len(x), stdev(y) ** 2 / len(y)
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return Interval(diff, diff, diff, None)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, df) * se
    return Interval(diff, diff - half, diff + half, df)


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return out


def rank_sum_p(x: list[float], y: list[float], max_splits: int = 2_000_000) -> float:
    """Two-sided p-value of the Wilcoxon-Mann-Whitney rank-sum test, exact: the share of all ways to split
    the pooled values into groups of len(x) and len(y) whose rank sum for the first group lies at least as
    far from its expectation as x's does (ties get mean ranks, so this is the exact conditional test).
    Meant for the handful of runs a benchmark has; refuses samples with more than ``max_splits`` splits."""
    if not x or not y:
        raise ValueError(f"need at least one value per side; got {len(x)} and {len(y)}")
    if math.comb(len(x) + len(y), len(x)) > max_splits:
        raise ValueError(f"{len(x)} + {len(y)} values: too many splits for the exact test")
    pooled = ranks(list(x) + list(y))
    expected = len(x) * (len(pooled) + 1) / 2.0
    observed = abs(sum(pooled[: len(x)]) - expected)
    hits = total = 0
    for group in combinations(pooled, len(x)):
        total += 1
        hits += abs(sum(group) - expected) >= observed - 1e-9
    return hits / total
