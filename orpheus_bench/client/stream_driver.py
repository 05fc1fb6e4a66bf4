"""One request over the stream transport -> one filled `RequestRecord`: bytes parsed in the protocol callback.

The ``stream`` transport (the default, issue 16) is a small HTTP/1.1 client on an `asyncio.Protocol`. Each time
the event loop reads a socket, `data_received` takes one timestamp, de-chunks the bytes (`http1.ResponseParser`)
and hands whatever arrived, one event or several, to the request's `RequestPipeline` right there: no
`StreamReader`, no future and no task wake-up per HTTP chunk, and no read timer re-armed per chunk (a watchdog
checks the silence once per timeout period instead). The timestamp is taken before any parsing, at the first
moment Python sees the bytes, so first-token and first-audio times are never later than with aiohttp's
``readany()`` loop, which stamps only after its task has been scheduled again.

Everything else matches `aiohttp_driver`, which stays selectable as ``client.transport: aiohttp``: the same
`Target` request (method, path, headers, JSON body), the same error classes and messages, one retry per dead
keep-alive connection before any answer, and cancellation recorded as ``cancelled``. Plain HTTP and HTTPS; no
proxies (the aiohttp path does not use them either).

About 400 lines, one module on purpose: the pool, the connection protocol and the exchange are one request's
state machine (callbacks from the socket, the awaiting driver, the watchdog); split up, one request's life would
be spread over three files. The byte parsing itself is pure and lives in `http1`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from orpheus_bench import __version__
from orpheus_bench.audio.service import DecodeService
from orpheus_bench.client.decoding import PcmCollector, RequestDecodes, run_request
from orpheus_bench.client.http1 import HTTPParseError, ResponseHead, ResponseParser
from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.protocol import is_event_stream, non_stream_answer_error, parse_error_text
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.errors import ConnectError, DisconnectError, ProtocolError, StreamTimeout
from orpheus_bench.limits import BLOCKING_BODY_LIMIT, ERROR_BODY_LIMIT, STALE_RETRIES
from orpheus_bench.records import RequestRecord
from orpheus_bench.target import Target

Submit = Callable[[list[DecodeWindow]], None]


class _Stale(Exception):
    """The connection died before any byte of the answer: the request may be sent again on a fresh one."""


class StreamPool:
    """One process's keep-alive connections to one server; ``close`` ends them all."""

    def __init__(self, base_url: str, *, connect_timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        name = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal keeps its brackets
        self.host_header = name if default_port else f"{name}:{self.port}"
        self.connect_timeout_s = connect_timeout_s
        self.base_url = base_url
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    def take_idle(self) -> _Connection | None:
        """The most recently released live connection, if any."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self) -> _Connection:
        """A new connection; connect failures become `ConnectError` / `StreamTimeout`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise StreamTimeout(f"could not connect within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.base_url}: {exc}") from exc
        self._all.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """Back to the pool after a complete keep-alive answer."""
        if not conn.closed:
            conn.exchange = None
            self._idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        """A connection closed (called by the connection itself)."""
        self._all.discard(conn)

    def close(self) -> None:
        """Close every connection."""
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; routes socket bytes to the exchange it currently carries."""

    def __init__(self, pool: StreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            self.abort()  # bytes nobody asked for: the connection's state is unknown, never reuse it
            return
        self.exchange.on_data(data)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.exchange is not None:
            self.exchange.on_lost(exc)

    def send(self, exchange: _Exchange, request: bytes) -> None:
        """Start an exchange: write the request."""
        self.exchange = exchange
        self.requests += 1
        assert self.transport is not None
        self.transport.write(request)

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True


class _Exchange:
    """One request's answer on one connection, driven by `data_received` and `connection_lost`."""

    def __init__(
        self,
        conn: _Connection,
        target: Target,
        record: RequestRecord,
        pipeline: RequestPipeline,
        submit: Submit,
        now: Callable[[], float],
    ) -> None:
        self.conn = conn
        self.target = target
        self.record = record
        self.pipeline = pipeline
        self.submit = submit
        self.now = now
        self.parser = ResponseParser()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.mode = "head"  # then "stream", "blocking", "error" (a >= 400 status) or "not_sse"
        self.head: ResponseHead | None = None
        self.body: list[bytes] = []
        self.body_len = 0
        self.last_rx = now()
        self._watchdog: asyncio.TimerHandle | None = None
        if target.streaming:
            self._arm(target.between_tokens_timeout_s)

    # ---- callbacks from the connection ---------------------------------------------------------------
    def on_data(self, data: bytes) -> None:
        t = self.now()
        self.last_rx = t
        if self.finished.done():
            return
        try:
            body = self.parser.feed(data)
            if self.mode == "head":
                if self.parser.head is None:
                    return
                self._on_head(self.parser.head, t)
            if self.mode == "stream":
                if body:
                    self.submit(self.pipeline.feed_bytes(body, t))
                if self.parser.done:
                    self.submit(self.pipeline.end_of_stream(t))
                    self._finish()
                return
            if body:
                self._collect(body, t)
            if self.parser.done:
                if self.record.t_first_byte_s is None:
                    self.record.t_first_byte_s = t
                self._finish()
        except HTTPParseError as exc:
            self._fail(ProtocolError(f"bad HTTP response: {exc}"))
        except Exception as exc:  # a RequestError from the pipeline (or a bug): the awaiting driver raises it
            self._fail(exc)

    def on_lost(self, exc: Exception | None) -> None:
        if self.finished.done():
            return
        try:
            self.parser.feed_eof()
        except HTTPParseError:
            if self.parser.head is None and self.parser.body_bytes == 0:
                self._fail(_Stale(f"connection closed before the response ({exc or 'EOF'})"))
            else:
                what = exc.__class__.__name__ if exc else "server closed the connection"
                self._fail(DisconnectError(f"connection lost mid-response: {what}: {exc or 'EOF'}"))
            return
        # A body delimited by the connection's end is complete now.
        t = self.now()
        if self.mode == "stream":
            try:
                self.submit(self.pipeline.end_of_stream(t))
            except Exception as err:
                self._fail(err)
                return
        elif self.record.t_first_byte_s is None:
            self.record.t_first_byte_s = t
        self._finish()

    # ---- what the head decides ------------------------------------------------------------------------
    def _on_head(self, head: ResponseHead, t: float) -> None:
        rec = self.record
        self.head = head
        rec.t_headers_s = t
        rec.http_status = head.status
        if head.status >= 400:
            self.mode = "error"
        elif not self.target.streaming:
            self.mode = "blocking"
            self._disarm()  # a blocking answer arrives only when generation is done: no silence limit
        elif not is_event_stream(head.headers.get("content-type", "")):
            self.mode = "not_sse"
        else:
            self.mode = "stream"

    def _collect(self, body: bytes, t: float) -> None:
        if self.record.t_first_byte_s is None:
            self.record.t_first_byte_s = t
        limit = BLOCKING_BODY_LIMIT if self.mode == "blocking" else ERROR_BODY_LIMIT
        room = limit - self.body_len
        if room > 0:
            self.body.append(body[:room])
            self.body_len += min(room, len(body))
        if self.body_len >= limit:
            # The rest is not needed (error text) or is cut off (blocking): stop reading, never reuse.
            self.conn.abort()
            self._finish()

    # ---- ending ------------------------------------------------------------------------------------------
    def _finish(self) -> None:
        self._disarm()
        if not self.finished.done():
            self.finished.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._disarm()
        self.conn.abort()
        if not self.finished.done():
            self.finished.set_exception(exc)

    # ---- silence watchdog: one timer per timeout period, not one re-armed per chunk -------------------
    def _arm(self, delay_s: float) -> None:
        self._watchdog = asyncio.get_running_loop().call_later(delay_s, self._check_silence)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _check_silence(self) -> None:
        limit = self.target.between_tokens_timeout_s
        quiet = self.now() - self.last_rx
        if quiet < limit:
            self._arm(limit - quiet)
            return
        self._watchdog = None
        if self.parser.head is None:
            self._fail(StreamTimeout(f"no response headers for {limit:g} s (slow or stuck server)"))
        else:
            self._fail(StreamTimeout(f"no data for {limit:g} s between chunks (stalled stream)"))

    def body_bytes(self) -> bytes:
        """The collected body (error text or a blocking answer)."""
        return b"".join(self.body)


def request_bytes(pool: StreamPool, target: Target, body: dict[str, Any]) -> bytes:
    """The request as it goes on the wire (the same method, path, headers and JSON body as the aiohttp path)."""
    payload = json.dumps(body).encode("utf-8")
    path = urlsplit(target.url).path or "/"
    lines = [f"POST {path} HTTP/1.1", f"Host: {pool.host_header}", f"User-Agent: orpheus-bench/{__version__}"]
    lines += [f"{k}: {v}" for k, v in target.headers().items()]
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


async def execute(
    pool: StreamPool,
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
    request = request_bytes(pool, target, body)

    async def exchange(pipeline: RequestPipeline, decodes: RequestDecodes, now: Callable[[], float]) -> None:
        await _exchange(pool, target, record, request, pipeline, decodes, now)

    start = clock() if t0 is None else t0
    return await run_request(target, record, decoder, exchange, start=start, clock=clock, collect=collect)


async def _exchange(
    pool: StreamPool,
    target: Target,
    record: RequestRecord,
    request: bytes,
    pipeline: RequestPipeline,
    decodes: RequestDecodes,
    now: Callable[[], float],
) -> None:
    """Send, await the answer, act on it; a connection that dies before answering is replaced (see the module)."""
    first: _Stale | None = None
    for attempt in range(STALE_RETRIES + 1):
        conn = pool.take_idle()
        if conn is None:
            try:
                conn = await pool.connect()
            except ConnectError as exc:
                if first is None:
                    raise
                # The server went away while our request was with it: that is a disconnect, not a refusal.
                raise DisconnectError(
                    f"connection lost before the response ({first}); the server then refused connections: {exc}"
                ) from exc
        ex = _Exchange(conn, target, record, pipeline, decodes.submit, now)
        conn.send(ex, request)
        try:
            await ex.finished
        except _Stale as exc:
            if attempt == STALE_RETRIES:
                raise DisconnectError(f"connection lost before the response: {exc}") from exc
            first = first or exc
            record.extra["stale_connection_retries"] = attempt + 1
            continue
        finally:
            ex._disarm()
            if not ex.finished.done() or ex.finished.cancelled():
                conn.abort()  # cancelled mid-answer: the connection's state is unknown
        _after(ex, pool, conn, pipeline, decodes.submit, now)
        return


def _after(
    ex: _Exchange,
    pool: StreamPool,
    conn: _Connection,
    pipeline: RequestPipeline,
    submit: Submit,
    now: Callable[[], float],
) -> None:
    """The answer is complete: raise an error answer, parse a blocking body, and pool the connection."""
    head = ex.head
    assert head is not None
    if ex.parser.done and head.keep_alive and not conn.closed:
        pool.release(conn)
    else:
        conn.abort()
    if ex.mode == "error":
        raise parse_error_text(head.status, ex.body_bytes())
    if ex.mode == "not_sse":
        raise non_stream_answer_error(head.status, head.headers.get("content-type", ""), ex.body_bytes())
    if ex.mode == "blocking":
        submit(pipeline.feed_body(ex.body_bytes(), now()))
