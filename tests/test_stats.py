"""featevo.stats: each test on data with a known answer, and the cases it must refuse."""

import math

import numpy as np
import pytest

from featevo import stats


def test_a_perfect_rank_order_is_significant_and_an_arbitrary_one_is_not():
    x = np.arange(12.0)
    r = stats.rank_correlation(x, x ** 2)
    assert r.statistic == pytest.approx(1.0) and r.p < 1e-3
    rng = np.random.default_rng(1)
    ps = [stats.rank_correlation(x, rng.normal(size=12), seed=i).p for i in range(40)]
    assert 0.3 < np.mean(ps) < 0.7  # uniform under the null
    assert np.mean(np.asarray(ps) < 0.05) < 0.2


def test_a_measure_that_is_constant_up_to_rounding_is_not_tested():
    x = np.arange(8.0)
    assert math.isnan(stats.rank_correlation(x, np.full(8, 0.3) + 1e-17 * x).p)
    assert math.isnan(stats.mean_difference([1.0, 1.0, 1.0], [1.0, 1.0, 1.0 + 1e-16]).p)
    assert stats.verdict(math.nan) == "not testable"


def test_the_partial_correlation_separates_accuracy_from_time_spent_training():
    """A measure that follows time only is not significant once the epoch is given; one
    that follows accuracy's own ups and downs is."""
    epoch = np.arange(20.0)
    acc = epoch + np.tile([3.0, -3.0, 1.5, -1.5, 0.0], 4)  # rises, with wiggles of its own
    follows_time = epoch + np.random.default_rng(0).normal(scale=1.5, size=20)
    follows_acc = acc + np.random.default_rng(1).normal(scale=0.3, size=20)
    assert stats.rank_correlation(acc, follows_time).p < 1e-3  # plain: looks like the claim
    assert stats.rank_correlation(acc, follows_time, given=epoch).p > 0.05
    partial = stats.rank_correlation(acc, follows_acc, given=epoch)
    assert partial.statistic > 0.5 and partial.p < 0.01
    # a measure in the epochs' own order has nothing left once the epoch is given: not tested
    assert math.isnan(stats.rank_correlation(acc, epoch ** 2, given=epoch).p)


def test_mean_difference_is_exact_over_two_groups_of_six():
    a = np.arange(6.0) + 10
    b = np.arange(6.0)
    r = stats.mean_difference(a, b)
    assert r.statistic == pytest.approx(10.0)
    assert r.p == pytest.approx(1 / 924)  # the one split of 924 that puts all of a first
    assert r.low > 5 and r.high < 15
    assert stats.mean_difference(b, a).p == pytest.approx(1.0)


def test_the_split_test_finds_two_clusters_and_not_one():
    rng = np.random.default_rng(0)
    apart = np.vstack([rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 5])
    same = rng.normal(size=(12, 3))
    dist = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    r = stats.split_test(dist(apart), 6)
    assert r.p == pytest.approx(2 / 924)  # the split and its mirror
    assert stats.split_test(dist(same), 6).p > 0.05
    three = np.vstack([rng.normal(size=(3, 3)), rng.normal(size=(3, 3)) + 5])
    assert stats.split_test(dist(three), 3).p == pytest.approx(0.1)  # 3 restarts cannot reach 0.05
    assert math.isnan(stats.split_test(dist(apart[:3]), 1).p)


def test_benjamini_hochberg_and_stouffer():
    q = stats.bh([0.01, 0.04, 0.03, np.nan, 0.5])
    assert q[:3] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3])  # 4 tests: 0.01*4, min(0.03*4/2, 0.04*4/3) and math.isnan(q[3]) and q[4] == pytest.approx(0.5)
    assert stats.combine([0.01, 0.01]) < 0.01
    assert stats.combine([0.01, 0.99]) > 0.05  # one seed cannot carry what the other contradicts
    assert stats.combine([0.2]) == 0.2 and math.isnan(stats.combine([np.nan]))


def test_verdicts():
    assert stats.verdict(0.01) == "yes"
    assert stats.verdict(0.2, 0.01) == "no"
    assert stats.verdict(0.2, 0.3) == "not significant"
