"""The one bootstrap engine: requests resampled within each level, every statistic computed on the same draws.

A level's requests are the rows of a per-request matrix (`orpheus_bench.measures.table`); a resample draws
``n`` rows with replacement, ``B`` times. Statistics are the row functions of `orpheus_bench.measures.stats`,
applied to arrays shaped ``(B, n, columns)``; the point estimate is the same function on the unresampled data
(``B = 1``), which keeps estimates and intervals consistent by construction.

Row indices depend only on the seed, the level and the number of rows, never on the statistic: every metric
asked of one level with one seed is computed on the same resamples, so the console, the report, the gate and
the capacity search get the same interval for the same question, and a capacity SLO's terms can be judged
jointly (the share of resamples in which *every* term holds). Comparisons of two runs resample each run
independently. Intervals are two-sided percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
# Resamples are gathered in chunks so memory stays bounded for levels with thousands of requests.
_CHUNK_CELLS = 2_000_000

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps a ``(B, n, columns)`` array of resampled requests to one value per resample, shaped ``(B,)``."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a percentile bootstrap interval.

    ``kind`` is ``"value"`` (one run's statistic), ``"ratio"`` (``a / b``) or ``"difference"`` (``a - b``);
    ``low``/``high`` are None when too few resamples gave a value (e.g. a ratio whose denominator is zero).
    Infinite ends are kept: they say the statistic reaches into failed requests.
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


def level_seed(seed: int, *parts: int) -> int:
    """The resampling seed of one level (and run role): derived from the user's seed, stable across outputs."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def _as_matrix(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def draws(matrix: np.ndarray, statistic: Statistic, *, n_resamples: int, seed: int) -> np.ndarray:
    """``statistic`` on ``n_resamples`` resamples of the rows of ``matrix`` (shape ``(n, columns)``).

    ``seed`` fixes the row indices (see the module docstring). Returns shape ``(n_resamples, ...)``: whatever
    the statistic returns per resample (one value, or several for a capacity SLO's terms).
    """
    m = _as_matrix(matrix)
    n = m.shape[0]
    if n == 0:
        return np.asarray(statistic(np.zeros((n_resamples, 0, m.shape[1]))))
    parts = [np.asarray(statistic(m[idx])) for idx in resample_indices(n, n_resamples, seed)]
    return np.concatenate(parts) if parts else np.empty(0)


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of ``n_resamples`` resamples of ``n`` rows, in chunks of bounded size.

    The chunking depends on ``n`` alone, never on how many columns a metric has, so every metric of a level
    is computed on exactly the same resamples (the random stream is consumed call by call).
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // (8 * max(1, n))))
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        yield rng.integers(0, n, size=(size, n), dtype=np.int64)
        done += size


def point(matrix: np.ndarray, statistic: Statistic) -> np.ndarray:
    """``statistic`` on the data itself (the ``B = 1`` case of `draws`)."""
    return np.asarray(statistic(_as_matrix(matrix)[None]))[0]


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """The two-sided percentile interval of bootstrap draws; (None, None) when fewer than half have a value.

    An interval from a minority of resamples would describe a different population, so none is reported.
    """
    flat = np.asarray(values, dtype=np.float64)
    valued = flat[~np.isnan(flat)]
    if flat.size == 0 or valued.size < 0.5 * flat.size:
        return None, None
    tail = (1.0 - confidence) / 2.0
    ordered = np.sort(valued)
    lo, hi = (_empirical_quantile(ordered, p) for p in (tail, 1.0 - tail))
    return lo, hi


def _empirical_quantile(ordered: np.ndarray, p: float) -> float:
    # Linear interpolation between closest ranks, written out so that +inf draws stay +inf (np.percentile
    # turns inf - inf into NaN).
    pos = p * (ordered.size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, ordered.size - 1)
    a, b = float(ordered[lo]), float(ordered[hi])
    if pos == lo or a == b:
        return a
    if np.isinf(a) or np.isinf(b):
        return b if np.isinf(b) else a
    return a + (b - a) * (pos - lo)


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def interval(
    matrix: np.ndarray,
    statistic: Statistic,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """One run's statistic with its percentile bootstrap interval."""
    estimate = _value(float(point(matrix, statistic)))
    if estimate is None or n_resamples <= 0:
        return Interval("value", estimate, None, None, confidence, n_resamples)
    low, high = percentile_interval(draws(matrix, statistic, n_resamples=n_resamples, seed=seed), confidence)
    return Interval("value", estimate, low, high, confidence, n_resamples)


def combine(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """``a / b`` or ``a - b`` elementwise; NaN where the result is undefined (0/0, inf/inf, inf - inf)."""
    if kind not in ("ratio", "difference"):
        raise ValueError(f"kind must be 'ratio' or 'difference', not {kind!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = a / b if kind == "ratio" else a - b
    # A finite numerator over a zero baseline has no ratio; an infinite candidate over a finite baseline is an
    # infinitely worse value and stays infinite.
    return np.where(np.isnan(out) | (np.isinf(out) & ~np.isinf(a)), np.nan, out)


def effect(
    a_groups: Sequence[np.ndarray],
    b_groups: Sequence[np.ndarray],
    statistic_a: Callable[[Sequence[np.ndarray]], np.ndarray],
    statistic_b: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None,
    *,
    kind: str = "ratio",
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """``statistic_a(a) / statistic_b(b)`` (or ``-``) over several levels per run, with a bootstrap interval.

    Each group is one level's per-request matrix; the statistics take one ``(B, n, columns)`` array per level
    and return ``(B,)``. Level ``i`` of run A is resampled with `level_seed(seed, 0, i)` and of run B with
    `level_seed(seed, 1, i)`: the runs are independent, and the same runs always give the same interval.
    """
    stat_b = statistic_b or statistic_a
    a = [_as_matrix(g) for g in a_groups]
    b = [_as_matrix(g) for g in b_groups]
    est = combine(statistic_a([g[None] for g in a]), stat_b([g[None] for g in b]), kind)[0]
    estimate = _value(float(est))
    if estimate is None or n_resamples <= 0:
        return Interval(kind, estimate, None, None, confidence, n_resamples)
    values = combine(
        _joint_draws(a, statistic_a, n_resamples, seed, 0), _joint_draws(b, stat_b, n_resamples, seed, 1), kind
    )
    low, high = percentile_interval(values, confidence)
    return Interval(kind, estimate, low, high, confidence, n_resamples)


def _joint_draws(
    groups: list[np.ndarray],
    statistic: Callable[[Sequence[np.ndarray]], np.ndarray],
    n_resamples: int,
    seed: int,
    role: int,
) -> np.ndarray:
    """A multi-level statistic on resamples: each level resampled with its own seed, in chunks."""
    cells = max(1, sum(g.size for g in groups))
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // cells))
    rngs = [np.random.default_rng(level_seed(seed, role, i)) for i in range(len(groups))]
    parts = []
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        sampled = []
        for g, rng in zip(groups, rngs, strict=True):
            n = g.shape[0]
            idx = rng.integers(0, n, size=(size, n), dtype=np.int64) if n else np.zeros((size, 0), dtype=np.int64)
            sampled.append(g[idx])
        parts.append(np.asarray(statistic(sampled)))
        done += size
    return np.concatenate(parts)
