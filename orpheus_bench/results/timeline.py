"""Reading ``server.jsonl`` (the server-side samples taken during a run) into `ServerSample`s.

Each line is one JSON object with ``t_s`` (run-clock seconds) and whatever the scraper took from /metrics and
/slots. Keys are matched loosely so scrapers may nest them (``{"metrics": {...}}``) or keep the Prometheus
prefix (``llamacpp:requests_deferred``); a key is normalised to lower case without the ``llamacpp:`` prefix.

- busy slots: ``busy_slots`` / ``slots_busy`` / ``n_busy_slots``, else the number of entries of a ``slots``
  list with ``is_processing`` true;
- requests processing / deferred: ``requests_processing`` / ``requests_deferred`` (llama-server's gauges);
- tokens per second: the rate of the counter ``tokens_predicted_total`` between samples (aggregate generation
  speed of the server), else ``tokens_per_s``, else llama-server's ``predicted_tokens_seconds`` gauge.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orpheus_bench.results.model import ServerSample

_BUSY = ("busy_slots", "slots_busy", "n_busy_slots", "slots_processing")
_PROCESSING = ("requests_processing",)
_DEFERRED = ("requests_deferred",)
_TPS_COUNTER = ("tokens_predicted_total", "n_tokens_predicted_total")
_TPS_DIRECT = ("tokens_per_s", "predicted_tokens_per_s", "predicted_tokens_seconds")


def _norm(key: str) -> str:
    key = key.lower()
    return key.split(":", 1)[1] if key.startswith("llamacpp:") else key


def _flatten(sample: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys plus the keys of nested dicts one level down (top level wins)."""
    flat: dict[str, Any] = {}
    for value in sample.values():
        if isinstance(value, dict):
            for k, v in value.items():
                flat.setdefault(_norm(str(k)), v)
    for key, value in sample.items():
        flat[_norm(str(key))] = value
    return flat


def _number(flat: dict[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = flat.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return None


def _busy_from_slots(flat: dict[str, Any]) -> float | None:
    slots = flat.get("slots")
    if not isinstance(slots, list):
        return None
    return float(sum(1 for s in slots if isinstance(s, dict) and s.get("is_processing")))


def parse_server_samples(lines: list[dict[str, Any]]) -> tuple[ServerSample, ...]:
    """Turn parsed ``server.jsonl`` objects into samples ordered by time (objects without ``t_s`` skipped)."""
    rows = []
    for obj in lines:
        t = obj.get("t_s")
        if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t):
            rows.append((float(t), _flatten(obj)))
    rows.sort(key=lambda r: r[0])
    out: list[ServerSample] = []
    prev_t: float | None = None
    prev_count: float | None = None
    for t, flat in rows:
        busy = _number(flat, _BUSY)
        if busy is None:
            busy = _busy_from_slots(flat)
        count = _number(flat, _TPS_COUNTER)
        tps: float | None = None
        # A counter that went down means the server restarted: no rate across that gap.
        if count is not None and prev_count is not None and prev_t is not None and t > prev_t:
            if count >= prev_count:
                tps = (count - prev_count) / (t - prev_t)
        elif count is None:
            tps = _number(flat, _TPS_DIRECT)
        if count is not None:
            prev_count, prev_t = count, t
        out.append(ServerSample(t, busy, _number(flat, _PROCESSING), _number(flat, _DEFERRED), tps))
    return tuple(out)


def read_server_samples(path: str | Path) -> tuple[ServerSample, ...]:
    """Read ``server.jsonl``; a missing file gives no samples and torn or non-object lines are skipped."""
    p = Path(path)
    if not p.is_file():
        return ()
    objs: list[dict[str, Any]] = []
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                objs.append(obj)
    return parse_server_samples(objs)
