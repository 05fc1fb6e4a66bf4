"""Incremental Server-Sent Events decoder: bytes in any fragmentation -> complete events.

Follows the WHATWG event-stream rules that matter for llama-server and OpenAI-style servers: lines end in LF,
CRLF or a lone CR (a CR at the end of one chunk may pair with an LF at the start of the next), ``:`` starts a
comment, ``data`` lines of one event are joined with newlines, a blank line dispatches the event, and a field
without a colon is a field with an empty value. Lines are split on bytes before decoding, so a UTF-8 character
cut across chunks is never mangled. `flush` is lenient: a last event that lacks its blank line is still
dispatched (some proxies drop it), and `truncated` says it happened.

`feed_data` is the hot path's variant (issue 16): the same state machine, but it returns only each event's data
(all the request pipeline reads) and skips building an `SSEEvent` per token. When nothing is pending and a chunk
holds only whole single-line ``data:`` events (what llama-server sends, one or several per read), it splits them
with one `bytes.split` instead of walking line by line; anything else takes the general path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. ``data`` is the joined data lines; ``event`` defaults to "message"."""

    data: str
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


class SSEDecoder:
    """Feed raw bytes, get events. Holds at most one partial line and one partial event."""

    def __init__(self) -> None:
        self._buf = b""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._has_fields = False
        self.comments = 0
        self.truncated = False  # set by flush when the stream ended inside an event
        self.bytes_in = 0
        self._as_data = False  # what `_dispatch` appends: the data string (feed_data) or an SSEEvent (feed)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a chunk; return every event it completed, in order."""
        fast = self._whole_data_events(chunk)
        if fast is not None:
            return [SSEEvent(data=d, id=self._id) for d in fast]
        self._as_data = False
        return self._feed(chunk)  # type: ignore[return-value]

    def feed_data(self, chunk: bytes) -> list[str]:
        """Like `feed`, but only the data of each completed event (event name, id and retry are not needed)."""
        fast = self._whole_data_events(chunk)
        if fast is not None:
            return fast
        self._as_data = True
        return self._feed(chunk)  # type: ignore[return-value]

    def _whole_data_events(self, chunk: bytes) -> list[str] | None:
        """The data of a chunk made only of whole ``data: ...`` events with nothing pending, else None."""
        if self._buf or self._pending_cr or self._has_fields or not chunk.startswith(b"data: "):
            return None
        if not chunk.endswith(b"\n\n") or b"\r" in chunk:
            return None
        blocks = chunk.split(b"\n\n")
        blocks.pop()  # the empty piece after the last blank line
        out = []
        for block in blocks:
            if not block.startswith(b"data: ") or b"\n" in block:
                return None  # a comment, another field, a multi-line event: the general path handles it
            out.append(block[6:].decode("utf-8", errors="replace"))
        self.bytes_in += len(chunk)
        return out

    def _feed(self, chunk: bytes) -> list[SSEEvent | str]:
        self.bytes_in += len(chunk)
        if self._pending_cr and chunk.startswith(b"\n"):
            # The CR that ended the previous chunk and this LF are one line ending.
            chunk = chunk[1:]
        self._pending_cr = False
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent | str] = []
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf != -1 else n)
            if cr != -1:
                end, nxt = cr, cr + 1
                if nxt < n and buf[nxt] == 0x0A:
                    nxt += 1
                elif nxt == n:
                    self._pending_cr = True
            elif lf != -1:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(buf[start:end], events)
            start = nxt
        self._buf = buf[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: process a last unterminated line and dispatch a pending event."""
        self._as_data = False
        return self._flush()  # type: ignore[return-value]

    def flush_data(self) -> list[str]:
        """`flush` returning only the data of the dispatched event (see `feed_data`)."""
        self._as_data = True
        return self._flush()  # type: ignore[return-value]

    def _flush(self) -> list[SSEEvent | str]:
        events: list[SSEEvent | str] = []
        if self._buf:
            self._line(self._buf, events)
            self._buf = b""
        if self._has_fields:
            self.truncated = True
            self._dispatch(events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent | str]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw[0] == 0x3A:  # ":" comment (keep-alive pings)
            self.comments += 1
            return
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_fields = True
        elif name == "event":
            self._event = value
            self._has_fields = True
        elif name == "id":
            if "\0" not in value:
                self._id = value
            self._has_fields = True
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
            self._has_fields = True
        # Unknown field names are ignored, as the spec says.

    def _dispatch(self, events: list[SSEEvent | str]) -> None:
        if self._data:
            data = "\n".join(self._data)
            if self._as_data:
                events.append(data)
            else:
                events.append(SSEEvent(data=data, event=self._event or "message", id=self._id, retry_ms=self._retry))
        self._data = []
        self._event = ""  # the event id is deliberately kept: it is sticky across events
        self._retry = None
        self._has_fields = False
