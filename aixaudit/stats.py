"""Uncertainty of a run's numbers: Wilson intervals for rates, a cluster bootstrap for means and
paired differences, and McNemar's exact test.

Points of one file share its style, names and difficulty, so they are not independent draws:
the bootstrap resamples whole files (clusters) with replacement, and a mean over a resample
is its sum over its count. A paired difference is the mean of per-point differences, so the
same bootstrap gives its interval. Every draw comes from a seeded generator: the same data and
seed give the same interval.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

LEVEL = 0.95
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
RESAMPLES = 2000
SEED = 0
_CELLS = 1 << 21  # resample-by-cluster counts drawn at once: bounded memory on large runs


@dataclass(frozen=True)
class Interval:
    """A 95% interval and the number of observations behind it."""

    low: float
    high: float
    n: int


def wilson(successes: int, trials: int) -> Interval | None:
    """The Wilson score interval of a rate (no continuity correction); None without trials."""
    if trials == 0:
        return None
    rate = successes / trials
    z2 = Z95 * Z95
    centre = (rate + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 / (1 + z2 / trials) * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials**2))
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half), n=trials)


def cluster_bootstrap(
    values: npt.ArrayLike,
    clusters: npt.ArrayLike,
    *,
    seed: int = SEED,
    resamples: int = RESAMPLES,
) -> list[Interval | None]:
    """Percentile 95% intervals of the mean of each column of `values` (observations x
    columns; NaN: no value), resampling the observations' `clusters` (any labels) with
    replacement. Every column sees the same resamples. None for a column whose values lie in
    fewer than two clusters: one file says nothing about how files vary.

    Clusters are drawn as scipy.stats.bootstrap draws indices (`rng.integers(0, k, (B, k))`),
    so with `paired=True` on per-cluster sums and counts it gives the same distribution."""
    table = np.asarray(values, dtype=float)
    if table.ndim == 1:
        table = table[:, None]
    _, labels = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(labels.max()) + 1 if labels.size else 0
    if k == 0:
        return [None] * table.shape[1]
    present = ~np.isnan(table)
    # Per-cluster tallies, added in observation order (as np.add.at would, many times faster).
    values = np.where(present, table, 0.0)
    counts = np.column_stack(
        [np.bincount(labels, weights=present[:, c], minlength=k) for c in range(table.shape[1])]
    ).reshape(k, table.shape[1])
    sums = np.column_stack(
        [np.bincount(labels, weights=values[:, c], minlength=k) for c in range(table.shape[1])]
    ).reshape(k, table.shape[1])
    means = []
    for weights in _weights(k, seed=seed, resamples=resamples):
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append((weights @ sums) / (weights @ counts))
    distribution = np.concatenate(means)
    intervals: list[Interval | None] = []
    for column in range(table.shape[1]):
        if np.count_nonzero(counts[:, column]) < 2:
            intervals.append(None)
            continue
        finite = distribution[:, column][~np.isnan(distribution[:, column])]
        n = int(counts[:, column].sum())
        low, high = np.quantile(finite, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
        intervals.append(Interval(low=float(low), high=float(high), n=n))
    return intervals


def _weights(k: int, *, seed: int, resamples: int) -> Iterator[npt.NDArray[np.int32]]:
    """How often each resample draws each of k clusters (resamples x k, in chunks of at most
    _CELLS): they depend on k and the seed only, so a small matrix is kept for the next
    bootstrap of as many clusters (a report's or a comparison's groups)."""
    if k * resamples <= _CELLS:
        yield _kept_weights(k, seed, resamples)
    else:
        yield from _drawn_weights(k, seed=seed, resamples=resamples)


@functools.lru_cache(maxsize=8)  # at most 8 x _CELLS int32
def _kept_weights(k: int, seed: int, resamples: int) -> npt.NDArray[np.int32]:
    [weights] = _drawn_weights(k, seed=seed, resamples=resamples)
    weights.flags.writeable = False
    return weights


def _drawn_weights(k: int, *, seed: int, resamples: int) -> Iterator[npt.NDArray[np.int32]]:
    rng = np.random.default_rng(seed)
    rows = max(1, _CELLS // k)
    for start in range(0, resamples, rows):
        drawn = rng.integers(0, k, (min(rows, resamples - start), k))
        offsets = drawn + k * np.arange(drawn.shape[0])[:, None]
        counts = np.bincount(offsets.ravel(), minlength=drawn.size).reshape(drawn.shape)
        yield counts.astype(np.int32)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact p-value of McNemar's test: under no difference, each of the discordant
    pairs (accepted in one run only) is a fair coin, so the smaller count is binomial(n, 1/2)."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    smaller = min(only_first, only_second)
    tail, term = 0, 1  # exact integers: sum of C(n, i) for i <= smaller
    for i in range(smaller + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / (1 << n))  # int / int: exact until the one rounding
