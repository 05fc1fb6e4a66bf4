"""The two wire protocols a target may speak, reduced to one `StreamMessage` per event.

- ``native``: llama-server's ``POST /completion``. Each SSE event is a JSON object with ``content`` (text) and,
  when asked for, ``tokens`` (ids); the last one has ``stop: true``, ``stop_type`` (eos / word / limit),
  ``truncated``, ``tokens_cached`` and ``timings`` (prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n).
- ``openai``: ``POST /v1/completions``. Events carry ``choices[0].text`` and ``finish_reason``; ``usage`` (and, from
  llama-server, ``timings``) come with the last chunk; the stream ends with ``data: [DONE]``.

Parsing is pure: a function of the event's data string. Malformed data raises `ProtocolError`; an ``error``
object inside the stream raises `HTTPStatusError` with the server's own message, so a record keeps it.

Event data is decoded with orjson when it is installed (measured in benchmarks/parse_throughput.py: about 3x
faster than `json.loads` on a 140-byte token event); whatever orjson refuses is decided by `json.loads`, so the
two accept and reject the same documents (orjson is stricter about NaN, for one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from orpheus_bench.errors import AuthError, ContextSizeError, HTTPStatusError, ProtocolError, RequestError
from orpheus_bench.records import ServerTimings

_fast_loads: Callable[[str], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # optional: the standard library decides alone
    _fast_loads = None

Protocol = Literal["native", "openai"]
PROTOCOLS: tuple[str, ...] = ("native", "openai")


@dataclass(slots=True)
class StreamMessage:
    """What one event (or one non-streaming body) said, independent of protocol."""

    text: str = ""
    token_ids: list[int] | None = None
    final: bool = False
    done_marker: bool = False  # openai's "[DONE]" sentinel: carries nothing else
    stop_reason: str | None = None
    truncated: bool | None = None
    tokens_cached: int | None = None
    prompt_tokens: int | None = None
    timings: ServerTimings | None = None
    sim_sent_mono: float | None = None  # the simulator's stamp mode: when it wrote this event (time.monotonic)


def _num(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def parse_timings(obj: Any) -> ServerTimings | None:
    """llama-server's ``timings`` object, or None when absent or not an object."""
    if not isinstance(obj, dict):
        return None
    return ServerTimings(
        prompt_n=_int(obj, "prompt_n"),
        prompt_ms=_num(obj, "prompt_ms"),
        predicted_n=_int(obj, "predicted_n"),
        predicted_ms=_num(obj, "predicted_ms"),
        cache_n=_int(obj, "cache_n"),
    )


def _json(data: str) -> Any:
    if _fast_loads is not None:
        try:
            return _fast_loads(data)
        except ValueError:  # orjson.JSONDecodeError; json.loads below gives the verdict and the error
            pass
    return json.loads(data)


def _load(data: str) -> dict[str, Any]:
    try:
        obj = _json(data)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"event data is not JSON: {data[:120]!r}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"event data is not a JSON object: {data[:120]!r}")
    err = obj.get("error")
    if err is not None:
        raise error_from_body(_int(err, "code") if isinstance(err, dict) else None, obj)
    return obj


def parse_native(data: str) -> StreamMessage:
    """One ``/completion`` event (or a whole non-streaming body).

    ``token_ids`` is the event's ``tokens`` list as sent (checked and converted only by a pipeline that reads
    audio from token ids: most events of most runs never need it, so no list is built for them).
    """
    obj = _load(data)
    content = obj.get("content", "")
    if not isinstance(content, str):
        raise ProtocolError("native event: 'content' is not a string")
    ids = obj.get("tokens")
    msg = StreamMessage(content, ids if ids and isinstance(ids, list) else None, bool(obj.get("stop", False)))
    if msg.final:
        msg.stop_reason = obj.get("stop_type") if isinstance(obj.get("stop_type"), str) else None
        msg.truncated = bool(obj["truncated"]) if "truncated" in obj else None
        msg.tokens_cached = _int(obj, "tokens_cached")
        msg.prompt_tokens = _int(obj, "tokens_evaluated")
        msg.timings = parse_timings(obj.get("timings"))
    if "sim_sent_mono" in obj:
        _stamps(obj, msg)
    return msg


def _stamps(obj: dict[str, Any], msg: StreamMessage) -> None:
    # The simulator's stamp mode puts its send time in every event, to measure the harness's own overhead.
    mono = obj.get("sim_sent_mono")
    if isinstance(mono, (int, float)):
        msg.sim_sent_mono = float(mono)


def parse_openai(data: str) -> StreamMessage:
    """One ``/v1/completions`` chunk (or a whole non-streaming body); ``[DONE]`` gives a done marker."""
    if data.strip() == "[DONE]":
        return StreamMessage(final=True, done_marker=True)
    obj = _load(data)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise ProtocolError("openai chunk: 'choices' missing or not a list")
    text = ""
    finish = None
    if choices:
        c0 = choices[0]
        if not isinstance(c0, dict):
            raise ProtocolError("openai chunk: choice is not an object")
        t = c0.get("text", "")
        text = t if isinstance(t, str) else ""
        finish = c0.get("finish_reason")
    msg = StreamMessage(text=text, final=finish is not None, stop_reason=finish)
    usage = obj.get("usage")
    if isinstance(usage, dict):
        msg.prompt_tokens = _int(usage, "prompt_tokens")
    if "timings" in obj:
        msg.timings = parse_timings(obj.get("timings"))
    _stamps(obj, msg)
    return msg


def parse_event(protocol: Protocol, data: str) -> StreamMessage:
    """Dispatch on protocol."""
    return parse_native(data) if protocol == "native" else parse_openai(data)


def endpoint_path(protocol: Protocol) -> str:
    """The request path each protocol posts to."""
    return "/completion" if protocol == "native" else "/v1/completions"


def build_body(
    protocol: Protocol,
    prompt: str,
    *,
    stream: bool,
    sampling: dict[str, Any],
    model: str | None = None,
) -> dict[str, Any]:
    """The JSON request body, with llama-server's parameter names.

    ``max_tokens`` is sent as ``n_predict`` on the native endpoint; keys with value None are left out so the
    server's own default applies.
    """
    body: dict[str, Any] = {"prompt": prompt, "stream": stream}
    for key, value in sampling.items():
        if value is None:
            continue
        if key == "max_tokens" and protocol == "native":
            body["n_predict"] = value
        else:
            body[key] = value
    if protocol == "openai" and model:
        body["model"] = model
    return body


def error_from_body(status: int | None, body: Any) -> HTTPStatusError:
    """An error answer (JSON ``{"error": {...}}`` or anything else) as the matching exception."""
    message = ""
    kind = ""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = str(err.get("message", ""))
            kind = str(err.get("type", ""))
            if status is None:
                status = _int(err, "code")
        elif isinstance(err, str):
            message = err
    elif isinstance(body, (str, bytes)):
        message = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = f"HTTP {status}" if status else "server error"
    if kind:
        text += f" {kind}"
    if message:
        text += f": {message[:500]}"
    if status in (401, 403):
        return AuthError(text + " (check --api-key / ORPHEUS_BENCH_API_KEY)", http_status=status)
    if kind == "exceed_context_size_error":
        hint = " (the prompt does not fit the per-slot context -c/-np: no audio; see `orpheus-bench doctor`)"
        return ContextSizeError(text + hint, http_status=status)
    return HTTPStatusError(text, http_status=status)


def parse_error_text(status: int, raw: bytes) -> HTTPStatusError:
    """Classify a non-2xx (or non-SSE) answer from its raw body, JSON or not."""
    try:
        body: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = raw[:500]
    return error_from_body(status, body)


def is_event_stream(content_type: str) -> bool:
    """Whether a response's Content-Type announces an SSE stream."""
    return "text/event-stream" in content_type.lower()


def non_stream_answer_error(status: int, content_type: str, raw: bytes) -> RequestError:
    """What a non-SSE answer to a streaming request means (both drivers raise this).

    llama-server answers some errors (``exceed_context_size_error``) with a JSON error body and a 2xx or 4xx status
    even when asked to stream: that is the server's error, kept with its message. Anything else is a protocol error.
    """
    if b'"error"' in raw:
        return parse_error_text(status, raw)
    return ProtocolError(f"expected an SSE stream, got {content_type or 'no content type'}: {raw[:200]!r}")
