"""Load levels, shared by every driver: the plan of a level, what the driver knows when it ends, and its verdict.

`plan_levels` turns a scenario's `Load` into `LevelPlan`s (closed-loop concurrency or open-loop rate);
`LevelOutcome.summary` is a level's run.json entry, with the client-bound verdict judged against
`orpheus_bench.limits`. The aiohttp runner and the Locust level controller both build their summaries here, so
run.json's ``levels`` read the same whoever drove the load. Pure: no I/O, no event loop, no gevent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orpheus_bench.limits import CLIENT_BOUND_DECODE_QUEUE_P90_MS, CLIENT_BOUND_LAG_P99_MS
from orpheus_bench.measures.stats import percentile
from orpheus_bench.records import RequestRecord
from orpheus_bench.scenario import Load


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """One level of the sweep."""

    index: int
    kind: str  # "concurrency" or "rate"
    value: float
    warmup: int
    requests: int | None  # measured requests, or None for a duration
    duration_s: float | None

    @property
    def level(self) -> int:
        """The integer level stored in records: the concurrency, or for open loop the rate in milli-requests/s.

        Rates must stay distinct after rounding (0.5/s and 1/s are different levels), hence the milli unit; the
        label ("rate=0.5/s") is what people read.
        """
        return int(self.value) if self.kind == "concurrency" else max(1, round(self.value * 1000))

    @property
    def label(self) -> str:
        """Human label: ``c=4`` or ``rate=2.5/s``."""
        return f"c={int(self.value)}" if self.kind == "concurrency" else f"rate={self.value:g}/s"


def plan_levels(load: Load) -> list[LevelPlan]:
    """The levels a `Load` describes."""
    duration = load.duration_per_level_s
    requests = None if duration else load.requests_per_level
    if load.rate:
        return [
            LevelPlan(i, "rate", r, max(1, math.ceil(r)) if load.warmup else 0, requests, duration)
            for i, r in enumerate(load.rate)
        ]
    return [
        LevelPlan(i, "concurrency", float(c), c if load.warmup else 0, requests, duration)
        for i, c in enumerate(load.concurrency)
    ]


@dataclass
class LevelOutcome:
    """What the runner knows about a finished level (statistics come later, from the records)."""

    plan: LevelPlan
    started_s: float
    ended_s: float
    sent: int
    loop_lag_ms: list[float] = field(default_factory=list)
    loop_cpu_s: float | None = None  # CPU time of the event-loop thread during the level
    records: list[RequestRecord] = field(default_factory=list)
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        """The level entry of run.json, with the client-bound verdict."""
        queue_ms = [c.queue_s * 1000.0 for r in self.records for c in r.chunks]
        lag_p99 = percentile(self.loop_lag_ms, 99)
        queue_p90 = percentile(queue_ms, 90)
        reasons = []
        if lag_p99 is not None and lag_p99 > CLIENT_BOUND_LAG_P99_MS:
            reasons.append(f"event-loop lag p99 {lag_p99:.1f} ms > {CLIENT_BOUND_LAG_P99_MS:g} ms")
        if queue_p90 is not None and queue_p90 > CLIENT_BOUND_DECODE_QUEUE_P90_MS:
            reasons.append(f"decode queue wait p90 {queue_p90:.1f} ms > {CLIENT_BOUND_DECODE_QUEUE_P90_MS:g} ms")
        return {
            "index": self.plan.index,
            "level": self.plan.level,
            "label": self.plan.label,
            "kind": self.plan.kind,
            "value": self.plan.value,
            "warmup": self.plan.warmup,
            "started_s": self.started_s,
            "ended_s": self.ended_s,
            "sent": self.sent,
            "interrupted": self.interrupted,
            "client_bound": bool(reasons),
            "client_bound_reasons": reasons,
            "client": {
                "loop_lag_p50_ms": percentile(self.loop_lag_ms, 50),
                "loop_lag_p99_ms": lag_p99,
                "loop_lag_max_ms": max(self.loop_lag_ms) if self.loop_lag_ms else None,
                # Tells "this process was busy" (high share) from "the machine was busy" (lag with a low share).
                "loop_cpu_share": (
                    self.loop_cpu_s / (self.ended_s - self.started_s)
                    if self.loop_cpu_s is not None and self.ended_s > self.started_s
                    else None
                ),
                "decode_queue_p90_ms": queue_p90,
                "decode_queue_p99_ms": percentile(queue_ms, 99),
            },
        }
