"""What a gate rule can measure: the metric registry, per-level data, point estimates and bootstrap statistics.

A metric has a *scope*:

- ``request``: one value per successful request (TTFA, total latency, RTF, time to first token); a rule picks a
  statistic (mean, p50, p90, p95, p99, min, max) and the bootstrap resamples the values;
- ``level``: one number per level (throughput, success rate, invalid-code rate, stall rate at a pre-roll,
  audio seconds per wall second, client-bound); the point estimate is the compiled run's own number
  (`orpheus_bench.results.compile`) and the bootstrap resamples requests through a per-request matrix whose
  statistic reproduces that number on the unresampled data;
- ``run``: one number per run, from a provider function (``max_concurrency`` here; issue 10's
  ``capacity_streams`` plugs in with `register_run_metric`). Run metrics have no interval.

Throughput under resampling follows the closed loop (as the report's comparison does): a level's window scales
with its mean request cycle, so a resample's throughput is ``resampled ok / window x (observed mean cycle /
resampled mean cycle)``; audio seconds and tokens per wall second scale the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orpheus_bench.measures.playback import record_playback
from orpheus_bench.measures.stats import GroupStatistic, clean, percentile, row_count, row_mean, row_percentile
from orpheus_bench.records import RequestRecord, Status
from orpheus_bench.results.model import LevelResult, RunResults

STATISTICS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99", "min", "max")
LOWER = "lower"
HIGHER = "higher"


# ---- the data a metric reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelData:
    """One level of a run: its compiled result, its measured (non-warmup) records and its run.json entry."""

    level: int
    label: str
    result: LevelResult
    records: tuple[RequestRecord, ...]  # measured only
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok_records(self) -> tuple[RequestRecord, ...]:
        """Measured requests that ended with usable audio."""
        return tuple(r for r in self.records if r.ok)

    @property
    def client_bound_reasons(self) -> tuple[str, ...]:
        """Why the runner judged the client the bottleneck (empty when it did not, or did not say)."""
        reasons = self.info.get("client_bound_reasons")
        out = [str(x) for x in reasons] if isinstance(reasons, list) else []
        if not out and self.result.client_bound:
            flagged = sum(1 for r in self.records if r.client_bound)
            out.append(f"{flagged} request(s) flagged client_bound" if flagged else "marked client-bound")
        return tuple(out)


@dataclass(frozen=True)
class RunData:
    """A loaded run: what every metric of every scope reads."""

    name: str
    path: Path | None
    run_json: dict[str, Any]
    results: RunResults
    levels: dict[int, LevelData]

    @property
    def complete(self) -> bool | None:
        """run.json's ``complete`` flag (None when run.json is missing or does not say)."""
        return self.results.meta.complete


# ---- metric specs --------------------------------------------------------------------------------------

Columns = Callable[[LevelData, "MetricQuery"], np.ndarray]
"""Per-request matrix ``(n, columns)`` of one level; NaN marks a request that does not count."""
LevelStatisticFactory = Callable[[LevelData, "MetricQuery"], GroupStatistic]
"""Builds the bootstrap statistic of one level (it may close over per-run constants such as the window)."""
RunProvider = Callable[[RunData], float | None]


@dataclass(frozen=True)
class MetricQuery:
    """What a rule asks of a metric: the statistic (request scope) and the pre-roll (stall metrics)."""

    stat: str | None = None
    preroll_ms: int | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One gateable metric; see the module docstring for the scopes."""

    name: str
    scope: str  # "request" | "level" | "run"
    unit: str
    description: str
    better: str | None  # "lower" | "higher" | None (a flag such as client_bound)
    compare: str = "ratio"  # default comparison of relative rules: "ratio" or "difference"
    needs_preroll: bool = False
    boolean: bool = False
    request_value: Callable[[RequestRecord], float | None] | None = None
    level_value: Callable[[LevelData, MetricQuery], float | None] | None = None
    columns: Columns | None = None
    statistic: LevelStatisticFactory | None = None
    run_value: RunProvider | None = None
    value_count: Callable[[LevelData, MetricQuery], int] | None = None

    @property
    def has_interval(self) -> bool:
        """True when the bootstrap can give this metric an interval."""
        return self.scope == "request" or (self.columns is not None and self.statistic is not None)


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add a metric to the registry (rules are validated against it when they load)."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"metric {spec.name!r} is already registered")
    if spec.scope not in ("request", "level", "run"):
        raise ValueError(f"scope must be request, level or run, not {spec.scope!r}")
    _REGISTRY[spec.name] = spec
    return spec


def register_run_metric(
    name: str,
    provider: RunProvider,
    *,
    unit: str,
    description: str,
    better: str | None,
    replace: bool = False,
) -> MetricSpec:
    """The hook for run-wide numbers (e.g. issue 10's ``capacity_streams``): ``provider(run) -> float | None``.

    Register before rules are loaded (rules naming an unknown metric are rejected when they load).
    """
    spec = MetricSpec(
        name=name, scope="run", unit=unit, description=description, better=better, compare="ratio",
        run_value=provider,
    )  # fmt: skip
    return register_metric(spec, replace=replace)


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name``; KeyError when unknown."""
    return _REGISTRY[name]


def metric_names() -> list[str]:
    """Every registered metric name, in registration order."""
    return list(_REGISTRY)


# ---- request-scope helpers -------------------------------------------------------------------------------


def _quantile(stat: str) -> float | None:
    return float(stat[1:]) if stat.startswith("p") else None


def request_values(spec: MetricSpec, level: LevelData) -> np.ndarray:
    """The finite per-request values of a request-scope metric over the level's successful requests."""
    assert spec.request_value is not None
    return clean(spec.request_value(r) for r in level.ok_records)


def point_statistic(values: np.ndarray, stat: str) -> float | None:
    """``stat`` of finite values with the same definitions as the report (linear-interpolation percentiles)."""
    if values.size == 0:
        return None
    if stat == "mean":
        return float(values.mean())
    if stat == "min":
        return float(values.min())
    if stat == "max":
        return float(values.max())
    q = _quantile(stat)
    if q is None:
        raise ValueError(f"unknown statistic {stat!r}")
    return percentile(values, q)


def _row_min(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    m = np.where(np.isnan(x), np.inf, x).min(axis=-1)
    return np.where(np.isinf(m), np.nan, m)


def row_statistic(stat: str) -> GroupStatistic:
    """The bootstrap statistic of one level's ``(B, n, 1)`` resamples for a request-scope ``stat``."""

    def column(groups: Sequence[np.ndarray]) -> np.ndarray:
        return groups[0][..., 0]

    if stat == "mean":
        return lambda groups: row_mean(column(groups))
    if stat == "min":
        return lambda groups: _row_min(column(groups))
    if stat == "max":
        return lambda groups: -_row_min(-column(groups))
    q = _quantile(stat)
    if q is None:
        raise ValueError(f"unknown statistic {stat!r}")
    return lambda groups: row_percentile(column(groups), q)


# ---- level-scope helpers -------------------------------------------------------------------------------


def _sum(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), 0.0, x).sum(axis=-1)


def _ratio_of_sums(num: int, den: int, *, add_num_to_den: bool = False) -> GroupStatistic:
    def stat(groups: Sequence[np.ndarray]) -> np.ndarray:
        g = groups[0]
        n, d = _sum(g[..., num]), _sum(g[..., den])
        if add_num_to_den:
            d = d + n
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((row_count(g[..., den]) > 0) & (d > 0), n / np.where(d > 0, d, 1.0), np.nan)

    return stat


def closed_loop_span(cycles: np.ndarray, workers: int) -> np.ndarray:
    """How long ``workers`` closed-loop workers take to run each row of ``cycles`` (B, n) in order.

    Each request goes to the worker that is free first, as a closed loop hands out its next request; NaN
    cycles count as zero. Vectorised over rows, so a bootstrap replays thousands of resampled levels at once.
    """
    rows, n = cycles.shape
    free = np.zeros((rows, max(1, workers)))
    index = np.arange(rows)
    c = np.nan_to_num(cycles, nan=0.0)
    for k in range(n):
        w = free.argmin(axis=1)
        free[index, w] += c[:, k]
    return free.max(axis=1)


def _per_window(level: LevelData, q: MetricQuery) -> GroupStatistic:
    """Column 0 summed per wall second of the level window; in a closed loop, the window follows resampling.

    A closed loop's window is the time its workers take to get through the level's requests: a resample's
    window is the observed one scaled by how long the workers would take over the resampled cycle times
    (`closed_loop_span`), which carries both the mean cycle and the ragged end of the level. An open loop's
    window is set by its arrival schedule, so only the counts are resampled there.
    """
    window = level.result.window_s
    open_loop = any(r.scheduled_offset_s is not None for r in level.records)
    observed = _window_columns(lambda r: 0.0)(level, q)[:, 1]
    span = float(closed_loop_span(observed[None], level.level)[0]) if observed.size else math.nan

    def stat(groups: Sequence[np.ndarray]) -> np.ndarray:
        g = groups[0]
        if not window:
            return np.full(g.shape[0], np.nan)
        rate = _sum(g[..., 0]) / window
        if open_loop:
            return rate
        with np.errstate(invalid="ignore", divide="ignore"):
            return rate * (span / closed_loop_span(g[..., 1], level.level))

    return stat


def _window_columns(value: Callable[[RequestRecord], float]) -> Columns:
    """(value if ok else 0, cycle seconds) per measured request, in send order."""

    def columns(level: LevelData, _: MetricQuery) -> np.ndarray:
        ordered = sorted(level.records, key=lambda r: r.run_offset_s)
        rows = [(value(r) if r.ok else 0.0, math.nan if r.total_s is None else r.total_s) for r in ordered]
        return np.array(rows, dtype=np.float64).reshape(len(rows), 2)

    return columns


def _success_columns(level: LevelData, _: MetricQuery) -> np.ndarray:
    rows = [(1.0 if r.ok else 0.0, 1.0) for r in level.records if r.status is not Status.CANCELLED]
    return np.array(rows, dtype=np.float64).reshape(len(rows), 2)


def _invalid_columns(level: LevelData, _: MetricQuery) -> np.ndarray:
    rows = [(float(r.invalid_code_count), float(r.audio_tokens)) for r in level.records]
    return np.array(rows, dtype=np.float64).reshape(len(rows), 2)


def _preroll_s(q: MetricQuery) -> float:
    return (q.preroll_ms or 0) / 1000.0


def _stall_columns(level: LevelData, q: MetricQuery) -> np.ndarray:
    rows = []
    for r in level.ok_records:
        play = record_playback(r, _preroll_s(q))
        if play is not None:
            rows.append((1.0 if play.stalls else 0.0, play.stall_s, play.audio_s))
    return np.array(rows, dtype=np.float64).reshape(len(rows), 3)


def _stall_rate_stat(level: LevelData, q: MetricQuery) -> GroupStatistic:
    return lambda groups: row_mean(groups[0][..., 0])


def _continuity_stat(level: LevelData, q: MetricQuery) -> GroupStatistic:
    return lambda groups: 1.0 - row_mean(groups[0][..., 0])


def _stall_time_stat(level: LevelData, q: MetricQuery) -> GroupStatistic:
    return _ratio_of_sums(1, 2, add_num_to_den=True)


def _matrix_point(spec: MetricSpec, level: LevelData, q: MetricQuery) -> float | None:
    assert spec.columns is not None and spec.statistic is not None
    matrix = spec.columns(level, q)
    value = spec.statistic(level, q)([matrix[None]])[0]
    return None if not np.isfinite(value) else float(value)


def _stall_point(name: str) -> Callable[[LevelData, MetricQuery], float | None]:
    def value(level: LevelData, q: MetricQuery) -> float | None:
        return _matrix_point(get_metric(name), level, q)

    return value


def _count_rows(columns: Columns) -> Callable[[LevelData, MetricQuery], int]:
    return lambda level, q: int(columns(level, q).shape[0])


def _counted(level: LevelData, _: MetricQuery) -> int:
    return level.result.n - level.result.cancelled


# ---- the built-in metrics ---------------------------------------------------------------------------------


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def _first_token_ms(r: RequestRecord) -> float | None:
    return _ms(r.t_first_token_s)


for _spec in (
    MetricSpec("ttfa_ms", "request", "ms", "Time to first audio: request sent -> first PCM chunk ready.", LOWER,
               request_value=lambda r: _ms(r.ttfa_s)),
    MetricSpec("total_ms", "request", "ms", "Total latency: request sent -> response read and decoded.", LOWER,
               request_value=lambda r: _ms(r.total_s)),
    MetricSpec("first_token_ms", "request", "ms", "Request sent -> first token (queue + prefill + network).",
               LOWER, request_value=_first_token_ms),
    MetricSpec("rtf", "request", "x", "Real-time factor: wall seconds per audio second (below 1 is faster).",
               LOWER, request_value=lambda r: r.rtf),
    MetricSpec("throughput_rps", "level", "req/s", "Successful measured requests per second of the level.",
               HIGHER, level_value=lambda lv, q: lv.result.throughput_rps,
               columns=_window_columns(lambda r: 1.0), statistic=_per_window, value_count=_counted),
    MetricSpec("audio_per_wall_s", "level", "s/s", "Seconds of audio produced per wall second of the level.",
               HIGHER, level_value=lambda lv, q: lv.result.audio_s_per_wall_s,
               columns=_window_columns(lambda r: r.audio_seconds), statistic=_per_window, value_count=_counted),
    MetricSpec("tokens_per_s", "level", "tok/s", "Tokens generated by successful requests per wall second.",
               HIGHER, level_value=lambda lv, q: lv.result.tokens_per_s,
               columns=_window_columns(lambda r: float(r.tokens_generated)), statistic=_per_window,
               value_count=_counted),
    MetricSpec("success_rate", "level", "", "Successful / (measured - cancelled) requests.", HIGHER,
               compare="difference", level_value=lambda lv, q: lv.result.success_rate,
               columns=_success_columns, statistic=lambda lv, q: _ratio_of_sums(0, 1), value_count=_counted),
    MetricSpec("invalid_code_rate", "level", "", "Out-of-range audio codes / audio tokens.", LOWER,
               compare="difference", level_value=lambda lv, q: lv.result.invalid_code_rate,
               columns=_invalid_columns, statistic=lambda lv, q: _ratio_of_sums(0, 1),
               value_count=lambda lv, q: lv.result.n),
    MetricSpec("stall_rate", "level", "", "Share of streams with at least one playback stall at the pre-roll.",
               LOWER, compare="difference", needs_preroll=True, level_value=_stall_point("stall_rate"),
               columns=_stall_columns, statistic=_stall_rate_stat, value_count=_count_rows(_stall_columns)),
    MetricSpec("continuity_rate", "level", "", "Share of streams that played without a stall at the pre-roll.",
               HIGHER, compare="difference", needs_preroll=True, level_value=_stall_point("continuity_rate"),
               columns=_stall_columns, statistic=_continuity_stat, value_count=_count_rows(_stall_columns)),
    MetricSpec("stall_time_ratio", "level", "", "Stall seconds / (audio + stall seconds) at the pre-roll.",
               LOWER, compare="difference", needs_preroll=True, level_value=_stall_point("stall_time_ratio"),
               columns=_stall_columns, statistic=_stall_time_stat, value_count=_count_rows(_stall_columns)),
    MetricSpec("client_bound", "level", "", "The client, not the server, was the bottleneck at the level.",
               None, boolean=True, level_value=lambda lv, q: 1.0 if lv.result.client_bound else 0.0,
               value_count=lambda lv, q: lv.result.n),
    MetricSpec("requests", "level", "", "Measured (non-warmup) requests at the level.", HIGHER,
               level_value=lambda lv, q: float(lv.result.n), value_count=lambda lv, q: lv.result.n),
    MetricSpec("max_concurrency", "run", "workers",
               "Highest level at which it and every lower level had >= 99% success.", HIGHER,
               run_value=lambda run: None if run.results.summary.max_concurrency is None
               else float(run.results.summary.max_concurrency)),
):  # fmt: skip
    register_metric(_spec)


# ---- what the engine calls ---------------------------------------------------------------------------------


def level_estimate(spec: MetricSpec, level: LevelData, q: MetricQuery) -> float | None:
    """The point estimate of a request- or level-scope metric at one level."""
    if spec.scope == "request":
        assert q.stat is not None
        return point_statistic(request_values(spec, level), q.stat)
    assert spec.level_value is not None
    return spec.level_value(level, q)


def value_count(spec: MetricSpec, level: LevelData, q: MetricQuery) -> int:
    """How many requests the metric's estimate at this level rests on."""
    if spec.scope == "request":
        return int(request_values(spec, level).size)
    if spec.value_count is not None:
        return spec.value_count(level, q)
    return level.result.n


def bootstrap_inputs(spec: MetricSpec, level: LevelData, q: MetricQuery) -> tuple[np.ndarray, GroupStatistic]:
    """The per-request matrix of one level and the statistic that the bootstrap applies to its resamples."""
    if spec.scope == "request":
        assert q.stat is not None
        return request_values(spec, level)[:, None], row_statistic(q.stat)
    assert spec.columns is not None and spec.statistic is not None
    return spec.columns(level, q), spec.statistic(level, q)


def required_requests(stat: str | None, min_requests: int, min_tail: int) -> int:
    """Requests a statistic needs: ``min_requests``, and for pQ at least ``min_tail`` values beyond it."""
    q = _quantile(stat) if stat else None
    if q is None or q <= 50.0:
        return min_requests
    return max(min_requests, math.ceil(min_tail / (1.0 - q / 100.0) - 1e-9))


def _capacity_streams(run: RunData) -> float | None:
    # Imported here: the capacity package pulls in the runner, which a plain gate run does not need.
    from orpheus_bench.capacity.result import capacity_streams

    return capacity_streams(run.path) if run.path is not None else None


register_run_metric(
    "capacity_streams",
    _capacity_streams,
    unit="streams",
    description="Largest load that met the SLO in an `orpheus-bench capacity` search (capacity_result.json).",
    better="higher",
)
