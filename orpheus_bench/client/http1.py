"""Incremental HTTP/1.1 response parsing for the stream transport: bytes in any fragmentation -> head, body bytes.

Sans-I/O like the core: `ResponseParser.feed(data)` returns the body bytes that `data` completed (de-chunked),
the head is available as soon as its blank line arrived, and `feed_eof` says whether the connection's end was
allowed there. It knows what llama-server and OpenAI-style servers send: a status line, headers, then a body that
is ``Transfer-Encoding: chunked`` (every SSE stream), ``Content-Length`` delimited (JSON answers) or read until the
connection closes. 1xx interim heads are skipped. Anything else malformed raises `HTTPParseError`, which the driver
turns into a protocol error.

The hot case is one SSE event per chunk per TCP segment: ``<hex>\\r\\n<event>\\r\\n`` arrives whole, so the chunk
loop below finds the size line, slices the payload and moves on, without copying the rest of the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024  # a status line plus headers larger than this is not an HTTP server we talk to
_MAX_SIZE_LINE = 1024  # a chunk-size line (hex size plus extensions)


class HTTPParseError(ValueError):
    """The bytes are not a well-formed HTTP/1.1 response."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """Status line and headers; header names are lower-case, repeated headers joined with ``", "``."""

    version: str
    status: int
    reason: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def parse_head(raw: bytes) -> ResponseHead:
    """A response head without its final blank line."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 decodes every byte; kept for the type checker's sake
        raise HTTPParseError("undecodable response head") from exc
    lines = text.split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HTTPParseError(f"not an HTTP/1.x status line: {lines[0][:120]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPParseError(f"malformed header line: {line[:120]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return ResponseHead(version, int(code), reason, headers)


class ResponseParser:
    """One response on a connection. Body framing follows the head: chunked, Content-Length or until close."""

    def __init__(self, *, body_expected: bool = True) -> None:
        self.head: ResponseHead | None = None
        self.done = False  # the whole body has arrived
        self.body_bytes = 0
        self._body_expected = body_expected
        self._buf = b""
        self._mode = ""  # "chunked", "length", "close" once the head is parsed
        self._remaining = 0  # length mode: bytes left; chunked mode: bytes left of the current chunk
        self._chunk_state = "size"  # chunked: "size", "data", "crlf", "trailers"

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the socket; return the body bytes they completed (possibly empty)."""
        if self.done:
            if data:
                raise HTTPParseError(f"{len(data)} bytes after the end of the response")
            return b""
        if self.head is None:
            buf = self._buf + data if self._buf else data
            data = self._parse_head(buf)
            if self.head is None or not data:
                return b""
        if self._mode == "chunked":
            body = self._chunked(self._buf + data if self._buf else data)
        elif self._mode == "length":
            body = data[: self._remaining]
            if len(data) > self._remaining:
                raise HTTPParseError("more bytes than Content-Length announced")
            self._remaining -= len(body)
            self.done = self._remaining == 0
        else:
            body = data
        self.body_bytes += len(body)
        return body

    def feed_eof(self) -> None:
        """The connection closed; raise `HTTPParseError` when the response was not complete."""
        if self.done:
            return
        if self.head is None:
            raise HTTPParseError("connection closed before the response head was complete")
        if self._mode == "close":
            self.done = True
            return
        raise HTTPParseError(f"connection closed inside a {self._mode} body")

    # ---- head ------------------------------------------------------------------------------------------
    def _parse_head(self, buf: bytes) -> bytes:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise HTTPParseError(f"response head longer than {MAX_HEAD_BYTES} bytes")
                self._buf = buf
                return b""
            head = parse_head(buf[:end])
            buf = buf[end + 4 :]
            if 100 <= head.status < 200 and head.status != 101:
                continue  # an interim answer (100 Continue): the real head follows
            break
        self.head = head
        self._buf = b""
        self._start_body(head)
        return buf

    def _start_body(self, head: ResponseHead) -> None:
        te = head.headers.get("transfer-encoding", "").lower()
        if not self._body_expected or head.status in (204, 304):
            self._mode, self.done = "length", True
        elif "chunked" in te:
            self._mode = "chunked"
        elif "content-length" in head.headers:
            try:
                self._remaining = int(head.headers["content-length"])
            except ValueError:
                raise HTTPParseError(f"bad Content-Length: {head.headers['content-length']!r}") from None
            if self._remaining < 0:
                raise HTTPParseError("negative Content-Length")
            self._mode = "length"
            self.done = self._remaining == 0
        else:
            self._mode = "close"

    # ---- chunked body ------------------------------------------------------------------------------------
    def _chunked(self, buf: bytes) -> bytes:
        pieces: list[bytes] = []
        pos = 0
        n = len(buf)
        state = self._chunk_state
        if state == "size":
            # Fast path: whole chunks ``<hex>\r\n<data>\r\n``, one or several; the state machine below takes over
            # at the first one that is cut, has extensions, or is the last chunk.
            while True:
                eol = buf.find(b"\r\n", pos, pos + 18)
                if eol <= pos:
                    break
                try:
                    size = int(buf[pos:eol], 16)
                except ValueError:
                    break
                start = eol + 2
                end = start + size
                if size <= 0 or end + 2 > n or buf[end : end + 2] != b"\r\n":
                    break
                pieces.append(buf[start:end])
                pos = end + 2
                if pos == n:
                    self._buf = b""
                    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        while pos < n:
            if state == "size":
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > _MAX_SIZE_LINE:
                        raise HTTPParseError("chunk size line too long")
                    break
                size_text = buf[pos:eol].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise HTTPParseError(f"bad chunk size: {size_text[:40]!r}") from None
                if size < 0:
                    raise HTTPParseError("negative chunk size")
                pos = eol + 2
                if size == 0:
                    state = "trailers"
                    continue
                self._remaining = size
                state = "data"
            elif state == "data":
                take = min(self._remaining, n - pos)
                pieces.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    state = "crlf"
            elif state == "crlf":
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise HTTPParseError("chunk data not followed by CRLF")
                pos += 2
                state = "size"
            else:  # trailers: header lines until a blank line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                blank = eol == pos
                pos = eol + 2
                if blank:
                    self.done = True
                    if pos < n:
                        raise HTTPParseError(f"{n - pos} bytes after the end of the response")
                    break
        self._chunk_state = state
        self._buf = buf[pos:] if pos < n else b""
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)
