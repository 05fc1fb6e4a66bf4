"""The live numbers of a Locust run, per level, for its web UI: what this tool measures, while the test runs.

Locust's own tables show ``TTFA``, ``first token`` and ``TTS total`` as separate rows, but not what a listener
hears. `LiveRun` keeps each level's records as they arrive and `level_view` turns them into one row: TTFA
p50/p95, first token and total p50, real-time factor and the share of listening time spent in playback stalls.
Every figure comes from the project's measures layer (`summarize`, `stall_stats`, `RequestRecord.rtf`), never
from a percentile written here, so the live view and ``orpheus-bench report`` agree on the same records.

Pure: no gevent, no Locust, no clock; the Locust adapter feeds it and serves its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from orpheus_bench.measures.playback import stall_stats
from orpheus_bench.measures.stats import summarize
from orpheus_bench.records import RequestRecord, Status

LIVE_PREROLL_MS = 0
"""Stall share is the strictest listener's: playback starts the moment the first chunk is ready."""

PHASE_NAMES = {"wait": "waiting", "run": "running", "drain": "draining", "done": "done"}


@dataclass(frozen=True, slots=True)
class LevelView:
    """One level's row: counts of measured requests (warmups excluded) and their latencies (ok ones only)."""

    run: str
    level: str  # the level's label, ``c=4``
    phase: str  # waiting, running, draining, done, cut short
    ok: int
    failed: int
    cancelled: int
    ttfa_p50_ms: float | None
    ttfa_p95_ms: float | None
    first_token_p50_ms: float | None
    total_p50_ms: float | None
    rtf_p50: float | None
    stall_share: float | None  # stall seconds / (audio + stall seconds), at LIVE_PREROLL_MS

    def row(self) -> dict[str, Any]:
        """A JSON-friendly row, rounded for people (ms to 0.1, RTF to 0.001, stall share as a percentage)."""
        out = asdict(self)
        for key in ("ttfa_p50_ms", "ttfa_p95_ms", "first_token_p50_ms", "total_p50_ms"):
            out[key] = _rounded(out[key], 1)
        out["rtf_p50"] = _rounded(self.rtf_p50, 3)
        del out["stall_share"]
        out["stall_share_pct"] = None if self.stall_share is None else round(self.stall_share * 100.0, 2)
        return out


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def level_view(records: Sequence[RequestRecord], *, run: str, level: str, phase: str) -> LevelView:
    """The row of one level from its records (in any order; warmups and other levels' records are the caller's)."""
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    cancelled = sum(1 for r in measured if r.status is Status.CANCELLED)
    ttfa = summarize((r.ttfa_s for r in ok), 1000.0)
    return LevelView(
        run=run,
        level=level,
        phase=phase,
        ok=len(ok),
        failed=len(measured) - len(ok) - cancelled,
        cancelled=cancelled,
        ttfa_p50_ms=ttfa.p50,
        ttfa_p95_ms=ttfa.p95,
        first_token_p50_ms=summarize((r.t_first_token_s for r in ok), 1000.0).p50,
        total_p50_ms=summarize((r.total_s for r in ok), 1000.0).p50,
        rtf_p50=summarize(r.rtf for r in ok).p50,
        stall_share=stall_stats(ok, LIVE_PREROLL_MS).stall_time_ratio,
    )


class LiveRun:
    """The levels of one run as they happen: each level's records and phase, in the order levels began."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._records: dict[str, list[RequestRecord]] = {}
        self._phase: dict[str, str] = {}
        self._cache: dict[str, tuple[tuple[int, str], LevelView]] = {}

    def phase(self, level: str, phase: str) -> None:
        """A level began or changed phase (``wait``, ``run``, ``drain``, ``done``)."""
        self._records.setdefault(level, [])
        self._phase[level] = PHASE_NAMES.get(phase, phase)

    def ended(self, level: str, *, interrupted: bool) -> None:
        """A level's summary was written: it is over, cut short or not."""
        self._records.setdefault(level, [])
        self._phase[level] = "cut short" if interrupted else "done"

    def record(self, record: RequestRecord) -> None:
        """A finished request of this run."""
        label = record.level_label or f"c={record.level}"
        self._records.setdefault(label, []).append(record)
        self._phase.setdefault(label, "running")

    def views(self) -> list[LevelView]:
        """One row per level; a level's numbers are recomputed only when it got records or changed phase."""
        out = []
        for level, records in self._records.items():
            key = (len(records), self._phase[level])
            cached = self._cache.get(level)
            if cached is None or cached[0] != key:
                cached = (key, level_view(records, run=self.name, level=level, phase=key[1]))
                self._cache[level] = cached
            out.append(cached[1])
        return out
