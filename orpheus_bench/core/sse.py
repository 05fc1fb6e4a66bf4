"""Incremental Server-Sent Events decoder: bytes in any fragmentation -> complete events.

Follows the WHATWG event-stream rules that matter for llama-server and OpenAI-style servers: lines end in LF,
CRLF or a lone CR (a CR at the end of one chunk may pair with an LF at the start of the next), ``:`` starts a
comment, ``data`` lines of one event are joined with newlines, a blank line dispatches the event, and a field
without a colon is a field with an empty value. Lines are split on bytes before decoding, so a UTF-8 character
cut across chunks is never mangled. `flush` is lenient: a last event that lacks its blank line is still
dispatched (some proxies drop it), and `truncated` says it happened.
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

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a chunk; return every event it completed, in order."""
        self.bytes_in += len(chunk)
        if self._pending_cr and chunk.startswith(b"\n"):
            # The CR that ended the previous chunk and this LF are one line ending.
            chunk = chunk[1:]
        self._pending_cr = False
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
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
        events: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf, events)
            self._buf = b""
        if self._has_fields:
            self.truncated = True
            self._dispatch(events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
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

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    data="\n".join(self._data),
                    event=self._event or "message",
                    id=self._id,
                    retry_ms=self._retry,
                )
            )
        self._data = []
        self._event = ""  # the event id is deliberately kept: it is sticky across events
        self._retry = None
        self._has_fields = False
