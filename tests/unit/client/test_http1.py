"""The stream transport's HTTP/1.1 response parser, fed answers split at every awkward boundary."""

from __future__ import annotations

import random

import pytest

from orpheus_bench.client.http1 import HTTPParseError, ResponseParser, parse_head

pytestmark = pytest.mark.unit

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENTS = [b'data: {"content":"<custom_token_%d>","stop":false}\n\n' % (4000 + i) for i in range(40)]


def chunked(pieces: list[bytes], *, ext: bool = False) -> bytes:
    out = []
    for p in pieces:
        size = b"%x" % len(p)
        out.append(size + (b";name=value" if ext else b"") + b"\r\n" + p + b"\r\n")
    return b"".join(out) + b"0\r\n\r\n"


def feed_split(wire: bytes, sizes: list[int]) -> tuple[ResponseParser, bytes]:
    parser = ResponseParser()
    body = []
    pos = 0
    for n in sizes:
        body.append(parser.feed(wire[pos : pos + n]))
        pos += n
    if pos < len(wire):
        body.append(parser.feed(wire[pos:]))
    return parser, b"".join(body)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 13, 64, 1000, 100_000])
def test_chunked_sse_body_from_any_split(step: int) -> None:
    wire = SSE_HEAD + chunked(EVENTS)
    parser, body = feed_split(wire, [step] * (len(wire) // step))
    assert body == b"".join(EVENTS) and parser.done
    assert parser.head is not None and parser.head.status == 200
    assert parser.head.headers["content-type"] == "text/event-stream"


def test_random_splits_and_chunk_extensions() -> None:
    rng = random.Random(7)
    wire = SSE_HEAD + chunked(EVENTS, ext=True)
    for _ in range(200):
        sizes = [rng.randint(1, 90) for _ in range(len(wire))]
        parser, body = feed_split(wire, sizes)
        assert body == b"".join(EVENTS) and parser.done


def test_several_events_in_one_chunk_and_several_chunks_in_one_read() -> None:
    wire = SSE_HEAD + chunked([EVENTS[0] + EVENTS[1], EVENTS[2]])
    parser = ResponseParser()
    assert parser.feed(wire) == EVENTS[0] + EVENTS[1] + EVENTS[2] and parser.done


def test_content_length_body_and_keep_alive() -> None:
    body = b'{"error":{"code":400,"message":"bad"}}'
    wire = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    parser, got = feed_split(wire, [10, 30, 5])
    assert got == body and parser.done and parser.head is not None and parser.head.keep_alive
    assert parser.head.status == 400 and parser.head.reason == "Bad Request"


def test_body_until_close_ends_at_eof() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}") == b"{}"
    assert not parser.done
    parser.feed_eof()
    assert parser.done and parser.head is not None and not parser.head.keep_alive


def test_interim_head_is_skipped_and_headers_are_joined() -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nok"
    parser, body = feed_split(wire, [7, 7, 7])
    assert body == b"ok" and parser.head is not None and parser.head.status == 200
    assert parser.head.headers["x-a"] == "1, 2"


def test_connection_close_header_forbids_reuse() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close")
    assert not head.keep_alive


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header line"),
        (SSE_HEAD + b"zz\r\n", "chunk size"),
        (SSE_HEAD + b"3\r\nabcXY", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "negative"),
    ],
)
def test_malformed_answers_raise(wire: bytes, message: str) -> None:
    with pytest.raises(HTTPParseError, match=message):
        ResponseParser().feed(wire)


def test_eof_inside_a_chunked_body_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(SSE_HEAD + b"5\r\nab")
    with pytest.raises(HTTPParseError, match="inside a chunked body"):
        parser.feed_eof()


def test_eof_before_the_head_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200")
    with pytest.raises(HTTPParseError, match="before the response head"):
        parser.feed_eof()


def test_bytes_after_the_end_are_an_error() -> None:
    parser = ResponseParser()
    parser.feed(SSE_HEAD + chunked([EVENTS[0]]))
    with pytest.raises(HTTPParseError, match="after the end"):
        parser.feed(b"junk")
