"""Event-loop lag sampling, the client-side half of client-bound detection.

A task sleeps a fixed interval and measures how late it wakes up. When the loop is busy (parsing, too many
streams, a decode accidentally on the loop) the lateness grows; a level whose lag p99 exceeds the threshold is
marked client-bound, because its latencies then measure this process as much as the server.

`ThreadClock` tells the two causes of lag apart: the loop thread's CPU time (it was working) and, on Linux, its
run-queue wait from ``/proc/thread-self/schedstat`` (it was ready to run and got no core: the machine was busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from orpheus_bench.limits import LAG_INTERVAL_S


class LoopLagMonitor:
    """Samples event-loop lag until stopped; `take()` returns and clears the samples (ms)."""

    def __init__(self, interval_s: float = LAG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self._samples.append(max(0.0, (time.perf_counter() - t - self.interval_s) * 1000.0))

    def take(self) -> list[float]:
        """Samples since the last call."""
        out, self._samples = self._samples, []
        return out

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


_SCHEDSTAT = Path("/proc/thread-self/schedstat")


@dataclass(frozen=True, slots=True)
class ThreadClock:
    """CPU time and run-queue wait of the calling thread at one moment (wait None where the OS does not say)."""

    cpu_s: float
    wait_s: float | None

    @classmethod
    def sample(cls) -> ThreadClock:
        """Now, for the calling thread (call it from the event-loop thread)."""
        try:
            # schedstat: ns on a CPU, ns waiting on a run queue, timeslices (Linux, CONFIG_SCHED_INFO)
            wait_ns = int(_SCHEDSTAT.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return cls(time.thread_time(), None)
        return cls(time.thread_time(), wait_ns / 1e9)

    def since(self, earlier: ThreadClock) -> ThreadClock:
        """The difference from an earlier sample."""
        wait = None if self.wait_s is None or earlier.wait_s is None else self.wait_s - earlier.wait_s
        return ThreadClock(self.cpu_s - earlier.cpu_s, wait)
