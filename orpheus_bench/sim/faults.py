"""Fault modes of the simulator: what can go wrong with a request, and which requests it hits.

A `FaultSpec` names one misbehaviour (`FaultKind`) with its parameters and a selector. Selection is a pure
function of the 1-based request counter, so a run mixes good and bad requests in the same order every time:
``every=k`` hits requests k, 2k, 3k...; ``fraction=f`` hits exactly ``floor(n*f)`` of the first n requests,
spread evenly; ``first=m`` hits the first m requests; with no selector the fault hits every request. When
several faults are configured, the first one that selects a request is applied (one fault per request).

The CLI form is ``KIND[:key=value,key=value...]``, e.g. ``disconnect:after_tokens=20,every=3`` or
``http_error:status=400,fraction=0.25``; `parse_fault` turns it into a validated `FaultSpec`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orpheus_bench.errors import ConfigError


class FaultKind(str, Enum):
    """One way a request can go wrong. Values are the CLI names."""

    HTTP_ERROR = "http_error"  # answer `status` with a llama-server style JSON error body, nothing else
    CONTEXT_ERROR = "context_error"  # HTTP 400 exceed_context_size_error, as if the prompt did not fit
    DISCONNECT = "disconnect"  # abort the connection after `after_tokens` events (chunked body unfinished)
    TRUNCATE = "truncate"  # end the body cleanly after `after_tokens` events, without the final event
    MALFORMED = "malformed"  # send one malformed SSE data line (`variant`) after `after_tokens` events
    STREAM_ERROR = "stream_error"  # after `after_tokens` events send `data: {"error": {...}}` and end
    INVALID_CODES = "invalid_codes"  # every `interval`-th audio token carries an out-of-range code
    TEXT_TOKENS = "text_tokens"  # a plain-text token after every `interval`-th audio token
    PARTIAL_FRAME = "partial_frame"  # the last frame lacks `missing` of its 7 codes
    NO_AUDIO = "no_audio"  # end of speech (or EOS with variant=eos) as the very first token
    SLOW = "slow"  # `token_s` seconds per token instead of the timing model
    STALL = "stall"  # after `after_tokens` events send nothing for `stall_s` s, connection kept open
    SLOW_HEADERS = "slow_headers"  # wait `delay_s` before doing anything (so before the response headers)
    HUGE = "huge"  # generate `tokens` audio tokens, ignoring n_predict/max_tokens and the slot context


MALFORMED_VARIANTS = ("nonjson", "partial_json", "not_object", "missing_fields", "bad_utf8")


class FaultSpec(BaseModel):
    """One fault mode, its parameters and which requests it applies to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind = Field(description="Which misbehaviour; see FaultKind.")
    every: int | None = Field(default=None, ge=1, description="Apply to every k-th completion request (k, 2k, ...).")
    fraction: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Apply to this fraction of requests, spread evenly, deterministic.",
    )
    first: int | None = Field(default=None, ge=0, description="Apply to the first m completion requests only.")
    status: int = Field(default=500, ge=400, le=599, description="http_error: the HTTP status to answer.")
    message: str = Field(default="simulated server fault", description="http_error/stream_error: the error message.")
    after_tokens: int = Field(
        default=10,
        ge=0,
        description="disconnect/truncate/malformed/stream_error/stall: events sent before it.",
    )
    variant: str = Field(
        default="",
        description=(
            "malformed: nonjson | partial_json | not_object | missing_fields | bad_utf8 (default nonjson); "
            "no_audio: stop_word | eos (default stop_word)."
        ),
    )
    interval: int = Field(default=10, ge=1, description="invalid_codes/text_tokens: every n-th audio token is hit.")
    missing: int = Field(default=3, ge=1, le=6, description="partial_frame: codes missing from the last frame.")
    token_s: float = Field(default=2.0, ge=0.0, description="slow: seconds per generated token.")
    delay_s: float = Field(default=5.0, ge=0.0, description="slow_headers: seconds before the request is handled.")
    stall_s: float = Field(default=3600.0, ge=0.0, description="stall: seconds of silence; generation resumes after.")
    tokens: int = Field(default=20_000, ge=1, description="huge: audio tokens to stream regardless of limits.")

    @model_validator(mode="after")
    def _check_variant(self) -> FaultSpec:
        if self.kind is FaultKind.MALFORMED and self.variant and self.variant not in MALFORMED_VARIANTS:
            raise ValueError(f"malformed variant must be one of {', '.join(MALFORMED_VARIANTS)}")
        if self.kind is FaultKind.NO_AUDIO and self.variant not in ("", "stop_word", "eos"):
            raise ValueError("no_audio variant must be stop_word or eos")
        return self

    def selects(self, request_number: int) -> bool:
        """Whether this fault applies to the 1-based `request_number`-th completion request."""
        n = request_number
        if self.first is not None and n > self.first:
            return False
        if self.every is not None and n % self.every != 0:
            return False
        # Evenly spread and exact: request n is hit when floor(n*f) steps up, so after n requests exactly
        # floor(n*f) were hit. The epsilon keeps 0.1 * 10 from landing at 0.999...
        return not (
            self.fraction is not None
            and math.floor(n * self.fraction + 1e-9) == math.floor((n - 1) * self.fraction + 1e-9)
        )


def select_fault(faults: Sequence[FaultSpec], request_number: int) -> FaultSpec | None:
    """The fault applied to a request: the first configured fault that selects it, or None."""
    for fault in faults:
        if fault.selects(request_number):
            return fault
    return None


def parse_fault(text: str) -> FaultSpec:
    """Parse ``KIND[:key=value,...]`` (the ``--fault`` CLI form); raises `ConfigError` naming ``--fault``."""
    kind, _, rest = text.strip().partition(":")
    data: dict[str, str] = {"kind": kind.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError("--fault", f"{text!r}: expected key=value, got {item!r}")
        data[key.strip()] = value.strip()
    try:
        return FaultSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "kind"
        raise ConfigError("--fault", f"{text!r}: {where}: {first['msg']}") from None
