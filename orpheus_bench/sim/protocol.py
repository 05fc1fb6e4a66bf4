"""llama-server's wire shapes as the simulator writes them: completion events, errors, /metrics, /props.

Shapes follow llama.cpp ``tools/server`` (``server-task.cpp`` ``to_json_*``, ``server-http.cpp`` middlewares,
the README's /props, /slots and /metrics sections): native partial events carry ``content``, ``tokens``,
``stop: false``, ``id_slot``, ``tokens_predicted``, ``tokens_evaluated``; the final native event adds
``stop: true``, ``stop_type``, ``stopping_word``, ``truncated``, ``tokens_cached``, ``generation_settings``
and ``timings``. OpenAI ``/v1/completions`` chunks are ``object: "text_completion"`` with one choice; the
last one has ``finish_reason`` ("stop" for eos/word, "length" for limit) and ``usage``, then ``data: [DONE]``.
Everything here is pure: callers pass the clock readings in.

Why one module over 400 lines: every wire shape the simulator writes sits beside its siblings, so a change to one
llama.cpp event shape is checked against the others in one place; it is data builders only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BUILD_INFO = "b0-orpheus-bench-simulator"
SIMULATOR_NOTE = "simulated llama-server: every timing is synthetic, nothing here measures a real model"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}


def error_body(code: int, message: str, error_type: str | None = None, **extra: Any) -> dict[str, Any]:
    """llama-server's JSON error: ``{"error": {"code", "message", "type", ...}}``."""
    err: dict[str, Any] = {"code": code, "message": message, "type": error_type or ERROR_TYPES.get(code, "")}
    err.update(extra)
    return {"error": err}


def exceed_context_body(n_prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    """HTTP 400 for a prompt that does not fit the slot; llama-server sends it as JSON even when streaming."""
    return error_body(
        400,
        f"request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), try increasing it",
        "exceed_context_size_error",
        n_prompt_tokens=n_prompt_tokens,
        n_ctx=n_ctx,
    )


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n`` (a string is sent as is, e.g. ``[DONE]``)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


@dataclass(frozen=True)
class Timings:
    """The server's own account of one request (llama-server ``timings``), milliseconds."""

    cache_n: int
    prompt_n: int
    prompt_ms: float
    predicted_n: int
    predicted_ms: float

    def to_json(self) -> dict[str, Any]:
        """The ``timings`` object with llama-server's derived rates."""

        def per_token(ms: float, n: int) -> float:
            return ms / n if n > 0 else 0.0

        def per_second(ms: float, n: int) -> float:
            return 1000.0 * n / ms if ms > 0 else 0.0

        return {
            "cache_n": self.cache_n,
            "prompt_n": self.prompt_n,
            "prompt_ms": round(self.prompt_ms, 3),
            "prompt_per_token_ms": round(per_token(self.prompt_ms, self.prompt_n), 3),
            "prompt_per_second": round(per_second(self.prompt_ms, self.prompt_n), 3),
            "predicted_n": self.predicted_n,
            "predicted_ms": round(self.predicted_ms, 3),
            "predicted_per_token_ms": round(per_token(self.predicted_ms, self.predicted_n), 3),
            "predicted_per_second": round(per_second(self.predicted_ms, self.predicted_n), 3),
        }


@dataclass(frozen=True)
class Outcome:
    """How one completion ended, for its final event or body."""

    id_slot: int
    n_prompt: int
    n_decoded: int
    n_cached: int
    stop_type: str
    stopping_word: str
    truncated: bool
    timings: Timings


@dataclass(frozen=True)
class RequestParams:
    """The request fields the simulator uses, parsed from either protocol's body."""

    prompt: str | list[int]
    n_predict: int
    stream: bool
    stop: tuple[str, ...]
    seed: int | None
    cache_prompt: bool
    return_tokens: bool
    sampling: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The prompt as text ('' for a token list): used for caching, seeding and audio length."""
        return self.prompt if isinstance(self.prompt, str) else ""


class RequestInvalid(ValueError):
    """A request body llama-server would refuse with HTTP 400."""


SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.95,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
    "repeat_last_n": 64,
}


def parse_request(body: Any, protocol: str) -> RequestParams:
    """Read a /completion ("native") or /v1/completions ("openai") body; raise `RequestInvalid`."""
    if not isinstance(body, dict):
        raise RequestInvalid("request body must be a JSON object")
    if "prompt" not in body:
        raise RequestInvalid('"prompt" must be provided')
    prompt = body["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) and not (
        isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        raise RequestInvalid('"prompt" must be a string or a list of token ids')
    if protocol == "openai":
        limit = body.get("max_tokens", body.get("n_predict", -1))
    else:
        limit = body.get("n_predict", body.get("max_tokens", -1))
    if limit is None:
        limit = -1
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise RequestInvalid('"n_predict" must be an integer')
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestInvalid('"stop" must be a string or a list of strings')
    seed = body.get("seed")
    sampling = {k: body.get(k, v) for k, v in SAMPLING_DEFAULTS.items()}
    return RequestParams(
        prompt=prompt,
        n_predict=limit,
        stream=bool(body.get("stream", False)),
        stop=tuple(s for s in stop if s),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None,
        cache_prompt=bool(body.get("cache_prompt", True)),
        return_tokens=bool(body.get("return_tokens", False)),
        sampling=sampling,
    )


def generation_settings(params: RequestParams | None, n_ctx_slot: int, slot_id: int = 0) -> dict[str, Any]:
    """A trimmed ``generation_settings`` / /props ``default_generation_settings`` / /slots entry."""
    sampling = params.sampling if params is not None else SAMPLING_DEFAULTS
    return {
        "id": slot_id,
        "n_ctx": n_ctx_slot,
        "speculative": False,
        "params": {
            "n_predict": params.n_predict if params is not None else -1,
            "seed": params.seed if params is not None and params.seed is not None else 4294967295,
            **sampling,
            "stop": list(params.stop) if params is not None else [],
            "stream": params.stream if params is not None else True,
            "n_keep": 0,
            "ignore_eos": False,
        },
    }


def native_partial(text: str, token_id: int, id_slot: int, n_decoded: int, n_prompt: int) -> dict[str, Any]:
    """One streamed token of /completion."""
    return {
        "index": 0,
        "content": text,
        "tokens": [token_id],
        "stop": False,
        "id_slot": id_slot,
        "tokens_predicted": n_decoded,
        "tokens_evaluated": n_prompt,
    }


def native_final(
    outcome: Outcome, content: str, tokens: list[int], params: RequestParams, model: str, n_ctx_slot: int
) -> dict[str, Any]:
    """The final /completion object (streamed with empty content, or the whole non-streaming body)."""
    return {
        "index": 0,
        "content": content,
        "tokens": tokens,
        "id_slot": outcome.id_slot,
        "stop": True,
        "model": model,
        "tokens_predicted": outcome.n_decoded,
        "tokens_evaluated": outcome.n_prompt,
        "generation_settings": generation_settings(params, n_ctx_slot, outcome.id_slot),
        "prompt": params.prompt_text,
        "has_new_line": False,
        "truncated": outcome.truncated,
        "stop_type": outcome.stop_type,
        "stopping_word": outcome.stopping_word,
        "tokens_cached": outcome.n_cached,
        "timings": outcome.timings.to_json(),
    }


def openai_chunk(text: str, cmpl_id: str, created: int, model: str) -> dict[str, Any]:
    """One streamed /v1/completions chunk."""
    return {
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}],
        "created": created,
        "model": model,
        "system_fingerprint": BUILD_INFO,
        "object": "text_completion",
        "id": cmpl_id,
    }


def openai_final(outcome: Outcome, text: str, cmpl_id: str, created: int, model: str) -> dict[str, Any]:
    """The last /v1/completions chunk (empty text when streaming) or the whole non-streaming body."""
    finish = "stop" if outcome.stop_type in ("eos", "word") else "length"
    return {
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        "created": created,
        "model": model,
        "system_fingerprint": BUILD_INFO,
        "object": "text_completion",
        "usage": {
            "completion_tokens": outcome.n_decoded,
            "prompt_tokens": outcome.n_prompt,
            "total_tokens": outcome.n_decoded + outcome.n_prompt,
        },
        "id": cmpl_id,
        "timings": outcome.timings.to_json(),
    }


# ---- /metrics -----------------------------------------------------------------------------------------


@dataclass
class MetricsState:
    """Counters behind /metrics. Throughput gauges use a bucket reset by each scrape, like llama-server."""

    prompt_tokens_total: int = 0
    prompt_seconds_total: float = 0.0
    tokens_predicted_total: int = 0
    tokens_predicted_seconds_total: float = 0.0
    decode_steps: float = 0.0  # fractional: a step shared by B busy slots counts 1/B per slot
    busy_slot_steps: int = 0
    n_tokens_max: int = 0
    bucket_prompt_tokens: int = 0
    bucket_prompt_s: float = 0.0
    bucket_predicted_tokens: int = 0
    bucket_predicted_s: float = 0.0

    def on_prompt(self, evaluated: int, seconds: float) -> None:
        """A prefill of `evaluated` tokens took `seconds`."""
        self.prompt_tokens_total += evaluated
        self.prompt_seconds_total += seconds
        self.bucket_prompt_tokens += evaluated
        self.bucket_prompt_s += seconds

    def on_step(self, seconds: float, busy: int, context_tokens: int) -> None:
        """One decode step of one slot, taking `seconds` while `busy` slots decoded together."""
        self.tokens_predicted_total += 1
        self.tokens_predicted_seconds_total += seconds
        self.bucket_predicted_tokens += 1
        self.bucket_predicted_s += seconds
        # Continuous batching: B busy slots advance together in one llama_decode call.
        self.decode_steps += 1.0 / max(1, busy)
        self.busy_slot_steps += 1
        self.n_tokens_max = max(self.n_tokens_max, context_tokens)


GEN_HELP = "Number of generation tokens processed."
BUSY_HELP = "Average number of busy slots per llama_decode() call"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def metrics_text(state: MetricsState, processing: int, deferred: int) -> str:
    """Prometheus text exposition with llama-server's names; resets the throughput bucket."""
    per_decode = state.busy_slot_steps / state.decode_steps if state.decode_steps > 0 else 0.0
    prompt_rate = state.bucket_prompt_tokens / state.bucket_prompt_s if state.bucket_prompt_s > 0 else 0.0
    predicted_rate = state.bucket_predicted_tokens / state.bucket_predicted_s if state.bucket_predicted_s > 0 else 0.0
    s = state
    rows: list[tuple[str, str, str, float]] = [
        ("counter", "prompt_tokens_total", "Number of prompt tokens processed.", s.prompt_tokens_total),
        ("counter", "prompt_seconds_total", "Prompt process time", s.prompt_seconds_total),
        (
            "counter",
            "tokens_predicted_total",
            "Number of generation tokens processed.",
            s.tokens_predicted_total,
        ),
        (
            "counter",
            "tokens_predicted_seconds_total",
            "Predict process time",
            s.tokens_predicted_seconds_total,
        ),
        ("counter", "n_decode_total", "Total number of llama_decode() calls", int(s.decode_steps)),
        ("counter", "n_tokens_max", "Largest observed n_tokens.", s.n_tokens_max),
        (
            "gauge",
            "n_busy_slots_per_decode",
            "Average number of busy slots per llama_decode() call",
            per_decode,
        ),
        ("gauge", "prompt_tokens_seconds", "Average prompt throughput in tokens/s.", prompt_rate),
        ("gauge", "predicted_tokens_seconds", "Average generation throughput in tokens/s.", predicted_rate),
        ("gauge", "requests_processing", "Number of requests processing.", processing),
        ("gauge", "requests_deferred", "Number of requests deferred.", deferred),
    ]
    state.bucket_prompt_tokens = 0
    state.bucket_prompt_s = 0.0
    state.bucket_predicted_tokens = 0
    state.bucket_predicted_s = 0.0
    lines: list[str] = []
    for kind, name, help_text, value in rows:
        full = f"llamacpp:{name}"
        lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}", f"{full} {_fmt(value)}"]
    return "\n".join(lines) + "\n"


# ---- /props and /slots --------------------------------------------------------------------------------


def props_body(*, total_slots: int, n_ctx_slot: int, model_path: str, simulator: dict[str, Any]) -> dict[str, Any]:
    """GET /props, plus an ``orpheus_bench_simulator`` block so a run can never pass for a real server."""
    settings = generation_settings(None, n_ctx_slot)
    settings.update({"id_task": -1, "is_processing": False, "prompt": ""})
    return {
        "default_generation_settings": settings,
        "total_slots": total_slots,
        "model_path": model_path,
        "chat_template": "",
        "chat_template_caps": {},
        "modalities": {"vision": False, "audio": False},
        "build_info": BUILD_INFO,
        "is_sleeping": False,
        "orpheus_bench_simulator": {"note": SIMULATOR_NOTE, "config": simulator},
    }


@dataclass
class SlotView:
    """What /slots shows of one slot."""

    slot_id: int
    ticket: int | None
    params: RequestParams | None
    n_decoded: int
    n_remain: int


def slots_body(views: list[SlotView], n_ctx_slot: int) -> list[dict[str, Any]]:
    """GET /slots: one object per slot."""
    out = []
    for v in views:
        entry = generation_settings(v.params, n_ctx_slot, v.slot_id)
        entry.update(
            {
                "id_task": v.ticket if v.ticket is not None else -1,
                "is_processing": v.ticket is not None,
                "next_token": {
                    "has_next_token": v.ticket is not None,
                    "has_new_line": False,
                    "n_remain": v.n_remain,
                    "n_decoded": v.n_decoded,
                },
            }
        )
        out.append(entry)
    return out
