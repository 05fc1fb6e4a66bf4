"""Doctor logic on canned llama-server answers, and the driver against a fake server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orpheus_bench.server import doctor as d
from orpheus_bench.server.launcher import free_port

pytestmark = pytest.mark.unit

PROPS = {
    "total_slots": 50,
    "default_generation_settings": {"n_ctx": 40, "params": {}},
    "model_path": "/models/orpheus-3b-q4_k_m.gguf",
    "endpoint_metrics": True,
}
SLOTS_40 = [{"id": i, "n_ctx": 40, "is_processing": False} for i in range(50)]


def test_slot_context_prefers_slots_then_props() -> None:
    assert d.slot_context(PROPS, SLOTS_40) == (40, 50)
    assert d.slot_context(PROPS, None) == (40, 50)
    assert d.slot_context({"default_generation_settings": {"n_ctx": 256}}, [{"n_ctx": 512}] * 4) == (512, 4)
    assert d.slot_context(None, None) == (None, None)


def test_fit_verdicts_at_the_edges_without_words() -> None:
    # Unknown speech (no words in the text): room for one frame decides audio, max_tokens beyond the room may cut.
    def verdict(n: int, max_tokens: int | None) -> str:
        return d.fit_prompt("p", "x", n, False, 40, max_tokens, words=0).verdict

    assert verdict(34, None) == "no_audio"  # room 6: not even one 7-token frame
    assert verdict(33, None) == "fits"
    assert verdict(34, 512) == "no_audio"
    assert verdict(40, 512) == "no_audio"
    assert verdict(33, 512) == "may_be_cut"  # room 7: one frame, then the slot is full
    assert verdict(20, 20) == "fits"
    assert verdict(20, 21) == "may_be_cut"


def test_fit_verdicts_from_the_speech_the_words_ask_for() -> None:
    # 10 words: Orpheus speaks 40-60 frames, 281-421 tokens with the end of speech.
    assert d.speech_tokens(10) == (281, 421)

    def fit(n_ctx: int, max_tokens: int) -> d.PromptFit:
        return d.fit_prompt("p", "x", 30, False, n_ctx, max_tokens, words=10)

    assert (fit(512, 512).verdict, fit(512, 512).limit) == ("fits", None)  # room 482 >= 421
    assert (fit(512, 300).verdict, fit(512, 300).limit) == ("may_be_cut", "max_tokens")  # 281 <= 300 < 421
    assert (fit(512, 280).verdict, fit(512, 280).limit) == ("cut_short", "max_tokens")  # 280 < 281: certain
    assert (fit(256, 512).verdict, fit(256, 512).limit) == ("cut_short", "slot_context")  # room 226 < 281
    assert d.word_count("<custom_token_3><|begin_of_text|>tara: Hello there, it's me.<|eot_id|>") == 4


def test_context_check_names_prompts_without_audio() -> None:
    fits = [
        d.fit_prompt("seed-lengths/t20/0", "<custom_token_3>Hello there, thanks for calling.", 22, False, 40, 512),
        d.fit_prompt("seed-lengths/t70plus/0", "Welcome to the quarterly update.", 75, False, 40, 512),
    ]
    check = d.context_check(fits, 40, 50)
    assert check.level == "fail"
    assert "seed-lengths/t70plus/0" in check.message and "75 tokens" in check.message
    assert check.details["no_audio"] == ["seed-lengths/t70plus/0"]
    assert check.details["truncated"] == ["seed-lengths/t20/0"]
    assert "50 slots" in check.message


def test_context_check_fails_on_certain_cuts_warns_on_possible_ones_passes_when_room() -> None:
    words = " ".join(["word"] * 10)  # 281-421 tokens of speech
    cut = d.context_check([d.fit_prompt("a", words, 30, False, 256, 512)], 256, 8, 512)
    assert cut.level == "fail" and cut.details["cut_short"] == ["a"]
    assert "a (10 words) speaks at least 281 tokens (40 frames) but the 256-token slot leaves 226" in cut.message
    assert "split across 8 slots" in cut.message
    maybe = d.context_check([d.fit_prompt("a", words, 30, False, 512, 300)], 512, 1, 300)
    assert maybe.level == "warn" and maybe.details["may_be_cut"] == ["a"]
    ok = d.context_check([d.fit_prompt("a", "hi", 30, True, 2048, 512)], 2048, 1, 512)
    assert ok.level == "ok" and "estimated" in ok.message
    assert d.context_check([], None, None).level == "warn"


def test_context_check_without_prompts_still_judges_max_tokens() -> None:
    # The case: -np 4 -c 512 pads each slot to 256 tokens on this build; max_tokens 512 cannot fit.
    check = d.context_check([], 256, 4, 512)
    assert check.level == "warn" and "max_tokens 512 does not fit the 256-token slot" in check.message
    assert d.context_check([], 256, 4, 200).level == "ok"


def test_vocabulary_check() -> None:
    assert d.vocabulary_check([132256]).level == "ok"
    assert d.vocabulary_check([7, 8, 9, 10]).level == "fail"
    assert "not an Orpheus model" in d.vocabulary_check([7, 8]).message
    assert d.vocabulary_check([5]).level == "warn"
    assert d.vocabulary_check(None).level == "warn"


def test_concurrency_and_health_and_metrics_checks() -> None:
    assert d.concurrency_check(1, 4).level == "warn"  # type: ignore[union-attr]
    assert "3 requests at a time will queue" in d.concurrency_check(1, 4).message  # type: ignore[union-attr]
    assert d.concurrency_check(4, 4).level == "ok"  # type: ignore[union-attr]
    assert d.concurrency_check(4, None) is None
    assert d.health_check(200).level == "ok"
    assert "loading" in d.health_check(503).message
    assert d.health_check(None, "refused").level == "fail"
    assert d.metrics_check(200).level == "ok" and d.metrics_check(501).level == "warn"


def test_estimate_counts_special_tokens_once() -> None:
    text = "<custom_token_3><|begin_of_text|>tara: " + "x" * 35 + "<|eot_id|><custom_token_4>"
    assert d.estimate_tokens(text) == 4 + round(41 / 3.5) + 1


def test_as_sent_formats_plain_text_only() -> None:
    formatted = d.as_sent("Hello", "tara")
    assert formatted.startswith("<custom_token_3><|begin_of_text|>tara: Hello")
    assert d.as_sent(formatted, "leo") == formatted


# ---- the driver on a fake llama-server --------------------------------------------------------------


def _fake_app(*, health: int = 200, metrics: int = 200, orpheus: bool = True) -> web.Application:
    async def h(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"} if health == 200 else {"error": {}}, status=health)

    async def props(_: web.Request) -> web.Response:
        return web.json_response(PROPS)

    async def slots(_: web.Request) -> web.Response:
        return web.json_response(SLOTS_40)

    async def met(_: web.Request) -> web.Response:
        return web.Response(text="llamacpp:requests_processing 0\n", status=metrics)

    async def tokenize(req: web.Request) -> web.Response:
        body = await req.json()
        text: str = body["content"]
        if text == "<custom_token_4000>":
            return web.json_response({"tokens": [132256] if orpheus else [27, 9342, 6594, 62, 3443, 29]})
        # one token per word, plus BOS when add_special
        return web.json_response({"tokens": [1] * (len(text.split()) + int(bool(body.get("add_special"))))})

    app = web.Application()
    app.router.add_get("/health", h)
    app.router.add_get("/props", props)
    app.router.add_get("/slots", slots)
    app.router.add_get("/metrics", met)
    app.router.add_post("/tokenize", tokenize)
    return app


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[TestServer] = []

    async def start(**kw: Any) -> str:
        server = TestServer(_fake_app(**kw), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for s in servers:
        await s.close()


async def test_run_checks_names_the_long_prompt(serve: Callable[..., Any]) -> None:
    url = await serve()
    prompts = {"short": "Hi there", "long": " ".join(["word"] * 60)}
    report = await d.run_checks(url, prompts=prompts, max_tokens=512, concurrency=60, voice="tara")
    assert report.reachable and report.n_ctx_slot == 40 and report.total_slots == 50
    assert report.level == "fail"
    assert [p.prompt_id for p in report.prompts_with("no_audio")] == ["long"]
    assert [p.prompt_id for p in report.prompts_with("cut_short")] == ["short"]  # 2 words, 5 tokens of room
    assert report.check("vocabulary").level == "ok"  # type: ignore[union-attr]
    assert report.check("slots").level == "warn"  # type: ignore[union-attr]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["level"] == "fail" and data["props"]["total_slots"] == 50
    assert any("long" in line for line in report.lines())


async def test_run_checks_non_orpheus_and_no_metrics(serve: Callable[..., Any]) -> None:
    url = await serve(metrics=501, orpheus=False)
    report = await d.run_checks(url, prompts=None, max_tokens=None, concurrency=None)
    assert report.check("vocabulary").level == "fail"  # type: ignore[union-attr]
    assert report.check("metrics").level == "warn"  # type: ignore[union-attr]
    assert report.check("context").level == "ok"  # type: ignore[union-attr]


async def test_run_checks_loading_and_unreachable(serve: Callable[..., Any]) -> None:
    loading = await d.run_checks(await serve(health=503), prompts=["x"], max_tokens=10, concurrency=1)
    assert loading.reachable and not loading.ok and "loading" in loading.check("health").message  # type: ignore[union-attr]
    gone = await d.run_checks(f"http://127.0.0.1:{free_port()}", prompts=None, max_tokens=None, concurrency=None)
    assert not gone.reachable and gone.level == "fail"
