"""Statistics over seeds: the interquartile mean."""

import math

import numpy as np
import pytest

from purejaxdqn.outputs.stats import iqm


def test_iqm_by_hand():
    assert iqm(np.arange(1, 9)) == 4.5  # mean of 3, 4, 5, 6
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == 4.5  # the outlier is trimmed
    assert iqm([1, 2, 3, 4, 100]) == 3.0  # int(0.25 * 5) = 1 trimmed from each end
    assert iqm([5, 1, 3, 2]) == 2.5  # unsorted input; middle two of 1, 2, 3, 5
    assert iqm([1, 2, 10]) == pytest.approx(13 / 3)  # fewer than 4: nothing trimmed
    assert iqm([7.0]) == 7.0
    assert math.isnan(iqm([1.0, float("nan"), 3.0, 4.0]))
    with pytest.raises(ValueError, match="empty"):
        iqm([])


def test_iqm_matches_scipy_trim_mean():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in range(1, 23):
        values = rng.standard_cauchy(n)
        assert iqm(values) == pytest.approx(stats.trim_mean(values, 0.25), rel=1e-12)
