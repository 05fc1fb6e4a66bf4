"""Decode windows per second by batch size: the DecodeService's batching, reference vs chunked windows.

For each stream count and each ``max_batch`` the script runs the same closed-loop streams as
`benchmarks/decode_throughput.py` (one thread per stream, one window in flight per stream, the next submitted
when its PCM returns; its `plan`, `random_frames`, `run_streams` and `via_service`) through one
`DecodeService` with one worker thread, for the reference window (28 tokens, a window per frame) and the
``chunked`` preset (K=4, C=2, R=1), and prints windows decoded per wall second, audio seconds per wall second and
the mean batch the service formed. Meant for a CUDA GPU (`benchmarks/gpu_subset.sh`), where batching is what
lets one decoder serve many streams; on a CPU it runs too, slowly (``--device cpu`` with small sizes).

Usage: ``python benchmarks/gpu_decode_batches.py --device cuda --streams 1,4,16,64 --batches 1,4,16,64``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Sequence

import torch
from decode_throughput import plan, random_frames, run_streams, table, via_service

from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.service import DecodeService
from orpheus_bench.audio.snac_loader import default_torch_threads, load_snac, resolve_device
from orpheus_bench.core.windows import DecodeSpec
from orpheus_bench.records import SAMPLE_RATE_HZ

MODES = {"reference": DecodeSpec(), "chunked": DecodeSpec.from_preset("chunked")}


def ints(text: str) -> list[int]:
    """Comma-separated positive integers."""
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cpu or auto (default cuda)")
    ap.add_argument("--streams", type=ints, default=[1, 4, 16, 64], help="stream counts (default 1,4,16,64)")
    ap.add_argument("--batches", type=ints, default=[1, 4, 16, 64], help="max_batch values (default 1,4,16,64)")
    ap.add_argument("--frames", type=int, default=24, help="frames per stream (default 24 = 2 s of audio)")
    ap.add_argument("--max-wait-ms", type=float, default=2.0, help="service wait to fill a batch (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per cell; the best is kept (default 1)")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    loaded = load_snac("random", device, torch_threads=default_torch_threads(device))
    dec = SnacDecoder(loaded)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""
    print(f"# decode windows per second by batch size: {loaded.description}")
    print(
        f"machine: {platform.machine()}, {cores} CPUs, load avg {os.getloadavg()[0]:.2f}, torch {torch.__version__}"
        f"{gpu}; {args.frames} frames per stream, max_wait_ms {args.max_wait_ms:g}, 1 decode worker"
    )
    rng = random.Random(0)
    with DecodeService(dec, max_batch=1, threads=1) as warm:  # first CUDA calls compile and allocate
        warm.submit(plan(DecodeSpec(), random_frames(4, rng))[0]).result()
    rows: list[list[object]] = []
    for n in args.streams:
        streams = [random_frames(args.frames, rng) for _ in range(n)]
        for mode, spec in MODES.items():
            windows = [plan(spec, s) for s in streams]
            count = sum(len(ws) for ws in windows)
            audio_s = sum(w.kept_samples for ws in windows for w in ws) / SAMPLE_RATE_HZ
            base = None
            for batch in args.batches:
                best, mean_batch, t0 = 0.0, 0.0, time.perf_counter()
                for _ in range(args.rounds):
                    with DecodeService(dec, max_batch=batch, max_wait_ms=args.max_wait_ms, threads=1) as svc:
                        rate = run_streams(windows, via_service(svc))
                    if rate > best:
                        best, mean_batch = rate, svc.stats.mean_batch_size
                per_s = best * count / audio_s
                base = base or per_s
                rows.append(
                    [n, mode, batch, f"{per_s:,.0f}", f"{best:.2f}", f"{mean_batch:.2f}", f"{per_s / base:.2f}"]
                )
                print(f"  {n} streams, {mode}, max_batch {batch}: {per_s:,.0f} windows/s "
                      f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)  # fmt: skip
    table(
        "windows per second by batch size (closed loop: the decoder's ceiling, not a real-time schedule)",
        ["streams", "windows", "max_batch", "windows/s", "audio s / wall s", "mean batch", "vs max_batch first"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
