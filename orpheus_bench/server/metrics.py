"""The server-side timeline of a run: /metrics and /slots sampled at a fixed interval into `server.jsonl`.

Each line is `{"t_s": run clock, "wall": epoch, ...}` with llama-server's gauges under stable names
(`requests_processing`, `requests_deferred`, `predicted_tokens_seconds`, `prompt_tokens_seconds`,
`n_busy_slots`, `kv_cache_usage_ratio` or null where the build no longer reports it), every `llamacpp:` sample
under `metrics`, and from /slots the busy and total slot counts and the per-slot context. A failed scrape
becomes a line with an `error` key; the scraper never raises into the run. Parsing (`parse_metrics_text`,
`summarize_slots`, `sample_line`) is pure and separate from the aiohttp loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

METRIC_PREFIX = "llamacpp:"
# Line key -> llama-server metric names that fed it, newest first (names moved between builds).
GAUGES: dict[str, tuple[str, ...]] = {
    "requests_processing": ("requests_processing",),
    "requests_deferred": ("requests_deferred",),
    "predicted_tokens_seconds": ("predicted_tokens_seconds",),
    "prompt_tokens_seconds": ("prompt_tokens_seconds",),
    "n_busy_slots": ("n_busy_slots_per_decode", "n_busy_slots"),
    "kv_cache_usage_ratio": ("kv_cache_usage_ratio",),
    "kv_cache_tokens": ("kv_cache_tokens",),
    "tokens_predicted_total": ("tokens_predicted_total",),
    "prompt_tokens_total": ("prompt_tokens_total",),
}


def parse_metrics_text(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name minus the `llamacpp:` prefix: value}; non-finite values dropped."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix(METRIC_PREFIX)
            value = float(sample.value)
            if math.isfinite(value):
                out[name] = value
    return out


def summarize_slots(slots: Any) -> dict[str, Any]:
    """/slots JSON -> busy and total slot counts, per-slot context (min over slots) and tokens decoded."""
    if not isinstance(slots, list):
        return {"slots_busy": None, "slots_total": None, "slot_n_ctx": None}
    busy = sum(1 for s in slots if isinstance(s, dict) and (s.get("is_processing") or s.get("state") == 1))
    n_ctx = [int(s["n_ctx"]) for s in slots if isinstance(s, dict) and isinstance(s.get("n_ctx"), int)]
    decoded: list[int] = []
    for s in slots:
        nt = s.get("next_token") if isinstance(s, dict) else None
        entry = nt[0] if isinstance(nt, list) and nt else nt
        if isinstance(entry, dict) and isinstance(entry.get("n_decoded"), int):
            decoded.append(int(entry["n_decoded"]))
    return {
        "slots_busy": busy,
        "slots_total": len(slots),
        "slot_n_ctx": min(n_ctx) if n_ctx else None,
        "slots_n_decoded": decoded or None,
    }


def sample_line(
    t_s: float,
    wall: float,
    metrics: dict[str, float] | None,
    slots: Any | None,
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """One `server.jsonl` line from a parsed /metrics dict and the /slots JSON (either may be missing)."""
    line: dict[str, Any] = {"t_s": round(t_s, 6), "wall": round(wall, 6)}
    for key, names in GAUGES.items():
        value = None
        if metrics is not None:
            value = next((metrics[n] for n in names if n in metrics), None)
        line[key] = value
    if slots is not None:
        line.update(summarize_slots(slots))
    else:
        line.update({"slots_busy": None, "slots_total": None, "slot_n_ctx": None})
    line["metrics"] = metrics
    if errors:
        line["error"] = "; ".join(errors)
    return line


def read_server_timeline(path: str | Path) -> list[dict[str, Any]]:
    """Read `server.jsonl`, skipping a torn last line."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            with contextlib.suppress(json.JSONDecodeError):
                if raw.strip():
                    out.append(json.loads(raw))
    return out


class MetricsScraper:
    """Samples /metrics and /slots every `interval_s` into `out_path` until `stop()`."""

    def __init__(
        self,
        base_url: str,
        out_path: str | Path,
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        api_key: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.out_path = Path(out_path)
        self.interval_s = interval_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session = session
        self._own_session = session is None
        self._task: asyncio.Task[None] | None = None
        self._fh: IO[str] | None = None
        self.samples = 0
        self.errors = 0

    async def start(self) -> None:
        """Open the output (append) and begin sampling in a background task."""
        if self._task is not None:
            return
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.out_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=max(2.0, 4 * self.interval_s))
            self._session = aiohttp.ClientSession(timeout=timeout, trust_env=False)
        self._task = asyncio.create_task(self._loop(), name="metrics-scraper")

    async def stop(self) -> None:
        """Take one last sample, stop the task and close what the scraper opened."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.scrape_once()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def __aenter__(self) -> MetricsScraper:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        next_t = time.monotonic()
        while True:
            await self.scrape_once()
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:  # a slow scrape: skip the missed ticks instead of bursting
                next_t = time.monotonic()
                delay = 0.0
            await asyncio.sleep(delay)

    async def scrape_once(self) -> dict[str, Any]:
        """Fetch both endpoints once and append the line; errors become part of the line."""
        t_s, wall = self.clock(), self.wall_clock()
        errors: list[str] = []
        metrics: dict[str, float] | None = None
        slots: Any = None
        text = await self._get("/metrics", errors, as_json=False)
        if isinstance(text, str):
            try:
                metrics = parse_metrics_text(text)
            except ValueError as exc:
                errors.append(f"/metrics: unparsable: {exc}")
        slots = await self._get("/slots", errors, as_json=True)
        line = sample_line(t_s, wall, metrics, slots, errors)
        self.samples += 1
        self.errors += bool(errors)
        if self._fh is not None:
            self._fh.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._fh.flush()
        return line

    async def _get(self, path: str, errors: list[str], *, as_json: bool) -> Any:
        assert self._session is not None
        try:
            async with self._session.get(self.base_url + path, headers=self.headers) as resp:
                if resp.status != 200:
                    body = (await resp.text())[:200]
                    errors.append(f"{path}: HTTP {resp.status}: {body}")
                    return None
                return await resp.json(content_type=None) if as_json else await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
            return None
