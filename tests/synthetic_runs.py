"""Synthetic run directories with known shape: for tests, and for trying reports without any server.

`synthetic_records` plays a closed loop in arithmetic (no clocks, no I/O): at each level, ``level`` workers
send requests back to back; TTFA grows linearly with the level, generation produces 85 ms chunks at a chosen
real-time factor, and every N-th request can fail. `write_run_dir` lays the records out like a real run does
(``run.json``, ``requests.jsonl``, ``server.jsonl``, ``audio/*.wav``). Nothing here is a measurement; a report
of a synthetic run says so through its run.json (``"synthetic": true``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orpheus_bench.audio.wav import write_wav
from orpheus_bench.records import (
    FRAME_POSITIONS,
    SAMPLE_RATE_HZ,
    AudioChunk,
    ErrorClass,
    RequestRecord,
    ServerTimings,
)

CHUNK_SAMPLES = 2048


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """Knobs of a synthetic run (all times in seconds)."""

    levels: tuple[int, ...] = (1, 2, 4)
    requests_per_level: int = 8
    mode: str = "stream"  # or "blocking"
    driver: str = "aiohttp"
    ttfa_base_s: float = 0.09
    ttfa_per_worker_s: float = 0.06
    prefill_s: float = 0.02
    audio_s: float = 1.0
    generation_rtf: float = 0.5  # generation wall seconds per audio second (above 1: stalls)
    jitter: float = 0.1  # relative spread of TTFA and generation time
    fail_every: int = 0  # every N-th measured request fails with an HTTP 500 (0: none)
    invalid_every: int = 0  # every N-th request carries one invalid code in slot 3
    prompt: str = "Hello there, this is a synthetic prompt."
    seed: int = 0


def _chunks(t_first: float, t_end: float, n: int, mode: str) -> list[AudioChunk]:
    if mode == "blocking":
        return [AudioChunk(t_ready_s=t_end, samples=n * CHUNK_SAMPLES, t_tokens_s=t_end - 0.01, decode_s=0.01)]
    step = (t_end - t_first) / max(n - 1, 1)
    out = []
    for i in range(n):
        ready = t_first + i * step
        out.append(AudioChunk(t_ready_s=ready, samples=CHUNK_SAMPLES, t_tokens_s=ready - 0.012, decode_s=0.01))
    return out


def synthetic_records(spec: SyntheticSpec = SyntheticSpec()) -> list[RequestRecord]:
    """Records of a closed-loop sweep over ``spec.levels`` (a warmup of ``level`` requests per level)."""
    rng = np.random.default_rng(spec.seed)
    records: list[RequestRecord] = []
    clock = 0.0
    n_chunks = max(1, round(spec.audio_s * SAMPLE_RATE_HZ / CHUNK_SAMPLES))
    audio_len = n_chunks * CHUNK_SAMPLES / SAMPLE_RATE_HZ
    for level in spec.levels:
        free_at = [clock] * level
        total = level + spec.requests_per_level
        for seq in range(total):
            worker = min(range(level), key=lambda w: free_at[w])
            start = free_at[worker]
            warmup = seq < level
            ttfa = (spec.ttfa_base_s + spec.ttfa_per_worker_s * (level - 1)) * (1 + spec.jitter * rng.random())
            gen = audio_len * spec.generation_rtf * (1 + spec.jitter * rng.random())
            measured_index = seq - level
            failed = bool(spec.fail_every) and not warmup and measured_index % spec.fail_every == spec.fail_every - 1
            rec = RequestRecord(
                request_id=f"L{level}-{seq:04d}",
                level=level,
                worker=worker,
                seq=seq,
                warmup=warmup,
                prompt_id=f"p{seq % 4}",
                prompt=spec.prompt,
                voice="tara",
                mode=spec.mode,
                protocol="native",
                driver=spec.driver,
                wall_start=1_700_000_000.0 + start,
                run_offset_s=start,
                level_label=f"c={level}",
                prompt_chars=len(spec.prompt),
            )
            if failed:
                rec.t_headers_s = rec.t_end_s = 0.05
                rec.http_status = 500
                rec.fail(ErrorClass.HTTP, "HTTP 500: synthetic failure")
            else:
                if spec.mode == "blocking":
                    t_end = ttfa + gen
                    rec.t_first_token_s = rec.t_first_byte_s = t_end - 0.02
                    rec.t_first_pcm_s = t_end
                else:
                    rec.t_first_byte_s = rec.t_first_token_s = spec.prefill_s + (ttfa - spec.prefill_s) * 0.4
                    rec.t_first_audio_token_s = rec.t_first_token_s + 0.001
                    rec.t_first_window_s = ttfa - 0.012
                    rec.t_first_pcm_s = ttfa
                    t_end = ttfa + gen
                rec.t_headers_s = 0.002
                rec.t_last_token_s = t_end - 0.005
                rec.t_end_s = t_end
                rec.chunks = _chunks(ttfa, t_end, n_chunks, spec.mode)
                rec.pcm_samples = sum(c.samples for c in rec.chunks)
                rec.frames = n_chunks + 3
                rec.audio_tokens = rec.frames * FRAME_POSITIONS
                rec.tokens_generated = rec.audio_tokens + 1
                rec.end_of_speech = True
                rec.stop_reason = "word"
                rec.http_status = 200
                rec.timings = ServerTimings(
                    prompt_n=24,
                    prompt_ms=spec.prefill_s * 1000.0,
                    predicted_n=rec.tokens_generated,
                    predicted_ms=gen * 1000.0,
                )
                if spec.invalid_every and seq % spec.invalid_every == 0:
                    rec.invalid_codes = [0, 0, 0, 1, 0, 0, 0]
            free_at[worker] = start + (rec.t_end_s or 0.0) + 0.001
            records.append(rec)
        clock = max(free_at) + 0.5
    return records


def write_run_dir(
    run_dir: str | Path,
    records: Iterable[RequestRecord],
    run_json: dict[str, Any] | None = None,
    *,
    server_samples: Sequence[dict[str, Any]] = (),
) -> Path:
    """Lay out a run directory like a real run writes it."""
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    with (path / "requests.jsonl").open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.to_json() + "\n")
    if run_json is not None:
        (path / "run.json").write_text(json.dumps(run_json, indent=2), encoding="utf-8")
    if server_samples:
        with (path / "server.jsonl").open("w", encoding="utf-8") as fh:
            for s in server_samples:
                fh.write(json.dumps(s) + "\n")
    return path


def synthetic_run(
    run_dir: str | Path,
    spec: SyntheticSpec = SyntheticSpec(),
    *,
    name: str | None = None,
    keep_audio: int = 1,
    snac_random: bool = True,
) -> Path:
    """A whole synthetic run directory: records, run.json, server timeline, ``keep_audio`` WAVs per level."""
    path = Path(run_dir)
    records = synthetic_records(spec)
    rng = np.random.default_rng(spec.seed + 1)
    kept: dict[int, int] = {}
    for r in records:
        if r.warmup or not r.ok or kept.get(r.level, 0) >= keep_audio:
            continue
        kept[r.level] = kept.get(r.level, 0) + 1
        rel = f"audio/{r.request_id}.wav"
        t = np.arange(r.pcm_samples) / SAMPLE_RATE_HZ
        tone = 0.3 * np.sin(2 * np.pi * 220.0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t))
        write_wav(path / rel, tone + 0.02 * rng.standard_normal(t.size))
        r.extra["audio_file"] = rel
    levels = []
    for level in spec.levels:
        lv = [r for r in records if r.level == level]
        start = min(r.run_offset_s for r in lv)
        end = max(r.end_offset_run_s or r.run_offset_s for r in lv)
        levels.append(
            {
                "level": level,
                "label": f"c={level}",
                "started_s": start,
                "ended_s": end,
                "client_bound": False,
                "client": {"loop_lag_p99_ms": 1.0, "decode_queue_p99": 0},
            }
        )
    end_all = max(r.end_offset_run_s or 0.0 for r in records)
    samples = []
    predicted = 0.0
    for i in range(int(end_all / 0.5) + 1):
        at = i * 0.5
        busy = sum(1 for r in records if r.run_offset_s <= at <= (r.end_offset_run_s or 0.0))
        predicted += 0.5 * 80.0 * busy  # a counter, as llama-server's tokens_predicted_total
        samples.append(
            {
                "t_s": at,
                "wall": 1_700_000_000.0 + at,
                "requests_processing": min(busy, 4),
                "requests_deferred": max(0, busy - 4),
                "tokens_predicted_total": int(predicted),
                "busy_slots": min(busy, 4),
            }
        )
    run_json = {
        "name": name or path.name,
        "driver": spec.driver,
        "synthetic": True,
        "started_at": "2025-01-01T00:00:00+00:00",
        "ended_at": "2025-01-01T00:01:00+00:00",
        "complete": True,
        "version": "0.1.0",
        "git_sha": None,
        "host": "synthetic",
        "scenario": {
            "mode": spec.mode,
            "protocol": "native",
            "sampling": {"temperature": 0.3, "top_k": 30, "max_tokens": 512, "repeat_penalty": 1.1},
            "decode": {"mode": "reference", "window_frames": 4},
            "concurrency": list(spec.levels),
        },
        "server_props": {
            "total_slots": 4,
            "model_path": "synthetic.gguf",
            "default_generation_settings": {"n_ctx": 512},
        },
        "doctor": None,
        "snac": {
            "spec": "random",
            "device": "cpu",
            "random_weights": snac_random,
            "description": "random-weight SNAC 24 kHz" if snac_random else "hubertsiuzdak/snac_24khz",
        },
        "levels": levels,
    }
    return write_run_dir(path, records, run_json, server_samples=samples)
