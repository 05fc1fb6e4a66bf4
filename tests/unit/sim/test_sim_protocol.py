"""The simulator's llama-server wire shapes: request parsing, final events, errors, /metrics."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orpheus_bench.sim import protocol as proto

pytestmark = pytest.mark.unit


def outcome(stop_type: str = "word") -> proto.Outcome:
    timings = proto.Timings(cache_n=3, prompt_n=7, prompt_ms=14.0, predicted_n=50, predicted_ms=500.0)
    return proto.Outcome(1, 10, 50, 3, stop_type, "<custom_token_2>" if stop_type == "word" else "", False, timings)


def test_parse_native_and_openai_bodies() -> None:
    native = proto.parse_request(
        {"prompt": "hi", "n_predict": 512, "stream": True, "stop": ["<custom_token_2>"], "seed": 3}, "native"
    )
    assert (native.n_predict, native.stream, native.stop, native.seed) == (
        512,
        True,
        ("<custom_token_2>",),
        3,
    )
    openai = proto.parse_request({"prompt": "hi", "max_tokens": 64, "stop": "x", "seed": -1}, "openai")
    assert (openai.n_predict, openai.stream, openai.stop, openai.seed) == (64, False, ("x",), None)
    assert proto.parse_request({"prompt": [1, 2, 3]}, "native").prompt_text == ""


@pytest.mark.parametrize(
    "body",
    [[], {}, {"prompt": 3}, {"prompt": "x", "n_predict": "many"}, {"prompt": "x", "stop": [1]}],
)
def test_parse_rejects_invalid_bodies(body: object) -> None:
    with pytest.raises(proto.RequestInvalid):
        proto.parse_request(body, "native")


def test_native_final_carries_llama_server_fields() -> None:
    params = proto.parse_request({"prompt": "hi", "stream": True}, "native")
    final = proto.native_final(outcome(), "", [], params, "m", 2048)
    for key in ("stop", "stop_type", "stopping_word", "truncated", "tokens_cached", "tokens_predicted"):
        assert key in final
    assert final["stop"] is True and final["tokens_evaluated"] == 10
    t = final["timings"]
    assert (t["prompt_n"], t["predicted_n"], t["cache_n"]) == (7, 50, 3)
    assert t["predicted_per_second"] == pytest.approx(100.0)
    assert final["generation_settings"]["n_ctx"] == 2048


@pytest.mark.parametrize(("stop_type", "finish"), [("word", "stop"), ("eos", "stop"), ("limit", "length")])
def test_openai_finish_reason(stop_type: str, finish: str) -> None:
    final = proto.openai_final(outcome(stop_type), "", "cmpl-1", 0, "m")
    assert final["choices"][0]["finish_reason"] == finish
    assert final["usage"] == {"completion_tokens": 50, "prompt_tokens": 10, "total_tokens": 60}
    assert proto.openai_chunk("t", "cmpl-1", 0, "m")["choices"][0]["finish_reason"] is None


def test_exceed_context_error_shape() -> None:
    body = proto.exceed_context_body(5000, 4096)
    assert body["error"]["type"] == "exceed_context_size_error"
    assert (body["error"]["code"], body["error"]["n_prompt_tokens"], body["error"]["n_ctx"]) == (
        400,
        5000,
        4096,
    )


def test_sse_framing() -> None:
    assert proto.sse("[DONE]") == b"data: [DONE]\n\n"
    raw = proto.sse({"content": "<custom_token_10>"})
    assert raw.startswith(b"data: ") and raw.endswith(b"\n\n")
    assert json.loads(raw[6:]) == {"content": "<custom_token_10>"}


def test_metrics_parse_with_prometheus_client_and_bucket_resets() -> None:
    state = proto.MetricsState()
    state.on_prompt(100, 0.05)
    for _ in range(4):
        state.on_step(0.01, 2, 120)
    text = proto.metrics_text(state, processing=2, deferred=3)
    samples = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples["llamacpp:prompt_tokens_total"] == 100
    assert samples["llamacpp:tokens_predicted_total"] == 4
    assert samples["llamacpp:requests_processing"] == 2
    assert samples["llamacpp:requests_deferred"] == 3
    assert samples["llamacpp:n_busy_slots_per_decode"] == pytest.approx(2.0)
    assert samples["llamacpp:n_decode_total"] == 2
    assert samples["llamacpp:predicted_tokens_seconds"] == pytest.approx(100.0)
    assert samples["llamacpp:prompt_tokens_seconds"] == pytest.approx(2000.0)
    again = proto.metrics_text(state, 0, 0)
    samples = {s.name: s.value for fam in text_string_to_metric_families(again) for s in fam.samples}
    assert samples["llamacpp:predicted_tokens_seconds"] == 0  # throughput gauges cover one scrape interval
    assert samples["llamacpp:tokens_predicted_total"] == 4  # counters do not reset
