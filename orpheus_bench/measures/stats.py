"""Statistics over rows of numbers: one implementation each, vectorised, used for point estimates and bootstraps.

Every function takes an array whose *last axis* holds one value per request and reduces it, so the same code
computes a point estimate (an array of one row, ``B = 1``) and thousands of bootstrap resamples at once
(``B`` rows). Conventions, the same everywhere:

- ``NaN`` marks a request that does not count for the statistic (a warmup, a cancelled request, a value the
  request does not have); it is dropped before anything is computed.
- ``+inf`` marks a request that counts but failed where a rule says failures are the worst possible value
  (a failed request "waited forever"): it sorts above every finite value, so a percentile whose rank reaches
  into failures is infinite, and a mean over it is infinite.
- Percentiles interpolate linearly between closest ranks (numpy's default, "type 7"): p50 of ``[1, 2, 3, 4]``
  is 2.5 and p90 of ``1..10`` is 9.1.
- Shares and ratios of sums treat their 0/1 or numeric columns the same way (NaN dropped).

Nothing here warns on empty or all-NaN input (numpy's ``nan*`` functions do, and tests turn warnings into
errors): an empty row gives NaN, and the scalar helpers give None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

QUANTILES = (50.0, 90.0, 95.0, 99.0)


def clean(values: Iterable[float | None]) -> np.ndarray:
    """The finite values of ``values`` as a float64 array (``None``, NaN and infinities dropped)."""
    arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _rows(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    return arr[None] if arr.ndim == 1 else arr


def row_count(x: np.ndarray) -> np.ndarray:
    """Number of counted (non-NaN) entries along the last axis."""
    return np.sum(~np.isnan(x), axis=-1)


def row_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the counted entries along the last axis (0 for a row with none)."""
    return np.where(np.isnan(x), 0.0, x).sum(axis=-1)


def row_mean(x: np.ndarray) -> np.ndarray:
    """Mean of the counted entries along the last axis; NaN where a row has none."""
    count = row_count(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, row_sum(x) / np.maximum(count, 1), np.nan)


def row_min(x: np.ndarray) -> np.ndarray:
    """Smallest counted entry along the last axis; NaN where a row has none."""
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    m = np.where(np.isnan(x), np.inf, x).min(axis=-1)
    return np.where(row_count(x) > 0, m, np.nan)


def row_max(x: np.ndarray) -> np.ndarray:
    """Largest counted entry along the last axis; NaN where a row has none."""
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    m = np.where(np.isnan(x), -np.inf, x).max(axis=-1)
    return np.where(row_count(x) > 0, m, np.nan)


def row_percentile(x: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-th percentile (0..100) of the counted entries along the last axis (see the module docstring)."""
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    ordered = np.sort(x, axis=-1)  # NaN sorts last and +inf just before it: the first `count` entries count
    count = row_count(x)
    top = np.maximum(count - 1, 0)
    pos = (q / 100.0) * top
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, top)
    frac = pos - lo
    v_lo = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        # inf - inf and 0 * inf are NaN: an interpolation that touches a failure is that failure (+inf).
        between = np.where(np.isinf(v_hi) | np.isinf(v_lo), np.inf, v_lo + (v_hi - v_lo) * frac)
    out = np.where(frac == 0.0, v_lo, between)
    return np.where(count > 0, out, np.nan)


def row_statistic(x: np.ndarray, stat: str) -> np.ndarray:
    """``stat`` (``mean``, ``min``, ``max`` or ``pNN``) along the last axis."""
    if stat == "mean":
        return row_mean(x)
    if stat == "min":
        return row_min(x)
    if stat == "max":
        return row_max(x)
    if stat.startswith("p"):
        return row_percentile(x, float(stat[1:]))
    raise ValueError(f"unknown statistic {stat!r}")


def row_ratio_of_sums(num: np.ndarray, den: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``scale * sum(num) / sum(den)`` along the last axis, over entries where both count; NaN when the
    denominator sums to zero or nothing counts."""
    both = ~np.isnan(num) & ~np.isnan(den)
    n = np.where(both, num, 0.0).sum(axis=-1)
    d = np.where(both, den, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((both.sum(axis=-1) > 0) & (d > 0), scale * n / np.where(d > 0, d, 1.0), np.nan)


def finite_or_none(value: float) -> float | None:
    """A statistic's value for output: None for NaN (nothing counted); infinities are kept (failures)."""
    return None if math.isnan(value) else float(value)


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile of the finite values (`row_percentile` on one row); None if there are none."""
    arr = clean(values)
    return finite_or_none(float(row_percentile(arr[None], q)[0])) if arr.size else None


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, mean and percentiles of one quantity; every statistic is None when ``n`` is 0."""

    n: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None

    @classmethod
    def empty(cls) -> Summary:
        """The summary of no values."""
        return cls(0, None, None, None, None, None, None, None)


def summarize(values: Iterable[float | None] | np.ndarray, scale: float = 1.0) -> Summary:
    """Summarise the finite values, each multiplied by ``scale`` first (e.g. 1000 for seconds -> ms).

    The same row functions as every bootstrap, on one row: a report's p95 and a gate's p95 cannot differ.
    """
    arr = values if isinstance(values, np.ndarray) else np.array([math.nan if v is None else v for v in values])
    arr = np.asarray(arr, dtype=np.float64)
    arr = arr[np.isfinite(arr)] * scale
    if arr.size == 0:
        return Summary.empty()
    row = arr[None]
    p50, p90, p95, p99 = (float(row_percentile(row, q)[0]) for q in QUANTILES)
    return Summary(
        n=int(arr.size),
        mean=float(row_mean(row)[0]),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        min=float(row_min(row)[0]),
        max=float(row_max(row)[0]),
    )
