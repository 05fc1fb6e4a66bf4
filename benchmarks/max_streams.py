"""Max streams: how many ~85 tokens/s streams the client drives with event-loop lag p99 under 5 ms, per process.

Decode off (counting tokens is what the client must always do; decoding is measured elsewhere). One simulator
process (separate from the client, no prefill, every stream paced at ``--tokens-per-s``) serves a ramp of
closed-loop levels through the real harness (`SweepRunner` -> `aiohttp_driver.execute` -> `RequestPipeline`).
Streams of one level start together and, like llama-server's continuous batching, emit their tokens in the
same step: the client sees bursts of N events every 1/85 s, the harsh but realistic case.

Per level, after ``--settle-s`` (connections up, first requests streaming) and until the level's deadline,
a `LoopLagMonitor` sampling every ``--lag-interval-ms`` (finer than the harness's 50 ms, for a usable p99)
measures how late the event loop wakes up. A level holds when

- loop lag p99 < ``--lag-p99-ms`` (5 ms), and
- the median stream received at least ``--min-rate`` (95 %) of the asked pace: a client (or simulator) that
  falls behind delivers fewer tokens per second, which lowers its own load and would otherwise pass.

A failing level is run once more (``--retries``): the box is shared and one unlucky scheduling burst should not
end the ramp. The ramp stops at the first level that fails twice; the largest level that held is printed.
Level 0 (no streams) shows the noise floor of the loop on this machine.

Paths (issue 16): ``--paths`` lists the client variants to ramp in the same run, side by side, as
``TRANSPORT[xPROCESSES]``: ``aiohttp`` (the path before issue 16: aiohttp, one ``readany()`` per HTTP chunk),
``stream`` (the stream transport: bytes parsed in the protocol callback), ``stream x2`` (the same spread over two
worker processes by `client.processes.WorkerProcesses`, as ``orpheus-bench run --processes 2`` does). With
several processes, each worker samples its own loop at ``--lag-interval-ms``; a level holds only when every
process (the parent included) stays under the bound, and the table shows streams per process and in total.
Client CPU is the parent plus its worker processes (``/proc/<pid>/stat``); the simulator's is the rest of the
children. ``worst loop CPU / wait %`` is the worst process's event-loop thread in the measurement window: the
share of a core it used and the share of the time it was ready to run but waited for a core (Linux schedstat),
the harness's own way of telling "the harness was busy" from "the machine gave it no core".
``--cpu-streams`` measures CPU per token of every path at the same stream counts (16 and 64), and
``--breakdown`` splits it for the one-process paths: full harness, harness with parsing replaced by counting,
and the bare transport (aiohttp ``readany`` loop, or an asyncio protocol that only counts).

About 700 lines, one script on purpose: it is one experiment (ramps, CPU pairs, breakdowns, bare-transport floors)
whose parts share its measurement helpers; splitting it would only move them into a module nobody else uses.

Usage: ``python benchmarks/max_streams.py [--levels 16,32,64,128,192,256,384,512] [--duration-s 8]
[--paths aiohttp,stream,stream x2] [--processes 2]`` (``--processes N`` adds ``stream xN`` to the paths).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from harness_overhead import (
    REAL_TIME_TOKENS_PER_S,
    CpuMeter,
    NullSink,
    fmt,
    loop_description,
    machine_line,
    print_table,
    run_async,
    scenario_for,
)

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.client.loop_monitor import LoopLagMonitor, ThreadClock
from orpheus_bench.client.processes import WorkerProcesses
from orpheus_bench.client.runner import SweepRunner
from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.levels import LevelOutcome, ProcessHealth
from orpheus_bench.measures.stats import percentile
from orpheus_bench.records import RequestRecord, Status
from orpheus_bench.scenario import ClientSettings
from orpheus_bench.sim import SimConfig, run_simulator_in_subprocess
from orpheus_bench.target import Target

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ClientPath:
    """One client variant: its HTTP transport and how many worker processes it uses (1 = in this process)."""

    transport: str
    processes: int = 1

    @property
    def label(self) -> str:
        """``stream``, ``stream x2``..."""
        return self.transport if self.processes == 1 else f"{self.transport} x{self.processes}"

    @classmethod
    def parse(cls, text: str) -> ClientPath:
        """``aiohttp``, ``stream``, ``stream x2``, ``streamx2``."""
        name, _, n = text.replace(" ", "").partition("x")
        if name not in ("aiohttp", "stream") or (n and not n.isdigit()):
            raise ValueError(f"bad path {text!r}: TRANSPORT[xPROCESSES], TRANSPORT aiohttp or stream")
        return cls(name, int(n) if n else 1)


def pid_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) of these processes so far (Linux /proc; 0 where unreadable)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class KeptWorkers(WorkerProcesses):
    """Worker processes that outlive one level: the ramp starts them once, each level's runner only uses them."""

    async def close(self) -> None:
        """Kept open for the next level (`shutdown` ends them)."""

    async def shutdown(self) -> None:
        """End the workers."""
        await WorkerProcesses.close(self)


@dataclass
class RampLevel:
    """One level of the ramp."""

    streams: int
    ok: int
    failed: int
    rates: list[float]  # client-observed tokens/s per measured request
    lag_ms: list[float]  # fine-grained loop lag samples of the worst process in the measurement window
    harness_lag_p99_ms: float | None  # the runner's own 50 ms monitor, as run.json reports it (worst process)
    client_bound: bool  # the runner's verdict
    client_cpu_pct: float
    sim_cpu_pct: float | None
    tokens: int = 0  # tokens the client received over the whole level, warmup included
    level_cpu_s: float = 0.0  # client CPU seconds over the whole level (parent and worker processes)
    level_wall_s: float = 0.0  # the whole level's wall time
    processes: int = 1
    process_lag_p99_ms: list[float | None] = field(default_factory=list)  # per worker process (x2, x4...)
    cause: str | None = None  # the summary's loop_lag_cause when it flagged the level
    loop_cpu_pct: float | None = None  # the worst process's loop thread, in the measurement window
    loop_wait_pct: float | None = None  # ...and its run-queue wait (ready, no core), percent of the window

    def median_rate(self) -> float | None:
        """Median per-stream token rate the client saw."""
        return statistics.median(self.rates) if self.rates else None

    @property
    def lag_p99_ms(self) -> float | None:
        """p99 of the fine-grained lag samples (the worst process)."""
        return percentile(self.lag_ms, 99)

    @property
    def cpu_us_per_token(self) -> float | None:
        """Client CPU per received token (HTTP, event loop, pipeline, records), microseconds."""
        return 1e6 * self.level_cpu_s / self.tokens if self.tokens else None

    def holds(self, lag_limit_ms: float, min_rate: float) -> bool:
        """Lag p99 under ``lag_limit_ms`` and the median stream at pace."""
        p99 = self.lag_p99_ms
        rate = self.median_rate()
        lag_ok = p99 is not None and p99 < lag_limit_ms
        return lag_ok and (self.streams == 0 or (rate is not None and rate >= min_rate))


async def idle_level(args: argparse.Namespace) -> RampLevel:
    """No streams: the loop lag this machine gives an idle event loop (its noise floor)."""
    monitor = LoopLagMonitor(args.lag_interval_ms / 1000.0)
    meter = CpuMeter()
    meter.start()
    monitor.start()
    await asyncio.sleep(max(1.0, args.duration_s - args.settle_s))
    lag = monitor.take()
    await monitor.stop()
    cpu = meter.stop()
    return RampLevel(
        0, 0, 0, [], lag, None, False, cpu.client_pct, cpu.sim_pct, 0, cpu.client_pct / 100.0 * cpu.wall_s, cpu.wall_s
    )


async def start_workers(url: str, path: ClientPath, args: argparse.Namespace) -> KeptWorkers | None:
    """The worker processes of a multi-process path (None for one process)."""
    if path.processes == 1:
        return None
    sc = scenario_for(url, 1, 1, "off", warmup=True, duration_s=args.duration_s)
    sc = sc.model_copy(update={"client": ClientSettings(processes=path.processes, transport=path.transport)})
    workers = KeptWorkers(
        path.processes,
        sc,
        Target.from_scenario(sc),
        origin=time.monotonic(),
        clock=time.monotonic,
        lag_interval_s=args.lag_interval_ms / 1000.0,
    )
    await workers.open()
    return workers


async def run_level(
    url: str,
    streams: int,
    args: argparse.Namespace,
    path: ClientPath,
    workers: KeptWorkers | None = None,
    target_cls: type[Target] = Target,
) -> RampLevel:
    """One closed-loop level of ``streams`` workers for ``--duration-s``, lag sampled after ``--settle-s``."""
    sc = scenario_for(url, streams, 1, "off", warmup=True, duration_s=args.duration_s)
    target = target_cls.from_scenario(sc)
    origin = time.monotonic()
    if workers is not None:
        workers.origin = origin
    runner = SweepRunner(
        target,
        sc.prompts.load(),
        args.service,
        NullSink(),
        sc.load,
        clock=time.monotonic,
        origin=origin,
        transport=path.transport,
        sender=workers,
    )
    pids = workers.pids if workers is not None else []
    monitor = LoopLagMonitor(args.lag_interval_ms / 1000.0)
    meter = CpuMeter()
    window: dict[str, object] = {}

    async def measure() -> None:
        await asyncio.sleep(args.settle_s)
        if workers is not None:
            await workers.level_started()  # the workers' samples start now, like this process's
        monitor.start()
        meter.start()
        w0 = pid_cpu_s(pids)
        thread0 = ThreadClock.sample()
        await asyncio.sleep(max(0.5, args.duration_s - args.settle_s))
        window["lag"] = monitor.take()
        window["thread"] = ThreadClock.sample().since(thread0)
        cpu = meter.stop()
        window["wall"] = cpu.wall_s
        w_cpu = pid_cpu_s(pids) - w0
        window["client_pct"] = cpu.client_pct + 100.0 * w_cpu / cpu.wall_s
        window["sim_pct"] = None if cpu.sim_pct is None else cpu.sim_pct - 100.0 * w_cpu / cpu.wall_s
        if workers is not None:
            window["health"], _ = await workers.health(cpu.wall_s)
        await monitor.stop()

    sampler = asyncio.ensure_future(measure())
    whole = CpuMeter()
    whole.start()
    whole_w0 = pid_cpu_s(pids)
    try:
        await runner.run()
    finally:
        await sampler
    level_cpu = whole.stop()
    level_cpu_s = level_cpu.client_pct / 100.0 * level_cpu.wall_s + pid_cpu_s(pids) - whole_w0
    outcome: LevelOutcome = runner.levels[0]
    summary = outcome.summary()
    lag: list[float] = list(window["lag"])  # type: ignore[call-overload]
    thread: ThreadClock = window["thread"]  # type: ignore[assignment]
    wall = float(window["wall"])  # type: ignore[arg-type]
    loop_cpu = 100.0 * thread.cpu_s / wall
    loop_wait = None if thread.wait_s is None else 100.0 * thread.wait_s / wall
    per_process: list[float | None] = []
    health: list[ProcessHealth] = list(window.get("health") or [])  # type: ignore[call-overload]
    for h in health:
        per_process.append(h.lag_p99_ms)
        if (h.lag_p99_ms or 0.0) > (percentile(lag, 99) or 0.0):
            lag = h.loop_lag_ms  # the worst process decides, and its loop's CPU and wait say why
            loop_cpu = 100.0 * (h.cpu_share or 0.0)
            loop_wait = None if h.wait_share is None else 100.0 * h.wait_share
    rates = []
    ok = failed = 0
    for rec in outcome.records:
        if rec.warmup:
            continue
        if rec.status is not Status.OK:
            failed += 1
            continue
        ok += 1
        if rec.t_first_token_s is not None and rec.t_last_token_s is not None and rec.tokens_generated > 1:
            span = rec.t_last_token_s - rec.t_first_token_s
            if span > 0:
                rates.append((rec.tokens_generated - 1) / span)
    return RampLevel(
        streams=streams,
        ok=ok,
        failed=failed,
        rates=rates,
        lag_ms=lag,
        harness_lag_p99_ms=summary["client"]["loop_lag_p99_ms"],
        client_bound=bool(summary["client_bound"]),
        client_cpu_pct=float(window["client_pct"]),  # type: ignore[arg-type]
        sim_cpu_pct=window["sim_pct"],  # type: ignore[arg-type]
        tokens=sum(r.tokens_generated for r in outcome.records),
        level_cpu_s=level_cpu_s,
        level_wall_s=level_cpu.wall_s,
        processes=path.processes,
        process_lag_p99_ms=per_process,
        cause=summary["client"].get("loop_lag_cause"),
        loop_cpu_pct=loop_cpu,
        loop_wait_pct=loop_wait,
    )


def row(level: RampLevel, verdict: str, args: argparse.Namespace, path: ClientPath | None) -> list[str]:
    """One table row."""
    rate = level.median_rate()
    low = min(level.rates) if level.rates else None
    lag = level.lag_ms
    per = "-"
    if level.process_lag_p99_ms:
        per = " / ".join(fmt(x) for x in level.process_lag_p99_ms)
    return [
        path.label if path else "-",
        str(level.streams),
        f"{level.streams / level.processes:g}" if level.streams else "-",
        f"{level.ok}/{level.ok + level.failed}" if level.streams else "-",
        f"{fmt(rate, 1)} ({100 * rate / args.tokens_per_s:.0f}%)" if rate else "-",
        fmt(low, 1),
        f"{fmt(percentile(lag, 50))} / {fmt(percentile(lag, 99))} / {fmt(max(lag) if lag else None)}",
        per,
        f"{fmt(level.loop_cpu_pct, 0)} / {fmt(level.loop_wait_pct, 0)}",
        fmt(level.harness_lag_p99_ms, 1),
        ("yes" + (f" ({level.cause})" if level.cause else "")) if level.client_bound else "no",
        f"{level.client_cpu_pct:.0f}",
        fmt(level.sim_cpu_pct, 0),
        f"{level.streams * (rate or 0):,.0f}",
        fmt(level.cpu_us_per_token, 1),
        verdict,
    ]


@dataclass
class RampAnswer:
    """One path's ramp: its rows and its answers under the strict and the noise-adjusted lag limit."""

    path: ClientPath
    rows: list[list[str]]
    idle_p99_ms: float | None
    adjusted_limit_ms: float
    best_strict: int | None = None
    best_adjusted: int | None = None
    levels: list[RampLevel] = field(default_factory=list)

    def marginal_us_per_token(self) -> float | None:
        """Least-squares slope of client CPU against token rate over all levels (idle included), in us/token.

        The slope leaves out fixed costs (lag samplers, timers) that inflate CPU per token at small levels.
        """
        pts = [(lv.tokens / lv.level_wall_s, lv.level_cpu_s / lv.level_wall_s) for lv in self.levels if lv.level_wall_s]
        if len({x for x, _ in pts}) < 2:
            return None
        mx = statistics.fmean(x for x, _ in pts)
        my = statistics.fmean(y for _, y in pts)
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        sxy = sum((x - mx) * (y - my) for x, y in pts)
        return 1e6 * sxy / sxx


async def ramps(url: str, args: argparse.Namespace, paths: list[ClientPath], idle: RampLevel) -> list[RampAnswer]:
    """Every path's ramp, interleaved level by level, until each fails the noise-adjusted limit twice.

    Interleaved so that a shared machine's load, which drifts over minutes, weighs on every path alike. Strict:
    lag p99 < ``--lag-p99-ms``. Adjusted: lag p99 < ``--lag-p99-ms`` + the idle loop's p99, i.e. what the
    harness adds to the lag this (shared) machine gives any process; on a quiet machine the two agree.
    """
    min_rate = args.min_rate * args.tokens_per_s
    idle_p99 = idle.lag_p99_ms
    answers = [RampAnswer(p, [], idle_p99, args.lag_p99_ms + (idle_p99 or 0.0), levels=[idle]) for p in paths]
    workers = [await start_workers(url, p, args) for p in paths]
    strict_ok = [True] * len(paths)
    active = [True] * len(paths)
    try:
        for n in args.levels:
            for i, (path, answer) in enumerate(zip(paths, answers, strict=True)):
                if not active[i]:
                    continue
                strict = adjusted = False
                for attempt in range(1 + args.retries):
                    print(f"  {path.label}: {n} streams (try {attempt + 1}) ...", end="", flush=True)
                    level = await run_level(url, n, args, path, workers[i])
                    strict = level.holds(args.lag_p99_ms, min_rate)
                    adjusted = level.holds(answer.adjusted_limit_ms, min_rate)
                    verdict = "held" if strict else ("held over noise floor" if adjusted else "failed")
                    print(
                        f" lag p99 {fmt(level.lag_p99_ms)} ms, rate {fmt(level.median_rate(), 1)} tok/s, "
                        f"{fmt(level.cpu_us_per_token, 1)} us CPU/token: {verdict}",
                        flush=True,
                    )
                    answer.rows.append(row(level, verdict, args, path))
                    answer.levels.append(level)
                    if strict:
                        break
                    if adjusted and not strict_ok[i]:
                        break  # strict already failed on a smaller level: one adjusted pass is enough
                if strict and strict_ok[i]:
                    answer.best_strict = n
                else:
                    strict_ok[i] = False
                if adjusted:
                    answer.best_adjusted = n
                else:
                    active[i] = False
            if not any(active):
                break
    finally:
        for w in workers:
            if w is not None:
                await w.shutdown()
    return answers


# ---- where the client's CPU goes --------------------------------------------------------------------------------
class CountingPipeline(RequestPipeline):
    """Counts events and accepts the stream without parsing it: the harness minus the pure pipeline.

    Its records end as ``no_audio`` errors (nothing was parsed); only their token counts are used.
    """

    def feed_bytes(self, chunk: bytes, t: float) -> list[DecodeWindow]:
        """Count the blank lines that end events; parse nothing."""
        rec = self.record
        rec.tokens_generated += chunk.count(b"\n\n")
        if rec.t_first_token_s is None:
            rec.t_first_token_s = t
        rec.t_last_token_s = t
        return []

    def end_of_stream(self, t: float) -> list[DecodeWindow]:
        """Accept the end as final."""
        self.saw_final = True
        return []


@dataclass(frozen=True)
class CountingTarget(Target):
    """A `Target` whose pipelines only count events."""

    def new_pipeline(self, record: RequestRecord) -> RequestPipeline:
        """A `CountingPipeline`."""
        return CountingPipeline(record, protocol=self.protocol, spec=self.spec)


async def bare_aiohttp_us_per_token(url: str, streams: int, duration_s: float) -> tuple[float, int]:
    """Client CPU per event of a bare aiohttp loop (post, readany until EOF, count): the old path's floor."""
    sc = scenario_for(url, streams, 1, "off", warmup=False, duration_s=duration_s)
    target = Target.from_scenario(sc)
    prompt = sc.prompts.load()[0]
    body, headers = target.body(prompt), target.headers()
    tokens = 0
    deadline = time.monotonic() + duration_s
    meter = CpuMeter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False) as session:

        async def worker() -> None:
            nonlocal tokens
            while time.monotonic() < deadline:
                async with session.post(target.url, json=body, headers=headers) as resp:
                    while chunk := await resp.content.readany():
                        tokens += chunk.count(b"\n\n")

        meter.start()
        await asyncio.gather(*(worker() for _ in range(streams)))
        cpu = meter.stop()
    return (1e6 * cpu.client_pct / 100.0 * cpu.wall_s / tokens if tokens else float("nan")), tokens


class _CountingProtocol(asyncio.Protocol):
    """Counts events in ``data_received``; the answer ends at the last chunk (``0\\r\\n\\r\\n``) or the close."""

    def __init__(self) -> None:
        self.events = 0
        self.closed = False
        self.done: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.events += data.count(b"\n\n")
        if data.endswith(b"0\r\n\r\n") and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


async def bare_protocol_us_per_token(url: str, streams: int, duration_s: float) -> tuple[float, int]:
    """Client CPU per event of a bare asyncio protocol (connect, write the request, count): the stream path's floor."""
    sc = scenario_for(url, streams, 1, "off", warmup=False, duration_s=duration_s)
    target = Target.from_scenario(sc)
    payload = json.dumps(target.body(sc.prompts.load()[0])).encode()
    parts = urlsplit(url)
    head = f"POST /completion HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in target.headers().items())
    request = (head + f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
    loop = asyncio.get_running_loop()
    tokens = 0
    deadline = time.monotonic() + duration_s
    meter = CpuMeter()

    async def worker() -> None:
        nonlocal tokens
        transport: Any = None  # asyncio's or uvloop's transport (uvloop's do not subclass asyncio.Transport)
        proto: _CountingProtocol | None = None
        while time.monotonic() < deadline:
            if proto is None or proto.closed:
                transport, proto = await loop.create_connection(_CountingProtocol, parts.hostname, parts.port)
            proto.done = loop.create_future()
            proto.events = 0
            transport.write(request)
            await proto.done
            tokens += proto.events
        if transport is not None:
            transport.close()

    meter.start()
    await asyncio.gather(*(worker() for _ in range(streams)))
    cpu = meter.stop()
    return (1e6 * cpu.client_pct / 100.0 * cpu.wall_s / tokens if tokens else float("nan")), tokens


async def breakdown(url: str, streams: int, args: argparse.Namespace, path: ClientPath) -> list[list[str]]:
    """Client CPU per token at ``streams`` streams for a one-process path: harness, harness counting, bare loop."""
    full = await run_level(url, streams, args, path)
    counting = await run_level(url, streams, args, path, None, CountingTarget)
    if path.transport == "aiohttp":
        bare_name = "bare aiohttp loop (post, readany, count)"
        bare, bare_tokens = await bare_aiohttp_us_per_token(url, streams, args.duration_s)
    else:
        bare_name = "bare asyncio protocol (connect, write, count in data_received)"
        bare, bare_tokens = await bare_protocol_us_per_token(url, streams, args.duration_s)
    rows = []
    base = full.cpu_us_per_token or float("nan")
    for name, us, tokens in [
        ("full harness (SweepRunner, driver, RequestPipeline)", full.cpu_us_per_token, full.tokens),
        ("harness, events counted not parsed", counting.cpu_us_per_token, counting.tokens),
        (bare_name, bare, bare_tokens),
    ]:
        rows.append([path.label, name, f"{tokens:,}", fmt(us, 1), f"{(us or 0) / base:.2f}"])
    return rows


async def cpu_per_token(url: str, args: argparse.Namespace, paths: list[ClientPath]) -> dict[tuple[str, int], float]:
    """Client CPU per token of every path at each ``--cpu-streams`` count, interleaved path by path."""
    out: dict[tuple[str, int], float] = {}
    for n in args.cpu_streams:
        for path in paths:
            workers = await start_workers(url, path, args)
            try:
                level = await run_level(url, n, args, path, workers)
            finally:
                if workers is not None:
                    await workers.shutdown()
            us = level.cpu_us_per_token
            print(f"  cpu/token {path.label} at {n} streams: {fmt(us, 1)} us", flush=True)
            if us is not None:
                out[(path.label, n)] = us
    return out


async def whole(url: str, args: argparse.Namespace) -> tuple[list[RampAnswer], dict[tuple[str, int], float], list]:
    """Idle level, every path's ramp, CPU per token side by side, the breakdowns."""
    idle = await idle_level(args)
    print(f"  idle loop: lag p99 {fmt(idle.lag_p99_ms)} ms", flush=True)
    answers = await ramps(url, args, args.paths, idle)
    cpu = await cpu_per_token(url, args, args.paths) if args.cpu_streams else {}
    split: list[list[str]] = []
    if args.breakdown > 0:
        for path in args.paths:
            if path.processes == 1:
                split += await breakdown(url, args.breakdown, args, path)
    return answers, cpu, split


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, ramp every path, print the tables and the answers."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--levels", default="16,32,64,128,192,256,384,512", help="stream counts to ramp through")
    ap.add_argument(
        "--paths",
        default="aiohttp,stream",
        help="client variants, TRANSPORT[xPROCESSES], comma-separated (default aiohttp,stream)",
    )
    ap.add_argument("--processes", type=int, default=1, help="also ramp 'stream xN' with N worker processes")
    ap.add_argument("--tokens-per-s", type=float, default=REAL_TIME_TOKENS_PER_S, help="pace per stream (85)")
    ap.add_argument("--frames", type=int, default=24, help="audio frames per request (24 = 2 s at 85 tok/s)")
    ap.add_argument("--duration-s", type=float, default=8.0, help="seconds per level (default 8)")
    ap.add_argument("--settle-s", type=float, default=1.5, help="seconds before lag sampling starts")
    ap.add_argument("--lag-interval-ms", type=float, default=10.0, help="lag sampler interval (default 10 ms)")
    ap.add_argument("--lag-p99-ms", type=float, default=5.0, help="a level holds under this lag p99 (5 ms)")
    ap.add_argument("--min-rate", type=float, default=0.95, help="share of the pace the median stream must get")
    ap.add_argument("--retries", type=int, default=1, help="re-runs of a failing level before the ramp stops")
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"], help="client event loop")
    ap.add_argument("--cpu-streams", default="16,64", help="CPU per token of every path at these counts ('' skips)")
    ap.add_argument(
        "--breakdown",
        type=int,
        default=64,
        help="after the ramps, split client CPU per token at this many streams (0: skip; default 64)",
    )
    args = ap.parse_args(argv)
    args.levels = sorted({int(s) for s in args.levels.split(",") if s})
    args.cpu_streams = [int(s) for s in args.cpu_streams.split(",") if s]
    try:
        paths = [ClientPath.parse(p) for p in args.paths.split(",") if p.strip()]
    except ValueError as exc:
        ap.error(str(exc))
    if args.processes > 1 and ClientPath("stream", args.processes) not in paths:
        paths.append(ClientPath("stream", args.processes))
    args.paths = paths
    if args.tokens_per_s <= 0 or not args.levels or args.settle_s >= args.duration_s or not paths:
        ap.error("needs a positive pace, some levels, some paths and --settle-s < --duration-s")

    print("# max streams per client process (orpheus-bench)")
    print(machine_line())
    print(
        f"simulator: separate process, {args.tokens_per_s:g} tokens/s per stream, {args.frames} frames per request; "
        f"decode off; holds = loop lag p99 < {args.lag_p99_ms:g} ms in every client process and median stream >= "
        f"{args.min_rate:.0%} of pace"
    )
    print(f"client: {loop_description(args.loop)}; paths: {', '.join(p.label for p in paths)}")
    config = SimConfig.stamp_mode(
        slots=max(args.levels), token_ms=1000.0 / args.tokens_per_s, audio_frames=args.frames, stamp=False
    )
    with DecodeService(None) as args.service, run_simulator_in_subprocess(config) as url:
        answers, cpu, split = run_async(whole(url, args), args.loop)
    idle_row = row(answers[0].levels[0], "noise floor", args, None)
    print_table(
        f"ramp (lag sampled every {args.lag_interval_ms:g} ms after {args.settle_s:g} s; ms)",
        [
            "path",
            "streams",
            "per process",
            "ok",
            "tok/s/stream median",
            "min",
            "lag p50 / p99 / max",
            "p99 per worker",
            "worst loop CPU / wait %",
            "harness lag p99",
            "client-bound",
            "client CPU %",
            "sim CPU %",
            "tokens/s total",
            "client us CPU/token",
            "verdict",
        ],
        [idle_row] + [r for a in answers for r in a.rows],
    )
    top = args.levels[-1]

    def said(best: int | None, processes: int) -> str:
        if best is None:
            return f"none (the first level, {args.levels[0]} streams, failed)"
        per = f" ({best / processes:g} per process)" if processes > 1 else ""
        return f"{best} streams{per}" + (" (the top of the ramp: raise --levels)" if best == top else "")

    print()
    for a in answers:
        print(
            f"{a.path.label}: largest level that held, lag p99 < {args.lag_p99_ms:g} ms: "
            f"{said(a.best_strict, a.path.processes)}"
        )
        print(
            f"{a.path.label}: largest level that held, lag p99 < {args.lag_p99_ms:g} ms + idle p99 "
            f"{fmt(a.idle_p99_ms)} ms = {a.adjusted_limit_ms:.2f} ms: {said(a.best_adjusted, a.path.processes)}"
        )
        us = a.marginal_us_per_token()
        if us is not None and us > 0:
            per_core = 1e6 / us
            print(
                f"{a.path.label}: client CPU per token (slope of CPU over token rate, all levels): {us:.1f} us -> "
                f"one fully busy core takes {per_core:,.0f} tokens/s = "
                f"{per_core / args.tokens_per_s:,.0f} streams at {args.tokens_per_s:g} tok/s (an upper bound)"
            )
    if cpu:
        labels = [p.label for p in paths]
        base = paths[0].label
        rows = []
        for n in args.cpu_streams:
            cells = [fmt(cpu.get((lab, n)), 1) for lab in labels]
            ratios = [
                f"{cpu[(lab, n)] / cpu[(base, n)]:.2f}" if (lab, n) in cpu and (base, n) in cpu else "-"
                for lab in labels
            ]
            rows.append([str(n), *cells, *ratios])
        print_table(
            "client CPU per token, us (whole level, warmup included; same run, paths interleaved)",
            ["streams", *labels, *[f"{lab} / {base}" for lab in labels]],
            rows,
        )
    if split:
        print_table(
            f"where the client's CPU goes at {args.breakdown} streams (whole level, warmup included)",
            ["path", "client", "tokens", "us CPU/token", "vs full"],
            split,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
