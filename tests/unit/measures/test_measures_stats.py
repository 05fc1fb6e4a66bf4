"""Percentiles, summaries, NaN- and inf-aware row statistics and the bootstrap, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orpheus_bench.measures.bootstrap import Interval
from orpheus_bench.measures.bootstrap import effect as bootstrap_effect
from orpheus_bench.measures.stats import percentile, row_mean, row_percentile, row_statistic, summarize

pytestmark = pytest.mark.unit


def test_percentile_linear_interpolation_by_hand() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(1, 11), 90) == pytest.approx(9.1)  # rank 0.9 * 9 = 8.1 -> 9 + 0.1
    assert percentile(range(1, 11), 99) == pytest.approx(9.91)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_percentile_ignores_missing_values() -> None:
    assert percentile([None, 1.0, float("nan"), 3.0, float("inf")], 50) == 2.0


def test_summarize_by_hand_with_scale() -> None:
    s = summarize([0.1, 0.2, 0.3, None], scale=1000.0)
    assert s.n == 3
    assert s.mean == pytest.approx(200.0)
    assert s.p50 == pytest.approx(200.0)
    assert s.p90 == pytest.approx(280.0)  # rank 1.8 -> 200 + 0.8 * 100
    assert s.p99 == pytest.approx(298.0)
    assert (s.min, s.max) == (pytest.approx(100.0), pytest.approx(300.0))


def test_summarize_empty_has_no_statistics() -> None:
    s = summarize([None])
    assert s.n == 0
    assert s.mean is None and s.p50 is None and s.max is None


def test_row_statistics_match_numpy_and_skip_nan_rows_silently() -> None:
    x = np.array([[1.0, 2.0, np.nan, 4.0], [np.nan, np.nan, np.nan, np.nan], [5.0, 5.0, 5.0, 9.0]])
    means = row_mean(x)
    assert means[0] == pytest.approx(7 / 3)
    assert math.isnan(means[1])
    assert means[2] == pytest.approx(6.0)
    for q in (0, 50, 90, 99, 100):
        got = row_percentile(x, q)
        assert got[0] == pytest.approx(np.percentile([1.0, 2.0, 4.0], q))
        assert math.isnan(got[1])
        assert got[2] == pytest.approx(np.percentile([5.0, 5.0, 5.0, 9.0], q))
    assert row_percentile(np.empty((3, 0)), 50).shape == (3,)


def _mean_stat(groups: list[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack([row_mean(g[..., 0]) for g in groups], axis=-1), axis=-1)


def test_bootstrap_constant_data_gives_exact_ratio_and_zero_width() -> None:
    iv = bootstrap_effect([np.full(10, 1000.0)], [np.full(12, 200.0)], _mean_stat, n_resamples=200)
    assert iv.estimate == pytest.approx(5.0)
    assert iv.low == pytest.approx(5.0) and iv.high == pytest.approx(5.0)
    assert iv.excludes(1.0)


def test_bootstrap_is_deterministic_per_seed_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(42)
    a = [rng.normal(1000, 100, 40), rng.normal(2000, 200, 40)]
    b = [rng.normal(500, 50, 40), rng.normal(1000, 100, 40)]
    one = bootstrap_effect(a, b, _mean_stat, n_resamples=500, seed=7)
    two = bootstrap_effect(a, b, _mean_stat, n_resamples=500, seed=7)
    other = bootstrap_effect(a, b, _mean_stat, n_resamples=500, seed=8)
    assert one == two
    assert one.low != other.low
    assert one.estimate is not None and one.low is not None and one.high is not None
    assert one.low < one.estimate < one.high
    assert one.low > 1.8 and one.high < 2.2  # the true ratio is 2


def test_bootstrap_same_data_includes_one() -> None:
    rng = np.random.default_rng(1)
    a = [rng.normal(300, 60, 30)]
    iv = bootstrap_effect(a, a, _mean_stat, n_resamples=500)
    assert iv.estimate == pytest.approx(1.0)
    assert not iv.excludes(1.0)


def test_bootstrap_difference_kind() -> None:
    iv = bootstrap_effect([np.ones(10)], [np.zeros(10)], _mean_stat, kind="difference", n_resamples=50)
    assert iv.kind == "difference"
    assert iv.estimate == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bootstrap_effect([np.ones(3)], [np.ones(3)], _mean_stat, kind="log")


def test_bootstrap_zero_denominator_has_no_interval() -> None:
    iv = bootstrap_effect([np.ones(5)], [np.zeros(5)], _mean_stat, n_resamples=50)
    assert iv == Interval("ratio", None, None, None, 0.95, 50)


def test_row_statistic_matches_scalar_percentiles_and_treats_inf_as_a_failure() -> None:
    rng = np.random.default_rng(3)
    values = rng.exponential(200.0, size=37)
    for q in (50, 90, 95, 99):
        assert float(row_statistic(values[None], f"p{q}")[0]) == pytest.approx(float(np.percentile(values, q)))
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert float(row_statistic(values[None], "mean")[0]) == pytest.approx(values.mean())
    with_inf = np.array([[1.0, 2.0, 3.0, math.inf]])
    assert float(row_statistic(with_inf, "p50")[0]) == pytest.approx(2.5)
    assert math.isinf(float(row_statistic(with_inf, "p90")[0]))
    assert float(row_statistic(np.array([[1.0, 2.0, math.inf]]), "p50")[0]) == 2.0  # exact rank: no interpolation
    assert math.isnan(float(row_statistic(np.array([[math.nan, math.nan]]), "p50")[0]))  # nothing counts
