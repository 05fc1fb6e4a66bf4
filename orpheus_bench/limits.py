"""Limits every driver shares: how much of a body it reads, how long it waits, when the client is the bottleneck.

Both drivers (the aiohttp runner and the Locust user) and the level summaries read these constants, so a run
under Locust and one under ``orpheus-bench run`` are bounded and judged alike. Pure constants: no imports.
"""

from __future__ import annotations

ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error (or non-SSE) answer kept for its message
BLOCKING_BODY_LIMIT = 64 * 1024 * 1024  # a blocking answer larger than this is cut off
DECODE_DRAIN_S = 30.0  # after a failed request, how long decodes of audio already received may finish
STALE_RETRIES = 4  # each failed write on a pooled keep-alive connection discards one dead connection
LAG_INTERVAL_S = 0.05  # event-loop (or gevent hub) lag sampling interval

# Client-bound thresholds. A level whose loop lag p99 exceeds the first, or whose decode queue wait p90 exceeds
# the second, measured the client as much as the server; a request whose own decode queue wait p90 exceeds the
# second is client-bound too (`RequestRecord.client_bound`).
CLIENT_BOUND_LAG_P99_MS = 25.0
CLIENT_BOUND_DECODE_QUEUE_P90_MS = 100.0

# Why a loop lagged (the level summary's reason): a loop thread that used at least this share of a core was busy
# working (the harness is the limit); one that waited at least this share of the level on the run queue, ready but
# without a core, was starved by other processes (the machine is the limit, not the harness).
LOOP_BUSY_CPU_SHARE = 0.8
LOOP_STARVED_WAIT_SHARE = 0.02

# `client.processes: auto` gives a worker process at most this many streams of the largest level: one process
# held 16 streams at lag p99 < 5 ms on the old path and several times that on the stream transport on a 2-core VM
# (benchmarks/README.md, max_streams.py); below it, a second process costs more than it frees.
STREAMS_PER_PROCESS = 32
MAX_AUTO_PROCESSES = 8
