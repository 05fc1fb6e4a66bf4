"""One typed record per request: what every driver emits and every output reads.

A `RequestRecord` stores raw observations only: timestamps as ``perf_counter`` offsets in seconds from the
moment the request was handed to the transport (``t_*_s``), one wall-clock start, counts, the PCM chunk
timeline and the server's own timings. Everything people quote (TTFA, RTF, audio seconds, stalls) is a
property or an aggregation over these fields, never stored twice, so a record written by the aiohttp runner
and one written by a Locust user are compiled by the same code.

Serialisation is one JSON object per line (``requests.jsonl``); `from_dict` ignores unknown keys so that
newer writers stay readable by older readers, and fills defaults for missing ones.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from orpheus_bench.limits import CLIENT_BOUND_DECODE_QUEUE_P90_MS
from orpheus_bench.measures.stats import percentile

SAMPLE_RATE_HZ = 24_000
FRAME_POSITIONS = 7
SCHEMA_VERSION = 2  # 2: chunk window index, max_tokens, events_after_final; client_bound derived, not stored

# How a stream's final event says it ended (llama-server's stop_type, OpenAI's finish_reason).
COMPLETE_STOPS = frozenset({"word", "eos", "stop"})  # the stop string (end of speech), end of sequence
LIMIT_STOPS = frozenset({"limit", "length"})  # a length limit: n_predict/max_tokens or the slot's context
CUT_MAX_TOKENS = "max_tokens"
CUT_SLOT_CONTEXT = "slot_context"
CUT_NO_END_OF_SPEECH = "no_end_of_speech"


class Status(str, Enum):
    """How a request ended."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class ErrorClass(str, Enum):
    """Why a request failed; one value per failure the harness tells apart."""

    CONNECT = "connect"  # TCP connect refused / DNS / connect timeout
    HTTP = "http"  # non-2xx status with a body
    AUTH = "auth"  # 401/403: api key missing or wrong
    PROTOCOL = "protocol"  # malformed SSE/JSON, stream ended without its final event
    DISCONNECT = "disconnect"  # server closed the connection mid-stream
    INVALID_AUDIO = "invalid_audio"  # too many out-of-range audio codes
    NO_AUDIO = "no_audio"  # the response carried no usable audio frame
    DECODE = "decode"  # SNAC decoding raised
    TIMEOUT = "timeout"  # total or between-token timeout
    CANCELLED = "cancelled"  # run interrupted (Ctrl-C, SIGTERM, shutdown)
    CLIENT = "client"  # a bug or resource fault in the harness itself


@dataclass(slots=True)
class AudioChunk:
    """One PCM chunk handed to the (virtual) player.

    ``window`` is the decode window's index in the stream (0, 1, 2...): chunks play in this order, whatever
    order their decodes finished in (several decode workers may finish a later window first). ``t_ready_s``
    is when its samples were available to play; ``t_tokens_s`` when the last token needed for it had arrived,
    so ``t_ready_s - t_tokens_s`` is the decode lag (queue wait plus decode time).
    """

    t_ready_s: float
    samples: int
    t_tokens_s: float
    decode_s: float = 0.0
    queue_s: float = 0.0
    window: int = -1  # -1: written before windows were numbered; such records keep their stored order

    @property
    def lag_s(self) -> float:
        """Time from the window's last token arriving to its PCM being ready."""
        return self.t_ready_s - self.t_tokens_s


@dataclass(slots=True)
class ServerTimings:
    """The server's own account of a request, when its final event carries one (llama-server ``timings``)."""

    prompt_n: int | None = None
    prompt_ms: float | None = None
    predicted_n: int | None = None
    predicted_ms: float | None = None
    cache_n: int | None = None


@dataclass(slots=True)
class RequestRecord:
    """Everything observed about one request. Offsets (``t_*_s``) are seconds from ``t_sent`` (0.0)."""

    request_id: str
    level: int  # concurrency level (closed loop) or the level index's load value (open loop)
    worker: int
    seq: int  # order of the request within its level
    warmup: bool
    prompt_id: str
    prompt: str
    voice: str | None
    mode: str  # "stream" or "blocking"
    protocol: str  # "native" (/completion) or "openai" (/v1/completions)
    # "stream" or "aiohttp" (the asyncio runner's HTTP transport; always "aiohttp" in runs made before it had two),
    # or "locust"
    driver: str
    wall_start: float  # epoch seconds at t_sent
    run_offset_s: float  # t_sent relative to the run's monotonic origin
    scheduled_offset_s: float | None = None  # open loop: when it should have been sent (run clock)
    level_label: str | None = None  # e.g. "c=4" or "rate=2.0"

    t_headers_s: float | None = None
    t_first_byte_s: float | None = None
    t_first_token_s: float | None = None
    t_first_audio_token_s: float | None = None
    t_first_frame_s: float | None = None
    t_first_window_s: float | None = None  # tokens of the first decode window complete
    t_first_pcm_s: float | None = None  # first PCM chunk ready: TTFA
    t_last_token_s: float | None = None
    t_end_s: float | None = None

    prompt_chars: int = 0
    tokens_generated: int = 0  # content pieces seen (server predicted_n is in `timings`)
    audio_tokens: int = 0
    frames: int = 0
    invalid_codes: list[int] = field(default_factory=lambda: [0] * FRAME_POSITIONS)
    special_tokens: int = 0  # non-audio special tokens (<custom_token_0..9> other than end of speech)
    text_chars: int = 0  # characters of plain text between audio tokens
    end_of_speech: bool = False
    events_after_final: int = 0  # protocol noise: events the server sent after the stream's final event
    pcm_samples: int = 0
    chunks: list[AudioChunk] = field(default_factory=list)

    timings: ServerTimings | None = None
    tokens_cached: int | None = None
    truncated: bool | None = None
    stop_reason: str | None = None  # stop_type (native) or finish_reason (openai)
    http_status: int | None = None
    max_tokens: int | None = None  # the generation limit the request asked for (n_predict / max_tokens)

    status: Status = Status.OK
    error_class: ErrorClass | None = None
    error_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- derived, never stored -------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        """True when the request completed with usable audio."""
        return self.status is Status.OK

    @property
    def complete(self) -> bool:
        """True when the utterance ended on its own: end of speech seen, or the server stopped at the stop word
        or the end-of-sequence token. A request that ended by a length limit is `cut_short` instead."""
        return self.ok and (self.end_of_speech or self.stop_reason in COMPLETE_STOPS)

    @property
    def cut_short(self) -> bool:
        """True when the request delivered audio but its utterance did not end: a length limit stopped it."""
        return self.ok and not self.complete

    @property
    def cut_limit(self) -> str | None:
        """Which limit cut the utterance short (None unless `cut_short`): ``slot_context`` (the slot's context
        filled up: the server says ``truncated``), ``max_tokens`` (the generation limit the request asked for),
        or ``no_end_of_speech`` (the stream ended without end of speech and without saying why)."""
        if not self.cut_short:
            return None
        if self.truncated:
            return CUT_SLOT_CONTEXT
        if self.stop_reason in LIMIT_STOPS:
            return CUT_MAX_TOKENS
        return CUT_NO_END_OF_SPEECH

    @property
    def outcome(self) -> str:
        """One word for how the request ended: ``complete``, ``cut_short``, or its error class (``cancelled``...)."""
        if self.ok:
            return "complete" if self.complete else "cut_short"
        return self.error_class.value if self.error_class else self.status.value

    @property
    def client_bound(self) -> bool:
        """True when this request's PCM waited on the client's decode queue past the client-bound threshold (p90
        of its chunks' queue waits): its TTFA and stalls then include time the client, not the server, added."""
        p90 = percentile([c.queue_s * 1000.0 for c in self.chunks], 90)
        return p90 is not None and p90 > CLIENT_BOUND_DECODE_QUEUE_P90_MS

    @property
    def ttfa_s(self) -> float | None:
        """Time to first audio: request sent -> first PCM chunk ready to play."""
        return self.t_first_pcm_s

    @property
    def total_s(self) -> float | None:
        """Total latency: request sent -> response fully read and decoded."""
        return self.t_end_s

    @property
    def audio_seconds(self) -> float:
        """Seconds of 24 kHz PCM produced."""
        return self.pcm_samples / SAMPLE_RATE_HZ

    @property
    def rtf(self) -> float | None:
        """Real-time factor as wall seconds per audio second (below 1.0 is faster than real time)."""
        if self.t_end_s is None or self.pcm_samples == 0:
            return None
        return self.t_end_s / self.audio_seconds

    # TTFA split: queue (derived) + prefill (server-measured) = first token; + generation + decode = TTFA.
    @property
    def prefill_s(self) -> float | None:
        """Server-measured prompt processing (``timings.prompt_ms``)."""
        if self.timings is None or self.timings.prompt_ms is None:
            return None
        return self.timings.prompt_ms / 1000.0

    @property
    def queue_s(self) -> float | None:
        """Derived: client time to first token minus the server's prefill (slot wait, HTTP, network)."""
        prefill = self.prefill_s
        if self.t_first_token_s is None or prefill is None:
            return None
        return self.t_first_token_s - prefill

    @property
    def generation_to_window_s(self) -> float | None:
        """Client-measured: first token -> the tokens of the first decode window complete."""
        if self.t_first_token_s is None or self.t_first_window_s is None:
            return None
        return self.t_first_window_s - self.t_first_token_s

    @property
    def first_decode_s(self) -> float | None:
        """Client-measured: first window's tokens complete -> its PCM ready (decode queue + SNAC)."""
        if self.t_first_window_s is None or self.t_first_pcm_s is None:
            return None
        return self.t_first_pcm_s - self.t_first_window_s

    @property
    def invalid_code_count(self) -> int:
        """Audio codes outside [0, 4095], over all slot positions."""
        return sum(self.invalid_codes)

    @property
    def end_offset_run_s(self) -> float | None:
        """When the request ended on the run's clock."""
        return None if self.t_end_s is None else self.run_offset_s + self.t_end_s

    @property
    def send_delay_s(self) -> float | None:
        """Open loop: how late the request was sent compared with its schedule (client-side queueing)."""
        if self.scheduled_offset_s is None:
            return None
        return max(0.0, self.run_offset_s - self.scheduled_offset_s)

    # ---- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; enums become their values."""
        out = dataclasses.asdict(self)
        out["schema"] = SCHEMA_VERSION
        out["status"] = self.status.value
        out["error_class"] = self.error_class.value if self.error_class else None
        return out

    def to_json(self) -> str:
        """One line of ``requests.jsonl``."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        """Rebuild a record, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["status"] = Status(kwargs.get("status", "ok"))
        ec = kwargs.get("error_class")
        kwargs["error_class"] = ErrorClass(ec) if ec else None
        kwargs["chunks"] = [AudioChunk(**c) for c in kwargs.get("chunks") or []]
        t = kwargs.get("timings")
        kwargs["timings"] = ServerTimings(**t) if isinstance(t, dict) else None
        return cls(**kwargs)

    def fail(self, error_class: ErrorClass, message: str, status: Status = Status.ERROR) -> None:
        """Mark the record failed, keeping the first failure if one was already recorded."""
        if self.error_class is not None:
            return
        self.status = status
        self.error_class = error_class
        self.error_message = message[:2000]


def read_records(path: str) -> list[RequestRecord]:
    """Read a ``requests.jsonl`` file; a torn last line (crash mid-write) is skipped, not fatal."""
    out: list[RequestRecord] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(RequestRecord.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, ValueError):
                continue
    return out
