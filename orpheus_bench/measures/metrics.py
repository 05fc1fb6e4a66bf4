"""The metric registry: every number a rule, a table or a comparison can ask of a level, defined once.

A metric has a *scope*:

- ``request``: one value per request (TTFA, total latency, RTF, first token, first decodable window); a query
  picks a statistic (mean, pNN, min, max) and says what a failed request counts as (`measures.query`);
- ``level``: one number per level computed from per-request columns (throughput, success and cut-short rates,
  stall rate at a pre-roll, audio seconds per wall second, goodput...);
- ``run``: one number per run, from a provider (``max_concurrency``; ``capacity_streams`` from a capacity
  search's result file).

For request and level metrics the registry gives a per-request *matrix* over the level's counted rows
(`LevelTable.rows`, NaN where a row does not count) and a *statistic* over ``(B, n, columns)``; the point
estimate is the statistic with ``B = 1`` and the bootstrap (`measures.bootstrap`) applies the same statistic to
resampled rows. So a value, its interval and its count come from one definition wherever they are shown.

Why one module over 400 lines: the registry is the single definition of every figure; splitting it would put two
definitions of the same family (shares, per-wall rates, stalls) in different files, which is what this layer exists
to prevent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orpheus_bench.measures import bootstrap
from orpheus_bench.measures.bootstrap import Interval, Statistic
from orpheus_bench.measures.query import COMPARE, WORST, Budget, Query
from orpheus_bench.measures.stats import (
    finite_or_none,
    row_mean,
    row_ratio_of_sums,
    row_statistic,
)
from orpheus_bench.measures.table import AUDIO, CONCURRENCY, LevelTable

LOWER = "lower"
HIGHER = "higher"
MIN_SUCCESS_FOR_CAPACITY = 0.99
# How many values a statistic needs before anyone may decide on it (chosen with benchmarks/gate_calibration.py;
# numbers in docs/gates.md): a gate's and a capacity edge's defaults; reports use fewer, with the same rule.
DEFAULT_MIN_REQUESTS = 30
DEFAULT_MIN_TAIL = 2

Matrix = Callable[[LevelTable, Query], np.ndarray]
StatisticFactory = Callable[[LevelTable, Query], Statistic]


@dataclass(frozen=True)
class RunView:
    """A loaded run as rules read it: its level tables, where it lives and its run.json."""

    name: str
    path: Path | None
    tables: dict[int, LevelTable]
    run_json: Mapping[str, Any] = field(default_factory=dict)


RunProvider = Callable[[RunView], float | None]


@dataclass(frozen=True)
class Metric:
    """One measurable quantity (see the module docstring for the scopes)."""

    name: str
    scope: str  # "request" | "level" | "run"
    unit: str
    description: str
    better: str | None  # LOWER | HIGHER | None (a flag such as client_bound)
    compare: str = "ratio"  # default comparison of relative rules: "ratio" or "difference"
    needs_preroll: bool = False
    boolean: bool = False
    column: str | None = None  # request scope: the LevelTable column
    matrix: Matrix | None = None  # level scope
    statistic: StatisticFactory | None = None  # level scope
    level_value: Callable[[LevelTable, Query], float | None] | None = None  # level numbers with no interval
    run_value: RunProvider | None = None

    @property
    def has_interval(self) -> bool:
        """Whether the bootstrap can give this metric an interval."""
        return self.scope == "request" or (self.matrix is not None and self.statistic is not None)


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add a metric (rules naming an unknown metric are rejected when they load)."""
    if metric.name in _REGISTRY and not replace:
        raise ValueError(f"metric {metric.name!r} is already registered")
    if metric.scope not in ("request", "level", "run"):
        raise ValueError(f"scope must be request, level or run, not {metric.scope!r}")
    _REGISTRY[metric.name] = metric
    return metric


def register_run_metric(
    name: str, provider: RunProvider, *, unit: str, description: str, better: str | None, replace: bool = False
) -> Metric:
    """A run-wide number: ``provider(run) -> float | None`` (register before rules are loaded)."""
    return register(Metric(name, "run", unit, description, better, run_value=provider), replace=replace)


def get(name: str) -> Metric:
    """The registered metric ``name``; KeyError when unknown."""
    return _REGISTRY[name]


def names() -> list[str]:
    """Every registered metric name, in registration order."""
    return list(_REGISTRY)


# ---- matrices and statistics ------------------------------------------------------------------------------


def _stack(*cols: np.ndarray) -> np.ndarray:
    return np.stack(cols, axis=-1) if cols else np.zeros((0, 0))


def _request_matrix(table: LevelTable, q: Query) -> np.ndarray:
    metric = get(q.metric)
    assert metric.column is not None
    return table.values(metric.column, q.failed)[:, None]


def _request_statistic(q: Query) -> Statistic:
    stat = q.stat or "mean"
    return lambda x: row_statistic(x[..., 0], stat)


def _per_wall(weight: Callable[[LevelTable, Query], np.ndarray]) -> tuple[Matrix, StatisticFactory]:
    """A rate per wall second of the level (see `measures.table` for the closed- and open-loop definitions)."""

    def matrix(table: LevelTable, q: Query) -> np.ndarray:
        w = weight(table, q)
        if table.kind == CONCURRENCY:
            rows = table.throughput_rows
            return _stack(np.where(rows, w, np.nan), np.where(rows, table.latency_s, np.nan))
        return w[:, None]

    def statistic(table: LevelTable, q: Query) -> Statistic:
        if table.kind == CONCURRENCY:
            c = table.throughput_concurrency
            return lambda x: row_ratio_of_sums(x[..., 0], x[..., 1], scale=c)
        span = table.completion_span_s
        completions_per_s = (table.n - 1) / span if span else math.nan
        # The completion span is the level's clock, not a property of any one request: only the mix resamples.
        return lambda x: np.asarray(row_mean(x[..., 0]) * completions_per_s)

    return matrix, statistic


def _share(column: Callable[[LevelTable, Query], np.ndarray]) -> tuple[Matrix, StatisticFactory]:
    def matrix(table: LevelTable, q: Query) -> np.ndarray:
        return column(table, q)[:, None]

    return matrix, lambda table, q: lambda x: row_mean(x[..., 0])


def _stalled(table: LevelTable, q: Query) -> np.ndarray:
    """1.0 stalled, 0.0 played through; failures count as stalled under WORST, as absent otherwise."""
    play = table.playback(q.preroll_ms or 0, q.stall_budget_ms)
    if q.failed == WORST:
        return np.where(table.success > 0, np.nan_to_num(play.stalled, nan=1.0), 1.0)
    return np.where(table.mask(q.failed) > 0, play.stalled, np.nan)


def _continuity_matrix(table: LevelTable, q: Query) -> np.ndarray:
    return _stalled(table, q)[:, None]


def _stall_time_matrix(table: LevelTable, q: Query) -> np.ndarray:
    play = table.playback(q.preroll_ms or 0, q.stall_budget_ms)
    return _stack(play.stall_s, play.audio_s)


def _stall_time_statistic(table: LevelTable, q: Query) -> Statistic:
    def stat(x: np.ndarray) -> np.ndarray:
        stall, audio = x[..., 0], x[..., 1]
        return row_ratio_of_sums(stall, np.where(np.isnan(audio), np.nan, audio + np.nan_to_num(stall)))

    return stat


def _meets(table: LevelTable, budget: Budget, preroll_ms: int) -> np.ndarray:
    if budget.quantity == "max_stall_ms":
        values = np.nan_to_num(table.playback(preroll_ms).max_stall_ms, nan=0.0)
    else:
        values = table.column(get(budget.quantity).column or budget.quantity)
    with np.errstate(invalid="ignore"):
        return np.asarray(COMPARE[budget.op](values, budget.threshold)) & ~np.isnan(values)


def _ratio(num: str, den: str) -> tuple[Matrix, StatisticFactory]:
    def matrix(table: LevelTable, q: Query) -> np.ndarray:
        return _stack(table.column(num), table.column(den))

    return matrix, lambda table, q: lambda x: row_ratio_of_sums(x[..., 0], x[..., 1])


# ---- the built-in metrics ---------------------------------------------------------------------------------

for _name, _column, _unit, _desc in (
    ("ttfa_ms", "ttfa_ms", "ms", "Time to first audio: request sent -> first PCM chunk ready to play."),
    ("total_ms", "total_ms", "ms", "Total latency: request sent -> response read and decoded."),
    ("first_token_ms", "first_token_ms", "ms", "Request sent -> first token (queue + prefill + network)."),
    ("first_window_ms", "first_window_ms", "ms",
     "Request sent -> the first decode window's tokens arrived (TTFA without the client's decode)."),
    ("rtf", "rtf", "x", "Real-time factor: wall seconds per audio second (below 1 is faster)."),
):  # fmt: skip
    register(Metric(_name, "request", _unit, _desc, LOWER, column=_column))


def good_rows(table: LevelTable, q: Query) -> np.ndarray:
    """1.0 for counted requests that succeeded with valid audio and met every per-request budget of ``q``."""
    good = (table.success > 0) & (table.invalid_codes == 0)
    for budget in q.budgets:
        good &= _meets(table, budget, q.preroll_ms or 0)
    return good.astype(np.float64)


for _name, _unit, _desc, _weight in (
    ("throughput_rps", "req/s", "Successful (complete) requests per second the level sustained.",
     lambda t, q: t.success),
    ("goodput_rps", "req/s", "Requests per second that met every per-request budget (capacity SLOs).", good_rows),
    ("audio_per_wall_s", "s/s", "Seconds of audio delivered per wall second of the level.",
     lambda t, q: np.where(t.ok > 0, t.audio_s, 0.0)),
    ("tokens_per_s", "tok/s", "Tokens delivered per wall second of the level.",
     lambda t, q: np.where(t.ok > 0, t.tokens, 0.0)),
):  # fmt: skip
    _m, _s = _per_wall(_weight)
    register(Metric(_name, "level", _unit, _desc, HIGHER, matrix=_m, statistic=_s))

for _name, _better, _desc, _col in (
    ("success_rate", HIGHER, "Successful (complete-utterance) requests / counted requests.",
     lambda t, q: t.success),
    ("cut_short_rate", LOWER, "Requests cut short by a length limit / counted requests.",
     lambda t, q: t.cut_short),
    ("error_rate", LOWER, "Requests that ended with an error / counted requests.", lambda t, q: t.error),
    ("goodput", HIGHER, "Counted requests that met every per-request budget / counted requests.", good_rows),
):  # fmt: skip
    _m, _s = _share(_col)
    register(Metric(_name, "level", "", _desc, _better, compare="difference", matrix=_m, statistic=_s))

_im, _is = _ratio("invalid_codes", "audio_tokens")
register(Metric("invalid_code_rate", "level", "", "Out-of-range audio codes / audio tokens.", LOWER,
                compare="difference", matrix=_im, statistic=_is))  # fmt: skip
register(Metric("stall_rate", "level", "", "Share of streams with a playback stall at the pre-roll.", LOWER,
                compare="difference", needs_preroll=True, matrix=_continuity_matrix,
                statistic=lambda t, q: (lambda x: row_mean(x[..., 0]))))  # fmt: skip
register(Metric("continuity_rate", "level", "", "Share of streams that played without a stall at the pre-roll.",
                HIGHER, compare="difference", needs_preroll=True, matrix=_continuity_matrix,
                statistic=lambda t, q: (lambda x: 1.0 - row_mean(x[..., 0]))))  # fmt: skip
register(Metric("stall_time_ratio", "level", "", "Stall seconds / (audio + stall seconds) at the pre-roll.", LOWER,
                compare="difference", needs_preroll=True, matrix=_stall_time_matrix,
                statistic=_stall_time_statistic))  # fmt: skip
register(Metric("client_bound", "level", "", "The client, not the server, was the bottleneck at the level.", None,
                boolean=True, level_value=lambda t, q: 1.0 if t.client_bound else 0.0))  # fmt: skip
register(Metric("requests", "level", "", "Counted (measured, not cancelled) requests at the level.", HIGHER,
                level_value=lambda t, q: float(t.n)))  # fmt: skip


def max_concurrency(
    tables: dict[int, LevelTable], min_success: float = MIN_SUCCESS_FOR_CAPACITY
) -> tuple[int | None, bool]:
    """Highest closed-loop level at which it and every lower level reached ``min_success``; and whether it is
    the highest level tried (then it is a lower bound: the run did not find the limit)."""
    ordered = [t for _, t in sorted(tables.items()) if t.n > 0]
    best: int | None = None
    for t in ordered:
        rate = estimate(t, Query("success_rate"))
        if rate is None or rate < min_success:
            break
        best = t.level
    return best, bool(ordered) and best == ordered[-1].level


register_run_metric(
    "max_concurrency",
    lambda run: None if (v := max_concurrency(run.tables)[0]) is None else float(v),
    unit="workers",
    description=f"Highest level at which it and every lower level had >= {MIN_SUCCESS_FOR_CAPACITY:.0%} success.",
    better=HIGHER,
)


def _capacity_streams(run: RunView) -> float | None:
    # Imported here: the capacity package pulls in the runner, which a plain report or gate does not need.
    from orpheus_bench.capacity.result import capacity_streams

    return capacity_streams(run.path) if run.path is not None else None


register_run_metric(
    "capacity_streams",
    _capacity_streams,
    unit="streams",
    description="Concurrent streams that met the SLO, from the capacity search in the run directory.",
    better=HIGHER,
)


# ---- measuring ---------------------------------------------------------------------------------------------


def inputs(table: LevelTable, q: Query) -> tuple[np.ndarray, Statistic]:
    """The per-request matrix of a request or level metric and the statistic the bootstrap applies to it."""
    metric = get(q.metric)
    if metric.scope == "request":
        return _request_matrix(table, q), _request_statistic(q)
    if metric.matrix is None or metric.statistic is None:
        raise ValueError(f"{q.metric} has no per-request matrix")
    return metric.matrix(table, q), metric.statistic(table, q)


def estimate(table: LevelTable, q: Query) -> float | None:
    """The point estimate at one level (None: nothing counts; +inf: the statistic lands on failures)."""
    metric = get(q.metric)
    if metric.level_value is not None:
        return metric.level_value(table, q)
    matrix, stat = inputs(table, q)
    return finite_or_none(float(bootstrap.point(matrix, stat)))


def count(table: LevelTable, q: Query) -> int:
    """How many requests the estimate rests on (rows that count for its first column)."""
    metric = get(q.metric)
    if metric.level_value is not None or metric.scope == "run":
        return table.n
    matrix, _ = inputs(table, q)
    return int(np.sum(~np.isnan(matrix[:, 0]))) if matrix.size else 0


def interval(
    table: LevelTable,
    q: Query,
    *,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    confidence: float = bootstrap.DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The estimate with its bootstrap interval; the resamples depend on (seed, level) only (`bootstrap`)."""
    metric = get(q.metric)
    if not metric.has_interval:
        return Interval("value", estimate(table, q), None, None, confidence, 0)
    matrix, stat = inputs(table, q)
    return bootstrap.interval(
        matrix, stat, n_resamples=n_resamples, confidence=confidence, seed=bootstrap.level_seed(seed, table.level)
    )


def relative(
    candidate: LevelTable,
    baseline: LevelTable,
    q: Query,
    *,
    kind: str,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    confidence: float = bootstrap.DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """``candidate / baseline`` (or ``-``) of one level's statistic, each run resampled on its own."""
    c_matrix, c_stat = inputs(candidate, q)
    b_matrix, b_stat = inputs(baseline, q)
    return bootstrap.effect(
        [c_matrix], [b_matrix], lambda g: c_stat(g[0]), lambda g: b_stat(g[0]), kind=kind,
        n_resamples=n_resamples, confidence=confidence, seed=bootstrap.level_seed(seed, candidate.level),
    )  # fmt: skip


def required_requests(stat: str | None, min_requests: int, min_tail: int) -> int:
    """Values a statistic needs: ``min_requests``, and for a percentile pQ above the median at least ``min_tail``
    values beyond it (n >= min_tail / (1 - Q/100)), so that a tail percentile is not the largest value alone."""
    if not stat or not stat.startswith("p"):
        return min_requests
    q = float(stat[1:])
    if q <= 50.0:
        return min_requests
    return max(min_requests, math.ceil(min_tail / (1.0 - q / 100.0) - 1e-9))


def descriptive(q: Query) -> Query:
    """The same query as the report's tables ask it: over every request that delivered audio."""
    return Query(q.metric, q.stat, q.preroll_ms, q.stall_budget_ms, AUDIO, q.budgets)


__all__ = [
    "DEFAULT_MIN_REQUESTS",
    "DEFAULT_MIN_TAIL",
    "HIGHER",
    "LOWER",
    "MIN_SUCCESS_FOR_CAPACITY",
    "Metric",
    "RunView",
    "count",
    "descriptive",
    "estimate",
    "get",
    "good_rows",
    "inputs",
    "interval",
    "max_concurrency",
    "names",
    "register",
    "register_run_metric",
    "relative",
    "required_requests",
]
