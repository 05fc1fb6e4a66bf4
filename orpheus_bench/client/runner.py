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
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.client.aiohttp_driver import PcmCollector, execute
from orpheus_bench.client.loop_monitor import LoopLagMonitor
from orpheus_bench.levels import LevelOutcome, LevelPlan, plan_levels
from orpheus_bench.prompts import Prompt
from orpheus_bench.records import RequestRecord
from orpheus_bench.scenario import Load
from orpheus_bench.sinks import RecordSink
from orpheus_bench.target import Target


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
