"""One Orpheus request over geventhttpclient -> one filled `RequestRecord`: the Locust twin of the aiohttp driver.

Same request (URL, headers, JSON body from `Target`), same pure `RequestPipeline`, same error classes: status
>= 400 and non-SSE answers to a stream request go through `parse_error_text`, a read timeout between chunks or
past the request limit becomes `StreamTimeout`, a dropped connection `DisconnectError`. Transport errors are
translated here, at the boundary; nothing here raises for a failed request, and a killed greenlet (Locust
stopping its users) leaves a ``cancelled`` record before the kill goes on.

The body is read line by line as it arrives (SSE events end in ``\\n``). Locust's own ``iter_content(n)`` is
not used: it waits until n bytes have accumulated, which would stamp several tokens with one late time.
Decode windows go to a `DecodeHost` (an OS thread); one greenlet per window waits for its result, like the
aiohttp driver's one task per window.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.useragent import RetriesExceeded, UserAgent

from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.protocol import is_event_stream, non_stream_answer_error, parse_error_text
from orpheus_bench.core.windows import DecodeWindow
from orpheus_bench.errors import (
    ConnectError,
    DecodeError,
    DisconnectError,
    ProtocolError,
    RequestError,
    StreamTimeout,
)
from orpheus_bench.limits import BLOCKING_BODY_LIMIT, DECODE_DRAIN_S, ERROR_BODY_LIMIT
from orpheus_bench.locust.hub import DecodeHost
from orpheus_bench.records import ErrorClass, RequestRecord, Status
from orpheus_bench.target import Target

# Every status comes back as a response, so an error body (llama-server's JSON) can be read and classified.
ALL_STATUSES = frozenset(range(100, 600))


def encode_body(body: dict[str, Any]) -> bytes:
    """The JSON body exactly as aiohttp's ``json=`` sends it (``json.dumps`` defaults, UTF-8)."""
    return json.dumps(body).encode("utf-8")


def request_headers(target: Target) -> dict[str, str]:
    """The target's headers; identity encoding, because the body goes to the SSE parser undecoded."""
    return {**target.headers(), "Accept-Encoding": "identity"}


def execute(
    agent: UserAgent,
    target: Target,
    record: RequestRecord,
    body: bytes,
    decoder: DecodeHost | None,
    *,
    clock: Callable[[], float] = time.perf_counter,
    t0: float | None = None,
) -> RequestRecord:
    """Send one request and fill `record`; `t0` is the clock value of "request sent" (default: now)."""
    start = clock() if t0 is None else t0
    pipeline = target.new_pipeline(record)
    pending: list[gevent.Greenlet] = []

    def now() -> float:
        return clock() - start

    def submit(windows: list[DecodeWindow]) -> None:
        for w in windows:
            pending.append(gevent.spawn(_decode, pipeline, decoder, w, now))

    limit = gevent.Timeout(target.request_timeout_s)
    limit.start()
    try:
        try:
            _exchange(agent, target, record, body, pipeline, submit, now)
            gevent.joinall(pending)
            for g in pending:
                if isinstance(g.value, RequestError):
                    raise g.value
        except gevent.Timeout as exc:
            if exc is not limit:
                raise
            raise StreamTimeout(f"request exceeded {target.request_timeout_s:g} s") from None
    except RequestError as exc:
        record.fail(exc.error_class, str(exc), Status.TIMEOUT if isinstance(exc, StreamTimeout) else Status.ERROR)
        if exc.http_status is not None and record.http_status is None:
            record.http_status = exc.http_status
    except gevent.GreenletExit:
        record.fail(ErrorClass.CANCELLED, "run interrupted", Status.CANCELLED)
        gevent.killall(pending, block=False)
        pipeline.finalize(now())
        raise
    finally:
        limit.close()
    if record.status is not Status.OK:
        # Decodes still running belong to audio already received: keep them (bounded) for the record.
        gevent.joinall(pending, timeout=DECODE_DRAIN_S)
        gevent.killall(pending, block=False)
    pipeline.finalize(now())
    return record


def _exchange(
    agent: UserAgent,
    target: Target,
    record: RequestRecord,
    body: bytes,
    pipeline: RequestPipeline,
    submit: Callable[[list[DecodeWindow]], None],
    now: Callable[[], float],
) -> None:
    try:
        resp = agent.urlopen(target.url, method="POST", payload=body, headers=request_headers(target))
    except RetriesExceeded as exc:
        original = getattr(exc, "original", None)
        if isinstance(original, gevent.Timeout):
            raise original from None  # the request's own limit: the caller tells it apart
        if isinstance(original, socket.timeout):
            raise StreamTimeout(
                f"no response headers within {target.connect_timeout_s:g} s / "
                f"{target.between_tokens_timeout_s:g} s read limit"
            ) from exc
        raise DisconnectError(f"connection failed before the response: {original or exc}") from exc
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise DisconnectError(f"connection lost while sending: {exc}") from exc
    except HTTPConnectionClosed as exc:
        raise DisconnectError(f"connection closed before the response: {exc}") from exc
    except HTTPParseError as exc:
        raise ProtocolError(f"bad HTTP response: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {target.base_url}: {exc}") from exc
    raw = resp._response  # the streaming response: CompatResponse only offers CRLF lines and n-byte reads
    try:
        record.t_headers_s = now()
        record.http_status = resp.status_code
        if resp.status_code >= 400:
            data = _read_limited(raw, ERROR_BODY_LIMIT)
            record.t_first_byte_s = now()
            raise parse_error_text(resp.status_code, data)
        if not target.streaming:
            submit(pipeline.feed_body(_read_limited(raw, BLOCKING_BODY_LIMIT), now()))
            return
        ctype = str(resp.headers.get("Content-Type") or "")
        if not is_event_stream(ctype):
            data = _read_limited(raw, ERROR_BODY_LIMIT)
            record.t_first_byte_s = now()
            raise non_stream_answer_error(resp.status_code, ctype, data)
        while line := raw.readline(b"\n"):
            submit(pipeline.feed_bytes(line, now()))
        tail = raw.read()  # a last line without its newline, if the server sent one
        if tail:
            submit(pipeline.feed_bytes(tail, now()))
        submit(pipeline.end_of_stream(now()))
    except TimeoutError as exc:  # socket.timeout is TimeoutError
        raise StreamTimeout(
            f"no data for {target.between_tokens_timeout_s:g} s between chunks (stalled stream)"
        ) from exc
    except (HTTPParseError, OSError) as exc:  # HTTPConnectionClosed is an HTTPParseError
        raise DisconnectError(f"connection lost mid-response: {exc.__class__.__name__}: {exc}") from exc
    finally:
        raw.release()


def _read_limited(raw: Any, limit: int) -> bytes:
    """Up to `limit` bytes of the body (the rest is dropped with the connection)."""
    out = bytearray()
    while len(out) < limit:
        chunk = raw.read(min(65536, limit - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _decode(
    pipeline: RequestPipeline,
    decoder: DecodeHost | None,
    window: DecodeWindow,
    now: Callable[[], float],
) -> DecodeError | None:
    """Decode one window and credit it; a failure is returned (a greenlet that raises would be logged)."""
    if decoder is None:
        return DecodeError("a decode window arrived but decoding is off")
    try:
        result = decoder.decode(window)
    except Exception as exc:
        return DecodeError(f"SNAC decode failed: {exc.__class__.__name__}: {exc}")
    pipeline.on_decoded(window, int(result.pcm.shape[0]), now(), result.decode_s, result.queue_s)
    return None
