"""Scenarios: everything a run needs, as one validated model, from YAML and/or CLI flags.

Unknown keys are errors and every field carries a description (``orpheus-bench run --help-scenario`` prints
them). Defaults are the seed's "after" client: streaming, 28-token reference window, temperature 0.3, top_k 30,
max_tokens 512, plus ``repeat_penalty`` 1.1 (Orpheus needs >= 1.1 for stable speech while llama-server defaults
to 1.0) and ``stop: ["<custom_token_2>"]`` (end of speech is not an end-of-generation token in GGUF conversions).
A validation failure becomes one `ConfigError` naming the field, before any request is sent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orpheus_bench.core.frames import SAMPLES_PER_FRAME
from orpheus_bench.core.prompt import END_OF_SPEECH, VOICES
from orpheus_bench.core.windows import DecodeSpec
from orpheus_bench.errors import ConfigError
from orpheus_bench.prompts import Prompt, builtin, from_file, from_list


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sampling(_Strict):
    """Generation parameters, with llama-server's names."""

    temperature: float = Field(0.3, ge=0, description="Sampling temperature (seed after: 0.3; before: 0.8).")
    top_k: int | None = Field(30, ge=0, description="Top-k (seed after: 30; before: 40).")
    top_p: float | None = Field(None, ge=0, le=1, description="Top-p; None leaves the server default.")
    min_p: float | None = Field(None, ge=0, le=1, description="Min-p; None leaves the server default.")
    max_tokens: int = Field(512, gt=0, description="Tokens to generate at most (sent as n_predict on /completion).")
    repeat_penalty: float | None = Field(1.1, ge=0, description="llama-server's repeat_penalty (not vLLM's name).")
    seed: int | None = Field(None, description="Sampling seed; None lets the server pick.")
    stop: list[str] = Field(default_factory=lambda: [END_OF_SPEECH], description="Stop strings.")
    cache_prompt: bool | None = Field(None, description="llama-server prompt cache; None = server default.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Other body keys sent as they are.")

    def body_params(self) -> dict[str, Any]:
        """The sampling keys of the request body."""
        d: dict[str, Any] = {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "max_tokens": self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
            "stop": list(self.stop) or None,
            "cache_prompt": self.cache_prompt,
        }
        d.update(self.extra)
        return d


class Decode(_Strict):
    """How audio tokens become PCM on the client."""

    preset: Literal["reference", "reference-14", "chunked", "blocking", "off"] = Field(
        "reference",
        description="reference: 28-token window decoded every frame, keep 85 ms (Orpheus reference client); "
        "reference-14: the seed's 14-token variant; chunked: K new frames with context; blocking: decode once at "
        "the end; off: count tokens only.",
    )
    window_frames: int | None = Field(None, gt=0, description="Override: frames per reference window.")
    hop_frames: int | None = Field(None, gt=0, description="Override: a reference window every N frames.")
    chunk_frames: int | None = Field(None, gt=0, description="Override: chunked mode's new frames per window.")
    context_frames: int | None = Field(None, ge=0, description="Override: chunked mode's left context frames.")
    lookahead_frames: int | None = Field(
        None, ge=0, description="Override: chunked mode's right lookahead frames (delays first audio)."
    )
    flush_tail: bool = Field(False, description="Also decode the stream's tail at the end (reference mode).")
    snac_model: str = Field(
        "random",
        description="'random' (offline, real cost, noise audio), a hub id such as hubertsiuzdak/snac_24khz, "
        "or a local directory with config.json and weights.",
    )
    device: str = Field("auto", description="auto (cuda, then cpu), cpu or cuda[:N].")
    noise: Literal["zero", "off", "random"] = Field(
        "zero",
        description="SNAC noise blocks: zero (deterministic, SNAC's cost), off (removed, ~12% cheaper), "
        "random (SNAC's own behaviour).",
    )
    max_batch: int | None = Field(
        None, gt=0, description="Decode service: windows decoded together at most (None: 1 on CPU, 32 on GPU)."
    )
    max_wait_ms: float | None = Field(
        None, ge=0, description="Decode service: wait this long to fill a batch (None: 0 on CPU, 2 ms on GPU)."
    )
    workers: int = Field(1, gt=0, description="Decode service worker threads.")
    threads: int | None = Field(
        None, gt=0, description="torch intra-op threads; None = cores - 1 on CPU (a core stays for the event loop)."
    )
    backend: Literal["torch", "onnx"] = Field(
        "torch",
        description="What runs SNAC's decode: torch, or onnx (ONNX Runtime, CPU only, noise zero/off; exported "
        "once and cached; 1.3-1.8x faster with one thread; needs pip install 'orpheus-bench[onnx]').",
    )

    def spec(self) -> DecodeSpec:
        """The pure window spec for the pipeline."""
        base = DecodeSpec.from_preset(self.preset)
        overrides: dict[str, Any] = {"flush_tail": self.flush_tail}
        for name in ("window_frames", "hop_frames", "chunk_frames", "context_frames", "lookahead_frames"):
            value = getattr(self, name)
            if value is not None:
                overrides[name] = value
        if self.hop_frames is not None:
            # A hop of H frames must keep H frames of new samples per window.
            keep_start = overrides.get("keep_start", base.keep_start)
            overrides["keep_end"] = keep_start + self.hop_frames * SAMPLES_PER_FRAME
        try:
            return dataclasses.replace(base, **overrides)
        except ConfigError as exc:
            raise ConfigError("decode", exc.message) from None


class Load(_Strict):
    """The load shape: closed-loop concurrency levels or open-loop arrival rates."""

    concurrency: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8, 12], description="Closed-loop levels: workers per level."
    )
    rate: list[float] | None = Field(
        None, description="Open loop: arrivals per second per level (Poisson); replaces concurrency levels."
    )
    burstiness: float = Field(
        1.0, gt=0, description="Open loop: gamma shape of inter-arrival times (1 = Poisson, <1 burstier)."
    )
    max_inflight: int = Field(256, gt=0, description="Open loop: requests in flight at most (the rest wait).")
    requests_per_level: int | None = Field(20, gt=0, description="Measured requests per level (after warmup).")
    duration_per_level_s: float | None = Field(None, gt=0, description="Seconds per level instead of a request count.")
    warmup: bool = Field(True, description="Send as many warmup requests as the level's concurrency first.")
    seed: int = Field(0, description="Seed for prompt order and open-loop arrivals.")

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one level is needed")
        if any(c <= 0 for c in v):
            raise ValueError("every concurrency level must be a positive integer")
        return v

    @field_validator("rate")
    @classmethod
    def _rates(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(r <= 0 for r in v)):
            raise ValueError("every rate must be > 0 requests per second")
        return v


class Timeouts(_Strict):
    """Per-request limits; a request past one becomes a `timeout` record."""

    connect_s: float = Field(10.0, gt=0, description="TCP connect (and response headers) limit.")
    request_s: float = Field(300.0, gt=0, description="Whole request limit.")
    between_tokens_s: float = Field(30.0, gt=0, description="Longest silence between two chunks of a stream.")
    server_ready_s: float = Field(120.0, ge=0, description="How long to wait for /health while the model loads.")


class PromptSource(_Strict):
    """Where prompts come from: a built-in set, a file of lines, or an inline list."""

    set: str | None = Field("seed-lengths", description="Built-in set: seed-lengths, short, medium.")
    file: str | None = Field(None, description="File with one prompt per line (# comments).")
    texts: list[str] | None = Field(None, description="Inline prompts.")
    voice: str | None = Field("tara", description=f"Orpheus voice ({', '.join(VOICES)}) or null for none.")

    def load(self) -> list[Prompt]:
        """Resolve to prompts (errors name the field)."""
        if self.texts is not None:
            return from_list(self.texts)
        if self.file:
            return from_file(self.file)
        return builtin(self.set or "seed-lengths")


class ClientSettings(_Strict):
    """How this client drives the load: its processes and its HTTP transport (issue 16)."""

    processes: int | Literal["auto"] = Field(
        "auto",
        description="Client processes the level's workers are spread over, each with its own event loop, "
        "connections and decode service; the parent plans levels and writes the run directory. auto: one per "
        "usable core, at most one per 32 streams of the largest level and 8 in all (a small sweep stays in one "
        "process); 1: everything in this process, as before issue 16.",
    )
    transport: Literal["stream", "aiohttp"] = Field(
        "stream",
        description="stream: orpheus-bench's HTTP/1.1 reader on an asyncio protocol, bytes parsed where they "
        "arrive (cheaper per token); aiohttp: aiohttp's client, one readany() per HTTP chunk (the path before "
        "issue 16, kept for comparison).",
    )

    @field_validator("processes")
    @classmethod
    def _processes(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("processes must be >= 1 or 'auto'")
        return v


class ServerLaunch(_Strict):
    """Start a llama-server for this run from a profile (else the run targets `host`)."""

    profile: str | None = Field(None, description="Profile name (seed-before, seed-after, ...) or YAML path.")
    model: str | None = Field(None, description="GGUF path; 'test' builds the tiny Orpheus-format model.")
    extra_args: list[str] = Field(default_factory=list, description="Extra llama-server arguments.")


class Scenario(_Strict):
    """A whole run description."""

    name: str | None = Field(None, description="Run name (default: the output directory's name).")
    host: str = Field("http://127.0.0.1:8080", description="Base URL of llama-server (or compatible).")
    protocol: Literal["native", "openai"] = Field("native", description="/completion or /v1/completions.")
    mode: Literal["stream", "blocking"] = Field(
        "stream",
        description="stream: SSE + incremental decode; blocking: one response, decode at the end (seed before).",
    )
    model: str | None = Field(None, description="Model name sent in the openai protocol's body.")
    use_token_ids: bool = Field(
        False, description="Read audio tokens from the native stream's token ids (needs return_tokens) not text."
    )
    prompts: PromptSource = Field(default_factory=PromptSource, description="Prompt source and voice.")
    sampling: Sampling = Field(default_factory=Sampling, description="Generation parameters.")
    decode: Decode = Field(default_factory=Decode, description="Client decoding.")
    load: Load = Field(default_factory=Load, description="Load shape.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Limits.")
    server: ServerLaunch = Field(default_factory=ServerLaunch, description="Optional server to start.")
    client: ClientSettings = Field(
        default_factory=ClientSettings, description="Client processes and HTTP transport (not the server's)."
    )
    max_invalid_code_rate: float = Field(
        0.02, ge=0, le=1, description="A request with more invalid audio codes than this share fails."
    )
    success: Literal["complete", "audio"] = Field(
        "complete",
        description="What counts as a successful request: complete (the utterance ended on its own: end of speech, "
        "the stop word or end of sequence; a request cut short by max_tokens or the slot's context is a failure) "
        "or audio (any request that delivered audio: for servers whose model never ends speech; every output "
        "then says cut-short requests counted as successes).",
    )
    keep_audio: int = Field(0, ge=0, description="Keep this many sample WAVs per level (needs decoding).")
    scrape_interval_s: float = Field(0.5, gt=0, description="/metrics and /slots sampling interval.")
    gate: str | None = Field(None, description="Gate rules file applied at the end of the run.")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.mode == "blocking" and self.decode.preset not in ("blocking", "off"):
            # A blocking response has no stream to window; decode it once, as the seed's "before" client did.
            object.__setattr__(self, "decode", self.decode.model_copy(update={"preset": "blocking"}))
        return self

    @field_validator("host")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @property
    def streaming(self) -> bool:
        """True when responses are streamed."""
        return self.mode == "stream"


def _format_validation(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "scenario"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return ConfigError(loc, msg)


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Validate a mapping; the first problem becomes a ConfigError naming its field."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(exc) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read YAML (safe loader), apply dotted-key overrides (``load.concurrency``), validate."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("scenario", f"no such file: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("scenario", f"{p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("scenario", f"{p} must hold a mapping at the top level")
    base = p.parent
    file_key = data.get("prompts", {}).get("file") if isinstance(data.get("prompts"), dict) else None
    if file_key and not Path(file_key).is_absolute() and not Path(file_key).exists():
        data["prompts"]["file"] = str(base / file_key)
    return scenario_from_dict(merge_overrides(data, overrides or {}))


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply ``{"a.b": value}`` overrides onto nested dicts (None values are skipped)."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted, value in overrides.items():
        if value is None:
            continue
        parts = dotted.split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.get(part)
            nxt = dict(nxt) if isinstance(nxt, dict) else {}
            cur[part] = nxt
            cur = nxt
        cur[parts[-1]] = value
    return out


def describe_fields(model: type[BaseModel] = Scenario, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, description) for every field, for --help-scenario."""
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_fields(ann, f"{prefix}{name}."))
            continue
        default = info.get_default(call_default_factory=True)
        rows.append((f"{prefix}{name}", repr(default), info.description or ""))
    return rows
