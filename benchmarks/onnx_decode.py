"""Does ONNX Runtime decode SNAC faster than torch on this CPU? (issue 9, item 3: decide from measurements.)

Builds the random-weight SNAC exactly as the harness does (`load_snac("random", "cpu", torch_threads=N)`:
weight norm folded, the two heavy transposed convs as GEMMs, noise blocks adding zero), exports the path
``three code layers (B, F), (B, 2F), (B, 4F) -> audio (B, 1, 2048 F)`` with ``torch.onnx.export(dynamo=True)``
(batch and frame count dynamic), and times torch against ORT's CPU provider on the same codes, in one run,
with the same thread count on both sides (ORT's intra-op spinning off, so the two do not fight over cores).
The stock `snac.SNAC` decoder (weight norm as parametrizations, real noise blocks) is exported too, to report
whether it exports and runs at all; it is not timed, because it is not what the harness runs.

Run: ``.venv/bin/python benchmarks/onnx_decode.py [--threads 1,2] [--repeats 15]``. Needs onnx, onnxruntime and
onnxscript (``pip install 'orpheus-bench[onnx]'``). The export and the session settings are the package's
(`orpheus_bench.audio.onnx_backend`), i.e. what ``decode.backend: onnx`` runs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orpheus_bench.audio.onnx_backend import example_codes, ort_session
from orpheus_bench.audio.onnx_backend import export_decode as export
from orpheus_bench.audio.snac_loader import SNAC_24KHZ_CONFIG, load_snac
from orpheus_bench.core.frames import SAMPLES_PER_FRAME

SHAPES: list[tuple[int, int]] = [(1, 1), (1, 2), (1, 4), (1, 7), (4, 4)]  # (batch, frames)


def _codes(batch: int, frames: int, seed: int) -> list[torch.Tensor]:
    return example_codes(batch, frames, seed=seed)


def snr_db(ref: np.ndarray, other: np.ndarray) -> float:
    """SNR of ``other`` against ``ref`` in dB (inf when equal)."""
    noise = float(np.sum((ref.astype(np.float64) - other) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in ms after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def check_stock_export(tmp: Path) -> str:
    """Export the unmodified `snac.SNAC` decoder and run it in ORT once; describe what happened."""
    from snac import SNAC

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        stock = SNAC(**SNAC_24KHZ_CONFIG).eval()
    path = tmp / "snac_stock.onnx"
    try:
        export(stock, path)
    except Exception as exc:  # report, do not stop the benchmark
        return f"stock export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    try:
        sess = ort_session(path, 1)
        codes = _codes(1, 4, seed=7)
        out = sess.run(None, {n: c.numpy() for n, c in zip(("l0", "l1", "l2"), codes, strict=True)})[0]
        with torch.inference_mode():
            ref = stock.decode(codes).numpy()
        # the stock model adds fresh random noise on every call, so equality is not expected
        return (
            f"stock export ok ({path.stat().st_size / 1e6:.0f} MB), runs in ORT, output {tuple(out.shape)}; "
            f"SNR vs torch {snr_db(ref, out):.1f} dB (both add their own random noise)"
        )
    except Exception as exc:
        return f"stock export ok but ORT failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def main(argv: list[str] | None = None) -> int:
    """Export, check equality, time torch vs ORT, print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--skip-stock", action="store_true", help="do not try the stock SNAC export")
    args = ap.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]

    import onnx
    import onnxruntime as ort
    import onnxscript

    print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}, "
        f"onnxscript {onnxscript.__version__}, {os.cpu_count()} CPUs, loadavg {os.getloadavg()}"
    )
    # the native variant first: load_snac sets torch's thread count, the harness model's load wins
    native = load_snac("random", "cpu", gemm_transposed_convs=False, torch_threads=thread_counts[0]).model
    loaded = load_snac("random", "cpu", torch_threads=thread_counts[0])
    print(loaded.description)
    model = loaded.model
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        path = tmp / "snac_harness.onnx"
        t0 = time.perf_counter()
        export(model, path)
        print(f"exported harness decoder in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 1e6:.0f} MB")
        # same weights with SNAC's own ConvTranspose1d (ORT's kernel may not share torch's slow path)
        native_path = tmp / "snac_native_convt.onnx"
        export(native, native_path)
        if not args.skip_stock:
            print(check_stock_export(tmp))

        rows = []
        for threads in thread_counts:
            torch.set_num_threads(threads)
            sess = ort_session(path, threads)
            sess_native = ort_session(native_path, threads)
            for batch, frames in SHAPES:
                codes = _codes(batch, frames, seed=100 * batch + frames)
                feed = {n: c.numpy() for n, c in zip(("l0", "l1", "l2"), codes, strict=True)}
                with torch.inference_mode():
                    ref = model.decode(codes).numpy()
                out = sess.run(None, feed)[0]
                assert out.shape == ref.shape == (batch, 1, SAMPLES_PER_FRAME * frames), (out.shape, ref.shape)
                diff = float(np.max(np.abs(out - ref)))
                snr = snr_db(ref, out)

                def run_torch(c: list[torch.Tensor] = codes) -> object:
                    with torch.inference_mode():
                        return model.decode(c)

                def run_ort(f: dict[str, np.ndarray] = feed, s: Any = sess) -> object:
                    return s.run(None, f)

                def run_native(f: dict[str, np.ndarray] = feed, s: Any = sess_native) -> object:
                    return s.run(None, f)

                native_diff = float(np.max(np.abs(sess_native.run(None, feed)[0] - ref)))
                # interleave the three so a load spike from a neighbour hits every side alike
                t_ms, o_ms, n_ms = [], [], []
                for _ in range(3):
                    t_ms.append(median_ms(run_torch, max(3, args.repeats // 3)))
                    o_ms.append(median_ms(run_ort, max(3, args.repeats // 3)))
                    n_ms.append(median_ms(run_native, max(3, args.repeats // 3)))
                tm, om, nm = statistics.median(t_ms), statistics.median(o_ms), statistics.median(n_ms)
                rows.append((threads, batch, frames, tm, om, nm, diff, snr))
                print(
                    f"  threads={threads} B={batch} F={frames}: torch {tm:.1f} ms, ORT {om:.1f} ms, "
                    f"ORT native convT {nm:.1f} ms (max|diff| {native_diff:.1e}), "
                    f"torch/ORT {tm / om:.2f}, max|diff| {diff:.2e}, SNR {snr:.1f} dB",
                    flush=True,
                )
    print(f"\nloadavg after: {os.getloadavg()}\n")
    print(
        "| threads | batch | frames | torch ms | ORT ms | torch / ORT | ORT ms per window "
        "| ORT, native ConvTranspose ms | max abs diff | SNR dB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for threads, batch, frames, tm, om, nm, diff, snr in rows:
        print(
            f"| {threads} | {batch} | {frames} | {tm:.1f} | {om:.1f} | {tm / om:.2f} | {om / batch:.1f} | "
            f"{nm:.1f} | {diff:.1e} | {snr:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
