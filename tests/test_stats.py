"""featevo.measures.stats: each test on data with a known answer, and the cases it must refuse."""

import math

import numpy as np
import pytest
import scipy.stats as st

from featevo.measures import stats


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


def test_a_p_of_one_does_not_veto_the_other_seeds():
    """An exact test's p of 1 (the smallest statistic possible) was an infinite z to
    Stouffer: one seed vetoed every other."""
    assert stats.combine([1e-4, 1e-4, 1.0]) < 0.05
    assert stats.combine([1e-4, 1.0]) < 1.0
    assert stats.combine([0.5, 1.0]) > 0.5  # and it still counts against the claim


def test_rank_correlation_is_exact_over_the_orderings_of_seven():
    """n = 7: 5040 orderings of x's ranks against y's, fewer than RESAMPLES: the p is a
    count over all of them (a perfect order: 1 / 7!)."""
    r = stats.rank_correlation(np.arange(7.0), np.arange(7.0))
    assert r.p == pytest.approx(1 / math.factorial(7))
    assert stats.rank_correlation(np.arange(7.0), np.arange(7.0), seed=5).p == r.p  # no draws


def test_simes_keeps_its_level_where_fisher_does_not_on_tests_that_share_restarts():
    """C2's tests: consecutive epochs' split tests share an epoch's restarts. With nothing
    changing, Fisher's combination of them rejects too often; Simes' keeps the level."""
    rng = np.random.default_rng(0)
    fisher = simes = 0
    runs = 300
    for _ in range(runs):
        x = rng.normal(size=(9, 6, 3))  # 9 epochs, 6 restarts, 3 features: no change at all
        ps = []
        for t in range(1, 9):
            both = np.concatenate([x[t - 1], x[t]])
            d = np.sqrt(((both[:, None] - both[None]) ** 2).sum(-1))
            ps.append(stats.split_test(d, 6).p)
        fisher += st.combine_pvalues(ps, method="fisher").pvalue < stats.ALPHA
        simes += stats.simes(ps) < stats.ALPHA
    assert simes / runs <= stats.ALPHA + 0.02
    assert fisher > simes  # the dependence Fisher's combination ignores
    assert math.isnan(stats.simes([np.nan])) and stats.simes([0.01, 0.5]) == pytest.approx(0.02)


def test_a_split_test_of_a_constant_measure_is_not_a_test():
    assert math.isnan(stats.split_test(np.zeros((6, 6)), 3).p)


def test_the_smallest_attainable_p_says_when_a_design_cannot_decide():
    # two restarts against two: 6 splits, the best one-sided p is 1/6; no outcome is significant
    small = stats.mean_difference([1.0, 1.1], [0.0, 0.1])
    assert small.p == pytest.approx(1 / 6) and small.min_p == pytest.approx(1 / 6)
    assert stats.verdict(small.p, min_p=small.min_p) == "underpowered"
    # six against six: 924 splits, 1/924; the same separation is significant
    big = stats.mean_difference([1.0, 1.1, 1.2, 1.3, 1.4, 1.5], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert big.min_p == pytest.approx(1 / 924) and stats.verdict(big.p, min_p=big.min_p) == "yes"
    # a design that could decide, and did not: not significant, never underpowered
    assert stats.verdict(0.4, min_p=1 / 924) == "not significant"
    assert stats.verdict(0.4, 0.01, min_p=0.2) == "no"  # the opposite direction still decides
    rho = stats.rank_correlation([1, 2, 3, 4], [1, 2, 3, 4])
    assert rho.min_p == pytest.approx(1 / 24) and rho.p == pytest.approx(1 / 24)  # 4 points: 24 orderings
    assert stats.rank_correlation(np.arange(12), np.arange(12)).min_p == pytest.approx(1 / (stats.RESAMPLES + 1))
    d = np.abs(np.subtract.outer(np.r_[np.zeros(3), np.ones(3)], np.r_[np.zeros(3), np.ones(3)]))
    assert stats.split_test(d, 3).min_p == pytest.approx(2 / 20)  # a split and its mirror: one statistic


def test_a_two_sided_test_s_smallest_p_is_twice_the_one_sided():
    two = stats.mean_difference([1.0, 1.1, 1.2], [0.0, 0.1, 0.2], alternative="two-sided")
    assert two.min_p == pytest.approx(2 / 20) and two.p == pytest.approx(2 / 20)
