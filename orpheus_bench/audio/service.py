"""One decode service per process: windows from every stream share a queue and a few OS worker threads.

Decoding never runs on the asyncio loop or the gevent hub: `DecodeService.submit` only appends to a queue and
returns a plain `concurrent.futures.Future` (await it with ``asyncio.wrap_future``; wait on it from gevent
through a threadpool or polling). A worker thread takes the oldest window, then gathers the windows queued
right behind it that have the same frame count, up to ``max_batch``, waiting at most ``max_wait_ms`` after the
oldest window was submitted for more to arrive, and decodes them in one forward pass.

Order: gathering stops at the first window of another shape, so with one worker thread windows finish in
submission order, which keeps each stream's chunks in order. With ``threads > 1`` batches may finish out of
order; callers that await their own futures in submission order (as the pipeline does) still see their chunks
in order.

``decoder=None`` is "decode off": futures resolve at once with empty PCM, so runs count tokens only.

Per window the result carries the queue wait (submit -> batch start) and the batch's decode time; `stats`
gives the queue depth and totals the client-bound detector reads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.errors import DecodeError

if TYPE_CHECKING:
    from orpheus_bench.audio.decoder import SnacDecoder

_EMPTY_PCM = np.zeros(0, dtype=np.float32)
_EMPTY_PCM.flags.writeable = False


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """The kept PCM of one window and what it cost."""

    pcm: np.ndarray  # float32 mono 24 kHz, the window's kept slice (empty when decoding is off)
    queue_s: float  # submit -> its batch started decoding
    decode_s: float  # wall time of the whole batch's forward pass
    batch_size: int  # windows decoded together (0 when decoding is off)
    done_perf_s: float = 0.0  # time.perf_counter() when the PCM was ready, before any event-loop delay


@dataclass(frozen=True, slots=True)
class DecodeStats:
    """A snapshot of the service's counters."""

    queue_depth: int  # windows waiting now
    submitted: int
    decoded: int
    failed: int
    cancelled: int
    batches: int
    decode_s_total: float  # sum over batches of forward-pass wall time
    queue_s_total: float  # sum over windows of queue wait
    queue_s_max: float
    uptime_s: float

    @property
    def mean_batch_size(self) -> float:
        """Windows per forward pass."""
        return self.decoded / self.batches if self.batches else 0.0

    @property
    def busy_fraction(self) -> float:
        """Share of the uptime the workers spent decoding (near 1 per thread: decoding is the bottleneck)."""
        return self.decode_s_total / self.uptime_s if self.uptime_s > 0 else 0.0


@dataclass(slots=True)
class _Job:
    window: DecodeWindow
    future: Future[DecodeResult]
    t_submit: float


def default_batching(device: str) -> tuple[int, float]:
    """(max_batch, max_wait_ms) for a device.

    CPU: no batching. Measured on 2 cores (benchmarks/decode_throughput.py): a batch of 4 four-frame windows
    took 409 ms against 4 x 90 ms single, and at 12 streams the batched service decoded 0.85-1.0x the audio
    per second of the unbatched one, so batching buys nothing and makes the first window of a batch wait.
    GPU: a forward pass costs nearly the same for 1 or 32 windows, so gathering for a couple of milliseconds
    multiplies throughput (not measured on a GPU here yet; tune with the benchmark's --device cuda).
    """
    if device.startswith("cuda"):
        return 32, 2.0
    return 1, 0.0


class DecodeService:
    """Shared SNAC decode queue with worker threads; see the module docstring.

    ``threads`` is the number of decode worker threads (each runs whole batches); torch's intra-op threads
    per forward pass are set once per process by `load_snac` (cores - 1 on CPU). One worker is the default:
    it leaves a core to the event loop. Where cores are spare, more workers raise throughput (2 workers on
    2 idle cores: 1.5-1.7x one); on GPU, kernels from one thread already queue back to back.
    ``max_batch``/``max_wait_ms`` defaults per device: `default_batching`.
    """

    def __init__(
        self,
        decoder: SnacDecoder | None,
        *,
        max_batch: int = 1,
        max_wait_ms: float = 0.0,
        threads: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_batch < 1 or threads < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and threads must be >= 1 and max_wait_ms >= 0")
        self.decoder = decoder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._closed = False
        self._t_start = clock()
        self._submitted = self._decoded = self._failed = self._cancelled = self._batches = 0
        self._decode_s_total = self._queue_s_total = self._queue_s_max = 0.0
        self._workers: list[threading.Thread] = []
        if decoder is not None:
            for i in range(threads):
                t = threading.Thread(target=self._run, name=f"snac-decode-{i}", daemon=True)
                t.start()
                self._workers.append(t)

    @property
    def enabled(self) -> bool:
        """False when decoding is off."""
        return self.decoder is not None

    def submit(self, window: DecodeWindow) -> Future[DecodeResult]:
        """Queue a window; thread-safe. Raises RuntimeError once the service is closed."""
        fut: Future[DecodeResult] = Future()
        now = self._clock()
        with self._cond:
            if self._closed:
                raise RuntimeError("DecodeService is closed")
            self._submitted += 1
            if self.decoder is None:
                self._decoded += 1
                fut.set_result(DecodeResult(_EMPTY_PCM, 0.0, 0.0, 0, now))
                return fut
            self._queue.append(_Job(window, fut, now))
            self._cond.notify()
        return fut

    @property
    def stats(self) -> DecodeStats:
        """Counters now (consistent with each other)."""
        with self._cond:
            return DecodeStats(
                queue_depth=len(self._queue),
                submitted=self._submitted,
                decoded=self._decoded,
                failed=self._failed,
                cancelled=self._cancelled,
                batches=self._batches,
                decode_s_total=self._decode_s_total,
                queue_s_total=self._queue_s_total,
                queue_s_max=self._queue_s_max,
                uptime_s=self._clock() - self._t_start,
            )

    def close(self, *, cancel_pending: bool = False, timeout_s: float | None = None) -> None:
        """Stop accepting windows, finish (or cancel) the queued ones, join the workers. Idempotent."""
        with self._cond:
            self._closed = True
            if cancel_pending:
                while self._queue:
                    job = self._queue.popleft()
                    if job.future.cancel():
                        self._cancelled += 1
            self._cond.notify_all()
        me = threading.current_thread()
        for t in self._workers:
            if t is not me:
                t.join(timeout_s)

    def __enter__(self) -> DecodeService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(cancel_pending=exc_type is not None)

    def _take_batch(self) -> list[_Job] | None:
        """Block for the next batch; None when closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            batch = [self._queue.popleft()]
            shape = batch[0].window.n_frames
            deadline = batch[0].t_submit + self.max_wait_s
            while len(batch) < self.max_batch:
                if self._queue:
                    if self._queue[0].window.n_frames != shape:
                        break  # keep submission order: never jump a window of another shape
                    batch.append(self._queue.popleft())
                    continue
                remaining = deadline - self._clock()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _run(self) -> None:
        assert self.decoder is not None
        decoder = self.decoder
        while (batch := self._take_batch()) is not None:
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if len(live) < len(batch):
                with self._cond:
                    self._cancelled += len(batch) - len(live)
            if not live:
                continue
            t0 = self._clock()
            try:
                pcms = decoder.decode_batch([job.window for job in live])
            except Exception as exc:
                err = exc if isinstance(exc, DecodeError) else DecodeError(f"{type(exc).__name__}: {exc}")
                with self._cond:
                    self._failed += len(live)
                for job in live:
                    job.future.set_exception(err)
                continue
            t1 = self._clock()
            decode_s = t1 - t0
            waits = [t0 - job.t_submit for job in live]
            with self._cond:
                self._batches += 1
                self._decoded += len(live)
                self._decode_s_total += decode_s
                self._queue_s_total += sum(waits)
                self._queue_s_max = max(self._queue_s_max, *waits)
            for job, pcm, wait in zip(live, pcms, waits, strict=True):
                job.future.set_result(DecodeResult(pcm, wait, decode_s, len(live), t1))
