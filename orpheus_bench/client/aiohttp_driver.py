"""One request over aiohttp -> one filled `RequestRecord` (the ``aiohttp`` transport: one readany() per HTTP chunk).

The driver only does I/O and takes timestamps: bytes go to the request's `RequestPipeline`, decode windows go to
the process's `DecodeService` (OS threads, never this event loop), and transport errors are translated into the
`errors` tree at this boundary. Nothing here raises for a failed request: the failure is written into the record.
Cancellation (Ctrl-C, SIGTERM) marks the record ``cancelled`` and is then re-raised so the sweep can stop.

This was the only transport before issue 16 and stays selectable (``client.transport: aiohttp``) so benchmarks can
run the old path beside `stream_driver`, which parses bytes where they arrive instead of once per readany().
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.client.decoding import PcmCollector, RequestDecodes, run_request
from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.protocol import is_event_stream, non_stream_answer_error, parse_error_text
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.errors import (
    ConnectError,
    DisconnectError,
    ProtocolError,
)
from orpheus_bench.limits import BLOCKING_BODY_LIMIT, ERROR_BODY_LIMIT, STALE_RETRIES
from orpheus_bench.records import RequestRecord
from orpheus_bench.target import Target


async def execute(
    session: aiohttp.ClientSession,
    target: Target,
    record: RequestRecord,
    body: dict[str, Any],
    decoder: DecodeService,
    *,
    clock: Callable[[], float] = time.perf_counter,
    t0: float | None = None,
    collect: PcmCollector | None = None,
) -> RequestRecord:
    """Send one request and fill `record`; `t0` is the clock value of "request sent" (default: now)."""

    async def exchange(pipeline: RequestPipeline, decodes: RequestDecodes, now: Callable[[], float]) -> None:
        try:
            await _exchange_once_more_on_stale(session, target, record, body, pipeline, decodes.submit, now)
        except TimeoutError:
            raise  # aiohttp's own timeouts too: `_timeout_message` says which limit it was
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"cannot connect to {target.base_url}: {exc.os_error or exc}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError) as exc:
            raise DisconnectError(f"connection lost mid-response: {exc.__class__.__name__}: {exc}") from exc
        except aiohttp.ClientResponseError as exc:
            raise ProtocolError(f"bad HTTP response: {exc.message}", http_status=exc.status) from exc
        except aiohttp.ClientError as exc:
            raise DisconnectError(f"{exc.__class__.__name__}: {exc}") from exc

    def timeout_message(target: Target, exc: TimeoutError) -> str:
        return _timeout_message(record, target, exc)

    start = clock() if t0 is None else t0
    return await run_request(
        target, record, decoder, exchange, start=start, clock=clock, collect=collect, timeout_message=timeout_message
    )


async def _exchange_once_more_on_stale(
    session: aiohttp.ClientSession,
    target: Target,
    record: RequestRecord,
    body: dict[str, Any],
    pipeline: RequestPipeline,
    submit: Callable[[list[DecodeWindow]], None],
    now: Callable[[], float],
) -> None:
    """`_exchange`, retried once when a pooled keep-alive connection turns out to be dead before any answer.

    llama-server closes the connection after a streamed (chunked) response without saying ``Connection: close``;
    the pool hands that socket to the next request, whose write then fails. That request never reached the
    server, so sending it again on a fresh connection is safe and keeps keep-alive (the seed's setting) usable.
    The record notes the retry.
    """
    first: BaseException | None = None
    for attempt in range(STALE_RETRIES + 1):
        try:
            await _exchange(session, target, record, body, pipeline, submit, now)
            return
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError) and first is not None:
                # The server went away while our request was with it: that is a disconnect, not a refusal.
                raise DisconnectError(
                    f"connection lost before the response ({first.__class__.__name__}); "
                    f"the server then refused connections: {exc.os_error or exc}"
                ) from first
            stale = not isinstance(exc, aiohttp.ClientConnectorError) and record.t_headers_s is None
            if not stale or attempt == STALE_RETRIES:
                raise
            first = first or exc
            record.extra["stale_connection_retries"] = attempt + 1


async def _exchange(
    session: aiohttp.ClientSession,
    target: Target,
    record: RequestRecord,
    body: dict[str, Any],
    pipeline: RequestPipeline,
    submit: Callable[[list[DecodeWindow]], None],
    now: Callable[[], float],
) -> None:
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=target.connect_timeout_s,
        sock_connect=target.connect_timeout_s,
        # A blocking answer arrives only when generation is done: only the whole-request limit applies to it.
        sock_read=target.between_tokens_timeout_s if target.streaming else None,
    )
    async with session.post(target.url, json=body, headers=target.headers(), timeout=timeout) as resp:
        record.t_headers_s = now()
        record.http_status = resp.status
        if resp.status >= 400:
            raw = await resp.content.read(ERROR_BODY_LIMIT)
            record.t_first_byte_s = now()
            raise parse_error_text(resp.status, raw)
        if not target.streaming:
            raw = await resp.content.read(BLOCKING_BODY_LIMIT)
            submit(pipeline.feed_body(raw, now()))
            return
        ctype = resp.headers.get("Content-Type", "")
        if not is_event_stream(ctype):
            raw = await resp.content.read(ERROR_BODY_LIMIT)
            record.t_first_byte_s = now()
            raise non_stream_answer_error(resp.status, ctype, raw)
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                break
            submit(pipeline.feed_bytes(chunk, now()))
        submit(pipeline.end_of_stream(now()))


def _timeout_message(record: RequestRecord, target: Target, exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"could not connect within {target.connect_timeout_s:g} s"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        if record.t_headers_s is None:
            return f"no response headers for {target.between_tokens_timeout_s:g} s (slow or stuck server)"
        return f"no data for {target.between_tokens_timeout_s:g} s between chunks (stalled stream)"
    return f"request exceeded its {target.request_timeout_s:g} s limit"
