"""The tests behind every verdict: permutation tests, intervals, corrections.

Each function states its null hypothesis and returns its p-value (one-sided in
the direction a claim asserts unless said otherwise).  The resampling itself is
scipy's (``scipy.stats.permutation_test``, ``bootstrap``, ``combine_pvalues``,
``false_discovery_control``); written here are only the statistics the claims
need and the exact test over splits of a small set of restarts, which scipy's
``permutation_test`` cannot express (its statistic would be a distance matrix's
block means, recomputed for every split).

A measure that does not vary (constant up to rounding) is never tested: the
functions return NaN, and the claims say "not testable" with the reason.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

ALPHA = 0.05  # every verdict's level, after correction where several tests share a claim
RESAMPLES = 9999  # Monte Carlo permutations where the exact set is larger (p >= 1e-4)
ROUNDING = 1e-9  # relative spread below which a measure counts as constant


def varies(x) -> bool:
    """Whether ``x`` (finite values) differs by more than rounding."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return False
    return float(np.ptp(x)) > ROUNDING * max(1.0, float(np.abs(x).max()))


def _ranks(x) -> np.ndarray:
    return st.rankdata(np.asarray(x, float))


def _residual(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """y less its least-squares line in z (with an intercept)."""
    design = np.column_stack([np.ones_like(z), z])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


@dataclass(frozen=True)
class Result:
    """A test's statistic, its p-value, (where it has one) a 95% interval, and ``min_p``:
    the smallest p-value the design can attain (an exact test over 6 orderings cannot go
    below 1/6): where it is ALPHA or more, no outcome could be significant."""

    statistic: float
    p: float
    low: float = math.nan
    high: float = math.nan
    min_p: float = math.nan

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p) and self.p < ALPHA)


NAN = Result(math.nan, math.nan)


def rank_correlation(x, y, *, given=None, alternative: str = "greater", seed: int = 0) -> Result:
    """Spearman's rho of ``x`` and ``y`` (with ``given``: the partial rho, both ranks less
    their line in the ranks of ``given``), and the permutation p-value of the null
    hypothesis that the pairing of x with y is arbitrary (x's ranks shuffled against y's:
    exact for n <= 7, whose 5040 orderings are fewer than RESAMPLES, else RESAMPLES
    random orderings).  Partial on the epoch, it asks whether y follows x
    beyond what both owe to time spent training."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if given is not None:
        given = np.asarray(given, float)
        keep &= np.isfinite(given)
    x, y = x[keep], y[keep]
    if len(x) < 4 or not varies(x) or not varies(y):
        return NAN
    rx, ry = _ranks(x), _ranks(y)
    if given is not None:
        rz = _ranks(given[keep])
        rx, ry = _residual(rx, rz), _residual(ry, rz)
        if not varies(rx) or not varies(ry):
            return NAN

    def rho(a, b, axis=-1):  # Pearson's r of the ranks, over the last axis (a batch of pairings at once)
        a = a - a.mean(axis=axis, keepdims=True)
        b = b - b.mean(axis=axis, keepdims=True)
        return (a * b).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))

    # one sample permuted against the other fixed: n! pairings (both permuted: (n!)^2, which
    # scipy enumerates only up to n = 4)
    res = st.permutation_test((rx,), lambda a, axis=-1: rho(a, ry, axis), permutation_type="pairings",
                              alternative=alternative, n_resamples=RESAMPLES, vectorized=True,
                              rng=np.random.default_rng(seed))
    return Result(float(res.statistic), float(res.pvalue), min_p=smallest_p(math.factorial(len(x)), alternative))


def mean_difference(a, b, *, alternative: str = "greater", seed: int = 0) -> Result:
    """mean(a) - mean(b), the permutation p-value of the null hypothesis that a and b are
    exchangeable (exact when the splits are few, e.g. two groups of 6 restarts: 924),
    and a 95% bootstrap interval of the difference (percentile)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2 or not varies(np.concatenate([a, b])):
        return NAN

    def diff(u, v, axis=-1):
        return np.mean(u, axis=axis) - np.mean(v, axis=axis)

    rng = np.random.default_rng(seed)
    res = st.permutation_test((a, b), diff, permutation_type="independent", alternative=alternative,
                              n_resamples=RESAMPLES, vectorized=True, rng=rng)
    ci = st.bootstrap((a, b), diff, n_resamples=RESAMPLES, method="percentile", vectorized=True, rng=rng)
    return Result(float(res.statistic), float(res.pvalue), float(ci.confidence_interval.low),
                  float(ci.confidence_interval.high),
                  min_p=smallest_p(math.comb(len(a) + len(b), len(a)), alternative))


def mean_above(x, value: float, *, alternative: str = "greater", bounds: tuple[float, float] | None = None) -> Result:
    """mean(x) - value, Student's one-sample t-test of the null hypothesis mean(x) = value
    (it assumes the values roughly normal, which gives it power a sign-flip test lacks: with
    five seeds the flips' floor, 1/32, passes the table's correction only beside enough
    other significant rows) and its two-sided 95% t interval, within ``bounds`` (the
    values' own range, e.g. a share's [0, 1]) where given.  Values all equal (a share
    stuck at 1) have no spread for t: then the exact sign-flip p, 1/2^n where every value
    lies on the claimed side (its floor), else 1; NaN when they all equal ``value``.
    E.g. the seeds' last-epoch shares against one half."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return NAN
    if not varies(x):
        d = float(x[0] - value)
        if abs(d) <= ROUNDING * max(1.0, abs(value)):
            return NAN
        floor = smallest_p(2 ** len(x), alternative)
        side = d > 0 if alternative == "greater" else d < 0 if alternative == "less" else True
        return Result(d, floor if side else 1.0, d, d, min_p=floor)
    res = st.ttest_1samp(x, value, alternative=alternative)
    ci = st.ttest_1samp(x, value).confidence_interval(0.95)
    low, high = float(ci.low), float(ci.high)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Result(float(x.mean() - value), float(res.pvalue), low - value, high - value)


def split_test(distances: np.ndarray, n_first: int) -> Result:
    """Whether two groups of points differ by more than the points within each group:
    the first ``n_first`` of ``distances``' (n x n, symmetric) points against the rest.

    Statistic: the mean distance between the groups minus the mean distance within
    them (an energy distance).  Null hypothesis: the group labels are exchangeable
    (the points are restarts of one distribution).  Exact: every split into groups
    of the same sizes is enumerated (two groups of 6: 924 splits, smallest p
    2/924, since a split and its mirror give the same statistic)."""
    d = np.asarray(distances, float)
    n = len(d)
    n_second = n - n_first
    if n_first < 2 or n_second < 2 or not np.isfinite(d).all():
        return NAN
    splits = np.zeros((math.comb(n, n_first), n), bool)
    for row, chosen in enumerate(itertools.combinations(range(n), n_first)):
        splits[row, list(chosen)] = True
    a = splits.astype(float)
    b = 1.0 - a
    # sums over pairs: within a (each pair counted twice), within b, and across
    within_a = np.einsum("pi,ij,pj->p", a, d, a) / (n_first * (n_first - 1))
    within_b = np.einsum("pi,ij,pj->p", b, d, b) / (n_second * (n_second - 1))
    across = np.einsum("pi,ij,pj->p", a, d, b) / (n_first * n_second)
    stat = across - (within_a + within_b) / 2
    observed = stat[0]  # combinations() yields the first n_first points first
    if not varies(stat):  # every split alike: nothing to test (as for any constant measure)
        return Result(float(observed), math.nan)
    tol = ROUNDING * max(1.0, float(np.abs(stat).max()))
    mirrored = 2 if n_first == n_second else 1  # a split and its mirror give one statistic
    return Result(float(observed), float(np.mean(stat >= observed - tol)), min_p=mirrored / len(stat))


def smallest_p(orderings: int, alternative: str = "greater") -> float:
    """The smallest p-value of a permutation test over ``orderings`` equally likely
    arrangements: exact (1 / orderings) where they are at most RESAMPLES, else scipy's
    Monte Carlo p, (0 + 1) / (RESAMPLES + 1); twice that for a two-sided test (scipy
    doubles the smaller one-sided p)."""
    one = 1.0 / orderings if orderings <= RESAMPLES else 1.0 / (RESAMPLES + 1)
    return min(1.0, 2 * one) if alternative == "two-sided" else one


def combine(pvalues) -> float:
    """One p-value for a claim tested in several seeds, each one-sided in the same
    direction (Stouffer's z, equal weights: the seeds' evidence adds up, and one
    seed's extreme p cannot carry a claim that the others contradict).

    Each p is kept within [1 / (RESAMPLES + 1), 1 - 1 / (RESAMPLES + 1)], the range a
    permutation test here can resolve: an exact test's p of 1 (the smallest statistic
    possible) is an infinite z to Stouffer, and one seed would veto all the others."""
    p = np.asarray(pvalues, float)
    p = p[np.isfinite(p)]
    if not len(p):
        return math.nan
    if len(p) == 1:
        return float(p[0])
    eps = 1.0 / (RESAMPLES + 1)
    return float(st.combine_pvalues(np.clip(p, eps, 1.0 - eps), method="stouffer").pvalue)


def simes(pvalues) -> float:
    """Simes' p of the global null over a family of tests (the smallest
    Benjamini-Hochberg q): valid when the tests are positively dependent, as the tests
    of consecutive epochs are (each shares an epoch's restarts with the next)."""
    q = bh(pvalues)
    return float(np.nanmin(q)) if np.isfinite(q).any() else math.nan


def bh(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q) of a family of tests; NaN stays NaN and
    is not counted in the family."""
    p = np.asarray(pvalues, float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = st.false_discovery_control(p[ok], method="bh")
    return q


def verdict(p_claimed: float, p_opposite: float = math.nan, min_p: float = math.nan) -> str:
    """``yes`` when the test in the claim's direction rejects its null at ALPHA, ``no``
    when the test in the opposite direction does, ``underpowered`` when neither does and
    the design's smallest attainable p (``min_p``) is ALPHA or more (no outcome could have
    been significant: the design decides nothing), else ``not significant``; NaN p:
    ``not testable``."""
    if not np.isfinite(p_claimed):
        return "not testable"
    if p_claimed < ALPHA:
        return "yes"
    if np.isfinite(p_opposite) and p_opposite < ALPHA:
        return "no"
    if np.isfinite(min_p) and min_p >= ALPHA:
        return "underpowered"
    return "not significant"
