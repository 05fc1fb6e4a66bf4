"""The simulated llama-server: an aiohttp application around the pure timing, generation and protocol code.

Endpoints: ``POST /completion`` (alias ``/completions``), ``POST /v1/completions``, ``GET /health``
(``/v1/health``), ``/props``, ``/slots``, ``/metrics``, ``/models`` (``/v1/models``). As in llama-server,
every endpoint answers 503 "Loading model" while loading, the API key (when set) is checked on every endpoint
but /health and /models, and a streaming request gets its response headers only with its first token (so a
request that fails before, such as one whose prompt does not fit the slot, gets a plain JSON error).

This module holds the server state (slots, queue, counters) and the small endpoints; one admitted completion
is run by `sim.completion.CompletionRun`. A client that disconnects cancels its handler
(``handler_cancellation``) and frees its slot, like llama-server's ``should_stop``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from orpheus_bench.sim import protocol as proto
from orpheus_bench.sim.completion import CompletionRun, Disconnected
from orpheus_bench.sim.config import SimConfig
from orpheus_bench.sim.faults import FaultKind, FaultSpec, select_fault
from orpheus_bench.sim.timing import Admission, SlotPool, estimate_prompt_tokens

PUBLIC_PATHS = frozenset({"/health", "/v1/health", "/models", "/v1/models"})
SERVER_HEADER = "llama.cpp (orpheus-bench simulator)"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SimStats:
    """What the simulator saw, for tests that check nothing was lost (read it from `SimServer.stats`)."""

    requests_total: int = 0  # completion requests received (each got a request number)
    completed: int = 0  # completions that sent their final event / body
    error_responses: int = 0  # completion requests answered with a non-2xx status
    client_disconnects: int = 0  # handlers cancelled: the client went away (or the server closed)
    tokens_sent: int = 0  # token events streamed, over all requests
    faults: Counter[str] = field(default_factory=Counter)  # fault kind -> requests it was applied to
    max_busy: int = 0
    max_deferred: int = 0


class Simulator:
    """Server state (slots, queue, counters) and the request handlers."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.model = config.timing()
        self.pool = SlotPool(config.slots, config.slot_prompt_similarity)
        self.metrics = proto.MetricsState()
        self.stats = SimStats()
        self.views: dict[int, proto.SlotView] = {}
        self._waiters: dict[int, asyncio.Future[Admission]] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._requests = 0
        self.served = 0  # requests that reached prefill: the first one pays the cold start
        self._ready_at = 0.0

    # ---- application --------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self._server_header)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/health", self._health)
        app.router.add_get("/props", self._props)
        app.router.add_get("/slots", self._slots)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/models", self._models)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/completion", self._native)
        app.router.add_post("/completions", self._native)
        app.router.add_post("/v1/completions", self._openai)
        return app

    def mark_started(self) -> None:
        self._ready_at = asyncio.get_running_loop().time() + self.config.loading_s

    def cancel_handlers(self) -> None:
        for task in list(self._handlers):
            task.cancel()

    @staticmethod
    async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if asyncio.get_running_loop().time() < self._ready_at:
            return web.json_response(proto.error_body(503, "Loading model"), status=503)
        key = self.config.api_key
        if key is not None and request.path not in PUBLIC_PATHS:
            given = request.headers.get("Authorization") or request.headers.get("X-Api-Key") or ""
            given = given.removeprefix("Bearer ")
            if not _same_secret(given, key.get_secret_value()):
                return web.json_response(proto.error_body(401, "Invalid API Key"), status=401)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.json_response(proto.error_body(404, "File Not Found"), status=404)

    # ---- small endpoints ----------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def _props(self, request: web.Request) -> web.StreamResponse:
        body = proto.props_body(
            total_slots=self.config.slots,
            n_ctx_slot=self.config.n_ctx_slot,
            model_path=self.config.model_path,
            simulator=self.config.describe(),
        )
        return web.json_response(body)

    async def _slots(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("fail_on_no_slot") == "1" and self.pool.busy >= self.pool.n_slots:
            return web.json_response(proto.error_body(503, "no slot available"), status=503)
        views = [self.views.get(i) or proto.SlotView(i, None, None, 0, -1) for i in range(self.config.slots)]
        return web.json_response(proto.slots_body(views, self.config.n_ctx_slot))

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        text = proto.metrics_text(self.metrics, self.pool.busy, self.pool.deferred)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        model = {
            "id": self.config.model_alias,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "llamacpp",
            "meta": {"n_ctx_train": self.config.ctx_size, "simulated": True},
        }
        return web.json_response({"object": "list", "data": [model]})

    # ---- slots --------------------------------------------------------------------------------------
    def _note_load(self) -> None:
        self.stats.max_busy = max(self.stats.max_busy, self.pool.busy)
        self.stats.max_deferred = max(self.stats.max_deferred, self.pool.deferred)

    async def _acquire(self, number: int, prompt: str) -> Admission:
        admission = self.pool.submit(number, prompt)
        self._note_load()
        if admission is not None:
            return admission
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._waiters[number] = future
        try:
            return await future
        except asyncio.CancelledError:
            if not self.pool.cancel(number) and future.done() and not future.cancelled():
                self._release(future.result().slot_id)  # admitted in the same tick as the cancel
            raise
        finally:
            self._waiters.pop(number, None)

    def _release(self, slot_id: int) -> None:
        self.views.pop(slot_id, None)
        admitted = self.pool.release(slot_id)
        if admitted is None:
            return
        waiter = self._waiters.get(admitted.ticket)
        if waiter is None or waiter.done():
            self._release(admitted.slot_id)  # its client is gone: pass the slot on
        else:
            waiter.set_result(admitted)
        self._note_load()

    # ---- completions --------------------------------------------------------------------------------
    async def _native(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, "native")

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, "openai")

    async def _completion(self, request: web.Request, protocol: str) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._requests += 1
        number = self._requests
        self.stats.requests_total += 1
        fault = select_fault(self.config.faults, number)
        if fault is not None:
            self.stats.faults[fault.kind.value] += 1
        try:
            return await self._serve(request, protocol, number, fault)
        except asyncio.CancelledError:
            self.stats.client_disconnects += 1
            raise
        except (Disconnected, ConnectionError):
            # The connection is gone (on purpose or not); nothing more can be written.
            return web.Response(status=499)
        finally:
            if task is not None:
                self._handlers.discard(task)

    def error(self, status: int, body: dict[str, Any]) -> web.Response:
        """A JSON error answer, counted in the stats."""
        self.stats.error_responses += 1
        return web.json_response(body, status=status)

    async def _serve(
        self, request: web.Request, protocol: str, number: int, fault: FaultSpec | None
    ) -> web.StreamResponse:
        try:
            body = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self.error(500, proto.error_body(500, f"invalid JSON body: {exc}"))
        try:
            params = proto.parse_request(body, protocol)
        except proto.RequestInvalid as exc:
            return self.error(400, proto.error_body(400, str(exc)))
        kind = fault.kind if fault is not None else None
        if fault is not None and kind is FaultKind.SLOW_HEADERS:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and kind is FaultKind.HTTP_ERROR:
            return self.error(fault.status, proto.error_body(fault.status, fault.message))
        n_prompt = estimate_prompt_tokens(params.prompt)
        admission = await self._acquire(number, params.prompt_text)
        try:
            if kind is FaultKind.CONTEXT_ERROR or n_prompt >= self.config.n_ctx_slot:
                return self.error(400, proto.exceed_context_body(n_prompt, self.config.n_ctx_slot))
            run = CompletionRun(self, request, protocol, number, params, n_prompt, admission, fault)
            return await run.execute()
        finally:
            self._release(admission.slot_id)


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# ---- public API ---------------------------------------------------------------------------------------


class SimServer:
    """A running simulator: its base `url`, its `config`, its live `stats`; `await close()` to stop it."""

    def __init__(self, sim: Simulator, runner: web.AppRunner, url: str) -> None:
        self._sim = sim
        self._runner = runner
        self.url = url
        self.config = sim.config

    @property
    def stats(self) -> SimStats:
        """Counters of what the server saw so far."""
        return self._sim.stats

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    async def close(self) -> None:
        """Stop listening, cancel in-flight completions (stalls included) and release everything."""
        self._sim.cancel_handlers()
        await self._runner.cleanup()

    async def __aenter__(self) -> SimServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_simulator(config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Start a simulator on `host`:`port` (0 picks a free port) in the running event loop."""
    sim = Simulator(config or SimConfig())
    runner = web.AppRunner(sim.build_app(), handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sim.mark_started()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    return SimServer(sim, runner, f"http://{shown}:{bound_port}")
