"""SSE/token parsing throughput: events per second per core of the pure pipeline, against a naive parser.

The input is what llama-server streams for Orpheus, as the simulator writes it (`orpheus_bench.sim.protocol`):
one SSE event per token (``data: {"index":0,"content":"<custom_token_N>","tokens":[id],...}``), end of
speech, then the final event with generation settings and timings; no simulator stamps. The bytes are cut
into chunks the way a socket read delivers them:

- ``event``: one event per read, what a paced stream gives a client that keeps up;
- ``64 B``: tiny TCP segments, events split mid-JSON and mid-UTF-8 (worst case for an incremental parser);
- ``1 KiB`` and ``16 KiB``: several events per read, what a client that fell behind reads.

Parsers, each timed on one thread with ``time.thread_time`` (CPU seconds, so other processes on the box cost
less accuracy than wall time would), best of ``--repeat``:

- ``pipeline off``: `RequestPipeline.feed_bytes` with decode off (SSE -> JSON -> tokens -> codes -> frames),
  plus `end_of_stream` and `finalize`: what the harness runs per request;
- ``pipeline ref``: the same with the 28-token reference window planner producing `DecodeWindow`s (not decoded);
- ``pipeline off, json``: ``pipeline off`` with orjson switched off (`json.loads` decides alone): what the
  optional orjson decoder buys (issue 16; the row is left out when orjson is not installed);
- ``sse only``: `SSEDecoder.feed` alone, the framing share of the cost;
- ``naive``: the baseline a script would write: buffer, split on blank lines, ``json.loads`` each ``data:``
  line, a regex over the content for ``<custom_token_N>``, the code arithmetic, groups of 7.

Usage: ``python benchmarks/parse_throughput.py [--streams 20] [--frames 100] [--repeat 5] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence

# A sibling script (benchmarks/ is not a package): Python puts a script's own directory on sys.path.
from harness_overhead import REAL_TIME_TOKENS_PER_S, machine_line, print_table

from orpheus_bench.core.sse import SSEDecoder
from orpheus_bench.prompts import Prompt
from orpheus_bench.scenario import Decode, Scenario
from orpheus_bench.sim import protocol as proto
from orpheus_bench.sim.generation import plan_generation
from orpheus_bench.target import Target

PROMPT = Prompt(id="bench/0", text="Hello there, thanks for calling. How can I help you today?")
CHUNKINGS: tuple[tuple[str, int], ...] = (("event", 0), ("64 B", 64), ("1 KiB", 1024), ("16 KiB", 16384))


def stream_bytes(frames: int, protocol: str, seed: int) -> tuple[bytes, int]:
    """One request's whole SSE body and its event count, as the simulator would stream it."""
    plan = plan_generation(
        audio_tokens=7 * frames,
        rng=random.Random(seed),
        n_predict=8 * frames + 16,
        prompt_tokens=20,
        n_ctx_slot=8192,
        stop_words=["<custom_token_2>"],
    )
    events: list[bytes] = []
    created = 1_700_000_000
    for i, piece in enumerate(plan.pieces):
        if protocol == "openai":
            events.append(proto.sse(proto.openai_chunk(piece.text, "cmpl-bench", created, "orpheus")))
        else:
            events.append(proto.sse(proto.native_partial(piece.text, piece.token_id, 0, i + 1, 20)))
    outcome = proto.Outcome(
        id_slot=0,
        n_prompt=20,
        n_decoded=plan.n_decoded,
        n_cached=0,
        stop_type=plan.stop_type,
        stopping_word=plan.stopping_word,
        truncated=False,
        timings=proto.Timings(0, 20, 4.0, plan.n_decoded, 11.76 * plan.n_decoded),
    )
    params = proto.parse_request({"prompt": PROMPT.text, "stream": True, "n_predict": 8 * frames + 16}, "native")
    if protocol == "openai":
        events.append(proto.sse(proto.openai_final(outcome, "", "cmpl-bench", created, "orpheus")))
        events.append(proto.sse("[DONE]"))
    else:
        events.append(proto.sse(proto.native_final(outcome, "", [], params, "orpheus", 8192)))
    return b"".join(events), len(events)


def cut(body: bytes, size: int) -> list[bytes]:
    """Split a body into reads: at event boundaries (``size == 0``) or every ``size`` bytes."""
    if size == 0:
        parts = body.split(b"\n\n")
        return [p + b"\n\n" for p in parts[:-1]]
    return [body[i : i + size] for i in range(0, len(body), size)]


# ---- parsers ----------------------------------------------------------------------------------------------------
def make_pipeline_parser(preset: str, protocol: str) -> Callable[[list[bytes]], int]:
    """The harness's own per-request parsing; returns frames seen (checked against the naive parser)."""
    sc = Scenario(protocol=protocol, decode=Decode(preset=preset))
    target = Target.from_scenario(sc)

    def run(chunks: list[bytes]) -> int:
        record = target.new_record(
            PROMPT, level=1, worker=0, seq=0, warmup=False, driver="bench", wall_start=0.0, run_offset_s=0.0
        )
        pipe = target.new_pipeline(record)
        t = 0.0
        for chunk in chunks:
            t += 0.001
            pipe.feed_bytes(chunk, t)
        pipe.end_of_stream(t)
        pipe.finalize(t)
        return record.frames

    return run


def without_orjson(fn: Callable[[list[bytes]], int]) -> Callable[[list[bytes]], int]:
    """The same parser with `core.protocol`'s orjson fast path switched off while it runs."""
    from orpheus_bench.core import protocol

    def run(chunks: list[bytes]) -> int:
        saved = protocol._fast_loads
        protocol._fast_loads = None
        try:
            return fn(chunks)
        finally:
            protocol._fast_loads = saved

    return run


def sse_only(chunks: list[bytes]) -> int:
    """Framing alone: events out of bytes."""
    dec = SSEDecoder()
    n = 0
    for chunk in chunks:
        n += len(dec.feed(chunk))
    return n + len(dec.flush())


_NAIVE_TOKEN = re.compile(r"<custom_token_(\d+)>")


def naive(chunks: list[bytes]) -> int:
    """A straightforward script's parser: blank-line split, json.loads, regex, code arithmetic."""
    buf = b""
    codes: list[int] = []
    frames = 0
    index = 0
    for chunk in chunks:
        buf += chunk
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            for line in raw.decode("utf-8", "replace").splitlines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                obj = json.loads(line[6:])
                text = obj["choices"][0]["text"] if "choices" in obj else obj.get("content", "")
                for m in _NAIVE_TOKEN.finditer(text):
                    n = int(m.group(1))
                    if n < 10:
                        continue
                    codes.append(n - 10 - 4096 * (index % 7))
                    index += 1
                    if len(codes) == 7:
                        frames += 1
                        codes = []
    return frames


# ---- timing -------------------------------------------------------------------------------------------------------
def cpu_seconds(fn: Callable[[list[bytes]], int], streams: list[list[bytes]], repeat: int) -> float:
    """Best-of-``repeat`` thread CPU time to parse every stream once."""
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        for chunks in streams:
            fn(chunks)
        best = min(best, time.thread_time() - t)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Build the byte streams, time each parser on each chunking, print the table."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--streams", type=int, default=20, help="requests' worth of bytes per timing (default 20)")
    ap.add_argument("--frames", type=int, default=100, help="audio frames per request (default 100 = 8.5 s)")
    ap.add_argument("--repeat", type=int, default=5, help="timings per cell, best kept (default 5)")
    ap.add_argument("--protocol", default="native", choices=["native", "openai"])
    ap.add_argument("--profile", action="store_true", help="also cProfile the pipeline on one-event reads")
    args = ap.parse_args(argv)

    bodies = [stream_bytes(args.frames, args.protocol, seed) for seed in range(args.streams)]
    events = sum(n for _, n in bodies)
    total_bytes = sum(len(b) for b, _ in bodies)
    print("# SSE/token parsing throughput (orpheus-bench)")
    print(machine_line())
    print(
        f"input: {args.streams} {args.protocol} streams x {args.frames} frames = {events} events, "
        f"{total_bytes / 1e6:.2f} MB ({total_bytes / events:.0f} B/event); one thread, CPU time, best of {args.repeat}"
    )
    parsers: list[tuple[str, Callable[[list[bytes]], int]]] = [
        ("pipeline off", make_pipeline_parser("off", args.protocol)),
        ("pipeline ref", make_pipeline_parser("reference", args.protocol)),
        ("sse only", sse_only),
        ("naive", naive),
    ]
    from orpheus_bench.core import protocol

    if protocol._fast_loads is not None:
        parsers.insert(1, ("pipeline off, json", without_orjson(make_pipeline_parser("off", args.protocol))))
    expected = args.frames
    rows = []
    summary: dict[str, list[float]] = {}
    for label, size in CHUNKINGS:
        streams = [cut(body, size) for body, _ in bodies]
        reads = sum(len(s) for s in streams)
        rates: dict[str, float] = {}
        for name, fn in parsers:
            if name != "sse only":
                got = fn(streams[0])
                if got != expected:
                    raise SystemExit(f"{name} on {label} reads saw {got} frames, expected {expected}")
            rates[name] = events / cpu_seconds(fn, streams, args.repeat)
        for name, _ in parsers:
            rows.append(
                [
                    label,
                    str(reads),
                    name,
                    f"{rates[name]:,.0f}",
                    f"{1e6 / rates[name]:.1f}",
                    f"{rates[name] * total_bytes / events / 1e6:.1f}",
                    f"{rates[name] / rates['naive']:.2f}",
                    f"{rates[name] / REAL_TIME_TOKENS_PER_S:,.0f}",
                ]
            )
            summary.setdefault(name, []).append(rates[name])
    print_table(
        "events per second per core (higher is better)",
        ["reads", "n reads", "parser", "events/s", "us/event", "MB/s", "vs naive", "streams @85 tok/s"],
        rows,
    )
    print(
        "\n'streams @85 tok/s' = events/s / 85: real-time Orpheus streams one core could parse if it did nothing "
        "else (no HTTP, no event loop, no decode)."
    )
    geo = {name: statistics.geometric_mean(v) for name, v in summary.items()}
    print(
        "geometric mean over read sizes: "
        + ", ".join(f"{name} {rate:,.0f} ev/s ({rate / geo['naive']:.2f}x naive)" for name, rate in geo.items())
    )
    if args.profile:
        streams = [cut(body, 0) for body, _ in bodies]
        fn = make_pipeline_parser("off", args.protocol)
        prof = cProfile.Profile()
        prof.enable()
        for chunks in streams:
            fn(chunks)
        prof.disable()
        print("\ncProfile of 'pipeline off' on one-event reads (tottime, top 15):")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
