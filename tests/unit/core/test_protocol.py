"""Both wire protocols reduced to StreamMessage; error bodies classified."""

from __future__ import annotations

import json

import pytest

from orpheus_bench.core.protocol import (
    build_body,
    is_event_stream,
    non_stream_answer_error,
    parse_error_text,
    parse_native,
    parse_openai,
)
from orpheus_bench.errors import AuthError, HTTPStatusError, ProtocolError

pytestmark = pytest.mark.unit


def test_native_token_event() -> None:
    m = parse_native('{"index":0,"content":"<custom_token_10>","tokens":[128266],"stop":false}')
    assert m.text == "<custom_token_10>"
    assert m.token_ids == [128266]
    assert not m.final


def test_native_final_event_keeps_timings() -> None:
    final = {
        "content": "",
        "stop": True,
        "stop_type": "limit",
        "truncated": True,
        "tokens_cached": 57,
        "tokens_evaluated": 30,
        "timings": {"prompt_n": 30, "prompt_ms": 12.5, "predicted_n": 27, "predicted_ms": 80.0, "cache_n": 0},
    }
    m = parse_native(json.dumps(final))
    assert m.final and m.stop_reason == "limit" and m.truncated is True
    assert m.tokens_cached == 57 and m.prompt_tokens == 30
    assert m.timings is not None and m.timings.prompt_ms == 12.5 and m.timings.predicted_n == 27


def test_openai_chunks_and_done() -> None:
    m = parse_openai('{"choices":[{"text":"<custom_token_11>","index":0,"finish_reason":null}]}')
    assert m.text == "<custom_token_11>" and not m.final
    last = parse_openai(
        '{"choices":[{"text":"","index":0,"finish_reason":"length"}],"usage":{"prompt_tokens":31},'
        '"timings":{"prompt_ms":3.0}}'
    )
    assert last.final and last.stop_reason == "length" and last.prompt_tokens == 31
    assert last.timings is not None and last.timings.prompt_ms == 3.0
    done = parse_openai("[DONE]")
    assert done.final and done.done_marker


@pytest.mark.parametrize("data", ["not json", "[1,2]", '{"content": 5}'])
def test_malformed_native_is_protocol_error(data: str) -> None:
    with pytest.raises(ProtocolError):
        parse_native(data)


def test_openai_without_choices_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_openai('{"id":"x"}')


def test_error_object_inside_stream_keeps_server_message() -> None:
    with pytest.raises(HTTPStatusError, match="slot unavailable"):
        parse_native('{"error":{"code":503,"message":"slot unavailable","type":"unavailable_error"}}')


def test_exceed_context_400_body() -> None:
    raw = json.dumps(
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 90,
                "n_ctx": 64,
            }
        }
    ).encode()
    err = parse_error_text(400, raw)
    assert err.http_status == 400
    assert err.error_class.value == "no_audio"  # the seed's "long prompts produce no audio"
    assert "exceed_context_size_error" in str(err) and "context size" in str(err)


def test_401_is_auth_error_with_hint() -> None:
    err = parse_error_text(401, b'{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}')
    assert isinstance(err, AuthError)
    assert "api-key" in str(err)


def test_non_json_error_body() -> None:
    err = parse_error_text(502, b"<html>Bad Gateway</html>")
    assert err.http_status == 502 and "Bad Gateway" in str(err)


def test_build_body_uses_llama_server_names() -> None:
    b = build_body("native", "P", stream=True, sampling={"max_tokens": 512, "repeat_penalty": 1.1, "top_p": None})
    assert b == {"prompt": "P", "stream": True, "n_predict": 512, "repeat_penalty": 1.1}
    o = build_body("openai", "P", stream=False, sampling={"max_tokens": 7}, model="orpheus")
    assert o == {"prompt": "P", "stream": False, "max_tokens": 7, "model": "orpheus"}


def test_non_sse_answer_to_a_stream_request() -> None:
    assert is_event_stream("text/event-stream; charset=utf-8") and not is_event_stream("application/json")
    ctx = non_stream_answer_error(
        400, "application/json", b'{"error":{"code":400,"type":"exceed_context_size_error","message":"too long"}}'
    )
    assert ctx.error_class.value == "no_audio" and ctx.http_status == 400
    other = non_stream_answer_error(200, "text/html", b"<html>hello</html>")
    assert isinstance(other, ProtocolError) and "text/html" in str(other)


def test_fast_json_path_accepts_and_rejects_what_json_does() -> None:
    # orjson (when installed) refuses NaN; the standard parser has the last word, as before issue 16.
    assert parse_native('{"content":"<custom_token_10>","stop":false,"x":NaN}').text == "<custom_token_10>"
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_native('{"content":"<custom_token_10>",')
    m = parse_native('{"content":"","tokens":[1,2],"stop":false,"sim_sent_mono":12.5}')
    assert m.token_ids == [1, 2] and m.sim_sent_mono == 12.5
