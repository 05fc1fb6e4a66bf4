"""A real llama-server serving the tiny Orpheus-format model: the stream, the doctor, the timeline, profiles."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orpheus_bench.core.sse import SSEDecoder
from orpheus_bench.server.doctor import run_checks
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.metrics import MetricsScraper, read_server_timeline
from orpheus_bench.server.profiles import resolve_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORPHEUS_PROMPT = (
    "<custom_token_3><|begin_of_text|>tara: Hello there<|eot_id|><custom_token_4><custom_token_5><custom_token_1>"
)
TOKEN_RE = re.compile(r"<custom_token_(\d+)>")
CUSTOM_BASE = 128_256


def _body(prompt: str, n_predict: int, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "n_predict": n_predict,
        "temperature": 0.3,
        "top_k": 30,
        "repeat_penalty": 1.1,
        "stop": ["<custom_token_2>"],
        **extra,
    }


async def _stream(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    decoder, events = SSEDecoder(), []
    async with (
        aiohttp.ClientSession(trust_env=False) as s,
        s.post(f"{url}/completion", json={**body, "stream": True}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        async for chunk in resp.content.iter_any():
            events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return [json.loads(e.data) for e in events if e.data and e.data != "[DONE]"]


async def _post(url: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession(trust_env=False) as s, s.post(f"{url}{path}", json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def _get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession(trust_env=False) as s, s.get(f"{url}{path}") as resp:
        assert resp.status == 200
        return await resp.json(content_type=None)


async def test_stream_yields_positional_audio_tokens(llama_server_fixed_np4: str) -> None:
    # The fixed model: the default one would end this two-word prompt's speech after about 10 frames (70 tokens).
    events = await _stream(llama_server_fixed_np4, _body(ORPHEUS_PROMPT, 70, return_tokens=True))
    text = "".join(e.get("content", "") for e in events)
    numbers = [int(n) for n in TOKEN_RE.findall(text)]
    assert len(numbers) == 70
    codes = [n - 10 - 4096 * (i % 7) for i, n in enumerate(numbers)]
    assert all(0 <= c < 4096 for c in codes), codes
    assert len(set(codes)) > 10  # sampling spreads codes
    ids = [t for e in events for t in e.get("tokens", [])]
    if ids:  # token ids mean what they mean for the real model: 128256 + N
        assert ids == [CUSTOM_BASE + n for n in numbers]
    last = events[-1]
    assert last["stop"] is True and last["stop_type"] == "limit" and last["truncated"] is False
    # Another test may have sent this prompt first: the prompt cache then serves most of it (cache_n).
    timings = last["timings"]
    assert timings["predicted_n"] == 70 and timings["prompt_n"] + timings.get("cache_n", 0) > 5


async def test_doctor_names_the_prompt_that_gets_no_audio(llama_server_np4: str) -> None:
    long_text = " ".join(["Welcome to the quarterly update of our company."] * 140)  # > 1024 tokens
    mid_text = " ".join(["Welcome to the quarterly update."] * 70)  # 512 < tokens < 1017
    prompts = {"short": "Hello there.", "mid": mid_text, "long": long_text}
    report = await run_checks(llama_server_np4, prompts=prompts, max_tokens=512, concurrency=8, voice="tara")
    assert report.n_ctx_slot == 1024 and report.total_slots == 4
    assert report.level == "fail"
    context = report.check("context")
    assert context is not None and context.level == "fail" and "long" in context.message
    assert [p.prompt_id for p in report.prompts_with("no_audio")] == ["long"]
    assert [p.prompt_id for p in report.prompts_with("cut_short")] == ["mid"]  # 350 words: 1,400+ frames
    assert report.check("vocabulary").level == "ok"  # type: ignore[union-attr]
    assert report.check("metrics").level == "ok"  # type: ignore[union-attr]
    assert report.check("slots").level == "warn"  # type: ignore[union-attr]
    fits = {p.prompt_id: p for p in report.prompts}

    # What the doctor predicted is what the server does.
    status, body = await _post(llama_server_np4, "/completion", _body(report_prompt(long_text), 512))
    assert status == 400 and body["error"]["type"] == "exceed_context_size_error"
    status, body = await _post(llama_server_np4, "/completion", _body(report_prompt(mid_text), 512))
    assert status == 200 and body["truncated"] is True
    assert body["tokens_predicted"] == fits["mid"].room_tokens


def report_prompt(text: str) -> str:
    return f"<custom_token_3><|begin_of_text|>tara: {text}<|eot_id|><custom_token_4><custom_token_5><custom_token_1>"


async def test_metrics_timeline_has_entries(llama_server_fixed_np4: str, tmp_path: Path) -> None:
    # The fixed model, so four requests predict 4 x 120 tokens (the default one ends this prompt's speech sooner).
    out = tmp_path / "server.jsonl"
    scraper = MetricsScraper(llama_server_fixed_np4, out, interval_s=0.1)
    await scraper.start()
    await asyncio.gather(*(_stream(llama_server_fixed_np4, _body(ORPHEUS_PROMPT, 120)) for _ in range(4)))
    await scraper.stop()
    lines = read_server_timeline(out)
    assert len(lines) >= 2
    assert not [ln for ln in lines if "error" in ln]
    assert max(ln["requests_processing"] for ln in lines) >= 1
    assert max(ln["slots_busy"] for ln in lines) >= 1
    assert lines[-1]["tokens_predicted_total"] >= 4 * 120
    assert all(ln["slot_n_ctx"] == 1024 for ln in lines)


async def test_np1_and_np4_slots(llama_server_np1: str, llama_server_np4: str) -> None:
    for url, slots, n_ctx in ((llama_server_np1, 1, 2048), (llama_server_np4, 4, 1024)):
        props = await _get(url, "/props")
        assert props["total_slots"] == slots
        slot_list = await _get(url, "/slots")
        assert len(slot_list) == slots and {s["n_ctx"] for s in slot_list} == {n_ctx}


async def test_np1_defers_concurrent_requests(llama_server_fixed_np1: str) -> None:
    # The fixed model: each request holds the slot for exactly 150 tokens.
    async def deferred_seen() -> float:
        peak = 0.0
        async with aiohttp.ClientSession(trust_env=False) as s:
            for _ in range(100):
                async with s.get(f"{llama_server_fixed_np1}/metrics") as resp:
                    text = await resp.text()
                m = re.search(r"^llamacpp:requests_deferred (\S+)", text, re.MULTILINE)
                peak = max(peak, float(m.group(1)) if m else 0.0)
                if peak:
                    break
                await asyncio.sleep(0.02)
        return peak

    requests = [asyncio.create_task(_stream(llama_server_fixed_np1, _body(ORPHEUS_PROMPT, 150))) for _ in range(3)]
    peak = await deferred_seen()
    results = await asyncio.gather(*requests)
    assert peak >= 1, "a 1-slot server must queue the second and third request"
    assert all(r[-1]["timings"]["predicted_n"] == 150 for r in results)


@pytest.mark.parametrize("name", ["seed-before", "seed-after", "seed-ultra"])
def test_seed_profiles_start_on_this_build(name: str, tiny_model_path: Path, tmp_path: Path) -> None:
    """Each seed profile translates to flags this llama-server accepts and serves the model."""
    profile = resolve_profile(name)
    with LlamaServer(profile, tiny_model_path, log_path=tmp_path / "server.log", ready_timeout_s=60) as srv:
        props = asyncio.run(_get(srv.url, "/props"))
        assert props["total_slots"] == profile.slots
        slots = asyncio.run(_get(srv.url, "/slots"))
        per_slot = slots[0]["n_ctx"]
        assert per_slot >= (profile.per_slot_ctx() or 0)  # current builds pad the slot up to 256
        assert srv.translation is not None
    assert "--metrics" in srv.args
