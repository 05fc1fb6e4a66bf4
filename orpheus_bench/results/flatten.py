"""Flat per-request rows for ``orpheus-bench export``: one row per record, raw fields plus derived columns.

Derived columns (computed with the same definitions as the reports): ``outcome`` (complete, cut_short or the
error class), ``complete``, ``cut_short``, ``cut_limit``, ``client_bound``, ``ttfa_ms``, ``total_ms``,
``audio_seconds``, ``rtf`` (wall s per audio s, below 1 = faster than real time), ``end_run_s``, the TTFA split
``queue_ms`` (derived) / ``prefill_ms`` (server) / ``generation_to_window_ms`` / ``first_decode_ms`` (client),
``send_delay_s``, ``invalid_code_count`` and ``invalid_slot_0..6``, ``n_chunks``, ``decode_lag_p50_ms`` /
``decode_lag_max_ms``, and per pre-roll ``stalls_<p>ms`` / ``stall_s_<p>ms``. Server timings become
``timings_<name>`` columns; the chunk list and ``extra`` are kept as JSON text so CSV can hold them too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

from orpheus_bench.measures.playback import PREROLLS_MS, record_playback
from orpheus_bench.measures.stats import percentile
from orpheus_bench.records import FRAME_POSITIONS, RequestRecord, ServerTimings

_NESTED = {"chunks", "invalid_codes", "timings", "extra"}
_TIMING_FIELDS = [f.name for f in dataclasses.fields(ServerTimings)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def flatten_record(
    record: RequestRecord, *, run_name: str = "", prerolls_ms: Sequence[int] = PREROLLS_MS
) -> dict[str, Any]:
    """One flat row (JSON-compatible scalars only) for one record."""
    row: dict[str, Any] = {"run": run_name}
    for f in dataclasses.fields(record):
        if f.name in _NESTED:
            continue
        value = getattr(record, f.name)
        row[f.name] = value.value if hasattr(value, "value") else value
    row["outcome"] = record.outcome
    row["complete"] = record.complete
    row["cut_short"] = record.cut_short
    row["cut_limit"] = record.cut_limit
    row["client_bound"] = record.client_bound
    row["ttfa_ms"] = _ms(record.ttfa_s)
    row["total_ms"] = _ms(record.total_s)
    row["audio_seconds"] = record.audio_seconds
    row["rtf"] = record.rtf
    row["end_run_s"] = record.end_offset_run_s
    row["send_delay_s"] = record.send_delay_s
    # TTFA split (see RequestRecord): queue is derived, prefill server-measured, the rest client-measured.
    row["queue_ms"] = _ms(record.queue_s)
    row["prefill_ms"] = _ms(record.prefill_s)
    row["generation_to_window_ms"] = _ms(record.generation_to_window_s)
    row["first_decode_ms"] = _ms(record.first_decode_s)
    row["invalid_code_count"] = record.invalid_code_count
    for i in range(FRAME_POSITIONS):
        row[f"invalid_slot_{i}"] = record.invalid_codes[i] if i < len(record.invalid_codes) else 0
    for name in _TIMING_FIELDS:
        row[f"timings_{name}"] = getattr(record.timings, name) if record.timings else None
    lags = [c.lag_s * 1000.0 for c in record.chunks]
    row["n_chunks"] = len(record.chunks)
    row["decode_lag_p50_ms"] = percentile(lags, 50)
    row["decode_lag_max_ms"] = max(lags) if lags else None
    for p in prerolls_ms:
        play = record_playback(record, p / 1000.0)
        row[f"stalls_{p}ms"] = None if play is None else play.stalls
        row[f"stall_s_{p}ms"] = None if play is None else play.stall_s
    row["chunks_json"] = json.dumps([dataclasses.asdict(c) for c in record.chunks], separators=(",", ":"))
    row["extra_json"] = json.dumps(record.extra, separators=(",", ":"), default=str)
    return row


def flatten_records(records: Iterable[RequestRecord], *, run_name: str = "") -> list[dict[str, Any]]:
    """Flat rows for every record, in file order."""
    return [flatten_record(r, run_name=run_name) for r in records]
