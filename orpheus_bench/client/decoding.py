"""A request's life shared by both HTTP transports (aiohttp and the stream transport): decodes in flight, and
the one place a failure, a timeout or a cancellation is written into the record.

Windows the pipeline returns are handed to the process's `DecodeService` (OS threads, never the event loop); each
result is reported back to the pipeline with its ready time. `RequestDecodes` keeps the futures so the driver can
wait for all of them, give them a bounded time after a failure, or cancel them, and `PcmCollector` keeps a
request's PCM in window order when a sample WAV is wanted. `run_request` wraps a transport's exchange: the
request timeout, `RequestError` into the record, cancellation recorded and re-raised, `finalize` exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.errors import DecodeError, RequestError, StreamTimeout
from orpheus_bench.limits import DECODE_DRAIN_S
from orpheus_bench.records import ErrorClass, RequestRecord, Status
from orpheus_bench.target import Target

Clock = Callable[[], float]
Exchange = Callable[[RequestPipeline, "RequestDecodes", Clock], Awaitable[None]]


class PcmCollector:
    """Keeps a request's PCM in window order when a sample WAV is wanted."""

    def __init__(self) -> None:
        self.parts: dict[int, np.ndarray] = {}

    def add(self, window: DecodeWindow, pcm: np.ndarray) -> None:
        """Store the PCM of one window."""
        self.parts[window.index] = pcm

    def pcm(self) -> np.ndarray:
        """All PCM in order."""
        if not self.parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([self.parts[k] for k in sorted(self.parts)])


class RequestDecodes:
    """The decode futures of one request."""

    def __init__(
        self,
        pipeline: RequestPipeline,
        decoder: DecodeService,
        now: Callable[[], float],
        collect: PcmCollector | None,
    ) -> None:
        self.pipeline = pipeline
        self.decoder = decoder
        self.now = now
        self.collect = collect
        self.pending: list[asyncio.Future[None]] = []

    def submit(self, windows: list[DecodeWindow]) -> None:
        """Start decoding each window (nothing to do, and no allocation, for an empty list)."""
        for w in windows:
            self.pending.append(asyncio.ensure_future(self._decode(w)))

    async def _decode(self, window: DecodeWindow) -> None:
        try:
            result = await asyncio.wrap_future(self.decoder.submit(window))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise DecodeError(f"SNAC decode failed: {exc.__class__.__name__}: {exc}") from exc
        self.pipeline.on_decoded(window, int(result.pcm.shape[0]), self.now(), result.decode_s, result.queue_s)
        if self.collect is not None:
            self.collect.add(window, result.pcm)

    async def wait_all(self) -> None:
        """Wait for every decode; the first failure (a DecodeError) is raised after all have settled."""
        if not self.pending:
            return
        await asyncio.wait(self.pending)
        for f in self.pending:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]

    async def drain(self) -> None:
        """After a failure: give running decodes a bounded time, then cancel the rest; never raises."""
        live = [f for f in self.pending if not f.done()]
        if live:
            _, still = await asyncio.wait(live, timeout=DECODE_DRAIN_S)
            for f in still:
                f.cancel()
        for f in self.pending:
            if f.done() and not f.cancelled():
                f.exception()  # mark retrieved: the record already holds the failure that matters

    def cancel(self) -> None:
        """Cancel every decode (the run is being interrupted)."""
        for f in self.pending:
            f.cancel()


def _request_timeout(target: Target, exc: TimeoutError) -> str:
    return f"request exceeded its {target.request_timeout_s:g} s limit"


async def run_request(
    target: Target,
    record: RequestRecord,
    decoder: DecodeService,
    exchange: Exchange,
    *,
    start: float,
    clock: Clock,
    collect: PcmCollector | None = None,
    timeout_message: Callable[[Target, TimeoutError], str] = _request_timeout,
) -> RequestRecord:
    """Run one transport's `exchange` for `record` (sent at clock value `start`) and fill the record, never raising
    for a failed request; a cancellation is recorded ``cancelled`` and re-raised so the sweep can stop."""
    pipeline = target.new_pipeline(record)

    def now() -> float:
        return clock() - start

    decodes = RequestDecodes(pipeline, decoder, now, collect)
    try:
        try:
            try:
                async with asyncio.timeout(target.request_timeout_s):
                    await exchange(pipeline, decodes, now)
                    await decodes.wait_all()
            except TimeoutError as exc:
                raise StreamTimeout(timeout_message(target, exc)) from exc
        except RequestError as exc:
            status = Status.TIMEOUT if isinstance(exc, StreamTimeout) else Status.ERROR
            record.fail(exc.error_class, str(exc), status)
            if exc.http_status is not None and record.http_status is None:
                record.http_status = exc.http_status
            # Decodes still running belong to audio already received: keep them (bounded) for the record.
            await decodes.drain()
    except asyncio.CancelledError:
        record.fail(ErrorClass.CANCELLED, "run interrupted", Status.CANCELLED)
        decodes.cancel()
        raise
    finally:
        # Every exit path closes the record exactly once, with its end time.
        pipeline.finalize(now())
    return record
