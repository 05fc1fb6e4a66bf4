"""One admitted completion from prefill to final answer: decode steps on schedule, events, streaming faults.

`CompletionRun` is created by the server (`sim.app`) once a request holds a slot. It decides the whole
generation up front (`sim.generation.plan_generation`), then walks its decode steps against absolute target
times (so event-loop lateness is caught up rather than summed), streams one SSE event per token, injects the
request's streaming fault when its turn comes, and ends with llama-server's final event or JSON body.
Response headers go out with the first event, as llama-server sends them only with its first result.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from orpheus_bench.sim import protocol as proto
from orpheus_bench.sim.faults import FaultKind, FaultSpec
from orpheus_bench.sim.generation import Piece, Plan, natural_audio_tokens, plan_generation, request_rng
from orpheus_bench.sim.timing import SPECIAL_TOKEN_RE, Admission, cached_prompt_tokens, jitter_rng

if TYPE_CHECKING:
    from orpheus_bench.sim.app import Simulator


class Disconnected(Exception):
    """Raised after the simulator aborted a connection on purpose (disconnect fault)."""


class CompletionRun:
    """One admitted completion: prefill, decode steps, events, faults, final answer."""

    def __init__(
        self,
        sim: Simulator,
        request: web.Request,
        protocol: str,
        number: int,
        params: proto.RequestParams,
        n_prompt: int,
        admission: Admission,
        fault: FaultSpec | None,
    ) -> None:
        self.sim = sim
        self.cfg = sim.config
        self.request = request
        self.protocol = protocol
        self.number = number
        self.params = params
        self.n_prompt = n_prompt
        self.slot_id = admission.slot_id
        self.fault = fault
        self.kind = fault.kind if fault is not None else None
        text = params.prompt_text
        self.cached = cached_prompt_tokens(admission.cached_prompt, text) if params.cache_prompt else 0
        audio = natural_audio_tokens(
            self.cfg.audio_frames, self.cfg.audio_frames_per_char, len(SPECIAL_TOKEN_RE.sub("", text))
        )
        self.plan: Plan = plan_generation(
            audio_tokens=audio,
            rng=request_rng(params.seed, text, self.cfg.seed, number),
            n_predict=params.n_predict,
            prompt_tokens=n_prompt,
            n_ctx_slot=self.cfg.n_ctx_slot,
            stop_words=params.stop,
            fault=fault,
        )
        self.view = proto.SlotView(self.slot_id, number, params, 0, self.plan.n_decoded)
        sim.views[self.slot_id] = self.view
        self.response: web.StreamResponse | None = None
        self.fault_done = False
        self.event_seq = 0
        self.cmpl_id = f"cmpl-sim{number:08d}"
        self.created = int(time.time())

    async def execute(self) -> web.StreamResponse:
        """Run the generation and answer; a truncate/stream_error fault ends the SSE body early."""
        try:
            outcome = await self._generate()
        except EndStream:
            assert self.response is not None
            await self.response.write_eof()
            return self.response
        if self.params.stream:
            return await self._finish_stream(outcome)
        return await self._finish_body(outcome)

    async def _generate(self) -> proto.Outcome:
        loop = asyncio.get_running_loop()
        model = self.sim.model
        rng = jitter_rng(self.cfg.seed, self.number)
        cold = self.sim.served == 0
        self.sim.served += 1
        t_admit = loop.time()
        evaluated = self.n_prompt - self.cached
        target = t_admit + model.prefill_s(evaluated, cold=cold) * model.jitter_factor(rng)
        await _sleep_until(target)
        t_prompt_done = loop.time()
        # Steps follow the first token as it actually happened; later lateness is caught up, not summed.
        target = max(target, t_prompt_done)
        self.sim.metrics.on_prompt(evaluated, t_prompt_done - t_admit)
        for step in range(self.plan.n_decoded):
            delay = 0.0
            if step > 0:
                if self.fault is not None and self.kind is FaultKind.SLOW:
                    delay = self.fault.token_s
                else:
                    delay = model.token_s(self.sim.pool.busy) * model.jitter_factor(rng)
                target += delay
                await _sleep_until(target)
            self.sim.metrics.on_step(delay, self.sim.pool.busy, self.n_prompt + step + 1)
            self.view.n_decoded = step + 1
            self.view.n_remain = self.plan.n_decoded - step - 1
            if self.params.stream and step < len(self.plan.pieces):
                target += await self._stream_fault(step)
                await self._send_token(self.plan.pieces[step], step + 1)
        if self.params.stream:
            await self._stream_fault(len(self.plan.pieces))
        t_end = loop.time()
        return proto.Outcome(
            id_slot=self.slot_id,
            n_prompt=self.n_prompt,
            n_decoded=self.plan.n_decoded,
            n_cached=self.cached,
            stop_type=self.plan.stop_type,
            stopping_word=self.plan.stopping_word,
            truncated=self.plan.truncated,
            timings=proto.Timings(
                cache_n=self.cached,
                prompt_n=evaluated,
                prompt_ms=(t_prompt_done - t_admit) * 1000.0,
                predicted_n=self.plan.n_decoded,
                predicted_ms=(t_end - t_prompt_done) * 1000.0,
            ),
        )

    # ---- streaming ----------------------------------------------------------------------------------
    def _stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.cfg.stamp:
            event["sim_seq"] = self.event_seq
            event["sim_sent_mono"] = time.monotonic()
            event["sim_sent_wall"] = time.time()
        self.event_seq += 1
        return event

    async def _write(self, data: bytes) -> None:
        if self.response is None:
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
            response.headers["Cache-Control"] = "no-cache"
            await response.prepare(self.request)
            self.response = response
        await self.response.write(data)

    async def _send_token(self, piece: Piece, n_decoded: int) -> None:
        if self.protocol == "openai":
            event = proto.openai_chunk(piece.text, self.cmpl_id, self.created, self.cfg.model_alias)
        else:
            event = proto.native_partial(piece.text, piece.token_id, self.slot_id, n_decoded, self.n_prompt)
        await self._write(proto.sse(self._stamp(event)))
        self.sim.stats.tokens_sent += 1

    async def _stream_fault(self, sent: int) -> float:
        """Apply a streaming fault once `sent` events went out; returns stalled seconds to shift the clock."""
        fault, kind = self.fault, self.kind
        if fault is None or self.fault_done or sent < fault.after_tokens:
            return 0.0
        if kind is FaultKind.DISCONNECT:
            self.fault_done = True
            await self._write(b"")  # make sure the headers went out, so the body is what breaks
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            raise Disconnected
        if kind is FaultKind.TRUNCATE:
            self.fault_done = True
            await self._write(b"")
            raise EndStream
        if kind is FaultKind.MALFORMED:
            self.fault_done = True
            await self._write(_malformed_event(fault.variant))
            return 0.0
        if kind is FaultKind.STREAM_ERROR:
            self.fault_done = True
            await self._write(proto.sse(proto.error_body(500, fault.message)))
            raise EndStream
        if kind is FaultKind.STALL:
            self.fault_done = True
            await self._write(b"")
            await asyncio.sleep(fault.stall_s)
            return fault.stall_s
        return 0.0

    async def _finish_stream(self, outcome: proto.Outcome) -> web.StreamResponse:
        if self.protocol == "openai":
            final = proto.openai_final(outcome, "", self.cmpl_id, self.created, self.cfg.model_alias)
            await self._write(proto.sse(self._stamp(final)) + proto.sse("[DONE]"))
        else:
            final = proto.native_final(outcome, "", [], self.params, self.cfg.model_alias, self.cfg.n_ctx_slot)
            await self._write(proto.sse(self._stamp(final)))
        assert self.response is not None
        await self.response.write_eof()
        self.sim.stats.completed += 1
        return self.response

    # ---- non-streaming ------------------------------------------------------------------------------
    async def _finish_body(self, outcome: proto.Outcome) -> web.StreamResponse:
        content = "".join(p.text for p in self.plan.pieces)
        if self.protocol == "openai":
            body = proto.openai_final(outcome, content, self.cmpl_id, self.created, self.cfg.model_alias)
        else:
            tokens = [p.token_id for p in self.plan.pieces] if self.params.return_tokens else []
            body = proto.native_final(outcome, content, tokens, self.params, self.cfg.model_alias, self.cfg.n_ctx_slot)
        text = json.dumps(self._stamp(body), separators=(",", ":"))
        fault, kind = self.fault, self.kind
        if fault is not None and kind is FaultKind.STALL:
            await asyncio.sleep(fault.stall_s)
        if kind is FaultKind.DISCONNECT:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            raise Disconnected
        if kind is FaultKind.STREAM_ERROR and fault is not None:
            return self.sim.error(500, proto.error_body(500, fault.message))
        if kind is FaultKind.TRUNCATE:
            text = text[: len(text) // 2]
        elif fault is not None and kind is FaultKind.MALFORMED:
            text = _malformed_event(fault.variant).decode("utf-8", "replace")[len("data: ") :].strip()
        self.sim.stats.completed += 1
        return web.Response(text=text, content_type="application/json")


class EndStream(Exception):
    """Internal: end the SSE body cleanly now (truncate / stream_error faults)."""


def _malformed_event(variant: str) -> bytes:
    """One deliberately broken SSE event."""
    return {
        "": b"data: this is not json\n\n",
        "nonjson": b"data: this is not json\n\n",
        "partial_json": b'data: {"content": "<custom_tok\n\n',
        "not_object": b"data: [1, 2, 3]\n\n",
        "missing_fields": b'data: {"unexpected": true}\n\n',
        "bad_utf8": b"data: \xff\xfe\xfd\n\n",
    }[variant]


async def _sleep_until(target: float) -> None:
    """Sleep until loop time `target`; always yields once so zero-delay streams interleave fairly."""
    loop = asyncio.get_running_loop()
    delay = target - loop.time()
    await asyncio.sleep(delay if delay > 0 else 0)
