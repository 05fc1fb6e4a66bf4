"""SSE decoding at every split point, CRLF/CR line endings, comments, multi-line data and truncation."""

from __future__ import annotations

import pytest

from orpheus_bench.core.sse import SSEDecoder, SSEEvent

pytestmark = pytest.mark.unit

STREAM = (
    b": keep-alive comment\r\n"
    b'data: {"content":"<custom_token_10>","stop":false}\r\n\r\n'
    b"event: update\n"
    b"id: 7\n"
    b"data: line one\n"
    b"data: line two\n\n"
    b"data:no-space\r\r" + "data: caf\u00e9 \u2603\n\n".encode() + b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent(data='{"content":"<custom_token_10>","stop":false}'),
    SSEEvent(data="line one\nline two", event="update", id="7"),
    # The last event id is sticky (WHATWG: it persists until another id field).
    SSEEvent(data="no-space", id="7"),
    SSEEvent(data="caf\u00e9 \u2603", id="7"),
    SSEEvent(data="[DONE]", id="7"),
]


def decode_in_pieces(pieces: list[bytes]) -> tuple[list[SSEEvent], SSEDecoder]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for p in pieces:
        out.extend(dec.feed(p))
    out.extend(dec.flush())
    return out, dec


def test_whole_stream() -> None:
    events, dec = decode_in_pieces([STREAM])
    assert events == EXPECTED
    assert dec.comments == 1
    assert not dec.truncated


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_every_single_split_point(split: int) -> None:
    events, _ = decode_in_pieces([STREAM[:split], STREAM[split:]])
    assert events == EXPECTED


def test_byte_at_a_time() -> None:
    events, _ = decode_in_pieces([bytes([b]) for b in STREAM])
    assert events == EXPECTED


def test_three_way_splits_around_crlf() -> None:
    # Every pair of split points inside the first 80 bytes, where the CRLF endings are.
    for i in range(1, 80):
        for j in range(i + 1, 81):
            events, _ = decode_in_pieces([STREAM[:i], STREAM[i:j], STREAM[j:]])
            assert events == EXPECTED, (i, j)


def test_event_without_trailing_blank_line_is_flushed_and_flagged() -> None:
    events, dec = decode_in_pieces([b'data: {"stop":true}'])
    assert events == [SSEEvent(data='{"stop":true}')]
    assert dec.truncated


def test_empty_data_and_fields_without_value() -> None:
    events, _ = decode_in_pieces([b"data\n\ndata:\n\nretry: 1500\ndata: x\n\n"])
    assert events == [SSEEvent(data=""), SSEEvent(data=""), SSEEvent(data="x", retry_ms=1500)]


def test_blank_lines_alone_dispatch_nothing() -> None:
    events, _ = decode_in_pieces([b"\n\n\r\n: ping\n\n"])
    assert events == []


# ---- feed_data: the hot path's variant returns the same data (issue 16) --------------------------------------
STREAMS = [
    b'data: {"a":1}\n\ndata: {"b":2}\n\n',
    b": ping\n\ndata: x\n\nevent: e\ndata: y\n\nid: 7\ndata: z\n\n",
    b"data: one\ndata: two\n\ndata:three\r\n\r\ndata: four\r\rdata: caf\xc3\xa9\n\n",
    b"retry: 10\ndata: r\n\n\n\ndata: last",
]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("step", [1, 2, 3, 5, 8, 13, 1000])
def test_feed_data_matches_feed(stream: bytes, step: int) -> None:
    a, b = SSEDecoder(), SSEDecoder()
    events, data = [], []
    for i in range(0, len(stream), step):
        events += a.feed(stream[i : i + step])
        data += b.feed_data(stream[i : i + step])
    events += a.flush()
    data += b.flush_data()
    assert [e.data for e in events] == data
    assert a.bytes_in == b.bytes_in == len(stream)


def test_whole_data_events_keep_the_sticky_id() -> None:
    dec = SSEDecoder()
    assert [e.id for e in dec.feed(b"id: 5\ndata: a\n\n")] == ["5"]
    assert [(e.data, e.id) for e in dec.feed(b"data: b\n\ndata: c\n\n")] == [("b", "5"), ("c", "5")]
