"""The compiled, frozen results of one run: what every report, table and gate reads.

`compile_run` builds a `RunResults` once from a run directory; nothing downstream recomputes a statistic from
records. Times are milliseconds where the name ends in ``_ms`` and seconds where it ends in ``_s``; run-clock
times (``*_run_s``) are seconds since the run's monotonic origin, the clock of ``RequestRecord.run_offset_s``.
Dict fields are plain dicts for JSON output; treat them as read-only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from orpheus_bench.measures.bootstrap import Interval
from orpheus_bench.measures.playback import StallStats
from orpheus_bench.measures.stats import Summary
from orpheus_bench.measures.table import LevelTable


@dataclass(frozen=True, slots=True)
class TtfaSplit:
    """Where TTFA goes, as means over the requests that have every part (so the parts add up to ``ttfa_ms``).

    - ``queue_ms`` (derived): client time to first token minus the server's prompt_ms; slot wait, HTTP and
      network time;
    - ``prefill_ms`` (measured by the server: ``timings.prompt_ms``);
    - ``generation_ms`` (measured by the client): first token -> tokens of the first decode window complete;
    - ``decode_ms`` (measured by the client): first window complete -> its PCM ready (decode queue + SNAC).
    ``to_first_token_ms`` (measured) = queue + prefill. Parts are None when no request had them.
    """

    n: int
    ttfa_ms: float | None
    queue_ms: float | None
    prefill_ms: float | None
    to_first_token_ms: float | None
    generation_ms: float | None
    decode_ms: float | None


@dataclass(frozen=True, slots=True)
class LevelResult:
    """Statistics of one load level, over its measured (non-warmup) requests (`orpheus_bench.measures`).

    Latency summaries describe the requests that delivered audio (complete or cut short); success counts
    complete utterances only, and cut-short requests are counted beside it.
    """

    level: int
    label: str  # e.g. "4 workers" or "rate=2.0"
    kind: str  # "concurrency" or "rate"
    load: float  # workers, or arrivals per second
    n: int  # measured requests (warmup excluded, cancelled included)
    n_warmup: int
    ok: int  # successful: complete utterances (any request with audio under `success: audio`)
    with_audio: int  # delivered audio without an error: complete or cut short
    cut_short: int  # delivered audio, but a length limit ended the utterance
    cut_limits: dict[str, int]  # which limit: max_tokens, slot_context, no_end_of_speech -> count
    cancelled: int  # ended by the harness shutting down; not counted against the success rate
    success_rate: float | None  # ok / (n - cancelled)
    cut_short_rate: float | None  # cut_short / (n - cancelled)
    errors: dict[str, int]  # error class -> count
    ttfa_ms: Summary  # requests with audio
    total_ms: Summary  # requests with audio
    first_window_ms: Summary  # requests with audio: the first decode window's tokens arrived (no client decode)
    window_s: float | None  # first measured send -> last measured end, on the run clock
    throughput_rps: float | None  # successes per second sustained (see throughput_basis)
    throughput_basis: str  # which requests and window the throughput rests on, in words
    throughput_requests: int  # how many requests it rests on (the steady-state ones in a closed loop)
    audio_s: float  # seconds of audio delivered
    audio_s_mean: float | None  # per request with audio: the work one request did
    audio_tokens_mean: float | None  # per request with audio
    audio_s_per_wall_s: float | None  # audio delivered per wall second (same basis as throughput)
    rtf: Summary  # per stream, wall seconds per audio second (below 1 = faster than real time)
    tokens_per_s: float | None  # tokens delivered per wall second (same basis as throughput)
    stream_tokens_per_s: Summary  # per stream: tokens / (last token - first token)
    audio_tokens: int
    invalid_codes: tuple[int, ...]  # by slot position 0..6, over all measured requests
    invalid_code_rate: float | None  # invalid codes / audio tokens
    stalls: tuple[StallStats, ...]  # one per pre-roll
    ttfa_split: TtfaSplit
    decode_lag_ms: Summary  # per chunk: window's last token -> its PCM ready
    client_bound: bool
    client_bound_reasons: tuple[str, ...]
    client: dict[str, Any]  # client health numbers from run.json (loop lag, decode queue)
    started_run_s: float | None  # level window from run.json
    ended_run_s: float | None
    intervals: dict[str, Interval] = field(default_factory=dict)  # headline statistics with 95% intervals

    def stall_at(self, preroll_ms: int) -> StallStats | None:
        """The stall statistics at one pre-roll, if it was computed."""
        return next((s for s in self.stalls if s.preroll_ms == preroll_ms), None)


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request as plots and the bootstrap need it (warmups included, flagged)."""

    request_id: str
    level: int
    worker: int
    seq: int
    warmup: bool
    ok: bool
    status: str
    error_class: str | None
    prompt_id: str
    start_run_s: float
    ttfa_ms: float | None
    total_ms: float | None
    audio_s: float
    outcome: str = "complete"  # complete, cut_short, or the error class


@dataclass(frozen=True, slots=True)
class PromptResult:
    """Outcome by prompt over all levels' measured requests (long prompts are where slots run out)."""

    prompt_id: str
    prompt: str
    chars: int
    n: int
    ok: int
    success_rate: float | None  # ok / (n - cancelled)
    ttfa_mean_ms: float | None
    audio_s_mean: float | None


@dataclass(frozen=True, slots=True)
class ServerSample:
    """One server-side sample from ``server.jsonl`` (None where the sample lacks the value)."""

    t_run_s: float
    busy_slots: float | None
    processing: float | None
    deferred: float | None
    tokens_per_s: float | None


@dataclass(frozen=True, slots=True)
class AudioSample:
    """A kept WAV of one request: ``path`` is the run directory as given joined with ``rel_path``."""

    request_id: str | None
    level: int | None
    label: str
    prompt: str
    path: str
    rel_path: str
    status: str | None


@dataclass(frozen=True, slots=True)
class RunMeta:
    """Who, what, where and when: copied from run.json, with the few facts reports need pulled out."""

    name: str
    run_dir: str
    driver: str
    started_at: str | None
    ended_at: str | None
    complete: bool | None
    version: str | None
    git_sha: str | None
    host: str | None  # the target server's URL
    mode: str | None  # "stream", "blocking", or the records' modes comma-joined when they differ
    protocol: str | None
    snac_random: bool | None  # True: SNAC weights were random, the audio is noise
    snac: dict[str, Any] | None
    scenario: dict[str, Any]
    server_props: dict[str, Any] | None
    doctor: Any
    other: dict[str, Any] = field(default_factory=dict)  # run.json keys not listed above (CLI args, ...)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Run-level figures; ``max_concurrency`` is the highest level at which it and every lower level reached
    ``measures.metrics.MIN_SUCCESS_FOR_CAPACITY`` success, ``max_concurrency_open`` True when that is the highest
    level tried (the run did not find the limit: read it as "at least")."""

    requests: int  # every record, warmups included
    warmup: int
    measured: int
    ok: int  # successes (complete utterances)
    success_rate: float | None
    cut_short: int
    cut_short_rate: float | None
    errors: dict[str, int]
    duration_s: float | None
    best_ttfa_mean_ms: float | None
    best_ttfa_level: int | None
    max_throughput_rps: float | None
    max_throughput_level: int | None
    max_concurrency: int | None
    max_concurrency_open: bool
    client_bound_levels: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RunResults:
    """Everything the outputs show about one run."""

    meta: RunMeta
    summary: RunSummary
    levels: tuple[LevelResult, ...]
    requests: tuple[RequestRow, ...]
    prompts: tuple[PromptResult, ...]
    server: tuple[ServerSample, ...]
    audio: tuple[AudioSample, ...]
    prerolls_ms: tuple[int, ...]
    warnings: tuple[str, ...]
    success_policy: str = "complete"
    tables: tuple[LevelTable, ...] = field(default=(), repr=False, compare=False)  # per-request columns

    def level(self, level: int) -> LevelResult:
        """The result of one level; KeyError when the run has no such level."""
        for lv in self.levels:
            if lv.level == level:
                return lv
        raise KeyError(level)

    def table(self, level: int) -> LevelTable:
        """The per-request columns of one level (what comparisons resample); KeyError when absent."""
        for t in self.tables:
            if t.level == level:
                return t
        raise KeyError(level)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole model (derived stall rates included; the tables are not data)."""
        out = dataclasses.asdict(dataclasses.replace(self, tables=()))
        out.pop("tables", None)
        for lv_out, lv in zip(out["levels"], self.levels, strict=True):
            for st_out, st in zip(lv_out["stalls"], lv.stalls, strict=True):
                st_out["stall_rate"] = st.stall_rate
        return out
