"""Statistics over seeds: interquartile mean and percentile-bootstrap confidence intervals.

Following Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice": report
the IQM of per-seed scores with a bootstrap confidence interval over seeds, not a mean
and standard deviation of a handful of runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def iqm(values: Any) -> float:
    """Interquartile mean: the mean after trimming 25% of the values from each end.

    Matches `scipy.stats.trim_mean(values, 0.25)`: `int(0.25 * n)` values are dropped from
    each end of the sorted values, so fewer than 4 values give the plain mean.

    Args:
        values: any array-like of numbers (flattened).

    Returns:
        The interquartile mean, NaN if any value is NaN.

    Raises:
        ValueError: if `values` is empty.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("iqm of an empty sequence is undefined: need at least one value")
    return float(iqm_rows(flat[None])[0])


def iqm_rows(samples: np.ndarray) -> np.ndarray:
    """The interquartile mean of every row of a 2-D array (NaN for rows holding a NaN)."""
    samples = np.sort(np.asarray(samples, dtype=np.float64), axis=1)
    n = samples.shape[1]
    cut = int(0.25 * n)
    trimmed = samples[:, cut : n - cut].mean(axis=1)
    return np.where(np.isnan(samples).any(axis=1), np.nan, trimmed)


def mean_rows(samples: np.ndarray) -> np.ndarray:
    """The mean of every row of a 2-D array."""
    return np.asarray(samples, dtype=np.float64).mean(axis=1)


def bootstrap_ci(
    values: Any,
    statistic: Callable[[np.ndarray], np.ndarray] = iqm_rows,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of `statistic` over seeds.

    Draws `resamples` sets of `len(values)` seeds with replacement, applies `statistic`
    to each (it maps a (resamples, n) array to (resamples,)), and returns the
    `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles. Deterministic for a given
    `seed`. One value gives a zero-width interval; any NaN gives (NaN, NaN).

    Args:
        values: per-seed scores (flattened).
        statistic: row-wise statistic, e.g. `iqm_rows` (default) or `mean_rows`.
        confidence: coverage in (0, 1).
        resamples: bootstrap resamples, >= 1.
        seed: seed of the resampling generator.

    Returns:
        (low, high).

    Raises:
        ValueError: for empty `values`, or `confidence` / `resamples` out of range.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("bootstrap_ci of an empty sequence is undefined")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is not allowed: must be in (0, 1)")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples={resamples!r} is not allowed: must be an integer >= 1")
    if np.isnan(flat).any():
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = flat[rng.integers(0, flat.size, size=(resamples, flat.size))]
    stats = statistic(draws)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)
