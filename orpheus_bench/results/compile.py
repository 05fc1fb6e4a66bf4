"""Compiling a run directory into `RunResults`: each level's statistics asked of the measures layer, once.

Inputs (see docs/ARCHITECTURE.md): ``requests.jsonl`` (required), ``run.json``, ``server.jsonl`` and
``audio/*.wav`` (optional). Every number is the ``B = 1`` case of `orpheus_bench.measures`: the table of a
level is built once (`measures.table.level_tables`) and each figure is a registered metric's statistic on it,
the same statistic the gate and the capacity search bootstrap. Rules applied throughout:

- Only measured requests count: warmups (``warmup=True``) are excluded from every statistic.
- Success = a complete utterance (`RequestRecord.complete`; under the scenario knob ``success: audio``, any
  request that delivered audio). Success rate = successes / (measured - cancelled): a request cancelled because
  the harness shut down says nothing about the server. Cut-short requests are counted beside it.
- Latency summaries (TTFA, total, RTF, first window) describe the requests that delivered audio, complete or
  cut short; errors are counted by class.
- Throughput: see `orpheus_bench.measures.table` (steady-state Little's law in a closed loop; the basis is in
  each level's ``throughput_basis``).

Why one module over 400 lines: it is the one place records become a run's results, warnings and first lines
included, so a reader sees every rule applied to a figure before any output shows it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures import metrics
from orpheus_bench.measures.bootstrap import Interval
from orpheus_bench.measures.playback import PREROLLS_MS, stall_stats
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.stats import summarize
from orpheus_bench.measures.table import AUDIO, SUCCESS_AUDIO, LevelTable, level_tables, success_policy
from orpheus_bench.records import FRAME_POSITIONS, RequestRecord, read_records
from orpheus_bench.results.meta import (
    AUDIO_FILE_KEY,
    find_audio,
    level_label,
    load_run_json,
    redact,
    run_meta,
)
from orpheus_bench.results.model import (
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

# The per-level statistics shown with a 95% interval, keyed by the query's words (as a gate rule names them).
HEADLINE_PREROLL_MS = 250
HEADLINE_QUERIES: tuple[Query, ...] = (
    Query("ttfa_ms", "p50"),
    Query("ttfa_ms", "p95"),
    Query("total_ms", "p50"),
    Query("throughput_rps"),
    Query("success_rate"),
    Query("cut_short_rate"),
    Query("stall_rate", preroll_ms=HEADLINE_PREROLL_MS),
)


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


def _stream_tps(r: RequestRecord) -> float | None:
    if r.t_first_token_s is None or r.t_last_token_s is None:
        return None
    span = r.t_last_token_s - r.t_first_token_s
    return r.tokens_generated / span if span > 0 else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def headline_intervals(table: LevelTable, *, n_resamples: int, seed: int = 0) -> dict[str, Interval]:
    """The headline statistics of a level with their intervals, over requests with audio (as the tables)."""
    if n_resamples <= 0 or table.n == 0:
        return {}
    return {
        q.describe(): metrics.interval(table, metrics.descriptive(q), n_resamples=n_resamples, seed=seed)
        for q in HEADLINE_QUERIES
    }


def level_result(
    table: LevelTable, *, prerolls_ms: Sequence[int] = PREROLLS_MS, n_resamples: int = 0, seed: int = 0
) -> LevelResult:
    """The statistics of one level: its table's metrics with ``B = 1`` (plus intervals when resampling)."""
    measured = table.measured
    with_audio = [r for r in table.rows if r.ok]
    successes = int(table.success.sum())
    cut = [r for r in table.rows if r.cut_short]
    errors = Counter((r.error_class.value if r.error_class else r.status.value) for r in measured if not r.ok)
    # Counted requests (cancelled ones dropped), as the registry's invalid_code_rate counts them.
    audio_tokens = sum(r.audio_tokens for r in table.rows)
    invalid = tuple(
        sum(r.invalid_codes[i] for r in table.rows if i < len(r.invalid_codes)) for i in range(FRAME_POSITIONS)
    )
    info = table.info
    client = info.get("client")
    counted = table.n
    return LevelResult(
        level=table.level,
        label=level_label(table.level, table.label),
        kind=table.kind,
        load=table.load,
        n=len(measured),
        n_warmup=table.n_warmup,
        ok=successes,
        with_audio=len(with_audio),
        cut_short=len(cut),
        cut_limits=dict(sorted(Counter(r.cut_limit or "" for r in cut).items())),
        cancelled=table.cancelled,
        success_rate=metrics.estimate(table, Query("success_rate")) if counted else None,
        cut_short_rate=metrics.estimate(table, Query("cut_short_rate")) if counted else None,
        errors=dict(sorted(errors.items())),
        ttfa_ms=summarize(table.values("ttfa_ms", AUDIO)),
        total_ms=summarize(table.values("total_ms", AUDIO)),
        first_window_ms=summarize(table.values("first_window_ms", AUDIO)),
        window_s=table.window_s,
        throughput_rps=metrics.estimate(table, Query("throughput_rps")) if counted else None,
        throughput_basis=table.throughput_basis() if counted else "no measured request",
        throughput_requests=metrics.count(table, Query("throughput_rps")) if counted else 0,
        audio_s=sum(r.audio_seconds for r in with_audio),
        audio_s_mean=_mean([r.audio_seconds for r in with_audio]),
        audio_tokens_mean=_mean([float(r.audio_tokens) for r in with_audio]),
        audio_s_per_wall_s=metrics.estimate(table, Query("audio_per_wall_s")) if counted else None,
        rtf=summarize(table.values("rtf", AUDIO)),
        tokens_per_s=metrics.estimate(table, Query("tokens_per_s")) if counted else None,
        stream_tokens_per_s=summarize([_stream_tps(r) for r in with_audio]),
        audio_tokens=audio_tokens,
        invalid_codes=invalid,
        invalid_code_rate=metrics.estimate(table, Query("invalid_code_rate")) if counted else None,
        stalls=tuple(stall_stats(with_audio, p) for p in prerolls_ms),
        ttfa_split=_ttfa_split(with_audio),
        decode_lag_ms=summarize([c.lag_s for r in with_audio for c in r.chunks], 1000.0),
        client_bound=table.client_bound,
        client_bound_reasons=table.client_bound_reasons,
        client=dict(client) if isinstance(client, dict) else {},
        started_run_s=_float_or_none(info.get("started_s")),
        ended_run_s=_float_or_none(info.get("ended_s")),
        intervals=headline_intervals(table, n_resamples=n_resamples, seed=seed),
    )


def compile_level(
    level: int,
    records: Sequence[RequestRecord],
    *,
    label: str | None = None,
    info: dict[str, Any] | None = None,
    prerolls_ms: Sequence[int] = PREROLLS_MS,
) -> LevelResult:
    """Statistics of one level from its records (warmups filtered out here); ``info``: its run.json entry."""
    run_json: dict[str, Any] = {
        "levels": [{**(info or {}), "level": level, "label": label or (info or {}).get("label")}]
    }
    (table,) = [t for t in level_tables(records, run_json) if t.level == level]
    return level_result(table, prerolls_ms=prerolls_ms)


def _summary(
    records: Sequence[RequestRecord], tables: Sequence[LevelTable], levels: Sequence[LevelResult]
) -> RunSummary:
    measured = [r for r in records if not r.warmup]
    ok = sum(lv.ok for lv in levels)
    counted = sum(t.n for t in tables)
    cut = sum(lv.cut_short for lv in levels)
    errors: Counter[str] = Counter()
    for lv in levels:
        errors.update(lv.errors)
    with_ttfa = [lv for lv in levels if lv.ttfa_ms.mean is not None]
    best = min(with_ttfa, key=lambda lv: lv.ttfa_ms.mean or float("inf"), default=None)
    with_tp = [lv for lv in levels if lv.throughput_rps is not None]
    top = max(with_tp, key=lambda lv: lv.throughput_rps or 0.0, default=None)
    cap, cap_open = metrics.max_concurrency({t.level: t for t in tables})
    starts = [r.run_offset_s for r in records]
    ends = [e for r in records if (e := r.end_offset_run_s) is not None]
    return RunSummary(
        requests=len(records),
        warmup=len(records) - len(measured),
        measured=len(measured),
        ok=ok,
        success_rate=ok / counted if counted else None,
        cut_short=cut,
        cut_short_rate=cut / counted if counted else None,
        errors=dict(sorted(errors.items())),
        duration_s=max(ends) - min(starts) if starts and ends else None,
        best_ttfa_mean_ms=best.ttfa_ms.mean if best else None,
        best_ttfa_level=best.level if best else None,
        max_throughput_rps=top.throughput_rps if top else None,
        max_throughput_level=top.level if top else None,
        max_concurrency=cap,
        max_concurrency_open=cap_open,
        client_bound_levels=tuple(lv.level for lv in levels if lv.client_bound),
    )


def prompt_results(records: Sequence[RequestRecord], policy: str) -> tuple[PromptResult, ...]:
    """Per-prompt outcome over measured requests, in order of prompt length."""
    by_id: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if not r.warmup:
            by_id[r.prompt_id].append(r)
    out = []
    for prompt_id, recs in by_id.items():
        tables = level_tables(recs, {"scenario": {"success": policy}})
        counted = sum(t.n for t in tables)
        ok = int(sum(t.success.sum() for t in tables))
        with_audio = [r for r in recs if r.ok]
        ttfa = [r.t_first_pcm_s * 1000.0 for r in with_audio if r.t_first_pcm_s is not None]
        out.append(
            PromptResult(
                prompt_id=prompt_id,
                prompt=recs[0].prompt,
                chars=recs[0].prompt_chars or len(recs[0].prompt),
                n=len(recs),
                ok=ok,
                success_rate=ok / counted if counted else None,
                ttfa_mean_ms=_mean(ttfa),
                audio_s_mean=_mean([r.audio_seconds for r in with_audio]),
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
        outcome=r.outcome,
    )


def doctor_findings(meta: RunMeta) -> list[str]:
    """The doctor's non-ok checks stored in run.json, one line each (what it found before the first request)."""
    doctor = meta.doctor
    checks = doctor.get("checks") if isinstance(doctor, dict) else None
    out = []
    for check in checks or []:
        if isinstance(check, dict) and check.get("level") not in (None, "ok"):
            out.append(f"doctor {check.get('level')}: {check.get('name')}: {check.get('message')}")
    return out


def slot_arithmetic(meta: RunMeta, levels: Sequence[LevelResult]) -> str | None:
    """When the slot's context cut utterances short: the per-slot arithmetic of the server that did it."""
    cut = sum(lv.cut_limits.get("slot_context", 0) for lv in levels)
    props = meta.server_props or {}
    settings = props.get("default_generation_settings")
    per_slot = settings.get("n_ctx") if isinstance(settings, dict) else None
    slots = props.get("total_slots")
    if not cut or not isinstance(per_slot, int) or not isinstance(slots, int):
        return None
    launch = meta.other.get("server_launch")
    argv = launch.get("argv") if isinstance(launch, dict) else None
    ctx = None
    if isinstance(argv, list) and "-c" in argv and argv.index("-c") + 1 < len(argv):
        ctx = argv[argv.index("-c") + 1]
    split = f"-c {ctx} split across {slots} slots" if ctx else f"the context split across {slots} slots"
    unpadded = ""
    if ctx and str(ctx).isdigit() and int(ctx) // slots != per_slot:
        unpadded = f": {int(ctx) // slots} tokens, which this build pads up to a multiple of 256"
    max_tokens = (meta.scenario.get("sampling") or {}).get("max_tokens") if isinstance(meta.scenario, dict) else None
    asked = f" while each request asked for up to {max_tokens} tokens" if max_tokens else ""
    return (
        f"Each slot held {per_slot} tokens ({split}{unpadded}): prompt plus speech must fit in it{asked}, so "
        f"{cut} utterance(s) ended when their slot was full. Raise -c, lower -np, or use a unified KV cache."
    )


def _warnings(meta: RunMeta, levels: Sequence[LevelResult], records: Sequence[RequestRecord], policy: str) -> list[str]:
    # What a reader must know before any number, most important first: the doctor's findings, cut-short
    # utterances and why, the client-bound levels, random SNAC weights.
    out: list[str] = doctor_findings(meta)
    if meta.other.get("synthetic"):
        out.append("This run is synthetic (generated for tests and examples): no number in it was measured.")
    if meta.complete is False:
        out.append("The run did not complete (interrupted or aborted): the last level may be partial.")
    if policy == SUCCESS_AUDIO:
        out.append(
            "Success counts every request that delivered audio (scenario success: audio): utterances cut short by a "
            "length limit count as successes in this run."
        )
    cut = [lv for lv in levels if lv.cut_short]
    if cut:
        limits: Counter[str] = Counter()
        for lv in cut:
            limits.update(lv.cut_limits)
        total = sum(lv.cut_short for lv in cut)
        counted = sum(lv.n - lv.cancelled for lv in levels)
        why = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(limits.items()))
        counts_as = "successes (success: audio)" if policy == SUCCESS_AUDIO else "failures"
        out.append(
            f"{total} of {counted} measured requests were cut short by a length limit ({why}): their utterances "
            f"did not finish, so they count as {counts_as}, and their audio is shorter than a complete one."
        )
        arithmetic = slot_arithmetic(meta, levels)
        if arithmetic:
            out.append(arithmetic)
    bound = [lv.label for lv in levels if lv.client_bound]
    if bound:
        out.append(
            f"Client-bound at {', '.join(bound)}: the client, not the server, was the bottleneck there, so those "
            "numbers understate the server."
        )
    if meta.snac_random:
        out.append("SNAC weights were random: the audio is noise. Timings and continuity are real; sound is not.")
    decode = (meta.snac or {}).get("decode") or {}
    if isinstance(decode, dict) and decode.get("mode") == "off":
        out.append(
            "Decoding was off: TTFA is when the first decode window's tokens had arrived and audio seconds are what "
            "the tokens encode, as if SNAC decoding cost nothing on the client."
        )
    for lv in levels:
        if lv.n == 0:
            out.append(f"{lv.label}: no measured requests (only warmup).")
    if not records:
        out.append("The run has no request records.")
    return out


def compile_records(
    records: Sequence[RequestRecord],
    run_json: dict[str, Any] | None = None,
    *,
    run_dir: str | Path = ".",
    server: Iterable[ServerSample] = (),
    audio: Iterable[AudioSample] = (),
    prerolls_ms: Sequence[int] = PREROLLS_MS,
    n_resamples: int = 0,
    seed: int = 0,
) -> RunResults:
    """Compile already-loaded records (the pure part of `compile_run`); ``n_resamples > 0`` adds intervals."""
    run_json = run_json or {}
    policy = success_policy(run_json)
    tables = level_tables(records, run_json)
    levels = [level_result(t, prerolls_ms=prerolls_ms, n_resamples=n_resamples, seed=seed) for t in tables]
    meta = run_meta(Path(run_dir), run_json, records)
    warnings = _warnings(meta, levels, records, policy)
    for t in tables:
        labels = sorted({r.level_label for r in t.records if r.level_label})
        if len(labels) > 1:
            # Open-loop rates that round to the same integer level cannot be told apart afterwards.
            warnings.append(
                f"Level {t.level} holds several load levels ({', '.join(labels)}); they are reported together."
            )
    return RunResults(
        meta=meta,
        summary=_summary(records, tables, levels),
        levels=tuple(levels),
        requests=tuple(_request_row(r) for r in sorted(records, key=lambda r: (r.run_offset_s, r.seq))),
        prompts=prompt_results(records, policy),
        server=tuple(server),
        audio=tuple(audio),
        prerolls_ms=tuple(prerolls_ms),
        warnings=tuple(warnings),
        success_policy=policy,
        tables=tuple(tables),
    )


def compile_run(
    run_dir: str | Path, *, prerolls_ms: Sequence[int] = PREROLLS_MS, n_resamples: int = 0, seed: int = 0
) -> RunResults:
    """Read a run directory and compile it; `ConfigError` when it has no ``requests.jsonl``."""
    path = Path(run_dir)
    requests = path / "requests.jsonl"
    if not requests.is_file():
        raise ConfigError("run_dir", f"{path} has no requests.jsonl (is it an orpheus-bench run directory?)")
    records = read_records(str(requests))
    result = compile_records(
        records,
        load_run_json(path),
        run_dir=path,
        server=read_server_samples(path / "server.jsonl"),
        prerolls_ms=prerolls_ms,
        n_resamples=n_resamples,
        seed=seed,
    )
    labels = {lv.level: lv.label for lv in result.levels}
    return dataclasses.replace(result, audio=find_audio(path, records, labels))


__all__ = [
    "AUDIO_FILE_KEY",
    "HEADLINE_QUERIES",
    "compile_level",
    "compile_records",
    "compile_run",
    "find_audio",
    "level_label",
    "level_result",
    "load_run_json",
    "redact",
]
