"""Before vs after: the seed's comparison, from comparable levels and equal (or normalised) work, with intervals.

Every factor is a statistic of the measures layer (`orpheus_bench.measures.metrics`) over a set of levels,
with a percentile-bootstrap interval from the same engine the gate uses (`measures.bootstrap.effect`:
requests resampled within each level of each run, fixed seed). Effects are oriented so that a value above 1
means "after is better" (``before / after`` for times, ``after / before`` for rates and capacity; a
difference in percentage points for success rate).

What a factor may rest on:

- *Comparable levels*: a level enters a factor only when neither run flagged it client-bound and each run has
  at least `REPORT_MIN_REQUESTS` requests there with a value for the statistic (a percentile also needs a few
  values beyond it). Excluded levels are listed with their reason; when no level is comparable the row says so
  instead of a number.
- *Equal work*: when the two runs' requests delivered different amounts of audio (mean audio seconds per request
  differing by more than `WORK_TOLERANCE`), totals and rates are compared per unit of work: total latency as
  time per audio second (mean RTF), throughput as audio seconds per wall second. The work rows (audio seconds
  and audio tokens per request, complete-utterance share) are always shown beside.
- *Server-attributable* rows (first decodable window, first token) describe the server even where the client's
  decoding was the bottleneck, so they use every shared level whose only client-side problem was the decode
  queue (the event loop kept up); they are labelled as such. They are unavailable when either run sent blocking
  requests: a blocking answer's first token comes with the whole generation.

The factors: TTFA (avg) and total latency are the mean over comparable levels of each level's mean; best TTFA
the lowest comparable per-level p50; throughput the highest comparable per-level throughput (the steady-state
estimator of `measures.table`); max concurrency the highest level with success >= 99% at it and every lower
level (a bound, "+", when it is the highest tried); success rate pooled over the levels both runs measured.

Why one module over 400 lines: what a factor may rest on (comparable levels, equal work, exclusions) and the first
lines that say so must change together, or the report would claim a comparison its rules do not support.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from orpheus_bench.measures import bootstrap, metrics
from orpheus_bench.measures.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, Interval
from orpheus_bench.measures.metrics import MIN_SUCCESS_FOR_CAPACITY
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.stats import row_max, row_mean, row_min
from orpheus_bench.measures.table import AUDIO, LevelTable
from orpheus_bench.results.model import LevelResult, RunResults

REPORT_MIN_REQUESTS = 5
REPORT_MIN_TAIL = 2
WORK_TOLERANCE = 0.05  # mean audio per request may differ this much before factors are normalised

GroupStat = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One row of "Before vs After"."""

    key: str  # ttfa_avg, best_ttfa, throughput, max_concurrency, total_latency, success_rate, work rows...
    metric: str  # the row's name
    unit: str  # ms, req/s, workers, %, s, s/s
    before_range: tuple[float | None, float | None]  # (low, high) over the levels used; equal ends: one value
    after_range: tuple[float | None, float | None]
    before_value: float | None  # the value the factor uses
    after_value: float | None
    before_open: bool  # the value is a lower bound ("12+")
    after_open: bool
    effect: Interval
    better_word: str  # e.g. "faster"
    worse_word: str  # e.g. "slower"
    basis: str  # what the factor compares, in words
    per_level: tuple[float, float] | None  # range of per-level factors at the levels used
    levels: tuple[int, ...] = ()  # the levels the factor rests on
    unavailable: str | None = None  # why there is no factor (no comparable level...), shown instead of one
    group: str = "headline"  # "headline", "work" (what each request did) or "server" (server-attributable)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A level left out of the headline factors, and why."""

    level: int
    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """The compiled comparison of two runs (the runs themselves are passed to renderers alongside)."""

    before_name: str
    after_name: str
    shared_levels: tuple[int, ...]
    comparable_levels: tuple[int, ...]
    rows: tuple[ComparisonRow, ...]
    confidence: float
    n_resamples: int
    seed: int
    notes: tuple[str, ...]
    exclusions: tuple[Exclusion, ...] = ()
    equal_work: bool = True
    work_ratio: float | None = None  # after / before mean audio seconds per request
    first_lines: tuple[str, ...] = field(default_factory=tuple)  # what a reader must know before any number

    def row(self, key: str) -> ComparisonRow:
        """The row with ``key``; KeyError when absent."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)


# ---- per-level statistics over several levels --------------------------------------------------------------


def _inputs(results: RunResults, levels: Sequence[int], q: Query) -> tuple[list[np.ndarray], list[bootstrap.Statistic]]:
    pairs = [metrics.inputs(results.table(level), q) for level in levels]
    return [m for m, _ in pairs], [s for _, s in pairs]


def _across(stats: Sequence[bootstrap.Statistic], combine: Callable[[np.ndarray], np.ndarray]) -> GroupStat:
    def stat(groups: Sequence[np.ndarray]) -> np.ndarray:
        if not groups:
            return np.full(1, np.nan)
        per = np.stack([s(g) for s, g in zip(stats, groups, strict=True)], axis=-1)  # (B, levels)
        return combine(per)

    return stat


def _capacity(levels: Sequence[int], stats: Sequence[bootstrap.Statistic]) -> GroupStat:
    lv = np.asarray(levels, dtype=np.float64)

    def combine(rates: np.ndarray) -> np.ndarray:
        passing = np.cumprod(np.nan_to_num(rates, nan=0.0) >= MIN_SUCCESS_FOR_CAPACITY, axis=-1)
        return np.where(passing.any(axis=-1), (passing * lv).max(axis=-1), 0.0)

    return _across(stats, combine)


def _pooled_share(groups: Sequence[np.ndarray]) -> np.ndarray:
    if not groups:
        return np.full(1, np.nan)
    num = sum(np.nansum(g[..., 0], axis=-1) for g in groups)
    den = sum(np.sum(~np.isnan(g[..., 0]), axis=-1) for g in groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _range(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    return (min(vals), max(vals)) if vals else (None, None)


def _needed(stat: str | None) -> int:
    return metrics.required_requests(stat, REPORT_MIN_REQUESTS, REPORT_MIN_TAIL)


def _too_few(table: LevelTable, q: Query) -> bool:
    return metrics.count(table, q) < _needed(q.stat)


def _decode_bound_only(lv: LevelResult) -> bool:
    """Client-bound only through the decode queue: the event loop kept up, so token timing is the server's."""
    return all("decode" in reason for reason in lv.client_bound_reasons) if lv.client_bound_reasons else True


class _Builder:
    """The rows of one comparison (see the module docstring)."""

    def __init__(self, before: RunResults, after: RunResults, n_resamples: int, confidence: float, seed: int) -> None:
        self.before, self.after = before, after
        self.n_resamples, self.confidence, self.seed = n_resamples, confidence, seed
        self.b_lv = {lv.level: lv for lv in before.levels}
        self.a_lv = {lv.level: lv for lv in after.levels}
        self.shared = tuple(sorted(x for x in set(self.b_lv) & set(self.a_lv) if self.b_lv[x].n and self.a_lv[x].n))
        self.exclusions: list[Exclusion] = []

    def effect(self, a_groups: list[np.ndarray], b_groups: list[np.ndarray], stat_a: GroupStat, stat_b: GroupStat,
               kind: str = "ratio") -> Interval:  # fmt: skip
        return bootstrap.effect(
            a_groups, b_groups, stat_a, stat_b, kind=kind,
            n_resamples=self.n_resamples, confidence=self.confidence, seed=self.seed,
        )  # fmt: skip

    # ---- which levels a factor may use ------------------------------------------------------------------
    def bound_reason(self, results: RunResults, level: int, role: str) -> str | None:
        lv = {x.level: x for x in results.levels}.get(level)
        if lv is None or not lv.client_bound:
            return None
        reasons = "; ".join(lv.client_bound_reasons) or "client-bound"
        return f"{role} client-bound ({reasons})"

    def usable(self, results: RunResults, q: Query, role: str, *, levels: Sequence[int] | None = None) -> list[int]:
        """Levels of one run a factor of ``q`` may use (not client-bound, enough values)."""
        out = []
        for lv in results.levels:
            if levels is not None and lv.level not in levels:
                continue
            if lv.n == 0:
                continue
            if self.bound_reason(results, lv.level, role) or _too_few(results.table(lv.level), q):
                continue
            out.append(lv.level)
        return out

    def comparable(self, q: Query) -> list[int]:
        """Shared levels where both runs are usable for ``q``; the others are recorded as exclusions once."""
        out = []
        for level in self.shared:
            reasons = [
                r
                for r in (
                    self.bound_reason(self.before, level, "before"),
                    self.bound_reason(self.after, level, "after"),
                    *(
                        f"{role}: {metrics.count(res.table(level), q)} requests with a value, {_needed(q.stat)} needed"
                        for role, res in (("before", self.before), ("after", self.after))
                        if _too_few(res.table(level), q)
                    ),
                )
                if r
            ]
            if reasons:
                label = self.a_lv[level].label
                if not any(e.level == level for e in self.exclusions):
                    self.exclusions.append(Exclusion(level, label, "; ".join(reasons)))
                continue
            out.append(level)
        return out

    # ---- row kinds ----------------------------------------------------------------------------------------
    def mean_of_means(self, key: str, name: str, q: Query, summary: Callable[[LevelResult], float | None],
                      better: str, worse: str, what: str, *, group: str = "headline",
                      levels: Sequence[int] | None = None, unit: str = "ms",
                      why_none: str | None = None) -> ComparisonRow:  # fmt: skip
        """A lower-is-better mean of per-level means: the effect is before / after."""
        used = list(levels) if levels is not None else self.comparable(q)
        b_m, b_s = _inputs(self.before, used, q)
        a_m, a_s = _inputs(self.after, used, q)
        stat_b, stat_a = _across(b_s, row_mean), _across(a_s, row_mean)
        eff = self.effect(b_m, a_m, stat_b, stat_a)
        per = []
        for level in used:
            b, a = summary(self.b_lv[level]), summary(self.a_lv[level])
            if b is not None and a:
                per.append(b / a)
        levels_text = ", ".join(self.a_lv[x].label for x in used)
        return ComparisonRow(
            key=key, metric=name, unit=unit,
            before_range=_range([summary(self.b_lv[x]) for x in used]),
            after_range=_range([summary(self.a_lv[x]) for x in used]),
            before_value=_first(stat_b([m[None] for m in b_m])) if used else None,
            after_value=_first(stat_a([m[None] for m in a_m])) if used else None,
            before_open=False, after_open=False, effect=eff if used else _none(self),
            better_word=better, worse_word=worse,
            basis=f"mean of per-level {what} over {levels_text}" if used else what,
            per_level=(min(per), max(per)) if per else None, levels=tuple(used),
            unavailable=None if used else why_none or "no level is comparable in both runs (see the exclusions)",
            group=group,
        )  # fmt: skip

    def best(self, key: str, name: str, q: Query, combine: Callable[[np.ndarray], np.ndarray],
             better: str, worse: str, basis: str, unit: str, lower_better: bool,
             open_flags: tuple[bool, bool] = (False, False)) -> ComparisonRow:  # fmt: skip
        b_used = self.usable(self.before, q, "before")
        a_used = self.usable(self.after, q, "after")
        b_m, b_s = _inputs(self.before, b_used, q)
        a_m, a_s = _inputs(self.after, a_used, q)
        stat_b, stat_a = _across(b_s, combine), _across(a_s, combine)
        if not b_used or not a_used:
            return ComparisonRow(key, name, unit, (None, None), (None, None), None, None, False, False, _none(self),
                                 better, worse, basis, None, (),
                                 "no level of one run is usable (client-bound or too few requests)")  # fmt: skip
        b_val, a_val = _first(stat_b([m[None] for m in b_m])), _first(stat_a([m[None] for m in a_m]))
        eff = self.effect(b_m, a_m, stat_b, stat_a) if lower_better else self.effect(a_m, b_m, stat_a, stat_b)
        return ComparisonRow(
            key=key, metric=name, unit=unit, before_range=(b_val, b_val), after_range=(a_val, a_val),
            before_value=b_val, after_value=a_val, before_open=open_flags[0], after_open=open_flags[1],
            effect=eff, better_word=better, worse_word=worse, basis=basis, per_level=None,
            levels=tuple(sorted(set(b_used) | set(a_used))),
        )  # fmt: skip


def _none(b: _Builder) -> Interval:
    return Interval("ratio", None, None, None, b.confidence, b.n_resamples)


def _first(values: np.ndarray) -> float | None:
    v = float(np.asarray(values).reshape(-1)[0]) if np.asarray(values).size else float("nan")
    return None if np.isnan(v) else v


def _work_rows(b: _Builder, levels: Sequence[int]) -> list[ComparisonRow]:
    rows = []
    for key, name, column, unit, summary in (
        ("audio_per_request", "Audio per request", "audio_s", "s", lambda lv: lv.audio_s_mean),
        ("audio_tokens_per_request", "Audio tokens per request", "audio_tokens", "tokens",
         lambda lv: lv.audio_tokens_mean),
    ):  # fmt: skip
        rows.append(_column_mean_row(b, key, name, column, unit, levels, summary))
    q = Query("success_rate")
    b_m, _ = _inputs(b.before, levels, q)
    a_m, _ = _inputs(b.after, levels, q)
    eff = b.effect(a_m, b_m, _pooled_share, _pooled_share, kind="difference") if levels else _none(b)
    rows.append(ComparisonRow(
        key="complete_share", metric="Complete utterances", unit="%",
        before_range=_range([b.b_lv[x].success_rate for x in levels]),
        after_range=_range([b.a_lv[x].success_rate for x in levels]),
        before_value=_first(_pooled_share([m[None] for m in b_m])) if levels else None,
        after_value=_first(_pooled_share([m[None] for m in a_m])) if levels else None,
        before_open=False, after_open=False, effect=eff, better_word="better", worse_word="worse",
        basis="share of counted requests whose utterance ended on its own; after minus before",
        per_level=None, levels=tuple(levels), group="work",
    ))  # fmt: skip
    return rows


def _column_mean_row(
    b: _Builder,
    key: str,
    name: str,
    column: str,
    unit: str,
    levels: Sequence[int],
    summary: Callable[[LevelResult], float | None],
) -> ComparisonRow:
    def groups(results: RunResults) -> list[np.ndarray]:
        return [results.table(x).values(column, AUDIO)[:, None] for x in levels]

    def stat(gs: Sequence[np.ndarray]) -> np.ndarray:
        return row_mean(np.concatenate([g[..., 0] for g in gs], axis=-1)) if gs else np.full(1, np.nan)

    b_g, a_g = groups(b.before), groups(b.after)
    eff = b.effect(a_g, b_g, stat, stat) if levels else _none(b)
    return ComparisonRow(
        key=key, metric=name, unit=unit,
        before_range=_range([summary(b.b_lv[x]) for x in levels]),
        after_range=_range([summary(b.a_lv[x]) for x in levels]),
        before_value=_first(stat([g[None] for g in b_g])) if levels else None,
        after_value=_first(stat([g[None] for g in a_g])) if levels else None,
        before_open=False, after_open=False, effect=eff, better_word="more", worse_word="less",
        basis=f"mean per request with audio over {', '.join(b.a_lv[x].label for x in levels)}; after / before",
        per_level=None, levels=tuple(levels), group="work",
    )  # fmt: skip


def compare(
    before: RunResults,
    after: RunResults,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """Compile the "Before vs After" comparison of two runs (see the module docstring)."""
    b = _Builder(before, after, n_resamples, confidence, seed)
    notes: list[str] = []
    ttfa_q, total_q = metrics.descriptive(Query("ttfa_ms", "mean")), metrics.descriptive(Query("total_ms", "mean"))
    comparable = b.comparable(ttfa_q)
    # What each request did does not depend on who was the bottleneck: the work rows use every shared level.
    work = _work_rows(b, list(b.shared))
    ratio = work[0].effect.estimate
    equal_work = ratio is None or abs(ratio - 1.0) <= WORK_TOLERANCE
    rows: list[ComparisonRow] = []
    rows.append(b.mean_of_means("ttfa_avg", "TTFA (avg)", ttfa_q, lambda lv: lv.ttfa_ms.mean, "faster", "slower",
                                "mean TTFA"))  # fmt: skip
    p50 = metrics.descriptive(Query("ttfa_ms", "p50"))
    rows.append(b.best("best_ttfa", "Best TTFA", p50, row_min, "faster", "slower",
                       "lowest per-level TTFA p50 over each run's usable levels", "ms", True))  # fmt: skip
    if equal_work:
        tp_q, tp_name, tp_unit = Query("throughput_rps"), "Throughput", "req/s"
        tp_basis = "highest per-level throughput (steady state, Little's law) over each run's usable levels"
    else:
        tp_q, tp_name, tp_unit = Query("audio_per_wall_s"), "Throughput (audio s per wall s)", "s/s"
        tp_basis = "highest per-level audio seconds per wall second: the runs' requests did different work"
    rows.append(b.best("throughput", tp_name, tp_q, row_max, "increase", "decrease", tp_basis, tp_unit, False))
    cap_q = Query("success_rate")
    b_cap = [lv.level for lv in before.levels if lv.n - lv.cancelled > 0]
    a_cap = [lv.level for lv in after.levels if lv.n - lv.cancelled > 0]
    b_m, b_s = _inputs(before, b_cap, cap_q)
    a_m, a_s = _inputs(after, a_cap, cap_q)
    b_val = None if before.summary.max_concurrency is None else float(before.summary.max_concurrency)
    a_val = None if after.summary.max_concurrency is None else float(after.summary.max_concurrency)
    rows.append(ComparisonRow(
        key="max_concurrency", metric="Max concurrency", unit="workers",
        before_range=(b_val, b_val), after_range=(a_val, a_val), before_value=b_val, after_value=a_val,
        before_open=before.summary.max_concurrency_open, after_open=after.summary.max_concurrency_open,
        effect=b.effect(a_m, b_m, _capacity(a_cap, a_s), _capacity(b_cap, b_s)),
        better_word="capacity", worse_word="less capacity",
        basis=f"highest level with success >= {MIN_SUCCESS_FOR_CAPACITY:.0%} at it and at every lower level",
        per_level=None, levels=tuple(sorted(set(b_cap) | set(a_cap))),
    ))  # fmt: skip
    if after.summary.max_concurrency_open or before.summary.max_concurrency_open:
        notes.append(
            "Max concurrency marked '+' is the highest level tried: the run did not find its limit, so the "
            "factor is a bound, not a measurement, for that run."
        )
    if equal_work:
        rows.append(b.mean_of_means("total_latency", "Total latency", total_q, lambda lv: lv.total_ms.mean,
                                    "reduction", "increase", "mean total latency"))  # fmt: skip
    else:
        rtf_q = metrics.descriptive(Query("rtf", "mean"))
        rows.append(b.mean_of_means("total_latency", "Time per audio second (RTF)", rtf_q,
                                    lambda lv: lv.rtf.mean, "reduction", "increase",
                                    "mean wall seconds per audio second", unit="x"))  # fmt: skip
    sr_q = Query("success_rate")
    b_m, _ = _inputs(before, list(b.shared), sr_q)
    a_m, _ = _inputs(after, list(b.shared), sr_q)
    rows.append(ComparisonRow(
        key="success_rate", metric="Success rate (complete)", unit="%",
        before_range=(before.summary.success_rate, before.summary.success_rate),
        after_range=(after.summary.success_rate, after.summary.success_rate),
        before_value=before.summary.success_rate, after_value=after.summary.success_rate,
        before_open=False, after_open=False,
        effect=b.effect(a_m, b_m, _pooled_share, _pooled_share, kind="difference"),
        better_word="better", worse_word="worse",
        basis="complete utterances / counted requests at the levels both runs measured; after minus before",
        per_level=None, levels=b.shared,
    ))  # fmt: skip
    rows.extend(work)
    server_levels = [x for x in b.shared if _decode_bound_only(b.b_lv[x]) and _decode_bound_only(b.a_lv[x])]
    fw = metrics.descriptive(Query("first_window_ms", "mean"))
    ft = metrics.descriptive(Query("first_token_ms", "mean"))
    server_levels = [x for x in server_levels if not (_too_few(before.table(x), fw) or _too_few(after.table(x), fw))]
    # A blocking request gets its first token with the whole answer: its "first token" times the whole generation,
    # so against a streamed run these rows would credit the server with what the client's mode changed.
    # (A run whose records mixed modes has meta.mode "stream,blocking": any blocking request counts.)
    blocking = [role for role, r in (("before", before), ("after", after)) if "blocking" in (r.meta.mode or "")]
    why_none = None
    if blocking:
        server_levels = []
        why_none = (
            f"{' and '.join(blocking)} sent blocking requests: their first token arrives with the whole answer, so "
            "it times the whole generation, not the server's first token"
        )
    rows.append(b.mean_of_means("first_window", "First decodable window (server)", fw,
                                lambda lv: lv.first_window_ms.mean, "faster", "slower",
                                "mean time to the first decode window's tokens (no client decode)", group="server",
                                levels=server_levels, why_none=why_none))  # fmt: skip
    rows.append(b.mean_of_means("first_token", "First token (server)", ft, lambda lv: lv.ttfa_split.to_first_token_ms,
                                "faster", "slower", "mean time to the first token", group="server",
                                levels=server_levels, why_none=why_none))  # fmt: skip
    if not b.shared:
        notes.append("The runs share no level: averages cannot be compared level for level.")
    for results, role in ((before, "before"), (after, "after")):
        if results.summary.client_bound_levels:
            notes.append(
                f"The {role} run was client-bound at level(s) "
                + ", ".join(str(x) for x in results.summary.client_bound_levels)
                + ": its numbers there describe the client, not the server, and no headline factor uses them."
            )
    return Comparison(
        before_name=before.meta.name,
        after_name=after.meta.name,
        shared_levels=b.shared,
        comparable_levels=tuple(comparable),
        rows=tuple(rows),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        notes=tuple(notes),
        exclusions=tuple(sorted(b.exclusions, key=lambda e: e.level)),
        equal_work=equal_work,
        work_ratio=ratio,
        first_lines=tuple(first_lines(before, after, b.exclusions, equal_work, ratio)),
    )


def first_lines(
    before: RunResults, after: RunResults, exclusions: Sequence[Exclusion], equal_work: bool, ratio: float | None
) -> list[str]:
    """What a reader must know before reading any factor: whether the work per request was equal, the levels
    left out and why, then each run's own first lines (the doctor's findings, cut-short shares and the slot
    arithmetic behind them, client-bound levels, random SNAC weights)."""
    out: list[str] = []
    if not equal_work and ratio is not None:
        out.append(
            f"The runs did different work: after's requests delivered {ratio:.2f}x the audio of before's, so "
            "throughput and latency factors are per unit of work (audio seconds per wall second, time per audio "
            "second)."
        )
    if exclusions:
        out.append(
            "Left out of the headline factors: " + "; ".join(f"{e.label} ({e.reason})" for e in exclusions) + "."
        )
    snac = "SNAC weights were random"
    for results, role in ((before, "before"), (after, "after")):
        out.extend(f"{role}: {w}" for w in results.warnings if not w.startswith(snac))
    if before.meta.snac_random or after.meta.snac_random:
        out.append("SNAC weights were random: the audio is noise; timings and continuity are real, sound is not.")
    return out
