"""`SimConfig`: everything the simulator can be told, validated, with one description per field.

The simulator stands in for llama-server running an Orpheus GGUF. Its numbers are synthetic: they come from
the timing model in `orpheus_bench.sim.timing`, never from a model, and the server says so in /props and in
its startup line. Defaults describe a plausible 4-slot GPU server (10 ms per token, about 1.2x real time for
one stream; 24 frames, about 2 s of audio, per request).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orpheus_bench.sim.faults import FaultSpec
from orpheus_bench.sim.timing import TimingModel


class SimConfig(BaseModel):
    """Configuration of one simulated llama-server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: int = Field(default=4, ge=1, le=1024, description="Parallel slots (llama-server --parallel).")
    ctx_size: int = Field(
        default=8192,
        ge=16,
        description="Total context (llama-server --ctx-size); each slot gets ctx_size // slots.",
    )
    token_ms: float = Field(default=10.0, ge=0.0, description="Milliseconds per generated token with one busy slot.")
    busy_alpha: float = Field(
        default=0.15,
        ge=0.0,
        description="Per-token slowdown per extra busy slot: token_ms * (1 + busy_alpha * (busy - 1)).",
    )
    prefill_base_ms: float = Field(default=2.0, ge=0.0, description="Fixed milliseconds of prompt processing.")
    prefill_ms_per_token: float = Field(default=0.5, ge=0.0, description="Milliseconds per evaluated prompt token.")
    cold_start_ms: float = Field(default=0.0, ge=0.0, description="Extra milliseconds on the first request served.")
    jitter: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        description="Sigma of a mean-one lognormal factor on every prefill and token delay (0 = none).",
    )
    seed: int = Field(default=0, description="Seed of the jitter and of audio codes for requests that send no seed.")
    audio_frames: int = Field(default=24, ge=0, description="Audio frames (7 tokens each) per request: 24 = 2.05 s.")
    audio_frames_per_char: float = Field(
        default=0.0,
        ge=0.0,
        description="Extra frames per character of the prompt, for length-dependent audio.",
    )
    loading_s: float = Field(
        default=0.0,
        ge=0.0,
        description="Answer 503 'Loading model' on every endpoint for this long after start.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Require 'Authorization: Bearer <key>' (or X-Api-Key) except on /health, /models.",
    )
    stamp: bool = Field(
        default=False,
        description=(
            "Add sim_sent_wall (time.time()), sim_sent_mono (time.monotonic()) and sim_seq to every event "
            "and JSON body, taken just before the write; for measuring the client's own overhead."
        ),
    )
    faults: tuple[FaultSpec, ...] = Field(default=(), description="Fault modes; the first selecting a request wins.")
    slot_prompt_similarity: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Reuse the idle slot whose cached prompt shares more than this share of the new prompt.",
    )
    model_path: str = Field(default="simulated/orpheus-3b-simulated.gguf", description="Reported in /props.")
    model_alias: str = Field(default="orpheus-simulated", description="Reported as `model` in completions.")

    @property
    def n_ctx_slot(self) -> int:
        """Context per slot, as llama-server divides --ctx-size among --parallel slots."""
        return self.ctx_size // self.slots

    def timing(self) -> TimingModel:
        """The pure timing model these settings describe."""
        return TimingModel(
            token_ms=self.token_ms,
            busy_alpha=self.busy_alpha,
            prefill_base_ms=self.prefill_base_ms,
            prefill_ms_per_token=self.prefill_ms_per_token,
            cold_start_ms=self.cold_start_ms,
            jitter=self.jitter,
        )

    @classmethod
    def stamp_mode(cls, **overrides: Any) -> SimConfig:
        """Zero model delay and stamped events: the harness-overhead benchmark's server (issue 9).

        Unless given, the context is 4096 tokens per slot so that no stream is ever truncated.
        """
        slots = int(overrides.get("slots", cls.model_fields["slots"].default))
        base: dict[str, Any] = {
            "ctx_size": 4096 * slots,
            "token_ms": 0.0,
            "busy_alpha": 0.0,
            "prefill_base_ms": 0.0,
            "prefill_ms_per_token": 0.0,
            "cold_start_ms": 0.0,
            "jitter": 0.0,
            "stamp": True,
        }
        base.update(overrides)
        return cls(**base)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for /props and logs; the API key is reported as set or not, never shown."""
        out = self.model_dump(mode="json", exclude={"api_key"})
        out["api_key_set"] = self.api_key is not None
        return out

    def to_json_with_secrets(self) -> str:
        """Full JSON including the API key, for handing the config to a child process over a pipe."""
        data = self.model_dump(mode="json")
        data["api_key"] = self.api_key.get_secret_value() if self.api_key is not None else None
        return json.dumps(data, separators=(",", ":"))
