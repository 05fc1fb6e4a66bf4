"""The sweep: levels of closed-loop concurrency or open-loop arrival rate, one record per request.

Closed loop: N workers each send their next request when the last one ends; the first N requests of a level are
warmup (``warmup=True`` in their records, excluded from stats). Open loop: arrivals follow a Poisson process (or
gamma with shape ``burstiness``) at the level's rate; each record keeps its scheduled time, so time spent waiting
for a free in-flight slot on the client is visible (``send_delay_s``) instead of hidden.

The runner owns no parsing and no statistics: requests go through `aiohttp_driver.execute`, records go to the
run's sink as each request ends, and each level's client health (event-loop lag, decode queue wait) goes into its
level summary.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.client.aiohttp_driver import PcmCollector, execute
from orpheus_bench.client.loop_monitor import (
    CLIENT_BOUND_DECODE_QUEUE_P90_MS,
    CLIENT_BOUND_LAG_P99_MS,
    LoopLagMonitor,
    decode_backlogged,
)
from orpheus_bench.client.target import Target
from orpheus_bench.prompts import Prompt
from orpheus_bench.records import RequestRecord
from orpheus_bench.results.stats import percentile
from orpheus_bench.scenario import Load
from orpheus_bench.sinks import RecordSink


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


class SweepRunner:
    """Runs every level of a load against one target."""

    def __init__(
        self,
        target: Target,
        prompts: list[Prompt],
        decoder: DecodeService,
        sink: RecordSink,
        load: Load,
        *,
        keep_audio: int = 0,
        on_audio: Callable[[RequestRecord, Any], None] | None = None,
        on_level_start: Callable[[LevelPlan], None] | None = None,
        on_record: Callable[[RequestRecord], None] | None = None,
        on_level_end: Callable[[LevelOutcome], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        connector_limit: int = 0,
        origin: float | None = None,
    ) -> None:
        if not prompts:
            raise ValueError("no prompts")
        self.target = target
        self.prompts = list(prompts)
        random.Random(load.seed).shuffle(self.prompts)
        self.decoder = decoder
        self.sink = sink
        self.load = load
        self.keep_audio = keep_audio
        self.on_audio = on_audio
        self.on_level_start = on_level_start
        self.on_record = on_record
        self.on_level_end = on_level_end
        self.clock = clock
        self.connector_limit = connector_limit
        self.origin = clock() if origin is None else origin
        self.wall_origin = time.time()
        self.levels: list[LevelOutcome] = []

    def run_clock(self) -> float:
        """Seconds since the runner was created (the run clock of every record)."""
        return self.clock() - self.origin

    async def run(self) -> list[LevelOutcome]:
        """Run all levels in order; on cancellation the current level's in-flight requests are recorded."""
        connector = aiohttp.TCPConnector(limit=self.connector_limit, force_close=False, enable_cleanup_closed=True)
        monitor = LoopLagMonitor()
        monitor.start()
        try:
            async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
                for plan in plan_levels(self.load):
                    if self.on_level_start:
                        self.on_level_start(plan)
                    outcome = LevelOutcome(plan, self.run_clock(), 0.0, 0)
                    self.levels.append(outcome)
                    monitor.take()
                    cpu0 = time.thread_time()
                    try:
                        if plan.kind == "concurrency":
                            await self._closed(session, plan, outcome)
                        else:
                            await self._open(session, plan, outcome)
                    except asyncio.CancelledError:
                        outcome.interrupted = True
                        raise
                    finally:
                        outcome.ended_s = self.run_clock()
                        outcome.loop_lag_ms = monitor.take()
                        outcome.loop_cpu_s = time.thread_time() - cpu0
                        self.sink.level_done(plan.level)
                        if self.on_level_end:
                            self.on_level_end(outcome)
        finally:
            await monitor.stop()
        return self.levels

    # ---- one request ---------------------------------------------------------------------------------
    async def _one(
        self,
        session: aiohttp.ClientSession,
        plan: LevelPlan,
        outcome: LevelOutcome,
        worker: int,
        seq: int,
        scheduled: float | None = None,
    ) -> None:
        prompt = self.prompts[seq % len(self.prompts)]
        keep = self.keep_audio > 0 and seq >= plan.warmup and seq < plan.warmup + self.keep_audio
        collect = PcmCollector() if keep else None
        t0 = self.clock()
        record = self.target.new_record(
            prompt,
            level=plan.level,
            worker=worker,
            seq=seq,
            warmup=seq < plan.warmup,
            driver="aiohttp",
            wall_start=time.time(),
            run_offset_s=t0 - self.origin,
            level_label=plan.label,
            scheduled_offset_s=scheduled,
        )
        outcome.sent += 1
        try:
            await execute(
                session,
                self.target,
                record,
                self.target.body(prompt),
                self.decoder,
                clock=self.clock,
                t0=t0,
                collect=collect,
            )
        finally:
            record.client_bound = decode_backlogged(record)
            # Whatever happened (cancel included), the request leaves exactly one record.
            if collect is not None and self.on_audio is not None and record.pcm_samples:
                try:
                    self.on_audio(record, collect.pcm())  # may name the WAV in record.extra
                except OSError as exc:
                    record.extra["audio_error"] = str(exc)
            outcome.records.append(record)
            self.sink.emit(record)
            if self.on_record:
                self.on_record(record)

    # ---- closed loop -------------------------------------------------------------------------------------
    async def _closed(self, session: aiohttp.ClientSession, plan: LevelPlan, outcome: LevelOutcome) -> None:
        counter = itertools.count()
        total = None if plan.requests is None else plan.warmup + plan.requests
        deadline = None if plan.duration_s is None else self.run_clock() + plan.duration_s

        async def worker(w: int) -> None:
            while True:
                seq = next(counter)
                if total is not None and seq >= total:
                    return
                if deadline is not None and seq >= plan.warmup and self.run_clock() >= deadline:
                    return
                await self._one(session, plan, outcome, w, seq)

        tasks = [asyncio.ensure_future(worker(w)) for w in range(int(plan.value))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # ---- open loop ---------------------------------------------------------------------------------------
    async def _open(self, session: aiohttp.ClientSession, plan: LevelPlan, outcome: LevelOutcome) -> None:
        rng = random.Random(self.load.seed * 1000 + plan.index)
        shape = self.load.burstiness
        scale = 1.0 / (plan.value * shape)
        limit = asyncio.Semaphore(self.load.max_inflight)
        total = None if plan.requests is None else plan.warmup + plan.requests
        start = self.run_clock()
        deadline = None if plan.duration_s is None else start + plan.duration_s
        tasks: list[asyncio.Future[None]] = []

        async def fire(seq: int, scheduled: float) -> None:
            async with limit:
                await self._one(session, plan, outcome, seq % max(1, self.load.max_inflight), seq, scheduled)

        t_next = start
        try:
            for seq in itertools.count():
                if total is not None and seq >= total:
                    break
                if deadline is not None and seq >= plan.warmup and t_next >= deadline:
                    break
                delay = t_next - self.run_clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(fire(seq, t_next)))
                t_next += rng.gammavariate(shape, scale)
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
