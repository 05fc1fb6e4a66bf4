"""The simulator over real sockets: llama-server shapes, timing model, loading/auth, every fault mode, stamps.

Parsing here is deliberately local and simple (split on blank lines, strip ``data: ``) so these tests do not
depend on the harness's own SSE/protocol code.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orpheus_bench.sim import (
    SimConfig,
    parse_fault,
    run_simulator_in_subprocess,
    run_simulator_in_thread,
    start_simulator,
)

pytestmark = pytest.mark.integration

PROMPT = "<custom_token_3><|begin_of_text|>tara: Hello from the simulator.<|eot_id|><custom_token_4><custom_token_5>"
TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
FAST = {"token_ms": 0.5, "prefill_base_ms": 0.5, "prefill_ms_per_token": 0.0, "audio_frames": 4}


def cfg(**overrides: Any) -> SimConfig:
    """A fast simulator config for tests."""
    return SimConfig.model_validate({**FAST, **overrides})


def native(**extra: Any) -> dict[str, Any]:
    body = {"prompt": PROMPT, "n_predict": 512, "stream": True, "stop": ["<custom_token_2>"]}
    body.update(extra)
    return body


@dataclass
class Stream:
    """What a client saw of one response."""

    status: int
    content_type: str
    raw: bytes = b""
    events: list[Any] = field(default_factory=list)  # parsed JSON, or the raw data text when not JSON
    times: list[float] = field(default_factory=list)  # monotonic receive time per event (approximate)
    error: BaseException | None = None
    t_headers: float = 0.0

    @property
    def partials(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict) and e.get("stop") is False]

    @property
    def final(self) -> dict[str, Any] | None:
        last = [e for e in self.events if isinstance(e, dict) and (e.get("stop") is True or "usage" in e)]
        return last[-1] if last else None

    @property
    def text(self) -> str:
        out = []
        for e in self.events:
            if isinstance(e, dict):
                out.append(e.get("content") or (e.get("choices") or [{}])[0].get("text") or "")
        return "".join(out)


def parse_events(raw: bytes) -> list[Any]:
    events: list[Any] = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        data = block.decode("utf-8", "replace").removeprefix("data: ")
        try:
            events.append(json.loads(data))
        except json.JSONDecodeError:
            events.append(data)
    return events


async def post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], path: str = "/completion", **kw: Any
) -> Stream:
    t0 = time.monotonic()
    try:
        async with session.post(url + path, json=body, **kw) as resp:
            out = Stream(resp.status, resp.headers.get("Content-Type", ""), t_headers=time.monotonic() - t0)
            buf = b""
            try:
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    now = time.monotonic()
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        out.raw += block + b"\n\n"
                        out.events.extend(parse_events(block + b"\n\n"))
                        out.times.append(now)
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, asyncio.TimeoutError) as exc:
                out.error = exc
            out.raw += buf
            if buf.strip():
                out.events.extend(parse_events(buf))
            return out
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, asyncio.TimeoutError) as exc:
        return Stream(0, "", error=exc)


def decode_codes(text: str) -> tuple[list[int], int]:
    """Audio codes by position and how many were out of range."""
    codes, invalid, position = [], 0, 0
    for m in TOKEN_RE.finditer(text):
        n = int(m.group(1))
        if n < 10:
            continue
        code = n - 10 - 4096 * (position % 7)
        position += 1
        if 0 <= code < 4096:
            codes.append(code)
        else:
            invalid += 1
    return codes, invalid


def metric_values(text: str) -> dict[str, float]:
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


# ---- protocol shapes ---------------------------------------------------------------------------------------


async def test_native_stream_is_valid_orpheus_audio_with_llama_server_final() -> None:
    async with await start_simulator(cfg()) as srv, aiohttp.ClientSession() as s:
        st = await post(s, srv.url, native())
        stats = srv.stats
    assert (stats.requests_total, stats.completed, stats.tokens_sent) == (1, 1, 28)
    assert st.status == 200 and st.content_type.startswith("text/event-stream") and st.error is None
    assert len(st.partials) == 28
    for i, e in enumerate(st.partials):
        n = int(TOKEN_RE.fullmatch(e["content"]).group(1))  # type: ignore[union-attr]
        assert e["tokens"] == [128256 + n]
        assert 0 <= n - 10 - 4096 * (i % 7) < 4096
        assert e["tokens_predicted"] == i + 1
    final = st.final
    assert final is not None and final["content"] == ""
    assert (final["stop_type"], final["stopping_word"], final["truncated"]) == (
        "word",
        "<custom_token_2>",
        False,
    )
    assert final["tokens_predicted"] == 29 and final["tokens_evaluated"] == 13
    assert {"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "predicted_per_second", "cache_n"} <= set(
        final["timings"]
    )
    assert st.events[-1] is final  # nothing after the final event, and no [DONE] on the native endpoint


async def test_openai_stream_ends_with_usage_and_done() -> None:
    async with await start_simulator(cfg()) as srv, aiohttp.ClientSession() as s:
        body = {"prompt": PROMPT, "max_tokens": 10, "stream": True, "stop": ["<custom_token_2>"]}
        st = await post(s, srv.url, body, "/v1/completions")
    assert st.status == 200 and st.events[-1] == "[DONE]"
    chunks = [e for e in st.events if isinstance(e, dict)]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 10 + ["length"]
    assert chunks[-1]["usage"]["completion_tokens"] == 10
    codes, invalid = decode_codes(st.text)
    assert len(codes) == 10 and invalid == 0


async def test_non_streaming_bodies_hold_the_whole_content() -> None:
    async with await start_simulator(cfg()) as srv, aiohttp.ClientSession() as s:
        async with s.post(srv.url + "/completion", json=native(stream=False, return_tokens=True)) as r:
            body = await r.json()
        async with s.post(srv.url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": 512}) as r:
            oai = await r.json()
    codes, invalid = decode_codes(body["content"])
    assert len(codes) == 28 and invalid == 0 and len(body["tokens"]) == 28 and body["stop_type"] == "word"
    # no stop word: end of speech is part of the text and EOS ends it
    assert oai["choices"][0]["text"].endswith("<custom_token_2>")
    assert oai["choices"][0]["finish_reason"] == "stop"


async def test_same_request_seed_gives_same_audio_across_servers_and_request_numbers() -> None:
    async with aiohttp.ClientSession() as s:
        async with await start_simulator(cfg()) as a:
            first = (await post(s, a.url, native(seed=5))).text
            second = (await post(s, a.url, native(seed=5))).text
            unseeded = (await post(s, a.url, native())).text
        async with await start_simulator(cfg()) as b:
            await post(s, b.url, native())
            again = (await post(s, b.url, native(seed=5))).text
    assert first == second == again != unseeded


async def test_context_limits_like_llama_server() -> None:
    config = cfg(ctx_size=40, slots=1)
    async with await start_simulator(config) as srv, aiohttp.ClientSession() as s:
        too_long = await post(s, srv.url, native(prompt="x" * 400))
        near = await post(s, srv.url, native(prompt="x" * 120))  # 30 tokens of 40
    assert too_long.status == 400 and too_long.content_type.startswith("application/json")
    err = json.loads(too_long.raw)["error"]
    assert err["type"] == "exceed_context_size_error" and (err["n_prompt_tokens"], err["n_ctx"]) == (100, 40)
    assert near.status == 200 and near.final is not None
    assert (near.final["stop_type"], near.final["truncated"], len(near.partials)) == ("limit", True, 10)


async def test_very_long_prompt_is_refused_quickly_without_blocking_the_server() -> None:
    async with await start_simulator(cfg(slots=2)) as srv, aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        huge = await post(s, srv.url, native(prompt="word " * 160_000))  # 0.8 MB
        elapsed = time.monotonic() - t0
        normal = await post(s, srv.url, native())
    assert huge.status == 400 and json.loads(huge.raw)["error"]["n_prompt_tokens"] == 200_000
    assert elapsed < 5.0 and normal.final is not None


# ---- timing model ------------------------------------------------------------------------------------------


async def test_one_slot_queues_requests_in_order() -> None:
    # stamps give the server's own send times, so the check does not depend on client read order
    config = SimConfig(slots=1, token_ms=2.0, busy_alpha=0.0, prefill_base_ms=1.0, audio_frames=2, stamp=True)
    async with await start_simulator(config) as srv, aiohttp.ClientSession() as s:
        results = []

        async def one(k: int) -> None:
            await asyncio.sleep(0.005 * k)  # arrival order = k
            results.append((k, await post(s, srv.url, native(prompt=f"{PROMPT} {k}"))))

        await asyncio.gather(*(one(k) for k in range(3)))
        stats = srv.stats
    by_k = dict(results)
    assert stats.max_deferred == 2 and stats.max_busy == 1
    for k in (1, 2):
        previous_final = by_k[k - 1].final
        assert previous_final is not None
        # the k-th request's first token is sent only after the previous one's final event
        assert by_k[k].partials[0]["sim_sent_mono"] >= previous_final["sim_sent_mono"]
    assert all(st.final is not None and st.final["id_slot"] == 0 for st in by_k.values())


async def test_busy_slots_slow_down_generation() -> None:
    config = SimConfig(slots=4, token_ms=4.0, busy_alpha=1.0, prefill_base_ms=0.0, audio_frames=3)
    async with await start_simulator(config) as srv, aiohttp.ClientSession() as s:
        alone = await post(s, srv.url, native())
        together = await asyncio.gather(*(post(s, srv.url, native(prompt=f"{PROMPT}{k}")) for k in range(4)))
    assert alone.final is not None
    solo_ms = alone.final["timings"]["predicted_ms"]
    busy_ms = [st.final["timings"]["predicted_ms"] for st in together if st.final is not None]
    nominal_ms = 21 * 4.0  # 21 steps after the first, 4 ms each with one busy slot
    assert nominal_ms * 0.9 <= solo_ms < 2.5 * nominal_ms
    assert len(busy_ms) == 4 and min(busy_ms) > 2.5 * nominal_ms  # nominally 4x with four busy slots


async def test_prompt_cache_reported_for_repeated_prompt() -> None:
    async with await start_simulator(cfg(slots=1)) as srv, aiohttp.ClientSession() as s:
        first = await post(s, srv.url, native())
        second = await post(s, srv.url, native())
        uncached = await post(s, srv.url, native(cache_prompt=False))
    assert first.final and second.final and uncached.final
    assert first.final["tokens_cached"] == 0 and second.final["tokens_cached"] == 12
    assert second.final["timings"]["prompt_n"] == 1 and uncached.final["tokens_cached"] == 0


# ---- health, auth, monitoring endpoints --------------------------------------------------------------------


async def test_loading_answers_503_then_ready() -> None:
    async with (
        await start_simulator(cfg(loading_s=0.6)) as srv,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(srv.url + "/health") as r:
            assert r.status == 503
            assert (await r.json())["error"] == {
                "code": 503,
                "message": "Loading model",
                "type": "unavailable_error",
            }
        loading = await post(s, srv.url, native())
        await asyncio.sleep(0.65)
        async with s.get(srv.url + "/health") as r:
            assert r.status == 200 and await r.json() == {"status": "ok"}
        ready = await post(s, srv.url, native())
    assert loading.status == 503 and ready.status == 200


async def test_api_key_required_except_on_public_endpoints() -> None:
    config = cfg(api_key="s3cret")
    async with await start_simulator(config) as srv, aiohttp.ClientSession() as s:
        missing = await post(s, srv.url, native())
        wrong = await post(s, srv.url, native(), headers={"Authorization": "Bearer nope"})
        good = await post(s, srv.url, native(), headers={"Authorization": "Bearer s3cret"})
        async with s.get(srv.url + "/health") as r:
            health = r.status
        async with s.get(srv.url + "/metrics") as r:
            metrics = r.status
        async with s.get(srv.url + "/props", headers={"X-Api-Key": "s3cret"}) as r:
            props = await r.text()
    assert missing.status == wrong.status == 401
    assert json.loads(missing.raw)["error"]["type"] == "authentication_error"
    assert good.status == 200 and health == 200 and metrics == 401
    assert "s3cret" not in props


async def test_props_slots_and_metrics() -> None:
    config = cfg(slots=2, ctx_size=4096)
    async with await start_simulator(config) as srv, aiohttp.ClientSession() as s:
        await post(s, srv.url, native())
        async with s.get(srv.url + "/props") as r:
            props = await r.json()
        async with s.get(srv.url + "/slots") as r:
            slots = await r.json()
        async with s.get(srv.url + "/metrics") as r:
            values = metric_values(await r.text())
        async with s.get(srv.url + "/nope") as r:
            missing = (r.status, await r.json())
    assert props["default_generation_settings"]["n_ctx"] == 2048 and props["total_slots"] == 2
    assert "not" in props["orpheus_bench_simulator"]["note"] and "model_path" in props
    assert [x["id"] for x in slots] == [0, 1] and not any(x["is_processing"] for x in slots)
    assert values["llamacpp:tokens_predicted_total"] == 29
    assert values["llamacpp:prompt_tokens_total"] == 13
    assert values["llamacpp:requests_processing"] == 0 and values["llamacpp:requests_deferred"] == 0
    assert missing == (404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})


# ---- faults ------------------------------------------------------------------------------------------------


def faulty(*specs: str, **extra: Any) -> SimConfig:
    return cfg(**extra, faults=tuple(parse_fault(x) for x in specs))


@pytest.mark.parametrize("status", [500, 400])
async def test_http_error_on_every_second_request(status: int) -> None:
    async with (
        await start_simulator(faulty(f"http_error:status={status},every=2,message=boom")) as srv,
        aiohttp.ClientSession() as s,
    ):
        got = [await post(s, srv.url, native()) for _ in range(4)]
    assert [g.status for g in got] == [200, status, 200, status]
    assert json.loads(got[1].raw)["error"]["message"] == "boom"
    assert srv.stats.faults["http_error"] == 2 and srv.stats.error_responses == 2


async def test_fraction_mixes_good_and_bad_requests() -> None:
    async with await start_simulator(faulty("http_error:fraction=0.3")) as srv, aiohttp.ClientSession() as s:
        statuses = [(await post(s, srv.url, native(n_predict=3))).status for _ in range(10)]
    assert statuses.count(500) == 3 and statuses.count(200) == 7


async def test_disconnect_breaks_the_chunked_body_after_k_tokens() -> None:
    async with (
        await start_simulator(faulty("disconnect:after_tokens=5")) as srv,
        aiohttp.ClientSession() as s,
    ):
        st = await post(s, srv.url, native())
        after = await post(s, srv.url, native())  # the server is fine afterwards
    assert isinstance(st.error, aiohttp.ClientPayloadError)
    assert len(st.partials) == 5 and st.final is None
    assert after.status == 200 and after.final is None and isinstance(after.error, aiohttp.ClientPayloadError)


async def test_truncate_ends_cleanly_without_final_event() -> None:
    async with (
        await start_simulator(faulty("truncate:after_tokens=6,first=1")) as srv,
        aiohttp.ClientSession() as s,
    ):
        st = await post(s, srv.url, native())
        ok = await post(s, srv.url, native())
    assert st.error is None and len(st.partials) == 6 and st.final is None
    assert ok.final is not None


@pytest.mark.parametrize("variant", ["nonjson", "partial_json", "not_object", "missing_fields", "bad_utf8"])
async def test_malformed_event_is_injected_once(variant: str) -> None:
    async with (
        await start_simulator(faulty(f"malformed:after_tokens=3,variant={variant}")) as srv,
        aiohttp.ClientSession() as s,
    ):
        st = await post(s, srv.url, native())
    odd = [e for e in st.events if not (isinstance(e, dict) and "stop" in e)]
    assert len(odd) == 1 and st.events.index(odd[0]) == 3
    assert st.final is not None and len(st.partials) == 28


async def test_stream_error_event_then_end() -> None:
    async with (
        await start_simulator(faulty("stream_error:after_tokens=2,message=kaput")) as srv,
        aiohttp.ClientSession() as s,
    ):
        st = await post(s, srv.url, native())
    assert st.status == 200 and len(st.partials) == 2 and st.final is None
    assert st.events[-1] == {"error": {"code": 500, "message": "kaput", "type": "server_error"}}


async def test_content_faults() -> None:
    async with aiohttp.ClientSession() as s:
        async with await start_simulator(faulty("invalid_codes:interval=4")) as srv:
            codes, invalid = decode_codes((await post(s, srv.url, native())).text)
            assert (len(codes), invalid) == (21, 7)
        async with await start_simulator(faulty("text_tokens:interval=7")) as srv:
            st = await post(s, srv.url, native())
            assert sum(e["content"] == " the" for e in st.partials) == 4 and decode_codes(st.text)[1] == 0
        async with await start_simulator(faulty("partial_frame:missing=2")) as srv:
            codes, invalid = decode_codes((await post(s, srv.url, native())).text)
            assert (len(codes) % 7, invalid) == (5, 0)
        async with await start_simulator(faulty("no_audio")) as srv:
            st = await post(s, srv.url, native())
            assert st.partials == [] and st.final is not None and st.final["stop_type"] == "word"
        async with await start_simulator(faulty("huge:tokens=3000", token_ms=0.0)) as srv:
            st = await post(s, srv.url, native(n_predict=10))
            assert len(st.partials) == 3000 and decode_codes(st.text) == (decode_codes(st.text)[0], 0)


async def test_slow_tokens_and_slow_headers() -> None:
    async with aiohttp.ClientSession() as s:
        async with await start_simulator(faulty("slow:token_s=0.02", audio_frames=1, stamp=True)) as srv:
            st = await post(s, srv.url, native())
        assert st.final is not None
        sent = [e["sim_sent_mono"] for e in st.events if isinstance(e, dict)]
        # 20 ms per token; single gaps may be shorter when a late step is caught up, the sum may not
        assert sent[7] - sent[0] >= 0.13
        async with await start_simulator(faulty("slow_headers:delay_s=0.3")) as srv:
            st = await post(s, srv.url, native())
        assert st.t_headers >= 0.29 and st.final is not None


async def test_stall_pauses_then_resumes() -> None:
    async with (
        await start_simulator(faulty("stall:after_tokens=3,stall_s=0.3", stamp=True)) as srv,
        aiohttp.ClientSession() as s,
    ):
        st = await post(s, srv.url, native())
    assert st.final is not None and len(st.partials) == 28
    assert st.partials[3]["sim_sent_mono"] - st.partials[2]["sim_sent_mono"] >= 0.29


async def test_client_timeout_during_stall_frees_the_slot() -> None:
    config = faulty("stall:after_tokens=3,stall_s=60,first=1", slots=1)
    async with await start_simulator(config) as srv, aiohttp.ClientSession() as s:
        timeout = aiohttp.ClientTimeout(sock_read=0.3)
        stalled = await post(s, srv.url, native(), timeout=timeout)
        t0 = time.monotonic()
        nxt = await post(s, srv.url, native())
        waited = time.monotonic() - t0
        stats = srv.stats
    assert isinstance(stalled.error, asyncio.TimeoutError) and len(stalled.partials) == 3
    assert nxt.final is not None and waited < 5.0
    assert stats.client_disconnects == 1


async def test_close_cancels_a_stalled_stream_quickly() -> None:
    srv = await start_simulator(faulty("stall:after_tokens=1,stall_s=60"))
    async with aiohttp.ClientSession() as s:
        task = asyncio.create_task(post(s, srv.url, native()))
        for _ in range(100):  # until the stream is stalled after its first token
            await asyncio.sleep(0.02)
            if srv.stats.tokens_sent >= 1:
                break
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await srv.close()
        st = await task
    assert time.monotonic() - t0 < 3.0
    assert st.final is None and len(st.partials) == 1


# ---- stamp mode --------------------------------------------------------------------------------------------


async def test_stamp_mode_stamps_every_event_with_send_time() -> None:
    async with (
        await start_simulator(SimConfig.stamp_mode(audio_frames=10)) as srv,
        aiohttp.ClientSession() as s,
    ):
        t0 = time.monotonic()
        st = await post(s, srv.url, native())
        oai = await post(s, srv.url, {"prompt": "x", "stream": True}, "/v1/completions")
    elapsed = time.monotonic() - t0
    events = [e for e in st.events if isinstance(e, dict)]
    assert len(events) == 71
    assert [e["sim_seq"] for e in events] == list(range(71))
    monos = [e["sim_sent_mono"] for e in events]
    assert monos == sorted(monos) and t0 <= monos[0] and monos[-1] <= st.times[-1]
    assert all(abs(e["sim_sent_wall"] - time.time()) < 60 for e in events)
    assert all("sim_sent_mono" in e for e in oai.events if isinstance(e, dict))
    assert elapsed < 5.0  # zero model delay


# ---- sync helpers ------------------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_run_simulator_in_thread() -> None:
    with run_simulator_in_thread(cfg()) as url:
        assert _get(url + "/health") == (200, {"status": "ok"})
        req = urllib.request.Request(url + "/completion", data=json.dumps(native(stream=False)).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["stop_type"] == "word"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=2)


def test_run_simulator_in_subprocess_gets_config_and_key_over_stdin() -> None:
    config = cfg(api_key="k3y", slots=3)
    with run_simulator_in_subprocess(config) as url:
        assert _get(url + "/health")[0] == 200
        assert _get(url + "/props")[0] == 401
        req = urllib.request.Request(url + "/props", headers={"Authorization": "Bearer k3y"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["total_slots"] == 3
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=2)
