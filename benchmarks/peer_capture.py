"""A recording pass-through proxy on 127.0.0.1, so a peer check can see the bytes each tool really sent.

`CaptureProxy` listens on a free loopback port, records every request it receives (method, path, headers and
the raw body) and forwards it to the upstream server, streaming the answer back chunk by chunk, so an SSE client
behind it works as it would against the server. It runs its own event loop in a daemon thread so a synchronous
driver can start it with ``with CaptureProxy(upstream) as proxy: ... proxy.url ... proxy.requests``.

`body_differences` compares two JSON bodies key by key and says what differs, in words. Used by
`benchmarks/peer_check.py`; only for the few requests of its identity probe, never for timed traffic.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class CapturedRequest:
    """One request as it arrived at the proxy."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CaptureProxy:
    """Record-and-forward proxy to `upstream` (a base URL on this machine)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = _free_port()
        self.requests: list[CapturedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.requests.clear()

    def completions(self) -> list[CapturedRequest]:
        """The recorded POSTs to a completion endpoint (what the tools' probes sent)."""
        return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/").endswith("completions")]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(CapturedRequest(request.method, request.path_qs, dict(request.headers), body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self._session is None:
            raise web.HTTPServiceUnavailable()
        response = web.StreamResponse()
        try:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as upstream:
                response.set_status(upstream.status)
                for k, v in upstream.headers.items():
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-encoding":
                        response.headers[k] = v
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
        except ConnectionResetError:  # aiohttp.ClientConnectionResetError too
            pass  # the client went away (a tool's metrics scraper at its exit): nothing left to forward
        return response

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await self._session.close()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def __enter__(self) -> CaptureProxy:
        self._thread = threading.Thread(target=self._run, name="capture-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0) or self._error is not None:
            raise RuntimeError(f"capture proxy did not start: {self._error}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10.0)


def body_differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """What differs between two JSON values, one line per difference (empty when they are equal)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out: list[str] = []
        for key in sorted(set(ours) | set(theirs)):
            where = f"{path}.{key}" if path else key
            if key not in theirs:
                out.append(f"{where}: only orpheus-bench sends it ({json.dumps(ours[key])})")
            elif key not in ours:
                out.append(f"{where}: only AIPerf sends it ({json.dumps(theirs[key])})")
            else:
                out.extend(body_differences(ours[key], theirs[key], where))
        return out
    # JSON has one number type: 1 and 1.0 are the same value on the wire's meaning, but say so if types differ.
    if ours == theirs and type(ours) is type(theirs):
        return []
    if ours == theirs:
        return [f"{path}: same value, different JSON spelling ({json.dumps(ours)} vs {json.dumps(theirs)})"]
    return [f"{path}: orpheus-bench {json.dumps(ours)} vs AIPerf {json.dumps(theirs)}"]
