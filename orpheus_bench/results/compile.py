"""Compiling a run directory into `RunResults`: every statistic the outputs show is computed here, once.

Inputs (see docs/ARCHITECTURE.md): ``requests.jsonl`` (required), ``run.json``, ``server.jsonl`` and
``audio/*.wav`` (optional). Rules applied throughout:

- Only measured requests count: warmups (``warmup=True``) are excluded from every statistic.
- TTFA, total latency, RTF, audio and tokens are taken over *successful* requests; errors counted by class.
- Success rate = ok / (measured - cancelled): a request cancelled because the harness shut down says nothing
  about the server, so it is reported but not counted against it.
- Throughput window of a level = first measured send -> last measured end, on the run clock
  (``run_offset_s``); throughput = successful requests / window; audio s per wall s and tokens/s likewise.
- Kept audio: a record's ``extra["audio_file"]`` names its WAV, relative to the run directory (e.g.
  ``audio/c4-0007.wav``); a record without it is matched to ``audio/<request_id>.wav``; other WAVs under
  ``audio/`` are listed unmatched. Paths leaving the run directory are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.playback import PREROLLS_MS, stall_stats
from orpheus_bench.measures.stats import summarize
from orpheus_bench.records import FRAME_POSITIONS, RequestRecord, Status, read_records
from orpheus_bench.results.model import (
    MIN_SUCCESS_FOR_CAPACITY,
    AudioSample,
    LevelResult,
    PromptResult,
    RequestRow,
    RunMeta,
    RunResults,
    RunSummary,
    ServerSample,
    TtfaSplit,
)
from orpheus_bench.results.timeline import read_server_samples

AUDIO_FILE_KEY = "audio_file"
_META_KEYS = {
    "name",
    "driver",
    "started_at",
    "ended_at",
    "complete",
    "version",
    "git_sha",
    "host",
    "scenario",
    "server_props",
    "doctor",
    "snac",
    "levels",
}


def level_label(level: int, label: str | None) -> str:
    """A level's display name: the run's own label unless it is just ``c=N``, else "N worker(s)"."""
    if label and label.strip() and label.strip() != f"c={level}":
        return label.strip()
    return f"{level} worker" if level == 1 else f"{level} workers"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ttfa_split(ok: Sequence[RequestRecord]) -> TtfaSplit:
    rows = [r for r in ok if r.t_first_token_s is not None and r.t_first_pcm_s is not None]
    if not rows:
        return TtfaSplit(0, None, None, None, None, None, None)

    def part(values: list[float | None]) -> float | None:
        # A part is reported only when every request has it, so that the parts of the split add up to TTFA.
        if any(v is None for v in values):
            return None
        return _mean([v * 1000.0 for v in values if v is not None])

    return TtfaSplit(
        len(rows),
        part([r.ttfa_s for r in rows]),
        part([r.queue_s for r in rows]),
        part([r.prefill_s for r in rows]),
        part([r.t_first_token_s for r in rows]),
        part([r.generation_to_window_s for r in rows]),
        part([r.first_decode_s for r in rows]),
    )


def _window(measured: Sequence[RequestRecord]) -> float | None:
    ends = [e for r in measured if (e := r.end_offset_run_s) is not None]
    if not measured or not ends:
        return None
    window = max(ends) - min(r.run_offset_s for r in measured)
    return window if window > 0 else None


def _per_s(value: float, window: float | None) -> float | None:
    return value / window if window else None


def _stream_tps(r: RequestRecord) -> float | None:
    if r.t_first_token_s is None or r.t_last_token_s is None:
        return None
    span = r.t_last_token_s - r.t_first_token_s
    return r.tokens_generated / span if span > 0 else None


def compile_level(
    level: int,
    records: Sequence[RequestRecord],
    *,
    label: str | None = None,
    info: dict[str, Any] | None = None,
    prerolls_ms: Sequence[int] = PREROLLS_MS,
) -> LevelResult:
    """Statistics of one level from its records (warmups filtered out here); ``info``: its run.json entry."""
    info = info or {}
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    cancelled = sum(1 for r in measured if r.status is Status.CANCELLED)
    counted = len(measured) - cancelled
    errors = Counter((r.error_class.value if r.error_class else r.status.value) for r in measured if not r.ok)
    window = _window(measured)
    audio_s = sum(r.audio_seconds for r in ok)
    invalid = tuple(
        sum(r.invalid_codes[i] for r in measured if i < len(r.invalid_codes)) for i in range(FRAME_POSITIONS)
    )
    audio_tokens = sum(r.audio_tokens for r in measured)
    client = info.get("client")
    return LevelResult(
        level=level,
        label=level_label(level, label or info.get("label")),
        n=len(measured),
        n_warmup=len(records) - len(measured),
        ok=len(ok),
        cancelled=cancelled,
        success_rate=len(ok) / counted if counted else None,
        errors=dict(sorted(errors.items())),
        ttfa_ms=summarize((r.ttfa_s for r in ok), 1000.0),
        total_ms=summarize((r.total_s for r in ok), 1000.0),
        window_s=window,
        throughput_rps=_per_s(len(ok), window),
        audio_s=audio_s,
        audio_s_per_wall_s=_per_s(audio_s, window),
        rtf=summarize(r.rtf for r in ok),
        tokens_per_s=_per_s(sum(r.tokens_generated for r in ok), window),
        stream_tokens_per_s=summarize(_stream_tps(r) for r in ok),
        audio_tokens=audio_tokens,
        invalid_codes=invalid,
        invalid_code_rate=sum(invalid) / audio_tokens if audio_tokens else None,
        stalls=tuple(stall_stats(ok, p) for p in prerolls_ms),
        ttfa_split=_ttfa_split(ok),
        decode_lag_ms=summarize((c.lag_s for r in ok for c in r.chunks), 1000.0),
        client_bound=bool(info.get("client_bound")) or any(r.client_bound for r in measured),
        client=dict(client) if isinstance(client, dict) else {},
        started_run_s=_float_or_none(info.get("started_s")),
        ended_run_s=_float_or_none(info.get("ended_s")),
    )


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def max_concurrency(
    levels: Sequence[LevelResult], min_success: float = MIN_SUCCESS_FOR_CAPACITY
) -> tuple[int | None, bool]:
    """Highest level with ``min_success`` at it and every lower level; and whether it is the top one tried."""
    best: int | None = None
    ordered = sorted((lv for lv in levels if lv.n - lv.cancelled > 0), key=lambda lv: lv.level)
    for lv in ordered:
        if lv.success_rate is None or lv.success_rate < min_success:
            break
        best = lv.level
    return best, bool(ordered) and best == ordered[-1].level


def _summary(records: Sequence[RequestRecord], levels: Sequence[LevelResult]) -> RunSummary:
    measured = [r for r in records if not r.warmup]
    ok = sum(1 for r in measured if r.ok)
    counted = sum(1 for r in measured if r.status is not Status.CANCELLED)
    errors: Counter[str] = Counter()
    for lv in levels:
        errors.update(lv.errors)
    with_ttfa = [lv for lv in levels if lv.ttfa_ms.mean is not None]
    best = min(with_ttfa, key=lambda lv: lv.ttfa_ms.mean or math.inf, default=None)
    with_tp = [lv for lv in levels if lv.throughput_rps is not None]
    top = max(with_tp, key=lambda lv: lv.throughput_rps or 0.0, default=None)
    cap, cap_open = max_concurrency(levels)
    starts = [r.run_offset_s for r in records]
    ends = [e for r in records if (e := r.end_offset_run_s) is not None]
    duration = max(ends) - min(starts) if starts and ends else None
    return RunSummary(
        requests=len(records),
        warmup=len(records) - len(measured),
        measured=len(measured),
        ok=ok,
        success_rate=ok / counted if counted else None,
        errors=dict(sorted(errors.items())),
        duration_s=duration,
        best_ttfa_mean_ms=best.ttfa_ms.mean if best else None,
        best_ttfa_level=best.level if best else None,
        max_throughput_rps=top.throughput_rps if top else None,
        max_throughput_level=top.level if top else None,
        max_concurrency=cap,
        max_concurrency_open=cap_open,
        client_bound_levels=tuple(lv.level for lv in levels if lv.client_bound),
    )


_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password", "authorization")


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced, so reports never show a key."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            secret = any(w in str(k).lower().replace("-", "_") for w in _SECRET_WORDS) and v not in (None, "")
            # Counters such as "tokens_predicted_total" are numbers, not secrets.
            out[k] = "<redacted>" if secret and isinstance(v, str) else redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _meta(run_dir: Path, run_json: dict[str, Any], records: Sequence[RequestRecord]) -> RunMeta:
    scenario = run_json.get("scenario") if isinstance(run_json.get("scenario"), dict) else {}
    assert isinstance(scenario, dict)
    snac = run_json.get("snac") if isinstance(run_json.get("snac"), dict) else None
    random_weights = snac.get("random_weights") if snac else None
    drivers = sorted({r.driver for r in records})
    modes = sorted({r.mode for r in records})
    protocols = sorted({r.protocol for r in records})
    props = run_json.get("server_props")
    complete = run_json.get("complete")

    def text(key: str) -> str | None:
        value = run_json.get(key)
        return None if value is None else str(value)

    return RunMeta(
        name=str(run_json.get("name") or run_dir.name),
        run_dir=str(run_dir),
        driver=str(run_json.get("driver") or (",".join(drivers) if drivers else "unknown")),
        started_at=text("started_at"),
        ended_at=text("ended_at"),
        complete=complete if isinstance(complete, bool) else None,
        version=text("version"),
        git_sha=text("git_sha"),
        host=text("host"),
        mode=str(scenario.get("mode") or (modes[0] if len(modes) == 1 else ",".join(modes)) or "") or None,
        protocol=str(scenario.get("protocol") or ",".join(protocols)) or None,
        snac_random=random_weights if isinstance(random_weights, bool) else None,
        snac=snac,
        scenario=redact(scenario),
        server_props=redact(props) if isinstance(props, dict) else None,
        doctor=redact(run_json.get("doctor")),
        other=redact({k: v for k, v in run_json.items() if k not in _META_KEYS}),
    )


def _inside(run_dir: Path, rel: str) -> Path | None:
    try:
        path = (run_dir / rel).resolve()
        path.relative_to(run_dir.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


def find_audio(run_dir: Path, records: Sequence[RequestRecord], labels: dict[int, str]) -> tuple[AudioSample, ...]:
    """Kept WAVs with the request each belongs to (see the module docstring for the naming convention)."""
    out: list[AudioSample] = []
    seen: set[Path] = set()
    for r in sorted(records, key=lambda r: (r.level, r.seq)):
        rel = r.extra.get(AUDIO_FILE_KEY)
        path = _inside(run_dir, rel) if isinstance(rel, str) and rel else None
        if path is None:
            path = _inside(run_dir, f"audio/{r.request_id}.wav")
        if path is None or path in seen:
            continue
        seen.add(path)
        rel_path = path.relative_to(run_dir.resolve()).as_posix()
        out.append(
            AudioSample(
                request_id=r.request_id,
                level=r.level,
                label=labels.get(r.level, level_label(r.level, r.level_label)),
                prompt=r.prompt,
                path=str(run_dir / rel_path),  # as the caller named the run, not resolved: no home paths leak
                rel_path=rel_path,
                status=r.status.value,
            )
        )
    audio_dir = run_dir / "audio"
    if audio_dir.is_dir():
        for candidate in sorted(audio_dir.glob("*.wav")):
            path = _inside(run_dir, f"audio/{candidate.name}")
            if path is None or path in seen:
                continue
            rel_path = path.relative_to(run_dir.resolve()).as_posix()
            out.append(AudioSample(None, None, "unmatched", "", str(run_dir / rel_path), rel_path, None))
    return tuple(out)


def prompt_results(records: Sequence[RequestRecord]) -> tuple[PromptResult, ...]:
    """Per-prompt outcome over measured requests, in order of prompt length."""
    by_id: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if not r.warmup:
            by_id[r.prompt_id].append(r)
    out = []
    for prompt_id, recs in by_id.items():
        ok = [r for r in recs if r.ok]
        counted = sum(1 for r in recs if r.status is not Status.CANCELLED)
        ttfa = [r.t_first_pcm_s * 1000.0 for r in ok if r.t_first_pcm_s is not None]
        out.append(
            PromptResult(
                prompt_id=prompt_id,
                prompt=recs[0].prompt,
                chars=recs[0].prompt_chars or len(recs[0].prompt),
                n=len(recs),
                ok=len(ok),
                success_rate=len(ok) / counted if counted else None,
                ttfa_mean_ms=_mean(ttfa),
                audio_s_mean=_mean([r.audio_seconds for r in ok]),
            )
        )
    return tuple(sorted(out, key=lambda p: (p.chars, p.prompt_id)))


def _request_row(r: RequestRecord) -> RequestRow:
    return RequestRow(
        request_id=r.request_id,
        level=r.level,
        worker=r.worker,
        seq=r.seq,
        warmup=r.warmup,
        ok=r.ok,
        status=r.status.value,
        error_class=r.error_class.value if r.error_class else None,
        prompt_id=r.prompt_id,
        start_run_s=r.run_offset_s,
        ttfa_ms=None if r.t_first_pcm_s is None else r.t_first_pcm_s * 1000.0,
        total_ms=None if r.t_end_s is None else r.t_end_s * 1000.0,
        audio_s=r.audio_seconds,
    )


def _warnings(meta: RunMeta, levels: Sequence[LevelResult], records: Sequence[RequestRecord]) -> tuple[str, ...]:
    out: list[str] = []
    if meta.other.get("synthetic"):
        out.append("This run is synthetic (generated for tests and examples): no number in it was measured.")
    if meta.complete is False:
        out.append("The run did not complete (interrupted or aborted): the last level may be partial.")
    if meta.snac_random:
        out.append("SNAC weights were random: the audio is noise. Timings and continuity are real; sound is not.")
    decode = (meta.snac or {}).get("decode") or {}
    if isinstance(decode, dict) and decode.get("mode") == "off":
        out.append(
            "Decoding was off: TTFA is when the first decode window's tokens had arrived and audio seconds are what "
            "the tokens encode, as if SNAC decoding cost nothing on the client."
        )
    bound = [lv.label for lv in levels if lv.client_bound]
    if bound:
        out.append(
            f"Client-bound at {', '.join(bound)}: the client, not the server, was the bottleneck there, so those "
            "numbers understate the server."
        )
    for lv in levels:
        if lv.n == 0:
            out.append(f"{lv.label}: no measured requests (only warmup).")
    if not records:
        out.append("The run has no request records.")
    return tuple(out)


def compile_records(
    records: Sequence[RequestRecord],
    run_json: dict[str, Any] | None = None,
    *,
    run_dir: str | Path = ".",
    server: Iterable[ServerSample] = (),
    audio: Iterable[AudioSample] = (),
    prerolls_ms: Sequence[int] = PREROLLS_MS,
) -> RunResults:
    """Compile already-loaded records (the pure part of `compile_run`)."""
    run_json = run_json or {}
    run_path = Path(run_dir)
    infos: dict[int, dict[str, Any]] = {}
    for entry in run_json.get("levels") or []:
        if isinstance(entry, dict) and isinstance(entry.get("level"), int):
            infos[entry["level"]] = entry
    grouped: dict[int, list[RequestRecord]] = defaultdict(list)
    for r in records:
        grouped[r.level].append(r)
    levels = []
    for level in sorted(set(grouped) | set(infos)):
        recs = grouped.get(level, [])
        record_label = next((r.level_label for r in recs if r.level_label), None)
        levels.append(
            compile_level(
                level,
                recs,
                label=infos.get(level, {}).get("label") or record_label,
                info=infos.get(level),
                prerolls_ms=prerolls_ms,
            )
        )
    meta = _meta(run_path, run_json, records)
    warnings = list(_warnings(meta, levels, records))
    for level, recs in sorted(grouped.items()):
        labels = sorted({r.level_label for r in recs if r.level_label})
        if len(labels) > 1:
            # Open-loop rates that round to the same integer level cannot be told apart afterwards.
            warnings.append(
                f"Level {level} holds several load levels ({', '.join(labels)}); they are reported together."
            )
    return RunResults(
        meta=meta,
        summary=_summary(records, levels),
        levels=tuple(levels),
        requests=tuple(_request_row(r) for r in sorted(records, key=lambda r: (r.run_offset_s, r.seq))),
        prompts=prompt_results(records),
        server=tuple(server),
        audio=tuple(audio),
        prerolls_ms=tuple(prerolls_ms),
        warnings=tuple(warnings),
    )


def load_run_json(run_dir: Path) -> dict[str, Any]:
    """``run.json`` as a dict ({} when it is missing or unreadable: a crashed run may not have written it)."""
    path = run_dir / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def compile_run(run_dir: str | Path, *, prerolls_ms: Sequence[int] = PREROLLS_MS) -> RunResults:
    """Read a run directory and compile it; `ConfigError` when it has no ``requests.jsonl``."""
    path = Path(run_dir)
    requests = path / "requests.jsonl"
    if not requests.is_file():
        raise ConfigError("run_dir", f"{path} has no requests.jsonl (is it an orpheus-bench run directory?)")
    records = read_records(str(requests))
    run_json = load_run_json(path)
    result = compile_records(
        records,
        run_json,
        run_dir=path,
        server=read_server_samples(path / "server.jsonl"),
        prerolls_ms=prerolls_ms,
    )
    labels = {lv.level: lv.label for lv in result.levels}
    return dataclasses.replace(result, audio=find_audio(path, records, labels))


__all__ = [
    "AUDIO_FILE_KEY",
    "compile_level",
    "compile_records",
    "compile_run",
    "find_audio",
    "level_label",
    "load_run_json",
    "max_concurrency",
]
