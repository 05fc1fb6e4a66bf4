"""Closed-loop throughput on a server of known rate: the old first-send-to-last-end window against the measures layer.

Replays FIFO servers through the simulator's discrete-event model (`orpheus_bench.sim.timing.simulate_schedule`,
via `orpheus_bench.gate.calibrate.replay_level`): every request holds one of ``k`` slots for a fixed service time
(no prefill, no per-token slowdown, no jitter), so the true rate at ``c`` workers is ``min(c, k) / service``.
For each (slots, workers, measured requests) it prints the true rate, the old estimator (measured completions
divided by last measured end minus first measured send: warmups still queued inside that window are served but
not counted, and the drain at the end has fewer than ``c`` in flight) and the measures layer's
``throughput_rps`` (Little's law over the requests sent while ``c`` were in flight), with each one's ratio to the
true rate. Deterministic: the numbers depend only on the code, not on the machine.

    .venv/bin/python benchmarks/throughput_estimators.py
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from orpheus_bench.gate.calibrate import replay_level
from orpheus_bench.measures import metrics
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.table import level_tables
from orpheus_bench.records import RequestRecord
from orpheus_bench.sim.config import SimConfig

TOKEN_MS = 10.0
FRAMES = 2  # 14 audio tokens + the stop word: 15 steps, the first at 0 (no prefill)
SERVICE_S = 14 * TOKEN_MS / 1000.0


def fifo(slots: int) -> SimConfig:
    """A server whose every request takes exactly `SERVICE_S` on one of `slots` slots."""
    return SimConfig(
        slots=slots, token_ms=TOKEN_MS, busy_alpha=0.0, prefill_base_ms=0.0, prefill_ms_per_token=0.0, jitter=0.0,
        audio_frames=FRAMES, slot_prompt_similarity=1.0,
    )  # fmt: skip


def old_window(records: Sequence[RequestRecord]) -> float:
    """The estimator before the measures layer: completions / (last measured end - first measured send)."""
    measured = [r for r in records if not r.warmup and r.ok]
    start = min(r.run_offset_s for r in measured)
    end = max(r.run_offset_s + (r.total_s or 0.0) for r in measured)
    return len(measured) / (end - start)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--slots", default="1,4", help="server slots (default 1,4)")
    ap.add_argument("--workers", default="1,2,4,8,12,16,32", help="closed-loop workers (default 1,2,4,8,12,16,32)")
    ap.add_argument(
        "--requests", default="8,c,10c", help="measured requests per level: numbers or c/10c (default 8,c,10c)"
    )
    args = ap.parse_args(argv)
    print("# throughput estimators on FIFO servers of known rate (orpheus-bench)")
    print(f"service time {SERVICE_S * 1000:.0f} ms per request; true rate = min(workers, slots) / service")
    print()
    print(
        "| slots | workers | requests | true req/s | old window req/s | old / true | measures req/s | measures / true |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for slots in (int(s) for s in args.slots.split(",")):
        for c in (int(w) for w in args.workers.split(",")):
            sizes = []
            for spec in args.requests.split(","):
                n = c if spec == "c" else 10 * c if spec == "10c" else int(spec)
                if n not in sizes:
                    sizes.append(n)
            for n in sorted(sizes):
                records = replay_level(fifo(slots), ["Hello there."], level=c, requests=n)
                (table,) = level_tables(records)
                new = metrics.estimate(table, Query("throughput_rps"))
                true = min(c, slots) / SERVICE_S
                old = old_window(records)
                new_cells = f"{new:.3f} | {new / true:.3f}" if new is not None else "- | -"
                print(f"| {slots} | {c} | {n} | {true:.3f} | {old:.3f} | {old / true:.3f} | {new_cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
