"""Percentiles, summaries and bootstrap intervals: the only statistics code the results and reports use.

Percentiles use linear interpolation between closest ranks (numpy's default, "type 7"), so p50 of
``[1, 2, 3, 4]`` is 2.5 and p90 of ``1..10`` is 9.1. Missing values (``None``/NaN) are dropped before
any statistic. The bootstrap resamples requests *within each group* (a group is one concurrency level), so a
level with few requests cannot borrow precision from a busy one, and one statistic function computes both the
point estimate and every resample, which keeps the two consistent by construction.

All array helpers here are written to stay silent on empty or all-NaN input (numpy's ``nanmean`` and
``nanpercentile`` warn there, and the test suite turns warnings into errors).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
# Resamples are drawn in chunks so memory stays bounded for levels with thousands of requests.
_CHUNK_CELLS = 2_000_000


def clean(values: Iterable[float | None]) -> np.ndarray:
    """The finite values of ``values`` as a float64 array (``None``, NaN and infinities dropped)."""
    arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr[np.isfinite(arr)]


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of the finite values, linear interpolation; None if there are none."""
    arr = clean(values)
    if arr.size == 0:
        return None
    return float(np.percentile(arr, q))


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


def summarize(values: Iterable[float | None], scale: float = 1.0) -> Summary:
    """Summarise the finite values, each multiplied by ``scale`` first (e.g. 1000 for seconds -> ms)."""
    arr = clean(values) * scale
    if arr.size == 0:
        return Summary.empty()
    p50, p90, p95, p99 = (float(x) for x in np.percentile(arr, [50, 90, 95, 99]))
    return Summary(
        n=int(arr.size),
        mean=float(arr.mean()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        min=float(arr.min()),
        max=float(arr.max()),
    )


# ---- NaN-aware, warning-free row statistics (for resampled matrices) ----------------------------------


def row_count(x: np.ndarray) -> np.ndarray:
    """Number of non-NaN entries along the last axis."""
    return np.sum(~np.isnan(x), axis=-1)


def row_mean(x: np.ndarray) -> np.ndarray:
    """Mean of the non-NaN entries along the last axis; NaN where a row has none."""
    count = row_count(x)
    total = np.where(np.isnan(x), 0.0, x).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def row_percentile(x: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolation percentile of the non-NaN entries along the last axis; NaN for empty rows."""
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    ordered = np.sort(x, axis=-1)  # NaN sorts last, so the first `count` entries are the valid ones
    count = row_count(x)
    pos = (q / 100.0) * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = pos - lo
    v_lo = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    out = v_lo + (v_hi - v_lo) * frac
    return np.where(count > 0, out, np.nan)


# ---- bootstrap ------------------------------------------------------------------------------------------

GroupStatistic = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Maps one array per group, shaped ``(B, n_group, columns)``, to one value per resample, shaped ``(B,)``."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a percentile bootstrap interval.

    ``kind`` is ``"ratio"`` (``a / b``) or ``"difference"`` (``a - b``); ``low``/``high`` are None when too
    few resamples gave a finite value (e.g. a statistic that is zero in the denominator).
    """

    kind: str
    estimate: float | None
    low: float | None
    high: float | None
    confidence: float
    n_resamples: int

    def excludes(self, value: float) -> bool:
        """True when the whole interval lies on one side of ``value`` (a difference a reader can trust)."""
        if self.low is None or self.high is None:
            return False
        return self.low > value or self.high < value


def _combine(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = a / b if kind == "ratio" else a - b
    return np.where(np.isfinite(out), out, np.nan)


def _as_group(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def _resample(rng: np.random.Generator, groups: Sequence[np.ndarray], b: int) -> list[np.ndarray]:
    out = []
    for g in groups:
        n = g.shape[0]
        idx = rng.integers(0, n, size=(b, n), dtype=np.int32) if n else np.zeros((b, 0), dtype=np.int32)
        out.append(g[idx])
    return out


def bootstrap_effect(
    a_groups: Sequence[np.ndarray],
    b_groups: Sequence[np.ndarray],
    statistic: GroupStatistic,
    *,
    statistic_b: GroupStatistic | None = None,
    kind: str = "ratio",
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Estimate ``statistic(a) / statistic(b)`` (or ``-``) with a percentile bootstrap interval.

    Each group is a ``(n_requests, columns)`` (or 1-D) array of per-request values; resampling draws requests
    with replacement within each group, independently for ``a`` and ``b``. ``statistic`` is called with
    arrays shaped ``(B, n, columns)``; the point estimate uses ``B = 1`` and the unresampled data.
    ``statistic_b``, when given, is used for ``b`` instead (a statistic that needs per-run constants).
    """
    if kind not in ("ratio", "difference"):
        raise ValueError(f"kind must be 'ratio' or 'difference', not {kind!r}")
    stat_b = statistic_b or statistic
    a = [_as_group(g) for g in a_groups]
    b = [_as_group(g) for g in b_groups]
    est = _combine(statistic([g[None] for g in a]), stat_b([g[None] for g in b]), kind)[0]
    estimate = None if np.isnan(est) else float(est)

    rng = np.random.default_rng(seed)
    cells = max(1, sum(g.size for g in a) + sum(g.size for g in b))
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // cells))
    draws: list[np.ndarray] = []
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        draws.append(_combine(statistic(_resample(rng, a, size)), stat_b(_resample(rng, b, size)), kind))
        done += size
    values = np.concatenate(draws) if draws else np.empty(0)
    finite = values[~np.isnan(values)]
    low = high = None
    # An interval from a minority of resamples would describe a different population: report none instead.
    if n_resamples and finite.size >= 0.5 * n_resamples:
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = (float(x) for x in np.percentile(finite, [tail, 100.0 - tail]))
    return Interval(kind, estimate, low, high, confidence, n_resamples)
