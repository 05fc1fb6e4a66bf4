"""Crafted closed-loop levels and run directories (records with chosen timings, a run.json) for the gate and
measures tests; the `kit` fixtures hand a `Kit` to tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orpheus_bench.records import AudioChunk, ErrorClass, RequestRecord, Status

SAMPLES_PER_CHUNK = 2048  # 85 ms of 24 kHz audio


def record(
    level: int,
    seq: int,
    ttfa_s: float | None,
    total_s: float | None = None,
    *,
    ok: bool = True,
    warmup: bool = False,
    start_s: float | None = None,
    chunk_gap_s: float | None = None,
    chunks: int = 4,
    invalid: int = 0,
    audio_tokens: int = 196,
    cancelled: bool = False,
    client_bound: bool = False,
) -> RequestRecord:
    """One request; chunks follow TTFA every ``chunk_gap_s`` (default: exactly real time, no stall)."""
    total = total_s if total_s is not None else (None if ttfa_s is None else ttfa_s + 0.3)
    gap = SAMPLES_PER_CHUNK / 24_000 if chunk_gap_s is None else chunk_gap_s
    chunk_list = []
    if ok and ttfa_s is not None:
        chunk_list = [
            AudioChunk(
                t_ready_s=ttfa_s + i * gap,
                samples=SAMPLES_PER_CHUNK,
                t_tokens_s=ttfa_s + i * gap,
                queue_s=0.5 if client_bound else 0.0,  # waited on the client's decode queue: client-bound
                window=i,
            )
            for i in range(chunks)
        ]
    rec = RequestRecord(
        request_id=f"{level}-{seq}",
        level=level,
        worker=seq % max(level, 1),
        seq=seq,
        warmup=warmup,
        prompt_id="p",
        prompt="hello",
        voice="tara",
        mode="stream",
        protocol="native",
        driver="aiohttp",
        wall_start=0.0,
        run_offset_s=seq * 0.5 if start_s is None else start_s,
        level_label=f"c={level}",
        t_first_token_s=None if ttfa_s is None else ttfa_s * 0.5,
        t_first_pcm_s=ttfa_s if ok else None,
        t_end_s=total,
        tokens_generated=audio_tokens,
        audio_tokens=audio_tokens,
        invalid_codes=[invalid, 0, 0, 0, 0, 0, 0],
        pcm_samples=SAMPLES_PER_CHUNK * len(chunk_list),
        chunks=chunk_list,
        stop_reason="word",  # a complete utterance: the stop word (end of speech) ended it
    )
    if cancelled:
        rec.fail(ErrorClass.CANCELLED, "cancelled", Status.CANCELLED)
    elif not ok:
        rec.fail(ErrorClass.HTTP, "503")
    return rec


def level_records(
    level: int, ttfas_s: Sequence[float], *, warmup: int = 0, offset: int = 0, **kw: Any
) -> list[RequestRecord]:
    """Records of one closed-loop level: ``warmup`` slow warmups first, then one measured request per TTFA,
    each of the ``level`` workers sending its next request the moment its last one ended."""
    free = [0.0] * max(1, level)
    out: list[RequestRecord] = []
    specs = [(5.0, {"warmup": True})] * warmup + [(t, kw) for t in ttfas_s]
    for i, (ttfa, extra) in enumerate(specs):
        worker = min(range(len(free)), key=lambda w: free[w])
        rec = record(level, offset + i, ttfa, start_s=free[worker], **extra)
        rec.worker = worker
        end = rec.end_offset_run_s
        free[worker] = rec.run_offset_s if end is None else end
        out.append(rec)
    return out


def write_run(
    path: Path,
    records: Sequence[RequestRecord],
    *,
    complete: bool | None = True,
    levels: Sequence[dict[str, Any]] | None = None,
    run_json: bool = True,
) -> Path:
    """A run directory with requests.jsonl and (unless ``run_json=False``) run.json."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "requests.jsonl").write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    if run_json:
        if levels is None:
            seen = sorted({r.level for r in records})
            levels = [
                {"level": lv, "label": f"c={lv}", "client_bound": False, "client_bound_reasons": []} for lv in seen
            ]
        meta: dict[str, Any] = {"name": path.name, "levels": list(levels)}
        if complete is not None:
            meta["complete"] = complete
        (path / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


def spread(center_s: float, n: int = 40, width: float = 0.1) -> list[float]:
    """``n`` TTFAs evenly spread ±width/2 (relative) around ``center_s``: deterministic, mildly noisy."""
    return [center_s * (1.0 - width / 2 + width * i / (n - 1)) for i in range(n)]


class Kit:
    """The crafting helpers, handed to tests as one fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.record = record
        self.level_records = level_records
        self.spread = spread

    def run(self, name: str, records: Sequence[RequestRecord], **kw: Any) -> Path:
        """A run directory under the test's tmp_path."""
        return write_run(self.root / name, records, **kw)
