"""Decode throughput and fidelity of the SNAC window modes, in one run on this machine.

Prints three tables (random-weight SNAC: the cost and receptive field are the real model's, the audio is noise):

1. cost of one forward pass by window length (and what folding weight norm and SNAC's noise blocks cost);
2. fidelity of each window mode: SNR in dB of the streamed PCM against decoding the whole utterance at once,
   decode cost per audio second (from table 1) and the frames/tokens needed before the first audio;
3. throughput in audio seconds decoded per wall second at 1/4/12 concurrent streams for
   - ``ref/per-stream``: the reference sliding window, each stream decoding its own windows in its own thread
     (what a naive client does; the baseline, ratio 1.00). With N streams it uses every core, including the
     one a real run needs for its event loop;
   - ``ref/service b=B w=W``: the same windows through one DecodeService with W worker threads gathering up
     to B queued same-shape windows per forward (w=1 is the default service: torch gets cores - 1 threads,
     i.e. one core on a 2-core box; w=cores uses every core like the baseline);
   - ``chunked/service ...``: the chunked preset (K, C, R) through the same services.
   Each stream is closed-loop (one window in flight, the next submitted when it returns), i.e. tokens arrive
   faster than decoding, so the numbers are the decoder's ceiling, not a real-time schedule.

Usage: ``python benchmarks/decode_throughput.py [--device cpu|cuda|auto] [--streams 1,4,12] [--frames 20]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch

from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.service import DecodeResult, DecodeService
from orpheus_bench.audio.snac_loader import default_torch_threads, load_snac, resolve_device
from orpheus_bench.core.frames import FRAME_TOKENS, SAMPLES_PER_FRAME, Frame
from orpheus_bench.core.windows import DecodeSpec, DecodeWindow, WindowPlanner
from orpheus_bench.records import SAMPLE_RATE_HZ

FIDELITY_MODES: list[tuple[str, DecodeSpec]] = [
    ("reference (28 tok)", DecodeSpec()),
    ("reference + flush_tail", DecodeSpec(flush_tail=True)),
    ("reference-14", DecodeSpec.from_preset("reference-14")),
    *[
        (f"chunked K={k} C={c} R={r}", DecodeSpec(mode="chunked", chunk_frames=k, context_frames=c, lookahead_frames=r))
        for k, c, r in [
            (1, 2, 2),
            (2, 1, 1),
            (2, 2, 1),
            (2, 2, 2),
            (4, 0, 0),
            (4, 2, 0),
            (4, 2, 1),
            (4, 2, 2),
            (8, 2, 2),
        ]
    ],
    ("blocking", DecodeSpec.from_preset("blocking")),
]


def random_frames(n: int, rng: random.Random) -> list[Frame]:
    return [tuple(rng.randrange(4096) for _ in range(FRAME_TOKENS)) for _ in range(n)]  # type: ignore[misc]


def plan(spec: DecodeSpec, frames: Sequence[Frame]) -> list[DecodeWindow]:
    p = WindowPlanner(spec)
    return [w for f in frames for w in p.feed(f)] + p.flush()


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` calls: on a shared machine the minimum is the least disturbed estimate of cost."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - test) ** 2))
    if err == 0:
        return float("inf")
    return 10 * float(np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / err))


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for j, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def cost_table(dec: SnacDecoder, args: argparse.Namespace, rng: random.Random) -> dict[int, float]:
    cost: dict[int, float] = {}
    rows: list[list[object]] = []
    for n in (1, 2, 4, 5, 6, 7, 8, 10):
        frames = random_frames(n, rng)
        cost[n] = best_ms(lambda frames=frames: dec.decode_frames(frames), args.repeat)  # type: ignore[misc]
        rows.append([f"{n} frames, B=1", f"{cost[n]:.1f}", f"{cost[n] / n:.1f}"])
    for b in (4, 12):
        ws = [DecodeWindow(0, 0, tuple(random_frames(4, rng)), 0, SAMPLES_PER_FRAME * 4) for _ in range(b)]
        ms = best_ms(lambda ws=ws: dec.decode_batch(ws), max(2, args.repeat // 3))  # type: ignore[misc]
        rows.append([f"4 frames, B={b}", f"{ms:.1f}", f"{ms / b / 4:.1f}"])
    variants: list[tuple[str, int, dict[str, Any]]] = [
        ("4 frames, weight norm not folded (nor GEMM)", 4, {"fold_weight_norm": False}),
        ("4 frames, SNAC noise on", 4, {"noise": "random"}),
        ("4 frames, noise blocks removed", 4, {"noise": "off"}),
        ("1 frames, torch's transposed convs", 1, {"gemm_transposed_convs": False}),
        ("2 frames, torch's transposed convs", 2, {"gemm_transposed_convs": False}),
        ("4 frames, torch's transposed convs", 4, {"gemm_transposed_convs": False}),
    ]
    for label, n, kw in variants:
        other = SnacDecoder(load_snac("random", dec.device, torch_threads=torch.get_num_threads(), **kw))
        frames = random_frames(n, rng)
        ms = best_ms(lambda o=other, f=frames: o.decode_frames(f), args.repeat)  # type: ignore[misc]
        rows.append([label, f"{ms:.1f}", f"{ms / n:.1f}"])
    table("1. one forward pass (fastest of --repeat)", ["window", "ms", "ms per frame"], rows)
    return cost


def fidelity_table(dec: SnacDecoder, cost: dict[int, float] | None, rng: random.Random, n_frames: int) -> None:
    utterances = [random_frames(n_frames, rng) for _ in range(2)]
    wholes = [dec.decode_frames(u) for u in utterances]
    rows: list[list[object]] = []
    for name, spec in FIDELITY_MODES:
        snrs, ms, samples = [], 0.0, 0
        for u, whole in zip(utterances, wholes, strict=True):
            ws = plan(spec, u)
            pcm = np.concatenate([dec.decode_window(w) for w in ws])
            start = ws[0].stream_start_sample
            snrs.append(snr_db(whole[start : start + len(pcm)], pcm))
            if cost:  # windows longer than the cost table scale linearly from its longest entry
                ms += sum(cost.get(w.n_frames, cost[max(cost)] * w.n_frames / max(cost)) for w in ws)
            samples += len(pcm)
        audio_s = samples / SAMPLE_RATE_HZ
        first = spec.first_audio_frames
        first_txt = f"{first} fr / {first * FRAME_TOKENS} tok" if first is not None else "end of stream"
        snr = min(snrs)
        rows.append(
            [
                name,
                "exact" if snr == float("inf") else f"{snr:.1f}",
                f"{ms / audio_s:.0f}" if cost else "n/a (cost skipped)",
                first_txt,
                f"{samples // len(utterances)}",
            ]
        )
    table(
        f"2. fidelity vs whole-utterance decode ({n_frames}-frame utterances; SNR min of 2)",
        ["mode", "SNR dB", "decode ms per audio s", "first audio after", "samples"],
        rows,
    )


def run_streams(windows_per_stream: list[list[DecodeWindow]], decode: Callable[[DecodeWindow], np.ndarray]) -> float:
    """Closed loop, one thread per stream; return audio seconds decoded per wall second."""
    total = sum(w.kept_samples for ws in windows_per_stream for w in ws)
    start = threading.Barrier(len(windows_per_stream) + 1)

    def stream(ws: list[DecodeWindow]) -> None:
        start.wait()
        for w in ws:
            decode(w)

    threads = [threading.Thread(target=stream, args=(ws,)) for ws in windows_per_stream]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return total / SAMPLE_RATE_HZ / (time.perf_counter() - t0)


def via_service(svc: DecodeService) -> Callable[[DecodeWindow], np.ndarray]:
    def decode(w: DecodeWindow) -> np.ndarray:
        fut: Future[DecodeResult] = svc.submit(w)
        return fut.result().pcm

    return decode


def throughput_table(dec: SnacDecoder, args: argparse.Namespace, rng: random.Random) -> None:
    chunked = DecodeSpec.from_preset("chunked")
    chunked_name = f"chunked/service ({chunked.chunk_frames},{chunked.context_frames},{chunked.lookahead_frames})"
    rows: list[list[object]] = []
    for n in args.streams:
        streams = [random_frames(args.frames, rng) for _ in range(n)]
        ref = [plan(DecodeSpec(), s) for s in streams]
        chk = [plan(chunked, s) for s in streams]
        w = min(args.cores, 4)
        configs: list[tuple[str, list[list[DecodeWindow]], int, int]] = [
            ("ref/per-stream", ref, 0, 0),
            ("ref/service b=1 w=1", ref, 1, 1),
            (f"ref/service b=1 w={w}", ref, 1, w),
            (f"ref/service b<={args.max_batch} w=1", ref, args.max_batch, 1),
            (f"{chunked_name} b=1 w=1", chk, 1, 1),
            (f"{chunked_name} b=1 w={w}", chk, 1, w),
            (f"{chunked_name} b<={args.max_batch} w=1", chk, args.max_batch, 1),
        ]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):  # rounds interleave the configs so a load spike hits all of them
            for name, windows, batch, workers in configs:
                if batch == 0:
                    rate, mean_batch = run_streams(windows, dec.decode_window), 1.0
                else:
                    with DecodeService(dec, max_batch=batch, max_wait_ms=args.max_wait_ms, threads=workers) as svc:
                        rate = run_streams(windows, via_service(svc))
                    mean_batch = svc.stats.mean_batch_size
                if rate > best.get(name, (0.0, 0.0))[0]:
                    best[name] = (rate, mean_batch)
        base = best["ref/per-stream"][0]
        for name, *_ in configs:
            rate, mean_batch = best[name]
            rows.append([n, name, f"{rate:.2f}", f"{rate / base:.2f}", f"{mean_batch:.2f}"])
    audio_s = args.frames * SAMPLES_PER_FRAME / SAMPLE_RATE_HZ
    table(
        f"3. throughput, {args.frames}-frame streams ({audio_s:.2f} s audio each), best of {args.rounds} round(s)",
        ["streams", "decoder", "audio s / wall s", "ratio to ref", "mean batch"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ap.add_argument("--streams", default="1,4,12", help="comma-separated stream counts")
    ap.add_argument("--frames", type=int, default=16, help="frames per stream in the throughput test")
    ap.add_argument("--fidelity-frames", type=int, default=24, help="frames per utterance in the fidelity test")
    ap.add_argument("--torch-threads", type=int, default=None, help="default: cores - 1 on CPU")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=0.0)
    ap.add_argument("--rounds", type=int, default=1, help="throughput rounds; the best of them is reported")
    ap.add_argument("--repeat", type=int, default=9, help="repeats per forward-pass timing")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: cost,fidelity,throughput")
    args = ap.parse_args(argv)
    args.streams = [int(s) for s in args.streams.split(",") if s]
    args.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    skip = set(args.skip.split(","))
    device = resolve_device(args.device)
    threads = args.torch_threads if args.torch_threads is not None else default_torch_threads(device)
    loaded = load_snac("random", device, torch_threads=threads)
    dec = SnacDecoder(loaded)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"# decode throughput: {loaded.description}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load avg {load:.2f}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
        + (f", GPU {torch.cuda.get_device_name()}" if device.startswith("cuda") else "")
    )
    rng = random.Random(0)
    cost = cost_table(dec, args, rng) if "cost" not in skip else None
    if "fidelity" not in skip:
        fidelity_table(dec, cost, rng, args.fidelity_frames)
    if "throughput" not in skip:
        throughput_table(dec, args, rng)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
