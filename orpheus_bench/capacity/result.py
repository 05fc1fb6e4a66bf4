"""The answer of a capacity search and its per-load evidence, as frozen data and as ``capacity_result.json``.

`CapacityResult` holds every load measured (pooled over its measurements), the search's `Finished` verdict,
and derives what people ask for: ``capacity_streams`` (how many concurrent streams meet the SLO), how confident
that is, where the SLO broke and which term failed first, the knee (the load with the most SLO-meeting
requests per second). ``capacity_result.json`` in the search's directory is `CapacityResult.to_dict`: the
derived numbers are written out beside the evidence so that other tools (the gate, reports) read one key.

For an open-loop (rate) search, ``capacity_streams`` is the mean number of requests in flight at the capacity
rate, by Little's law over the measured requests (sum of request durations / measurement window).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orpheus_bench.capacity.search import CONCURRENCY, Finished, LoadObservation, SearchConfig, confident
from orpheus_bench.capacity.slo import LevelEvaluation, TermResult

RESULT_FILE = "capacity_result.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load level with all its measurements pooled."""

    load: float
    label: str  # "c=4" or "rate=1.5/s"
    level: int  # the level number in the merged run directory (concurrency, or the rate's rank from 1)
    evaluation: LevelEvaluation
    window_s: float | None  # summed measurement windows (first measured send -> last measured end, each)
    busy_s: float  # summed durations of the counted requests (for Little's law)
    ttfa_p50_ms: float | None  # over requests with audio, as the report defines it
    ttfa_p95_ms: float | None
    client_bound: bool
    measurements: tuple[str, ...]  # sub-run directories, relative to the search directory
    throughput_rps: float | None = None  # successes per second sustained (the report's throughput, measures layer)
    goodput_rps: float | None = None  # SLO-meeting requests per second, on the same basis

    @property
    def mean_inflight(self) -> float | None:
        """Mean requests in flight during measurement (Little's law)."""
        return self.busy_s / self.window_s if self.window_s else None

    def observation(self) -> LoadObservation:
        """What the search policy reads."""
        return LoadObservation(
            load=self.load,
            n=self.evaluation.n,
            meets=self.evaluation.meets,
            pass_share=self.evaluation.pass_share,
            throughput_rps=self.throughput_rps,
            ttfa_p50_ms=self.ttfa_p50_ms,
        )

    def to_dict(self, config: SearchConfig | None = None) -> dict[str, Any]:
        """JSON-ready; derived rates included (and the confident flag when ``config`` is given)."""
        out: dict[str, Any] = {
            "load": self.load,
            "label": self.label,
            "level": self.level,
            "window_s": self.window_s,
            "busy_s": self.busy_s,
            "ttfa_p50_ms": self.ttfa_p50_ms,
            "ttfa_p95_ms": self.ttfa_p95_ms,
            "client_bound": self.client_bound,
            "measurements": list(self.measurements),
            "throughput_rps": self.throughput_rps,
            "goodput_rps": self.goodput_rps,
            "mean_inflight": self.mean_inflight,
            **self.evaluation.to_dict(),
        }
        if config is not None:
            out["confident"] = confident(self.observation(), config)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        """The inverse of `to_dict`."""
        return cls(
            load=float(data["load"]),
            label=str(data["label"]),
            level=int(data["level"]),
            evaluation=LevelEvaluation.from_dict(data),
            window_s=_opt(data.get("window_s")),
            busy_s=float(data.get("busy_s") or 0.0),
            ttfa_p50_ms=_opt(data.get("ttfa_p50_ms")),
            ttfa_p95_ms=_opt(data.get("ttfa_p95_ms")),
            client_bound=bool(data.get("client_bound")),
            measurements=tuple(str(m) for m in data.get("measurements") or []),
            throughput_rps=_opt(data.get("throughput_rps")),
            goodput_rps=_opt(data.get("goodput_rps")),
        )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """A capacity search's state and answer (``finished`` is None while it runs or after an interruption)."""

    slo: dict[str, Any]  # `Slo.to_dict`
    search: SearchConfig
    levels: tuple[LoadResult, ...]  # sorted by load
    finished: Finished | None
    steps: int  # measurements taken

    @property
    def complete(self) -> bool:
        """True once the search has its answer."""
        return self.finished is not None

    def at(self, load: float | None) -> LoadResult | None:
        """The pooled result at ``load``."""
        return next((lv for lv in self.levels if lv.load == load), None)

    @property
    def capacity_load(self) -> float | None:
        """The largest load meeting the SLO (None: not even the lowest, or the search is not finished)."""
        return self.finished.capacity if self.finished else None

    @property
    def capacity_streams(self) -> float | None:
        """Concurrent streams at capacity: the concurrency (closed loop) or Little's law (open loop); 0 when
        no load met the SLO; None while unfinished."""
        if self.finished is None:
            return None
        if self.finished.capacity is None:
            return 0.0
        if self.search.kind == CONCURRENCY:
            return float(self.finished.capacity)
        level = self.at(self.finished.capacity)
        return level.mean_inflight if level else None

    @property
    def confidence(self) -> float | None:
        """Bootstrap share of resamples in which the capacity level meets the SLO."""
        level = self.at(self.capacity_load)
        return level.evaluation.pass_share if level else None

    @property
    def confident(self) -> bool:
        """Whether both edges of the answer are settled (enough requests, clear pass share)."""
        if self.finished is None:
            return False
        edges = [self.at(load) for load in (self.finished.capacity, self.finished.break_load) if load is not None]
        return bool(edges) and all(lv is not None and confident(lv.observation(), self.search) for lv in edges)

    @property
    def break_level(self) -> LoadResult | None:
        """The lowest load that missed the SLO (where it broke)."""
        return self.at(self.finished.break_load) if self.finished else None

    @property
    def limiting_term(self) -> TermResult | None:
        """The SLO term that failed first: at the break level, the one furthest beyond its threshold."""
        level = self.break_level
        failed = level.evaluation.failed_terms if level else ()
        return failed[0] if failed else None

    @property
    def tightest_term(self) -> TermResult | None:
        """At the capacity level, the term closest to its threshold (what will break first)."""
        level = self.at(self.capacity_load)
        return level.evaluation.tightest_term if level else None

    @property
    def knee_load(self) -> float | None:
        """The load with the highest goodput in requests per second (the lowest such load on ties)."""
        rated = [lv for lv in self.levels if lv.goodput_rps is not None]
        if not rated:
            return None
        best = max(lv.goodput_rps or 0.0 for lv in rated)
        return min(lv.load for lv in rated if lv.goodput_rps == best)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a reader must know before trusting the number."""
        out: list[str] = []
        if self.finished is None:
            out.append("The search did not finish; run the same command again to resume it.")
            return tuple(out)
        if not self.confident:
            out.append(
                "The edge verdicts are not confident (too few requests or a pass share near 50%): "
                "raise --max-requests-per-level for a firmer answer."
            )
        for level in (self.at(self.capacity_load), self.break_level):
            if level is not None and level.client_bound:
                out.append(f"{level.label} was client-bound: the server's numbers are understated there.")
        if self.finished.open_ended:
            why = "the server saturated" if self.finished.stop_reason == "saturation" else "--max-load was reached"
            out.append(f"The SLO never broke before {why}: capacity is at least this, not exactly this.")
        if self.finished.break_load is not None:
            above = [lv for lv in self.levels if lv.load > self.finished.break_load and lv.evaluation.meets]
            if above:
                labels = ", ".join(lv.label for lv in above)
                out.append(f"{labels} met the SLO above the break: the measurements are noisy near the edge.")
        return tuple(out)

    def summary(self) -> str:
        """One or two sentences answering "how many streams"."""
        if self.finished is None:
            return f"Capacity search incomplete after {self.steps} measurement(s)."
        f = self.finished
        unit = "concurrent streams" if self.search.kind == CONCURRENCY else "requests/s"
        if f.capacity is None:
            text = f"The SLO is not met even at {self.search.label(f.break_load or self.search.min_load)}."
        else:
            at_least = "at least " if f.open_ended else ""
            conf = "" if self.confidence is None else f", pass share {self.confidence:.0%}"
            level = self.at(f.capacity)
            n = f" over {level.evaluation.n} requests" if level else ""
            text = f"Capacity: {at_least}{f.capacity:g} {unit}{conf}{n}."
            if self.search.kind != CONCURRENCY and self.capacity_streams is not None:
                text += f" About {self.capacity_streams:.1f} streams in flight."
        limiting = self.limiting_term
        if limiting is not None and f.break_load is not None:
            value = "no value" if limiting.value is None else f"{limiting.value:.4g}"
            text += f" Breaks at {self.search.label(f.break_load)}: {limiting.key} failed first ({value})."
        elif f.stop_reason == "saturation" and f.saturated_at is not None:
            text += f" Saturated at {self.search.label(f.saturated_at)}: throughput flat while TTFA rises."
        return text

    def to_dict(self) -> dict[str, Any]:
        """``capacity_result.json``: the answer's keys first, then the evidence."""
        f = self.finished
        limiting = self.limiting_term
        tightest = self.tightest_term
        return {
            "schema": SCHEMA_VERSION,
            "complete": self.complete,
            "summary": self.summary(),
            "load_kind": self.search.kind,
            "capacity_streams": self.capacity_streams,
            "capacity_load": self.capacity_load,
            "open_ended": f.open_ended if f else None,
            "stop_reason": f.stop_reason if f else None,
            "confidence": self.confidence,
            "confident": self.confident,
            "required_confidence": self.search.confidence,
            "capacity_requests": (lv.evaluation.n if (lv := self.at(self.capacity_load)) else None),
            "break_load": f.break_load if f else None,
            "limiting_term": limiting.key if limiting else None,
            "limiting_value": limiting.value if limiting else None,
            "break_failed_terms": [
                t.to_dict() for t in (self.break_level.evaluation.failed_terms if self.break_level else ())
            ],
            "tightest_term": tightest.key if tightest else None,
            "saturated_at": f.saturated_at if f else None,
            "knee_load": self.knee_load,
            "warnings": list(self.warnings),
            "steps": self.steps,
            "slo": self.slo,
            "search": self.search.to_dict(),
            "levels": [lv.to_dict(self.search) for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapacityResult:
        """Rebuild from ``capacity_result.json`` (derived keys are recomputed, not trusted)."""
        search = SearchConfig.from_dict(data.get("search") or {})
        finished = None
        if data.get("complete"):
            finished = Finished(
                capacity=_opt(data.get("capacity_load")),
                break_load=_opt(data.get("break_load")),
                stop_reason=str(data.get("stop_reason")),
                open_ended=bool(data.get("open_ended")),
                saturated_at=_opt(data.get("saturated_at")),
            )
        levels = tuple(sorted((LoadResult.from_dict(d) for d in data.get("levels") or []), key=lambda lv: lv.load))
        return cls(dict(data.get("slo") or {}), search, levels, finished, int(data.get("steps") or 0))


def write_result(directory: str | Path, result: CapacityResult) -> Path:
    """Write ``capacity_result.json`` atomically; returns its path."""
    path = Path(directory) / RESULT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


def read_result(directory: str | Path) -> CapacityResult | None:
    """Read a search directory's ``capacity_result.json`` (None when there is none or it is unreadable)."""
    path = Path(directory) / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return CapacityResult.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def capacity_streams(directory: str | Path) -> float | None:
    """The gate's run metric: ``capacity_streams`` of a finished search in ``directory``, else None."""
    result = read_result(directory)
    return result.capacity_streams if result is not None and result.complete else None
