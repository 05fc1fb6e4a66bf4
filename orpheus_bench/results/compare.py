"""Before vs after: the seed's comparison table computed from two compiled runs, with bootstrap intervals.

Each row has the two runs' values (a range over levels where the seed shows one), an *effect* oriented so that
a value above 1 means "after is better" (``before / after`` for times, ``after / before`` for throughput and
capacity; a difference in percentage points for success rate), and a 95% percentile-bootstrap interval that
resamples requests within each level of each run (fixed seed: the same runs always give the same interval).

What each factor compares (the seed's ranges alone cannot give one number):

- TTFA (avg) / Total latency: the mean over levels of each level's mean, over the levels both runs measured
  (all levels of each run when they share none); the per-level factors' range is shown beside.
- Best TTFA: the lowest per-level TTFA p50 (the best level's typical request; a single fastest request would
  be luck). The table of each run still shows every level's min.
- Throughput: the highest per-level throughput. Its resampling model is the closed loop's: a level's window
  scales with its mean request cycle time, so a resample's throughput is the observed one times
  (resampled ok count / observed ok count) x (observed mean cycle / resampled mean cycle).
- Max concurrency: the highest level at which it and every lower level had success >= 99%; "+" when that is
  the highest level tried (the limit was not reached, read it as "at least").
- Success rate: successful / (measured - cancelled) over all levels; effect = after - before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from orpheus_bench.measures.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    GroupStatistic,
    Interval,
    bootstrap_effect,
    row_mean,
    row_percentile,
)
from orpheus_bench.results.model import MIN_SUCCESS_FOR_CAPACITY, LevelResult, RunResults

# Columns of the per-request matrix of a level; each statistic is handed only the columns it reads (the
# resampling gather is most of the bootstrap's cost), in the order given by the tuples below.
_OK, _COUNTED, _TTFA, _TOTAL, _CYCLE = range(5)
_COLS_TTFA = (_TTFA,)
_COLS_TOTAL = (_TOTAL,)
_COLS_OK = (_OK, _COUNTED)  # -> ok, counted
_COLS_THROUGHPUT = (_OK, _CYCLE)  # -> ok, cycle time


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One row of "Before vs After"."""

    key: str  # ttfa_avg, best_ttfa, throughput, max_concurrency, total_latency, success_rate
    metric: str  # the seed's row name
    unit: str  # ms, req/s, workers, %
    before_range: tuple[float | None, float | None]  # (low, high); equal ends for a single value
    after_range: tuple[float | None, float | None]
    before_value: float | None  # the value the factor uses
    after_value: float | None
    before_open: bool  # the value is a lower bound ("12+")
    after_open: bool
    effect: Interval
    better_word: str  # e.g. "faster"
    worse_word: str  # e.g. "slower"
    basis: str  # what the factor compares, in words
    per_level: tuple[float, float] | None  # range of per-level factors at shared levels


@dataclass(frozen=True, slots=True)
class Comparison:
    """The compiled comparison of two runs (the runs themselves are passed to renderers alongside)."""

    before_name: str
    after_name: str
    shared_levels: tuple[int, ...]
    rows: tuple[ComparisonRow, ...]
    confidence: float
    n_resamples: int
    seed: int
    notes: tuple[str, ...]

    def row(self, key: str) -> ComparisonRow:
        """The row with ``key``; KeyError when absent."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)


def _matrix(results: RunResults, level: int) -> np.ndarray:
    rows = [r for r in results.requests if r.level == level and not r.warmup]
    out = np.full((len(rows), 5), np.nan)
    for i, r in enumerate(rows):
        out[i, _OK] = 1.0 if r.ok else 0.0
        out[i, _COUNTED] = 0.0 if r.status == "cancelled" else 1.0
        if r.ok:
            out[i, _TTFA] = np.nan if r.ttfa_ms is None else r.ttfa_ms
            out[i, _TOTAL] = np.nan if r.total_ms is None else r.total_ms
        out[i, _CYCLE] = np.nan if r.total_ms is None else r.total_ms
    return out


def _ok_rate(g: np.ndarray) -> np.ndarray:
    counted = g[..., 1].sum(axis=-1)  # columns _COLS_OK
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, g[..., 0].sum(axis=-1) / np.maximum(counted, 1), np.nan)


def _stack(groups: Sequence[np.ndarray], per_level: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    if not groups:
        return np.full((1, 0), np.nan)
    return np.stack([per_level(g) for g in groups], axis=-1)  # (B, levels)


def _nanmin_rows(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    m = np.where(np.isnan(x), np.inf, x).min(axis=-1)
    return np.where(np.isinf(m), np.nan, m)


def _nanmax_rows(x: np.ndarray) -> np.ndarray:
    return -_nanmin_rows(-x)


def _mean_of_means(groups: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over levels of each level's mean of its one column (_COLS_TTFA or _COLS_TOTAL)."""
    return row_mean(_stack(groups, lambda g: row_mean(g[..., 0])))


def _best_p50(groups: Sequence[np.ndarray]) -> np.ndarray:
    return _nanmin_rows(_stack(groups, lambda g: row_percentile(g[..., 0], 50)))  # _COLS_TTFA


def _throughput_stat(windows: Sequence[float], cycles: Sequence[float]) -> GroupStatistic:
    def stat(groups: Sequence[np.ndarray]) -> np.ndarray:
        per = []
        for g, window, cycle in zip(groups, windows, cycles, strict=True):
            ok = g[..., 0].sum(axis=-1)  # columns _COLS_THROUGHPUT
            with np.errstate(invalid="ignore", divide="ignore"):
                per.append(ok / window * (cycle / row_mean(g[..., 1])))
        return _nanmax_rows(np.stack(per, axis=-1)) if per else np.full(1, np.nan)

    return stat


def _capacity_stat(levels: Sequence[int]) -> GroupStatistic:
    lv = np.asarray(levels, dtype=np.float64)

    def stat(groups: Sequence[np.ndarray]) -> np.ndarray:
        if not groups:
            return np.full(1, np.nan)
        rates = _stack(groups, _ok_rate)
        passing = np.cumprod(np.nan_to_num(rates, nan=0.0) >= MIN_SUCCESS_FOR_CAPACITY, axis=-1)
        return np.where(passing.any(axis=-1), (passing * lv).max(axis=-1), 0.0)

    return stat


def _success(groups: Sequence[np.ndarray]) -> np.ndarray:
    if not groups:
        return np.full(1, np.nan)
    ok = sum(g[..., 0].sum(axis=-1) for g in groups)  # columns _COLS_OK
    counted = sum(g[..., 1].sum(axis=-1) for g in groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, ok / np.maximum(counted, 1), np.nan)


def _range(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    return (min(vals), max(vals)) if vals else (None, None)


def _per_level(
    before: dict[int, LevelResult],
    after: dict[int, LevelResult],
    shared: Sequence[int],
    get: Callable[[LevelResult], float | None],
) -> tuple[float, float] | None:
    factors = []
    for level in shared:
        b, a = get(before[level]), get(after[level])
        if b is not None and a:
            factors.append(b / a)
    return (min(factors), max(factors)) if factors else None


def compare(
    before: RunResults,
    after: RunResults,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """Compile the "Before vs After" comparison of two runs (see the module docstring for each factor)."""
    b_lv = {lv.level: lv for lv in before.levels}
    a_lv = {lv.level: lv for lv in after.levels}
    shared = tuple(sorted(level for level in set(b_lv) & set(a_lv) if b_lv[level].n and a_lv[level].n))
    notes: list[str] = []
    if shared:
        b_avg_levels = a_avg_levels = list(shared)
        avg_basis = "levels both runs measured: " + ", ".join(str(x) for x in shared)
    else:
        b_avg_levels = [lv.level for lv in before.levels if lv.n]
        a_avg_levels = [lv.level for lv in after.levels if lv.n]
        avg_basis = "all levels of each run (they share none)"
        notes.append("The runs share no level, so averages cover different levels; read the factors with care.")

    def groups(results: RunResults, levels: Sequence[int], cols: tuple[int, ...]) -> list[np.ndarray]:
        return [_matrix(results, level)[:, cols] for level in levels]

    def effect(
        a_groups: Sequence[np.ndarray],
        b_groups: Sequence[np.ndarray],
        stat: GroupStatistic,
        stat_b: GroupStatistic | None = None,
        kind: str = "ratio",
    ) -> Interval:
        return bootstrap_effect(
            a_groups, b_groups, stat, statistic_b=stat_b, kind=kind,
            n_resamples=n_resamples, confidence=confidence, seed=seed,
        )  # fmt: skip

    rows: list[ComparisonRow] = []

    def mean_of_means_row(
        key: str,
        metric: str,
        cols: tuple[int, ...],
        summary: Callable[[LevelResult], float | None],
        better: str,
        worse: str,
        what: str,
    ) -> ComparisonRow:
        """A row comparing the mean of per-level means over the shared levels (TTFA avg, total latency)."""
        b_g, a_g = groups(before, b_avg_levels, cols), groups(after, a_avg_levels, cols)
        return ComparisonRow(
            key=key,
            metric=metric,
            unit="ms",
            before_range=_range([summary(lv) for lv in before.levels]),
            after_range=_range([summary(lv) for lv in after.levels]),
            before_value=_first(_mean_of_means(_point(b_g))),
            after_value=_first(_mean_of_means(_point(a_g))),
            before_open=False,
            after_open=False,
            effect=effect(b_g, a_g, _mean_of_means),
            better_word=better,
            worse_word=worse,
            basis=f"mean of per-level mean {what} over {avg_basis}",
            per_level=_per_level(b_lv, a_lv, shared, summary),
        )

    # TTFA (avg): before / after of the mean of per-level means, over the shared levels.
    rows.append(
        mean_of_means_row("ttfa_avg", "TTFA (avg)", _COLS_TTFA, lambda lv: lv.ttfa_ms.mean, "faster", "slower", "TTFA")
    )

    # Best TTFA: lowest per-level p50 over all levels of each run.
    b_all = [lv.level for lv in before.levels if lv.n]
    a_all = [lv.level for lv in after.levels if lv.n]
    b_ga, a_ga = groups(before, b_all, _COLS_TTFA), groups(after, a_all, _COLS_TTFA)
    best_b, best_a = _first(_best_p50(_point(b_ga))), _first(_best_p50(_point(a_ga)))
    rows.append(
        ComparisonRow(
            key="best_ttfa",
            metric="Best TTFA",
            unit="ms",
            before_range=(best_b, best_b),
            after_range=(best_a, best_a),
            before_value=best_b,
            after_value=best_a,
            before_open=False,
            after_open=False,
            effect=effect(b_ga, a_ga, _best_p50),
            better_word="faster",
            worse_word="slower",
            basis="lowest per-level TTFA p50 over all levels of each run",
            per_level=None,
        )
    )

    # Throughput: after / before of the best level's req/s.
    def tp_inputs(results: RunResults, levels: Sequence[int]) -> tuple[list[int], GroupStatistic]:
        usable = [x for x in levels if results.level(x).window_s and _cycle_mean(results, x)]
        windows = [results.level(x).window_s or 0.0 for x in usable]
        cycles = [_cycle_mean(results, x) or 0.0 for x in usable]
        return usable, _throughput_stat(windows, cycles)

    b_tp_levels, b_tp = tp_inputs(before, b_all)
    a_tp_levels, a_tp = tp_inputs(after, a_all)
    b_max, a_max = before.summary.max_throughput_rps, after.summary.max_throughput_rps
    rows.append(
        ComparisonRow(
            key="throughput",
            metric="Throughput",
            unit="req/s",
            before_range=(b_max, b_max),
            after_range=(a_max, a_max),
            before_value=b_max,
            after_value=a_max,
            before_open=False,
            after_open=False,
            effect=effect(
                groups(after, a_tp_levels, _COLS_THROUGHPUT), groups(before, b_tp_levels, _COLS_THROUGHPUT), a_tp, b_tp
            ),
            better_word="increase",
            worse_word="decrease",
            basis="highest per-level throughput of each run",
            per_level=None,
        )
    )

    # Max concurrency with success >= 99%: after / before.
    b_cap_levels = [lv.level for lv in before.levels if lv.n - lv.cancelled > 0]
    a_cap_levels = [lv.level for lv in after.levels if lv.n - lv.cancelled > 0]
    b_cap, a_cap = _as_float(before.summary.max_concurrency), _as_float(after.summary.max_concurrency)
    rows.append(
        ComparisonRow(
            key="max_concurrency",
            metric="Max concurrency",
            unit="workers",
            before_range=(b_cap, b_cap),
            after_range=(a_cap, a_cap),
            before_value=b_cap,
            after_value=a_cap,
            before_open=before.summary.max_concurrency_open,
            after_open=after.summary.max_concurrency_open,
            effect=effect(
                groups(after, a_cap_levels, _COLS_OK),
                groups(before, b_cap_levels, _COLS_OK),
                _capacity_stat(a_cap_levels),
                _capacity_stat(b_cap_levels),
            ),
            better_word="capacity",
            worse_word="less capacity",
            basis=(f"highest level with success >= {MIN_SUCCESS_FOR_CAPACITY:.0%} at it and at every lower level"),
            per_level=None,
        )
    )
    if after.summary.max_concurrency_open or before.summary.max_concurrency_open:
        notes.append(
            "Max concurrency marked '+' is the highest level tried: the run did not find its limit, so the "
            "factor is a bound, not a measurement, for that run."
        )

    # Total latency: before / after of the mean of per-level means, over the shared levels.
    rows.append(
        mean_of_means_row(
            "total_latency",
            "Total latency",
            _COLS_TOTAL,
            lambda lv: lv.total_ms.mean,
            "reduction",
            "increase",
            "total latency",
        )
    )

    # Success rate: after - before (a fraction; shown in percentage points).
    b_sr, a_sr = before.summary.success_rate, after.summary.success_rate
    rows.append(
        ComparisonRow(
            key="success_rate",
            metric="Success rate",
            unit="%",
            before_range=(b_sr, b_sr),
            after_range=(a_sr, a_sr),
            before_value=b_sr,
            after_value=a_sr,
            before_open=False,
            after_open=False,
            effect=effect(groups(after, a_all, _COLS_OK), groups(before, b_all, _COLS_OK), _success, kind="difference"),
            better_word="better",
            worse_word="worse",
            basis="successful / (measured - cancelled) over all levels; after minus before",
            per_level=None,
        )
    )

    for results, role in ((before, "before"), (after, "after")):
        if results.summary.client_bound_levels:
            notes.append(
                f"The {role} run was client-bound at level(s) "
                + ", ".join(str(x) for x in results.summary.client_bound_levels)
                + ": its numbers there describe the client, not the server."
            )
    return Comparison(
        before_name=before.meta.name,
        after_name=after.meta.name,
        shared_levels=shared,
        rows=tuple(rows),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        notes=tuple(notes),
    )


def _point(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [g[None] for g in groups]


def _first(values: np.ndarray) -> float | None:
    v = float(values[0]) if values.size else float("nan")
    return None if np.isnan(v) else v


def _as_float(value: int | None) -> float | None:
    return None if value is None else float(value)


def _cycle_mean(results: RunResults, level: int) -> float | None:
    cycles = [r.total_ms for r in results.requests if r.level == level and not r.warmup and r.total_ms is not None]
    return sum(cycles) / len(cycles) if cycles else None
