"""Load levels, shared by every driver: the plan of a level, what the driver knows when it ends, and its verdict.

`plan_levels` turns a scenario's `Load` into `LevelPlan`s (closed-loop concurrency or open-loop rate);
`LevelOutcome.summary` is a level's run.json entry, with the client-bound verdict judged against
`orpheus_bench.limits`. A lagging event loop is told apart from a busy one: the loop thread's CPU share and its
run-queue wait (how long it was ready but got no core) say whether the harness was busy or the machine gave it no
core, and the reason says which. A level spread over several client processes (``client.processes``) lists each
process's health and is judged by its worst process.

The aiohttp runner and the Locust level controller both build their summaries here, so
run.json's ``levels`` read the same whoever drove the load. Pure: no I/O, no event loop, no gevent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orpheus_bench.limits import (
    CLIENT_BOUND_DECODE_QUEUE_P90_MS,
    CLIENT_BOUND_LAG_P99_MS,
    LOOP_BUSY_CPU_SHARE,
    LOOP_STARVED_WAIT_SHARE,
)
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
class ProcessHealth:
    """One client process's event loop over a level (the parent's, or one worker process's)."""

    name: str  # "main" (the only process), "parent", or "worker N"
    pid: int
    wall_s: float
    loop_lag_ms: list[float] = field(default_factory=list)
    loop_cpu_s: float | None = None  # CPU time of the event-loop thread
    loop_wait_s: float | None = None  # the loop thread's run-queue wait (ready, no core); Linux schedstat
    sent: int = 0  # requests this process sent in the level
    exit: str | None = None  # a worker process that died during the level: how it ended

    @property
    def lag_p99_ms(self) -> float | None:
        """p99 of the lag samples."""
        return percentile(self.loop_lag_ms, 99)

    @property
    def cpu_share(self) -> float | None:
        """Share of one core the loop thread used."""
        return self.loop_cpu_s / self.wall_s if self.loop_cpu_s is not None and self.wall_s > 0 else None

    @property
    def wait_share(self) -> float | None:
        """Share of the level the loop thread was runnable but waited for a core."""
        return self.loop_wait_s / self.wall_s if self.loop_wait_s is not None and self.wall_s > 0 else None

    def lag_cause(self) -> tuple[str, str]:
        """Why the loop lagged: (``harness_busy`` | ``machine_busy`` | ``blocked``, words for the reason)."""
        cpu, wait = self.cpu_share, self.wait_share
        used = f"its loop thread used {cpu:.0%} of a core" if cpu is not None else "loop CPU unknown"
        waited = f", waited {wait:.0%} of the level for one" if wait is not None else ""
        if cpu is not None and cpu >= LOOP_BUSY_CPU_SHARE:
            return "harness_busy", f"the harness was busy: {used}{waited}"
        if wait is None or wait >= LOOP_STARVED_WAIT_SHARE:
            # Without schedstat, a lagging loop far below a full core can only have been waiting for one.
            return "machine_busy", f"the machine gave it no core: {used}{waited}"
        return "blocked", f"neither busy nor short of a core ({used}{waited}): a blocking call on the loop?"

    def to_dict(self) -> dict[str, Any]:
        """This process's entry in a level summary."""
        lag = self.loop_lag_ms
        return {
            "name": self.name,
            "pid": self.pid,
            "sent": self.sent,
            "loop_lag_p50_ms": percentile(lag, 50),
            "loop_lag_p99_ms": percentile(lag, 99),
            "loop_lag_max_ms": max(lag) if lag else None,
            "loop_cpu_share": self.cpu_share,
            "loop_wait_share": self.wait_share,
            "exit": self.exit,
        }


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
    loop_wait_s: float | None = None  # run-queue wait of the event-loop thread (Linux schedstat)
    processes: list[ProcessHealth] = field(default_factory=list)  # several client processes: one entry each
    decode_services: list[dict[str, Any]] = field(default_factory=list)  # each worker process's decode stats

    def health(self) -> list[ProcessHealth]:
        """Every client process of the level; one ("main") when the level ran in this process alone."""
        if self.processes:
            return self.processes
        main = ProcessHealth("main", 0, self.ended_s - self.started_s, self.loop_lag_ms, self.loop_cpu_s)
        main.loop_wait_s = self.loop_wait_s
        main.sent = self.sent
        return [main]

    def summary(self) -> dict[str, Any]:
        """The level entry of run.json, with the client-bound verdict."""
        queue_ms = [c.queue_s * 1000.0 for r in self.records for c in r.chunks]
        queue_p90 = percentile(queue_ms, 90)
        procs = self.health()
        # The worst process sets the level's lag: one saturated process makes its streams' timestamps late.
        worst = max(procs, key=lambda p: -1.0 if p.lag_p99_ms is None else p.lag_p99_ms)
        lag_p99 = worst.lag_p99_ms
        reasons = []
        cause = None
        for p in procs:
            p99 = p.lag_p99_ms
            if p99 is not None and p99 > CLIENT_BOUND_LAG_P99_MS:
                kind, words = p.lag_cause()
                cause = cause or kind
                where = "" if len(procs) == 1 else f" in {p.name}"
                reasons.append(f"event-loop lag p99 {p99:.1f} ms > {CLIENT_BOUND_LAG_P99_MS:g} ms{where} ({words})")
        if queue_p90 is not None and queue_p90 > CLIENT_BOUND_DECODE_QUEUE_P90_MS:
            reasons.append(f"decode queue wait p90 {queue_p90:.1f} ms > {CLIENT_BOUND_DECODE_QUEUE_P90_MS:g} ms")
        client: dict[str, Any] = {
            "loop_lag_p50_ms": percentile(worst.loop_lag_ms, 50),
            "loop_lag_p99_ms": lag_p99,
            "loop_lag_max_ms": max(worst.loop_lag_ms) if worst.loop_lag_ms else None,
            # Tells "this process was busy" (high share) from "the machine was busy" (lag with a low share).
            "loop_cpu_share": worst.cpu_share,
            "loop_wait_share": worst.wait_share,
            "loop_lag_cause": cause,
            "decode_queue_p90_ms": queue_p90,
            "decode_queue_p99_ms": percentile(queue_ms, 99),
        }
        if self.processes:
            client["worst_process"] = worst.name
            client["processes"] = [p.to_dict() for p in procs]
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
            "client": client,
        }
