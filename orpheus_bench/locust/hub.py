"""gevent plumbing for the Locust driver: SNAC decoding on a real OS thread, and hub-lag sampling.

Under Locust, gevent has monkey-patched ``threading``: a `DecodeService` created on the hub would run its
"worker thread" as a greenlet, and every SNAC forward pass would freeze all users' timing. `DecodeHost` therefore
starts one native thread (the original ``_thread.start_new_thread``) with a gevent hub of its own, builds the
decode service there (loading SNAC included), and lets that hub run the service's worker greenlets. Those
greenlets block only that thread while torch decodes; the users' hub keeps stamping tokens.

Greenlets on the users' hub wait for a window's `concurrent.futures.Future` through one async watcher of that
hub: the decode thread's done-callback queues the future and calls the watcher's thread-safe ``send``, and the
watcher's callback wakes the waiting greenlet. No greenlet ever blocks the hub on a future, and no threadpool
slot is spent per waiting window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import gevent
import gevent.event
from gevent.monkey import get_original

from orpheus_bench.audio.service import DecodeResult, DecodeService, DecodeStats
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.limits import LAG_INTERVAL_S

_start_native_thread: Callable[..., Any] = get_original("_thread", "start_new_thread")
READY_TIMEOUT_S = 600.0
CLOSE_TIMEOUT_S = 30.0


class _Waker:
    """Wakes greenlets of the creating thread's hub from other threads (one async watcher, thread-safe send)."""

    def __init__(self) -> None:
        self._queue: deque[Callable[[], None]] = deque()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._run)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the hub's thread at its next loop iteration; callable from any thread."""
        self._queue.append(fn)  # deque.append is atomic under the GIL
        self._watcher.send()

    def _run(self) -> None:
        while self._queue:
            self._queue.popleft()()

    def close(self) -> None:
        """Stop the watcher; only once nothing can call `call_soon` any more."""
        self._watcher.close()


class DecodeHost:
    """A `DecodeService` built and run on its own OS thread; submit and wait from greenlets."""

    def __init__(self, build: Callable[[], DecodeService]) -> None:
        self._build = build
        self._waker = _Waker()
        self.ready = gevent.event.Event()  # set once the service exists (or building it failed)
        self.stopped = gevent.event.Event()
        self.service: DecodeService | None = None
        self.error: BaseException | None = None
        self._stop_watcher: Any = None
        self._waiting: dict[Future[DecodeResult], gevent.event.Event] = {}
        self._started = False

    def start(self) -> None:
        """Start the decode thread; `ready` is set when the service is built (loading SNAC may take seconds)."""
        if not self._started:
            self._started = True
            _start_native_thread(self._thread_main, ())

    # ---- the decode thread ---------------------------------------------------------------------------
    def _thread_main(self) -> None:
        hub = gevent.get_hub()  # this thread's own hub: the service's worker greenlets run here
        try:
            self.service = self._build()
        except BaseException as exc:  # reported to the users' side; the thread has nowhere else to say it
            self.error = exc
            self._waker.call_soon(self.ready.set)
            self._waker.call_soon(self.stopped.set)
            return
        stop = hub.loop.async_()
        stop.start(lambda: gevent.spawn(self._close_here, stop))
        self._stop_watcher = stop
        self._waker.call_soon(self.ready.set)
        try:
            hub.join()  # returns when the workers have ended and the stop watcher is closed
        finally:
            self._waker.call_soon(self.stopped.set)

    def _close_here(self, stop: Any) -> None:
        try:
            if self.service is not None:
                self.service.close(timeout_s=CLOSE_TIMEOUT_S)
        finally:
            stop.close()

    # ---- the users' hub ------------------------------------------------------------------------------
    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Block this greenlet until the service is built; False on timeout or failure."""
        self.ready.wait(timeout_s)
        return self.service is not None

    def decode(self, window: DecodeWindow) -> DecodeResult:
        """Decode one window; blocks only the calling greenlet. Raises what the decode raised."""
        if self.service is None:
            raise RuntimeError("decode service is not ready")
        fut = self.service.submit(window)
        if not fut.done():
            done = gevent.event.Event()
            self._waiting[fut] = done
            fut.add_done_callback(self._on_done)
            try:
                done.wait()
            except BaseException:
                fut.cancel()  # still queued: nobody wants it any more
                raise
            finally:
                self._waiting.pop(fut, None)
        return fut.result(timeout=0)

    def _on_done(self, fut: Future[DecodeResult]) -> None:
        # Runs on the decode thread (or here, when the future was already done).
        self._waker.call_soon(lambda: self._wake(fut))

    def _wake(self, fut: Future[DecodeResult]) -> None:
        done = self._waiting.pop(fut, None)
        if done is not None:
            done.set()

    def stats(self) -> DecodeStats | None:
        """The service's counters (None before it is built)."""
        return None if self.service is None else self.service.stats

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Finish the queued windows, end the decode thread; idempotent."""
        if not self._started:
            self._waker.close()
            return
        if self.ready.wait(timeout_s) and self._stop_watcher is not None and not self.stopped.is_set():
            self._stop_watcher.send()
        if self.stopped.wait(timeout_s):
            self._waker.close()


class HubLagMonitor:
    """Samples how late a sleeping greenlet wakes (ms): the gevent twin of `LoopLagMonitor`."""

    def __init__(self, interval_s: float = LAG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._samples: list[float] = []
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Begin sampling on this hub."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            t = time.perf_counter()
            gevent.sleep(self.interval_s)
            self._samples.append(max(0.0, (time.perf_counter() - t - self.interval_s) * 1000.0))

    def take(self) -> list[float]:
        """Samples since the last call."""
        out, self._samples = self._samples, []
        return out

    def stop(self) -> None:
        """Stop sampling."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
