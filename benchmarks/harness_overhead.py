"""Harness overhead: how late the client sees what the server sent, at 1..256 streams, decode off and on.

The simulator runs in its own process in stamp mode (`SimConfig.stamp_mode`: no prefill, no model delay,
every SSE event carries ``sim_sent_mono``, its ``time.monotonic()`` just before the write). Tokens are paced
at ``--tokens-per-s`` per stream (85 = Orpheus real time: 12 frames of 7 tokens per second of audio;
``--tokens-per-s 0`` floods instead). The client is the real harness: `SweepRunner` -> `aiohttp_driver.execute`
-> `RequestPipeline`, with one change: the pipeline logs ``(t, monotonic after parsing, chunk)`` per
``feed_bytes`` call, and after the level the logged bytes are parsed again (off the clock) to pair each event's
send stamp with its arrival. On Linux ``time.monotonic`` is CLOCK_MONOTONIC in both processes, so
arrival - send is the whole client-side delay: kernel socket buffers, event-loop scheduling, aiohttp.

Per level it prints, in milliseconds, p50/p99 of

- ``event``: arrival (the driver's timestamp handed to ``feed_bytes``) - send, over every event;
- ``parsed``: the same after ``feed_bytes`` returned (adds SSE/JSON/token parsing of the chunk);
- ``1st audio tok``: arrival - send of each request's first audio token (the record's t_first_audio_token_s);
- ``TTFA``: the record's first PCM ready time (t_first_pcm_s) - send of the token that completed the first
  decode window; with decode on it contains the decode queue wait and the SNAC forward pass, which are real
  client work, shown beside it;

and per level the harness's own client-bound verdict (`LevelOutcome.summary()`, the same that goes into
run.json), client and simulator CPU, and the send rate the simulator achieved per stream (if it fell behind
its pace, the level offered less load than asked; the overhead numbers stay valid because every stamp is the
real send time).

Decode on uses random-weight SNAC (the real model's cost) through the process's `DecodeService` with the
device's default batching; on a small CPU this saturates quickly: that is the point, and the verdict column
must say so. Short utterances (``--frames-on``, 8) and a cap per level (``--level-timeout-s``, 60 s) bound the
decode backlog of the big levels; requests cut before their first audio are shown as ``cut`` in TTFA.

Each level also records client CPU (whole process and its event-loop thread) and the simulator's CPU, and
before the levels an idle event loop's lag: on a shared machine a loop can lag because it waits for a core,
which the ``why`` column tells apart from a loop that is busy working.

``--transports aiohttp,stream`` runs every level with both client transports, interleaved (issue 16): the old path
(aiohttp, one ``readany()`` per HTTP chunk, timestamp when its task resumes) and the stream transport (timestamp
in the protocol callback, before parsing); the ``event`` and ``1st audio tok`` columns then say what the change
did to arrival times and time to first token.

Usage::

    python benchmarks/harness_overhead.py                         # 1,16,64,256 streams, decode off and on
    python benchmarks/harness_overhead.py --decode off --streams 1,16,64 --transports aiohttp,stream
    python benchmarks/harness_overhead.py --decode off --streams 1,16,64,256,512 --rounds-off 3
    python benchmarks/harness_overhead.py --decode on --device cuda --frames-on 24   # GPU

The helpers (`CpuMeter`, `NullSink`, `scenario_for`, `run_async`, `print_table`...) are reused by
``max_streams.py`` and ``parse_throughput.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import random
import re
import resource
import statistics
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from orpheus_bench.audio.service import DecodeService, default_batching
from orpheus_bench.client.loop_monitor import LoopLagMonitor
from orpheus_bench.client.runner import SweepRunner
from orpheus_bench.core.frames import SAMPLES_PER_FRAME
from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.sse import SSEDecoder
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.levels import LevelOutcome
from orpheus_bench.limits import CLIENT_BOUND_LAG_P99_MS
from orpheus_bench.measures.stats import percentile
from orpheus_bench.records import RequestRecord, Status
from orpheus_bench.scenario import Decode, Load, PromptSource, Scenario
from orpheus_bench.sim import SimConfig, run_simulator_in_subprocess
from orpheus_bench.target import Target

REAL_TIME_TOKENS_PER_S = 85.0  # 7 tokens per 2048-sample frame at 24 kHz: 82 tok/s is real time
AUDIO_TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
FIRST_AUDIO_CODE = 10  # custom tokens below 10 are special (end of speech, ...), not audio

T = TypeVar("T")
StampLog = list[tuple[float, float, bytes]]  # (driver t, time.monotonic() after feed_bytes, chunk)


# ---- instrumentation of the real client ------------------------------------------------------------------
class StampedPipeline(RequestPipeline):
    """`RequestPipeline` that also keeps every chunk with its arrival time, for pairing with send stamps.

    The hot path gains one ``time.monotonic()`` and one list append per chunk; parsing the kept bytes again
    happens after the level, off the clock.
    """

    def __init__(self, log: StampLog, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamp_log = log

    def feed_bytes(self, chunk: bytes, t: float) -> list[DecodeWindow]:
        """Parse as usual, then log the chunk with its arrival ``t`` and the time parsing ended."""
        windows = super().feed_bytes(chunk, t)
        self.stamp_log.append((t, time.monotonic(), chunk))
        return windows


@dataclass(frozen=True)
class StampedTarget(Target):
    """A `Target` whose pipelines are `StampedPipeline`s; their logs are kept by request id."""

    logs: dict[str, StampLog] = field(default_factory=dict, compare=False, repr=False)

    def new_pipeline(self, record: RequestRecord) -> RequestPipeline:
        """A logging pipeline, otherwise configured exactly as `Target.new_pipeline`."""
        log: StampLog = []
        self.logs[record.request_id] = log
        return StampedPipeline(
            log,
            record,
            protocol=self.protocol,
            spec=self.spec,
            use_token_ids=self.use_token_ids,
            max_invalid_code_rate=self.max_invalid_code_rate,
            max_stream_tokens=self.max_stream_tokens,
        )


class NullSink:
    """A `RecordSink` that keeps nothing: the benchmark reads the runner's own records."""

    def emit(self, record: RequestRecord) -> None:
        """Drop the record."""

    def level_done(self, level: int) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""


@dataclass(frozen=True)
class CpuShares:
    """CPU use over a window, in percent of one core."""

    client_pct: float  # this process, all threads (decode workers included)
    loop_pct: float  # the thread that called start/stop: the event loop's own thread
    sim_pct: float | None  # child processes (the simulator); None where unknown
    wall_s: float


class CpuMeter:
    """CPU seconds of this process, of its event-loop thread and of its children (the simulator).

    Call `start` and `stop` from the event-loop thread. Children are found through
    ``/proc/self/task/*/children`` (Linux); elsewhere the simulator's share is None. A loop thread far below
    100 % while the loop lags means the process was waiting for a core (a busy machine), not working.
    """

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._t = self._self0 = self._kids0 = self._thread0 = 0.0
        self._has_kids = False

    def _self_s(self) -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def _children_s(self) -> float | None:
        total = 0.0
        found = False
        try:
            for task in Path("/proc/self/task").iterdir():
                for pid in (task / "children").read_text().split():
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
                    found = True
        except OSError:
            return None
        return total if found else None

    def start(self) -> None:
        """Begin a measurement window."""
        self._t = time.monotonic()
        self._self0 = self._self_s()
        self._thread0 = time.thread_time()
        kids = self._children_s()
        self._has_kids = kids is not None
        self._kids0 = kids or 0.0

    def stop(self) -> CpuShares:
        """CPU shares since `start`."""
        wall = max(1e-9, time.monotonic() - self._t)
        client = 100.0 * (self._self_s() - self._self0) / wall
        loop = 100.0 * (time.thread_time() - self._thread0) / wall
        kids = self._children_s()
        sim = 100.0 * (kids - self._kids0) / wall if kids is not None and self._has_kids else None
        return CpuShares(client, loop, sim, wall)


# ---- per-request analysis ----------------------------------------------------------------------------------
@dataclass
class RequestTimes:
    """Client delay of one request's events, milliseconds."""

    event_ms: list[float] = field(default_factory=list)
    parsed_ms: list[float] = field(default_factory=list)
    first_audio_token_ms: float | None = None
    ttfa_ms: float | None = None
    send_rate: float | None = None  # events per second the simulator achieved for this stream


def _event_text(obj: dict[str, Any]) -> str:
    content = obj.get("content")
    if isinstance(content, str):
        return content
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        text = choices[0].get("text")
        return text if isinstance(text, str) else ""
    return ""


def analyse_request(record: RequestRecord, log: StampLog, t0_mono: float, first_audio_frames: int) -> RequestTimes:
    """Pair each logged event's send stamp with its arrival; ``t0_mono`` is the request's send time."""
    out = RequestTimes()
    sse = SSEDecoder()
    audio_seen = 0
    complete_at = 7 * first_audio_frames
    completing_send: float | None = None
    sends: list[float] = []
    for t, t_after, chunk in log:
        for event in sse.feed(chunk):
            try:
                obj = json.loads(event.data)
            except ValueError:
                continue
            send = obj.get("sim_sent_mono") if isinstance(obj, dict) else None
            if not isinstance(send, (int, float)):
                continue
            sends.append(send)
            out.event_ms.append((t0_mono + t - send) * 1000.0)
            out.parsed_ms.append((t_after - send) * 1000.0)
            n_audio = sum(1 for m in AUDIO_TOKEN_RE.finditer(_event_text(obj)) if int(m.group(1)) >= FIRST_AUDIO_CODE)
            if n_audio and out.first_audio_token_ms is None:
                out.first_audio_token_ms = out.event_ms[-1]
            if completing_send is None and audio_seen < complete_at <= audio_seen + n_audio:
                completing_send = send
            audio_seen += n_audio
    if completing_send is not None and record.t_first_pcm_s is not None:
        out.ttfa_ms = (t0_mono + record.t_first_pcm_s - completing_send) * 1000.0
    if len(sends) > 2 and sends[-2] > sends[0]:
        # The final event is sent after end of speech's silent step; the partials show the pace.
        out.send_rate = (len(sends) - 2) / (sends[-2] - sends[0])
    return out


# ---- one level ---------------------------------------------------------------------------------------------------
@dataclass
class LevelResult:
    """Everything one level of the benchmark measured."""

    decode: str
    streams: int
    measured: int
    failed: int
    times: list[RequestTimes]
    summary: dict[str, Any]
    cpu: CpuShares
    first_queue_ms: list[float]
    first_decode_ms: list[float]
    cut: bool = False  # the level hit its time limit and was cancelled
    ttfa_censored: int = 0  # analysed requests without first audio (cut before their first PCM)
    transport: str = "stream"  # the client's HTTP transport (client.transport)

    @property
    def label(self) -> str:
        """``off``, ``on``, or ``off/aiohttp`` when several transports ran."""
        return self.decode if not self.transport_shown else f"{self.decode}/{self.transport}"

    transport_shown: bool = False

    def pooled(self, name: str) -> list[float]:
        """All values of one per-event list, or the per-request scalar, over the measured requests."""
        out: list[float] = []
        for rt in self.times:
            value = getattr(rt, name)
            if isinstance(value, list):
                out.extend(value)
            elif value is not None:
                out.append(value)
        return out


def scenario_for(
    url: str,
    streams: int,
    measured: int,
    preset: str,
    *,
    warmup: bool,
    protocol: str = "native",
    duration_s: float | None = None,
) -> Scenario:
    """A closed-loop level of ``streams`` workers: ``measured`` requests after a warmup round (if ``warmup``).

    ``duration_s`` replaces the request count.
    """
    load = Load(
        concurrency=[streams],
        requests_per_level=None if duration_s else max(1, measured),
        duration_per_level_s=duration_s,
        warmup=warmup,
    )
    return Scenario(
        host=url,
        protocol=protocol,
        decode=Decode(preset=preset),
        prompts=PromptSource(set="short"),
        load=load,
    )


async def run_level(
    url: str,
    streams: int,
    *,
    decode: str,
    service: DecodeService,
    rounds: int,
    min_measured: int = 1,
    protocol: str = "native",
    timeout_s: float | None = None,
    transport: str = "stream",
) -> LevelResult:
    """Run one closed-loop level through the real `SweepRunner` and analyse its stamp logs.

    ``rounds`` requests per stream, the first of them warmup when ``rounds > 1``; at least ``min_measured``
    measured requests (more rounds at small stream counts, so that p99 is not one request's number). After
    ``timeout_s`` the level is cancelled (``cut``): requests still waiting for decodes end as cancelled
    records, which are analysed up to the cut; those without first audio by then count as censored TTFAs.
    """
    warmup = rounds > 1
    n_measured = max(streams * (rounds - 1 if warmup else 1), min_measured)
    preset = "reference" if decode == "on" else "off"
    sc = scenario_for(url, streams, n_measured, preset, warmup=warmup, protocol=protocol)
    target = StampedTarget.from_scenario(sc)
    assert isinstance(target, StampedTarget)  # from_scenario builds cls(...)
    origin = time.monotonic()
    runner = SweepRunner(
        target,
        sc.prompts.load(),
        service,
        NullSink(),
        sc.load,
        clock=time.monotonic,
        origin=origin,
        transport=transport,
    )
    meter = CpuMeter()
    meter.start()
    cut = False
    try:
        await asyncio.wait_for(runner.run(), timeout_s)
    except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11 on
        cut = True
    cpu = meter.stop()
    outcome: LevelOutcome = runner.levels[0]
    first_frames = target.spec.first_audio_frames or 4
    result = LevelResult(
        decode=decode,
        streams=streams,
        measured=0,
        failed=0,
        times=[],
        summary=outcome.summary(),
        cpu=cpu,
        first_queue_ms=[],
        first_decode_ms=[],
        cut=cut,
        transport=transport,
    )
    for rec in outcome.records:
        if rec.warmup:
            continue
        result.measured += 1
        if rec.status is not Status.OK and not (cut and rec.status is Status.CANCELLED):
            result.failed += 1
            continue
        rt = analyse_request(rec, target.logs[rec.request_id], origin + rec.run_offset_s, first_frames)
        result.times.append(rt)
        if rt.ttfa_ms is None:
            result.ttfa_censored += 1
        if rec.chunks and decode == "on":
            first = min(rec.chunks, key=lambda c: c.t_ready_s)
            result.first_queue_ms.append(first.queue_s * 1000.0)
            result.first_decode_ms.append(first.decode_s * 1000.0)
    return result


def run_async(main: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    """Run the client's coroutine on asyncio's default loop or on uvloop (if installed)."""
    if loop == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise SystemExit("--loop uvloop needs the uvloop package (pip install uvloop)") from None
        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)


def loop_description(loop: str) -> str:
    """Which event loop the client runs, with its version."""
    if loop == "uvloop":
        return f"uvloop {importlib.import_module('uvloop').__version__}"
    return "asyncio default loop"


# ---- output ------------------------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2) -> str:
    """A number or ``-``."""
    return "-" if value is None else f"{value:.{digits}f}"


def p50_p99(values: Sequence[float], digits: int = 2) -> str:
    """``p50 / p99`` of the values."""
    return f"{fmt(percentile(values, 50), digits)} / {fmt(percentile(values, 99), digits)}"


def censored_p50_p99(values: Sequence[float], censored: int, digits: int = 2) -> str:
    """``p50 / p99`` where ``censored`` more values are known only to exceed the level's cut (shown ``cut``)."""
    if not censored:
        return p50_p99(values, digits)
    arr = np.array([*values, *([np.inf] * censored)])

    def q(p: float) -> str:
        v = float(np.percentile(arr, p, method="higher"))
        return "cut" if np.isinf(v) else f"{v:.{digits}f}"

    return f"{q(50)} / {q(99)}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned text table (also valid Markdown)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    sys.stdout.flush()


def machine_line() -> str:
    """CPU count, load average, Python: the context every number needs."""
    try:
        load = ", load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: {platform.machine()} {platform.processor() or ''} {cores} usable cores{load}; "
        f"Python {platform.python_version()}; simulator and client share these cores"
    )


def report(results: list[LevelResult], tokens_per_s: float) -> None:
    """The overhead table, the client-health table and the ratios against one stream."""
    rows = []
    base: dict[str, float | None] = {}
    for r in results:
        ev = r.pooled("event_ms")
        p99 = percentile(ev, 99)
        if r.streams == min(x.streams for x in results if x.label == r.label):
            base[r.label] = p99
        b = base.get(r.label)
        ratio = f"{p99 / b:.1f}x" if p99 is not None and b else "-"
        rows.append(
            [
                r.label,
                str(r.streams),
                str(len(ev)),
                p50_p99(ev),
                ratio,
                p50_p99(r.pooled("parsed_ms")),
                p50_p99(r.pooled("first_audio_token_ms")),
                censored_p50_p99(r.pooled("ttfa_ms"), r.ttfa_censored),
                p50_p99(r.first_queue_ms, 1) if r.decode == "on" else "-",
                p50_p99(r.first_decode_ms, 1) if r.decode == "on" else "-",
            ]
        )
    print_table(
        "harness overhead, ms (client arrival - server send; p50 / p99)",
        [
            "decode",
            "streams",
            "events",
            "event",
            "p99 vs fewest",
            "parsed",
            "1st audio tok",
            "TTFA",
            "1st win queue",
            "1st win decode",
        ],
        rows,
    )
    rows = []
    for r in results:
        s = r.summary
        client = s.get("client", {})
        rates = r.pooled("send_rate")
        rate = statistics.median(rates) if rates else None
        rows.append(
            [
                r.label,
                str(r.streams),
                f"{r.measured - r.failed}/{r.measured}" + (f", cut at {r.cpu.wall_s:.0f} s" if r.cut else ""),
                fmt(rate, 1) + (f" ({100 * rate / tokens_per_s:.0f}%)" if rate and tokens_per_s else ""),
                fmt(client.get("loop_lag_p99_ms"), 1),
                fmt(client.get("decode_queue_p90_ms"), 1),
                f"{r.cpu.client_pct:.0f}",
                f"{r.cpu.loop_pct:.0f}",
                fmt(r.cpu.sim_pct, 0),
                f"{r.cpu.wall_s:.1f}",
                *verdict(s, r.cpu),
            ]
        )
    print_table(
        "client health per level (the harness's own client-bound verdict, as written to run.json)",
        [
            "decode",
            "streams",
            "analysed",
            "sim tok/s/stream",
            "loop lag p99",
            "dec queue p90",
            "client CPU %",
            "loop thread CPU %",
            "sim CPU %",
            "wall s",
            "client-bound",
            "why",
        ],
        rows,
    )


def verdict(summary: dict[str, Any], cpu: CpuShares) -> tuple[str, str]:
    """The harness's client-bound flag in short, and what the CPU numbers say caused it."""
    if not summary.get("client_bound"):
        return "no", "-"
    reasons = " ".join(summary.get("client_bound_reasons", []))
    short, why = [], []
    if "decode queue" in reasons:
        short.append("decode queue")
        why.append("decoding slower than tokens arrive")
    if "lag" in reasons:
        short.append("loop lag")
        # The harness's own cause (loop CPU share and run-queue wait, levels.ProcessHealth.lag_cause).
        cause = summary.get("client", {}).get("loop_lag_cause")
        words = {
            "harness_busy": "event loop saturated (the harness was busy)",
            "machine_busy": "loop waited for a core (machine busy)",
            "blocked": "loop blocked (neither busy nor waiting for a core)",
        }
        why.append(words.get(cause, "event loop saturated" if cpu.loop_pct >= 80 else "loop waited for a core"))
    return "YES (" + ", ".join(short) + ")", "; ".join(why)


async def idle_lag_ms(seconds: float = 3.0, interval_s: float = 0.01) -> list[float]:
    """Loop lag of an idle event loop on this machine: the floor under every lag number."""
    monitor = LoopLagMonitor(interval_s)
    monitor.start()
    await asyncio.sleep(seconds)
    samples = monitor.take()
    await monitor.stop()
    return samples


async def _levels(
    url: str, decode: str, args: argparse.Namespace, rounds: int, service: DecodeService
) -> list[LevelResult]:
    out = []
    for n in args.streams:
        for transport in args.transports:  # interleaved, so the machine's load drifts alike for each
            print(f"  decode {decode}, {transport}: {n} streams ...", end="", flush=True)
            res = await run_level(
                url,
                n,
                decode=decode,
                service=service,
                rounds=rounds,
                min_measured=args.min_measured,
                protocol=args.protocol,
                timeout_s=args.level_timeout_s,
                transport=transport,
            )
            res.transport_shown = len(args.transports) > 1
            print(f" {res.cpu.wall_s:.1f} s" + (" (cut: level time limit)" if res.cut else ""), flush=True)
            out.append(res)
    return out


def run_mode(args: argparse.Namespace, decode: str, service: DecodeService) -> list[LevelResult]:
    """All levels of one decode mode against a fresh simulator process."""
    frames = args.frames_on if decode == "on" else args.frames_off
    rounds = args.rounds_on if decode == "on" else args.rounds_off
    token_ms = 1000.0 / args.tokens_per_s if args.tokens_per_s > 0 else 0.0
    config = SimConfig.stamp_mode(slots=max(args.streams), token_ms=token_ms, audio_frames=frames)
    with run_simulator_in_subprocess(config) as url:
        return run_async(_levels(url, decode, args, rounds, service), args.loop)


def decode_service(device: str, torch_threads: int | None) -> tuple[DecodeService, str]:
    """Random-weight SNAC behind a `DecodeService` with the device's default batching."""
    from orpheus_bench.audio.decoder import SnacDecoder
    from orpheus_bench.audio.snac_loader import load_snac

    loaded = load_snac("random", device, torch_threads=torch_threads)
    max_batch, max_wait_ms = default_batching(loaded.device)
    service = DecodeService(SnacDecoder(loaded), max_batch=max_batch, max_wait_ms=max_wait_ms)
    # The first forward passes allocate and pick kernels (hundreds of ms): keep that out of level one.
    rng = random.Random(0)
    for n_frames in (4, 4, 4, 3, 2, 1):
        frames = tuple(tuple(rng.randrange(4096) for _ in range(7)) for _ in range(n_frames))
        window = DecodeWindow(0, 0, frames, 0, SAMPLES_PER_FRAME)  # type: ignore[arg-type]
        service.submit(window).result()
    what = (
        f"{loaded.description}; torch threads {loaded.torch_threads}; "
        f"service max_batch {max_batch}, max_wait {max_wait_ms:g} ms"
    )
    return service, what


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run the levels, print the tables."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--streams", default="1,16,64,256", help="comma-separated stream counts (default 1,16,64,256)")
    ap.add_argument("--decode", default="off,on", help="off, on or off,on (default both)")
    ap.add_argument("--tokens-per-s", type=float, default=REAL_TIME_TOKENS_PER_S, help="per-stream pace; 0 floods")
    ap.add_argument("--frames-off", type=int, default=24, help="audio frames per request, decode off (24 = 2 s)")
    ap.add_argument("--frames-on", type=int, default=8, help="audio frames per request, decode on (default 8)")
    ap.add_argument("--rounds-off", type=int, default=2, help="requests per stream, decode off; first is warmup")
    ap.add_argument("--rounds-on", type=int, default=1, help="requests per stream, decode on (1 = no warmup round)")
    ap.add_argument("--min-measured", type=int, default=6, help="measured requests per level at least (default 6)")
    ap.add_argument(
        "--level-timeout-s",
        type=float,
        default=60.0,
        help="cancel a level after this long (decode on at 256 streams queues minutes of CPU decoding)",
    )
    ap.add_argument("--device", default="cpu", help="SNAC device for decode on: cpu, cuda, auto")
    ap.add_argument("--torch-threads", type=int, default=None, help="default: cores - 1 on CPU")
    ap.add_argument("--protocol", default="native", choices=["native", "openai"])
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"], help="client event loop")
    ap.add_argument(
        "--transports",
        default="stream",
        help="client HTTP transports to run side by side: stream (default), aiohttp (the path before issue 16)",
    )
    args = ap.parse_args(argv)
    args.transports = [t for t in args.transports.split(",") if t]
    if any(t not in ("stream", "aiohttp") for t in args.transports) or not args.transports:
        ap.error("--transports takes stream and/or aiohttp")
    args.streams = sorted({int(s) for s in args.streams.split(",") if s})
    modes = [m for m in args.decode.split(",") if m]
    if not args.streams or any(m not in ("off", "on") for m in modes):
        ap.error("--streams needs counts, --decode takes off and/or on")

    print("# harness overhead (orpheus-bench)")
    print(machine_line())
    pace = f"{args.tokens_per_s:g} tokens/s per stream" if args.tokens_per_s > 0 else "zero delay (flood)"
    print(f"simulator: separate process, stamp mode, {pace}; protocol {args.protocol}")
    print(f"client: {loop_description(args.loop)}")
    idle = run_async(idle_lag_ms(), args.loop)
    print(
        f"idle event loop on this machine (3 s, 10 ms sampler): lag p50 {fmt(percentile(idle, 50))} / "
        f"p99 {fmt(percentile(idle, 99))} / max {fmt(max(idle) if idle else None)} ms "
        f"(the harness flags client-bound above {CLIENT_BOUND_LAG_P99_MS:g} ms p99)"
    )
    results: list[LevelResult] = []
    if "off" in modes:
        print(f"decode off: {args.frames_off} frames per request, {args.rounds_off} round(s) per stream")
        with DecodeService(None) as off:
            results += run_mode(args, "off", off)
    if "on" in modes:
        service, what = decode_service(args.device, args.torch_threads)
        print(f"decode on: {what}; {args.frames_on} frames per request, {args.rounds_on} round(s) per stream")
        with service:
            results += run_mode(args, "on", service)
    report(results, args.tokens_per_s)
    print(
        "\nevent = driver arrival timestamp - simulator send stamp; parsed = after RequestPipeline.feed_bytes; "
        "TTFA = first PCM ready - send of the token completing the first window (decode off: no decode cost); "
        "'cut' = the level hit --level-timeout-s before that request's first audio."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
