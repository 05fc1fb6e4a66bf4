"""Records in, one columnar table per level out: the only place that turns requests into numbers.

A `LevelTable` is built once from a level's records (and its run.json entry). Its *rows* are the level's
counted requests: measured (not warmup) and not cancelled by the harness, in send order. Every column is a
numpy array over those rows; a metric's per-request matrix is a stack of columns, so the bootstrap resamples the
same rows for every metric of a level.

Definitions (docs/gates.md and docs/capacity.md quote them):

- *ok*: the request ended without an error and delivered audio (complete or cut short);
- *success*: a complete utterance (end of speech, or the stop word / end of sequence): `RequestRecord.complete`.
  With the scenario knob ``success: audio`` (servers whose model never ends speech) any ok request succeeds,
  and every output that uses the knob says so;
- *cut short*: ok, but a length limit ended the utterance (`RequestRecord.cut_limit` says which);
- *client-bound*: the level's run.json entry says so (loop lag, decode queue) or a measured request does.

Closed-loop throughput is measured on the *held* rows: measured requests sent while the level's full
concurrency was in flight (the warmups have been sent, the tail has not begun draining). By Little's law a
closed loop holding ``c`` requests completes ``c / mean latency`` requests per second, so throughput is
``c * sum(successes) / sum(latencies)`` over the held rows; this does not count the warmups still queued when
the first measured requests were sent (which biased a first-send-to-last-end window low) nor the drain at the
end. Open loop: the share of successes times the completion rate, ``(n - 1) / (last end - first end)`` over the
counted rows, which follows the arrivals below capacity and the server's rate above it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from orpheus_bench.measures.playback import record_playback
from orpheus_bench.records import RequestRecord, Status

CONCURRENCY = "concurrency"
RATE = "rate"
SUCCESS_COMPLETE = "complete"
SUCCESS_AUDIO = "audio"
SUCCESS_POLICIES = (SUCCESS_COMPLETE, SUCCESS_AUDIO)
MEASUREMENT_KEY = "capacity_measurement"  # records of one capacity sub-run share this extra key
SAME_INSTANT_S = 1e-6

# What a failed request counts as in a per-request statistic (see `LevelTable.values`).
WORST = "worst"  # +inf for latencies, "not met" for shares: a failure never helps a rule pass
EXCLUDE = "exclude"  # dropped: the statistic describes the successful requests only
AUDIO = "audio"  # descriptive tables: every request that delivered audio, complete or cut short
POPULATIONS = (WORST, EXCLUDE, AUDIO)


def _f(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _ms(value: float | None) -> float:
    return math.nan if value is None else float(value) * 1000.0


@dataclass(frozen=True, slots=True)
class Playback:
    """Per-row playback columns at one pre-roll and stall budget (NaN for rows without audio)."""

    stalled: np.ndarray  # 1.0: at least one stall longer than the budget
    stall_s: np.ndarray
    audio_s: np.ndarray
    max_stall_ms: np.ndarray


def held_rows(records: Sequence[RequestRecord], concurrency: int) -> np.ndarray:
    """For each record, whether ``concurrency`` requests were in flight when it was sent (itself included).

    ``records`` are every request of one closed-loop measurement, warmups and cancelled ones included. A
    request that ended at the instant another was sent (within `SAME_INSTANT_S`: a worker's next send follows
    its last end, and float sums of equal delays differ in the last bit) is no longer in flight then.
    """
    if not records:
        return np.zeros(0, dtype=bool)
    sends = np.array([r.run_offset_s for r in records], dtype=np.float64)
    ends = np.array([_f(r.end_offset_run_s) for r in records], dtype=np.float64)
    ends = np.where(np.isnan(ends), np.inf, ends)
    sent_by = np.searchsorted(np.sort(sends), sends, side="right")
    ended_by = np.searchsorted(np.sort(ends), sends + SAME_INSTANT_S, side="right")
    return np.asarray((sent_by - ended_by) >= concurrency)


@dataclass
class LevelTable:
    """One level's counted requests as columns (see the module docstring)."""

    level: int
    label: str  # the run's own label: "c=4", "rate=2/s"
    kind: str  # CONCURRENCY or RATE
    load: float  # workers, or arrivals per second
    records: tuple[RequestRecord, ...]  # every record of the level, warmups and cancelled included
    info: Mapping[str, Any] = field(default_factory=dict)  # the level's run.json entry
    success_policy: str = SUCCESS_COMPLETE

    def __post_init__(self) -> None:
        if self.success_policy not in SUCCESS_POLICIES:
            raise ValueError(f"success policy must be one of {SUCCESS_POLICIES}, not {self.success_policy!r}")
        self._playback: dict[tuple[int, float], Playback] = {}

    # ---- rows ------------------------------------------------------------------------------------------
    @cached_property
    def measured(self) -> tuple[RequestRecord, ...]:
        """Non-warmup records in send order (cancelled included)."""
        return tuple(sorted((r for r in self.records if not r.warmup), key=lambda r: (r.run_offset_s, r.seq)))

    @cached_property
    def rows(self) -> tuple[RequestRecord, ...]:
        """The counted requests: measured and not cancelled, in send order."""
        return tuple(r for r in self.measured if r.status is not Status.CANCELLED)

    @property
    def n(self) -> int:
        """Counted requests."""
        return len(self.rows)

    @property
    def n_warmup(self) -> int:
        """Warmup records."""
        return len(self.records) - len(self.measured)

    @property
    def cancelled(self) -> int:
        """Measured requests cancelled by the harness (not counted against the server)."""
        return len(self.measured) - len(self.rows)

    def _bools(self, test: Any) -> np.ndarray:
        return np.array([1.0 if test(r) else 0.0 for r in self.rows], dtype=np.float64)

    # ---- outcome columns (1.0 / 0.0) ---------------------------------------------------------------
    @cached_property
    def ok(self) -> np.ndarray:
        """Delivered audio without an error (complete or cut short)."""
        return self._bools(lambda r: r.ok)

    @cached_property
    def success(self) -> np.ndarray:
        """A successful request under the run's success policy (see the module docstring)."""
        if self.success_policy == SUCCESS_AUDIO:
            return self.ok
        return self._bools(lambda r: r.complete)

    @cached_property
    def cut_short(self) -> np.ndarray:
        """Delivered audio, but a length limit ended the utterance."""
        return self._bools(lambda r: r.cut_short)

    @cached_property
    def error(self) -> np.ndarray:
        """Ended with an error (any class but cancelled)."""
        return self._bools(lambda r: not r.ok)

    # ---- value columns (NaN: the request has no such value) -------------------------------------------
    @cached_property
    def ttfa_ms(self) -> np.ndarray:
        """Time to first audio."""
        return np.array([_ms(r.ttfa_s) for r in self.rows], dtype=np.float64)

    @cached_property
    def total_ms(self) -> np.ndarray:
        """Total latency."""
        return np.array([_ms(r.total_s) for r in self.rows], dtype=np.float64)

    @cached_property
    def first_token_ms(self) -> np.ndarray:
        """Request sent -> first token."""
        return np.array([_ms(r.t_first_token_s) for r in self.rows], dtype=np.float64)

    @cached_property
    def first_window_ms(self) -> np.ndarray:
        """Request sent -> the tokens of the first decode window complete (server-attributable TTFA)."""
        return np.array([_ms(r.t_first_window_s) for r in self.rows], dtype=np.float64)

    @cached_property
    def rtf(self) -> np.ndarray:
        """Wall seconds per audio second."""
        return np.array([_f(r.rtf) for r in self.rows], dtype=np.float64)

    @cached_property
    def audio_s(self) -> np.ndarray:
        """Seconds of audio delivered."""
        return np.array([r.audio_seconds for r in self.rows], dtype=np.float64)

    @cached_property
    def audio_tokens(self) -> np.ndarray:
        """Audio tokens received."""
        return np.array([float(r.audio_tokens) for r in self.rows], dtype=np.float64)

    @cached_property
    def tokens(self) -> np.ndarray:
        """Content pieces (tokens) received."""
        return np.array([float(r.tokens_generated) for r in self.rows], dtype=np.float64)

    @cached_property
    def invalid_codes(self) -> np.ndarray:
        """Out-of-range audio codes."""
        return np.array([float(r.invalid_code_count) for r in self.rows], dtype=np.float64)

    @cached_property
    def latency_s(self) -> np.ndarray:
        """Request sent -> last byte handled, seconds (the request's share of a closed loop's time)."""
        return np.array([_f(r.total_s) for r in self.rows], dtype=np.float64)

    def column(self, name: str) -> np.ndarray:
        """A column by name (one of the properties above)."""
        value = getattr(self, name, None)
        if not isinstance(value, np.ndarray):
            raise KeyError(f"no column {name!r}")
        return value

    def values(self, name: str, population: str = WORST) -> np.ndarray:
        """A per-request value column for a statistic, with failures treated as ``population`` says.

        ``WORST``: a counted request that did not succeed counts as +inf (it never met any latency bound);
        ``EXCLUDE``: only successful requests count; ``AUDIO``: every request that delivered audio counts.
        """
        col = self.column(name)
        if population == AUDIO:
            return np.where(self.ok > 0, col, np.nan)
        good = self.success > 0
        if population == EXCLUDE:
            return np.where(good, col, np.nan)
        if population == WORST:
            return np.where(good, col, np.inf)
        raise ValueError(f"population must be one of {POPULATIONS}, not {population!r}")

    def mask(self, population: str) -> np.ndarray:
        """1.0 for rows a share statistic counts under ``population``, NaN for the rest (see `values`)."""
        if population == AUDIO:
            return np.where(self.ok > 0, 1.0, np.nan)
        if population == EXCLUDE:
            return np.where(self.success > 0, 1.0, np.nan)
        return np.ones(self.n)

    # ---- playback ----------------------------------------------------------------------------------------
    def playback(self, preroll_ms: int, budget_ms: float = 0.0) -> Playback:
        """The virtual player's columns at one pre-roll; a stall counts when it is longer than ``budget_ms``."""
        key = (int(preroll_ms), float(budget_ms))
        if key not in self._playback:
            cols = np.full((4, self.n), np.nan)
            for i, r in enumerate(self.rows):
                if not r.ok:
                    continue
                play = record_playback(r, preroll_ms / 1000.0)
                if play is None:
                    continue
                longest_ms = play.max_stall_s * 1000.0
                cols[:, i] = (1.0 if longest_ms > budget_ms + 1e-9 else 0.0, play.stall_s, play.audio_s, longest_ms)
            self._playback[key] = Playback(*cols)
        return self._playback[key]

    # ---- throughput ----------------------------------------------------------------------------------------
    @cached_property
    def held(self) -> np.ndarray:
        """Closed loop: 1.0 for rows sent while the level's concurrency was held (see the module docstring)."""
        if self.kind != CONCURRENCY:
            return np.ones(self.n)
        c = max(1, int(self.load))
        held_ids: set[int] = set()
        groups: dict[Any, list[RequestRecord]] = {}
        for r in self.records:
            groups.setdefault(r.extra.get(MEASUREMENT_KEY), []).append(r)
        for group in groups.values():
            for r, h in zip(group, held_rows(group, c), strict=True):
                if h:
                    held_ids.add(id(r))
        return np.array([1.0 if id(r) in held_ids else 0.0 for r in self.rows], dtype=np.float64)

    @cached_property
    def window_s(self) -> float | None:
        """First measured send -> last measured end, on the run clock (None without an ended request)."""
        ends = [e for r in self.rows if (e := r.end_offset_run_s) is not None]
        if not ends:
            return None
        window = max(ends) - min(r.run_offset_s for r in self.rows)
        return window if window > 0 else None

    @cached_property
    def throughput_rows(self) -> np.ndarray:
        """Closed loop: the rows throughput rests on, the held ones; when none was held (too few requests for
        the level's concurrency, or records that are not a closed loop), every row, with `throughput_concurrency`
        the mean number in flight over the level's window instead of the nominal concurrency."""
        held = self.held > 0
        return held if held.any() else np.ones(self.n, dtype=bool)

    @cached_property
    def throughput_concurrency(self) -> float:
        """Requests in flight while the throughput rows ran: the level's concurrency when it was held, else the
        observed mean over the window (Little's law then reproduces successes / window)."""
        if (self.held > 0).any():
            return float(max(1, int(self.load)))
        window = self.window_s
        busy = float(np.nansum(self.latency_s))
        return busy / window if window and busy > 0 else math.nan

    @cached_property
    def completion_span_s(self) -> float | None:
        """Open loop: first to last end of the counted requests, on the run clock."""
        ends = [e for r in self.rows if (e := r.end_offset_run_s) is not None]
        if len(ends) < 2 or max(ends) <= min(ends):
            return None
        return max(ends) - min(ends)

    def throughput_basis(self) -> str:
        """In words: which requests and which window the level's throughput rests on."""
        if self.kind != CONCURRENCY:
            return "open loop: share of successes x (n - 1) / (last end - first end) of the measured requests"
        held = int(self.held.sum())
        if held:
            return (
                f"steady state: the {held} of {self.n} measured requests sent while {int(self.load)} were in flight; "
                "concurrency x successes / sum of their latencies (Little's law)"
            )
        return (
            f"the level never held {int(self.load)} requests in flight: successes / (first measured send -> last "
            "measured end)"
        )

    # ---- health ---------------------------------------------------------------------------------------------
    @cached_property
    def client_bound_requests(self) -> int:
        """Measured requests whose own decode queue made them client-bound."""
        return sum(1 for r in self.measured if r.client_bound)

    @property
    def client_bound(self) -> bool:
        """The runner's level verdict, or any measured request flagged by its decode queue."""
        return bool(self.info.get("client_bound")) or self.client_bound_requests > 0

    @property
    def client_bound_reasons(self) -> tuple[str, ...]:
        """Why the level is client-bound (empty when it is not)."""
        reasons = self.info.get("client_bound_reasons")
        out = [str(x) for x in reasons] if isinstance(reasons, list) else []
        if self.client_bound_requests and not out:
            out.append(f"{self.client_bound_requests} request(s) waited past the decode-queue threshold")
        if not out and self.client_bound:
            out.append("marked client-bound")
        return tuple(out)


def level_kind(level: int, records: Iterable[RequestRecord], info: Mapping[str, Any]) -> tuple[str, float]:
    """(kind, load) of a level: run.json says it; else the records' schedule (open loop) or their level."""
    kind = info.get("kind")
    value = info.get("value")
    if kind in (CONCURRENCY, RATE) and isinstance(value, int | float) and not isinstance(value, bool):
        return str(kind), float(value)
    if any(r.scheduled_offset_s is not None for r in records):
        return RATE, level / 1000.0
    return CONCURRENCY, float(level)


def success_policy(run_json: Mapping[str, Any]) -> str:
    """The run's success policy from its scenario (``success``), default: complete utterances."""
    scenario = run_json.get("scenario")
    policy = scenario.get("success") if isinstance(scenario, Mapping) else None
    return str(policy) if policy in SUCCESS_POLICIES else SUCCESS_COMPLETE


def level_infos(run_json: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """run.json's level entries by level number."""
    out: dict[int, dict[str, Any]] = {}
    for entry in run_json.get("levels") or []:
        if isinstance(entry, dict) and isinstance(entry.get("level"), int):
            out[entry["level"]] = entry
    return out


def level_tables(records: Sequence[RequestRecord], run_json: Mapping[str, Any] | None = None) -> list[LevelTable]:
    """One table per level of a run (levels run.json lists without records included, empty), by level."""
    run_json = run_json or {}
    infos = level_infos(run_json)
    grouped: dict[int, list[RequestRecord]] = {}
    for r in records:
        grouped.setdefault(r.level, []).append(r)
    policy = success_policy(run_json)
    tables = []
    for level in sorted(set(grouped) | set(infos)):
        recs = grouped.get(level, [])
        info = infos.get(level, {})
        label = info.get("label") or next((r.level_label for r in recs if r.level_label), None) or f"c={level}"
        kind, load = level_kind(level, recs, info)
        tables.append(LevelTable(level, str(label), kind, load, tuple(recs), info, policy))
    return tables
