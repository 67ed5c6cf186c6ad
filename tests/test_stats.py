"""Intervals and tests checked against scipy on fixed data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from aixaudit import stats

RESAMPLES = 1000


def scipy_cluster_interval(
    values: np.ndarray, clusters: np.ndarray, seed: int
) -> tuple[float, float]:
    """The cluster bootstrap written with scipy: resample (cluster sum, cluster count) pairs,
    the statistic is total sum over total count."""
    _, labels = np.unique(clusters, return_inverse=True)
    sums, counts = np.bincount(labels, weights=values), np.bincount(labels)
    result = scipy_stats.bootstrap(
        (sums, counts),
        lambda s, c, axis: s.sum(axis=axis) / c.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize(
    ("successes", "trials"), [(0, 1), (3, 40), (20, 40), (40, 40), (4321, 40000)]
)
def test_wilson_matches_scipy(successes: int, trials: int) -> None:
    expected = scipy_stats.binomtest(successes, trials).proportion_ci(method="wilson")
    interval = stats.wilson(successes, trials)
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert interval.n == trials


def test_a_rate_of_nothing_has_no_interval() -> None:
    assert stats.wilson(0, 0) is None


def test_a_small_sample_gets_a_wide_interval() -> None:
    small, large = stats.wilson(4, 40), stats.wilson(4000, 40000)
    assert small is not None and large is not None
    assert small.high - small.low > 10 * (large.high - large.low)


def test_cluster_bootstrap_matches_scipy_on_cluster_sums() -> None:
    rng = np.random.default_rng(7)
    clusters = rng.integers(0, 25, 200)
    values = rng.random(200) + clusters / 25  # files differ: their points are correlated
    [interval] = stats.cluster_bootstrap(values, clusters, seed=11, resamples=RESAMPLES)
    assert interval is not None and interval.n == 200
    low, high = scipy_cluster_interval(values, clusters, seed=11)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)


def test_paired_difference_matches_scipy_and_columns_share_resamples() -> None:
    rng = np.random.default_rng(3)
    clusters = np.array([f"file{i}.py" for i in rng.integers(0, 30, 300)])
    first = rng.random(300)
    second = np.clip(first - 0.1 + rng.normal(0, 0.1, 300), 0, 1)
    both = stats.cluster_bootstrap(
        np.column_stack([second - first, first]), clusters, seed=5, resamples=RESAMPLES
    )
    [difference, level] = both
    assert difference is not None and level is not None
    low, high = scipy_cluster_interval(second - first, clusters, seed=5)
    assert (difference.low, difference.high) == pytest.approx((low, high), abs=1e-12)
    assert difference.high < 0  # the planted drop is found
    [alone] = stats.cluster_bootstrap(first, clusters, seed=5, resamples=RESAMPLES)
    assert alone == level


def test_cluster_bootstrap_is_seeded_and_its_memory_bound_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    values, clusters = rng.random(500), rng.integers(0, 60, 500)
    once = stats.cluster_bootstrap(values, clusters, seed=2)
    assert stats.cluster_bootstrap(values, clusters, seed=2) == once
    assert stats.cluster_bootstrap(values, clusters, seed=3) != once
    monkeypatch.setattr(stats, "_CELLS", 100)  # resamples drawn in many small blocks
    [blocked] = stats.cluster_bootstrap(values, clusters, seed=2)
    assert blocked is not None and once[0] is not None
    assert (blocked.low, blocked.high) == pytest.approx((once[0].low, once[0].high), abs=1e-12)


def test_missing_values_are_left_out_of_their_column() -> None:
    values = np.array([[1.0, np.nan], [0.0, 0.5], [1.0, 0.5], [0.0, np.nan]])
    counted, sparse = stats.cluster_bootstrap(values, np.array([0, 1, 2, 3]))
    assert counted is not None and sparse is not None
    assert (counted.n, sparse.n) == (4, 2)
    assert sparse.low == sparse.high == 0.5
    assert stats.cluster_bootstrap(np.array([np.nan]), np.array([0])) == [None]


def test_a_single_file_gives_no_interval() -> None:
    """Resampling one cluster always draws the same points: a zero-width interval would claim
    a certainty the data cannot give."""
    assert stats.cluster_bootstrap(np.array([0.1, 0.9, 0.5]), np.array(["a.py"] * 3)) == [None]


def test_identical_values_give_a_zero_width_interval() -> None:
    [interval] = stats.cluster_bootstrap(np.zeros(50), np.arange(50) % 7)
    assert interval is not None and interval.low == interval.high == 0.0


@pytest.mark.parametrize(
    ("only_first", "only_second"), [(0, 0), (0, 1), (3, 12), (10, 10), (40, 61), (4000, 4300)]
)
def test_mcnemar_exact_matches_the_binomial_test(only_first: int, only_second: int) -> None:
    n = only_first + only_second
    expected = scipy_stats.binomtest(only_first, n, 0.5).pvalue if n else 1.0
    assert stats.mcnemar_exact(only_first, only_second) == pytest.approx(expected, rel=1e-9)
    assert stats.mcnemar_exact(only_second, only_first) == stats.mcnemar_exact(
        only_first, only_second
    )
