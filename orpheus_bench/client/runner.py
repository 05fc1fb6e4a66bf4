"""The sweep: levels of closed-loop concurrency or open-loop arrival rate, one record per request.

Closed loop: N workers each send their next request when the last one ends; the first N requests of a level are
warmup (``warmup=True`` in their records, excluded from stats). Open loop: arrivals follow a Poisson process (or
gamma with shape ``burstiness``) at the level's rate; each record keeps its scheduled time, so time spent waiting
for a free in-flight slot on the client is visible (``send_delay_s``) instead of hidden.

The runner owns the level plan, the counters that number requests and mark warmup, and the arrival schedule; it
owns no parsing and no statistics. What it wants sent is a `Ticket`; a sender sends it and hands back exactly one
record: `LocalSender` in this process (the stream transport or aiohttp, see `stream_driver` / `aiohttp_driver`),
or `client.processes.WorkerProcesses`, which spreads tickets over worker processes. Records go to the run's sink as
each request ends, and each level's client health (event-loop lag, its cause, decode queue wait) goes into its
level summary.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.client import aiohttp_driver, stream_driver
from orpheus_bench.client.decoding import PcmCollector
from orpheus_bench.client.loop_monitor import LoopLagMonitor, ThreadClock
from orpheus_bench.levels import LevelOutcome, LevelPlan, ProcessHealth, plan_levels
from orpheus_bench.prompts import Prompt
from orpheus_bench.records import RequestRecord
from orpheus_bench.scenario import Load
from orpheus_bench.sinks import RecordSink
from orpheus_bench.target import Target

TRANSPORTS = ("stream", "aiohttp")
OnRecord = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True)
class Ticket:
    """One request the sweep wants sent: everything its record needs that the sender cannot know."""

    level: int
    label: str
    worker: int
    seq: int
    warmup: bool
    prompt: Prompt
    scheduled: float | None = None  # open loop: when it should be sent, on the run clock
    keep_audio: bool = False  # keep its PCM as a sample WAV

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a worker process)."""
        d = {k: getattr(self, k) for k in self.__slots__}
        d["prompt"] = {"id": self.prompt.id, "text": self.prompt.text}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ticket:
        """Inverse of `to_dict`."""
        return cls(**{**d, "prompt": Prompt(d["prompt"]["id"], d["prompt"]["text"])})


class RequestSender(Protocol):
    """Sends tickets; `send` calls ``done`` with the request's record exactly once, whatever happens."""

    async def open(self) -> None:
        """Connections, processes: whatever sending needs, before the first level."""

    async def send(self, ticket: Ticket, done: OnRecord) -> None:
        """Send one request; cancellation still calls ``done`` (with a cancelled record) before it propagates."""

    async def level_started(self) -> None:
        """A level begins (worker processes restart their health counters)."""

    async def level_ended(self, outcome: LevelOutcome, main: ProcessHealth) -> None:
        """A level ended; ``main`` is this process's health. Worker processes add theirs to ``outcome``."""

    async def close(self) -> None:
        """Release everything; idempotent."""


class LocalSender:
    """Sends requests from this process's event loop (the only sender with ``client.processes: 1``)."""

    def __init__(
        self,
        target: Target,
        decoder: DecodeService,
        *,
        transport: str = "stream",
        clock: Callable[[], float] = time.perf_counter,
        origin: float,
        connector_limit: int = 0,
        on_audio: Callable[[RequestRecord, Any], None] | None = None,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        self.target = target
        self.decoder = decoder
        self.transport = transport
        self.clock = clock
        self.origin = origin
        self.connector_limit = connector_limit
        self.on_audio = on_audio
        self._session: aiohttp.ClientSession | None = None
        self._pool: stream_driver.StreamPool | None = None

    async def open(self) -> None:
        """The aiohttp session or the stream transport's connection pool."""
        if self.transport == "aiohttp":
            connector = aiohttp.TCPConnector(limit=self.connector_limit, force_close=False, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        else:
            self._pool = stream_driver.StreamPool(self.target.base_url, connect_timeout_s=self.target.connect_timeout_s)

    async def send(self, ticket: Ticket, done: OnRecord) -> None:
        """One request, one record."""
        collect = PcmCollector() if ticket.keep_audio else None
        t0 = self.clock()
        record = self.target.new_record(
            ticket.prompt,
            level=ticket.level,
            worker=ticket.worker,
            seq=ticket.seq,
            warmup=ticket.warmup,
            driver=self.transport,  # the asyncio runner records which HTTP transport carried it
            wall_start=time.time(),
            run_offset_s=t0 - self.origin,
            level_label=ticket.label,
            scheduled_offset_s=ticket.scheduled,
        )
        body = self.target.body(ticket.prompt)
        try:
            if self._pool is not None:
                await stream_driver.execute(
                    self._pool, self.target, record, body, self.decoder, clock=self.clock, t0=t0, collect=collect
                )
            else:
                assert self._session is not None, "LocalSender.open() was not called"
                await aiohttp_driver.execute(
                    self._session, self.target, record, body, self.decoder, clock=self.clock, t0=t0, collect=collect
                )
        finally:
            # Whatever happened (cancel included), the request leaves exactly one record.
            if collect is not None and self.on_audio is not None and record.pcm_samples:
                try:
                    self.on_audio(record, collect.pcm())  # may name the WAV in record.extra
                except OSError as exc:
                    record.extra["audio_error"] = str(exc)
            done(record)

    async def level_started(self) -> None:
        """Nothing: this process's health is measured by the runner."""

    async def level_ended(self, outcome: LevelOutcome, main: ProcessHealth) -> None:
        """Nothing to add: the level ran in this process alone."""

    async def close(self) -> None:
        """Close the session or the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None


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
        transport: str = "stream",
        sender: RequestSender | None = None,
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
        self.on_level_start = on_level_start
        self.on_record = on_record
        self.on_level_end = on_level_end
        self.clock = clock
        self.origin = clock() if origin is None else origin
        self.wall_origin = time.time()
        self.levels: list[LevelOutcome] = []
        self.sender: RequestSender = sender or LocalSender(
            target,
            decoder,
            transport=transport,
            clock=clock,
            origin=self.origin,
            connector_limit=connector_limit,
            on_audio=on_audio,
        )

    def run_clock(self) -> float:
        """Seconds since the runner was created (the run clock of every record)."""
        return self.clock() - self.origin

    async def run(self) -> list[LevelOutcome]:
        """Run all levels in order; on cancellation the current level's in-flight requests are recorded."""
        monitor = LoopLagMonitor()
        monitor.start()
        try:
            await self.sender.open()
            for plan in plan_levels(self.load):
                if self.on_level_start:
                    self.on_level_start(plan)
                outcome = LevelOutcome(plan, self.run_clock(), 0.0, 0)
                self.levels.append(outcome)
                monitor.take()
                thread0 = ThreadClock.sample()
                await self.sender.level_started()
                try:
                    if plan.kind == "concurrency":
                        await self._closed(plan, outcome)
                    else:
                        await self._open(plan, outcome)
                except asyncio.CancelledError:
                    outcome.interrupted = True
                    raise
                finally:
                    outcome.ended_s = self.run_clock()
                    outcome.loop_lag_ms = monitor.take()
                    used = ThreadClock.sample().since(thread0)
                    outcome.loop_cpu_s, outcome.loop_wait_s = used.cpu_s, used.wait_s
                    main = ProcessHealth(
                        "main", os.getpid(), outcome.ended_s - outcome.started_s, outcome.loop_lag_ms, used.cpu_s
                    )
                    main.loop_wait_s, main.sent = used.wait_s, outcome.sent
                    await self.sender.level_ended(outcome, main)
                    self.sink.level_done(plan.level)
                    if self.on_level_end:
                        self.on_level_end(outcome)
        finally:
            try:
                await self.sender.close()
            finally:
                await monitor.stop()
        return self.levels

    # ---- one request ---------------------------------------------------------------------------------
    async def _one(
        self,
        plan: LevelPlan,
        outcome: LevelOutcome,
        worker: int,
        seq: int,
        scheduled: float | None = None,
    ) -> None:
        keep = self.keep_audio > 0 and seq >= plan.warmup and seq < plan.warmup + self.keep_audio
        ticket = Ticket(
            level=plan.level,
            label=plan.label,
            worker=worker,
            seq=seq,
            warmup=seq < plan.warmup,
            prompt=self.prompts[seq % len(self.prompts)],
            scheduled=scheduled,
            keep_audio=keep,
        )
        outcome.sent += 1

        def done(record: RequestRecord) -> None:
            outcome.records.append(record)
            self.sink.emit(record)
            if self.on_record:
                self.on_record(record)

        await self.sender.send(ticket, done)

    # ---- closed loop -------------------------------------------------------------------------------------
    async def _closed(self, plan: LevelPlan, outcome: LevelOutcome) -> None:
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
                await self._one(plan, outcome, w, seq)

        tasks = [asyncio.ensure_future(worker(w)) for w in range(int(plan.value))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # ---- open loop ---------------------------------------------------------------------------------------
    async def _open(self, plan: LevelPlan, outcome: LevelOutcome) -> None:
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
                await self._one(plan, outcome, seq % max(1, self.load.max_inflight), seq, scheduled)

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
