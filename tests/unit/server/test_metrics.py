"""The /metrics + /slots timeline: parsing captured llama-server answers and the scraper loop on a fake server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orpheus_bench.server.launcher import free_port
from orpheus_bench.server.metrics import (
    MetricsScraper,
    parse_metrics_text,
    read_server_timeline,
    sample_line,
    summarize_slots,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
METRICS = (DATA / "metrics-b11434.txt").read_text()
SLOTS = json.loads((DATA / "slots-b11434.json").read_text())


def test_parse_metrics_text_strips_prefix() -> None:
    m = parse_metrics_text(METRICS)
    assert m["requests_processing"] == 1
    assert m["predicted_tokens_seconds"] == pytest.approx(90.3109)
    assert m["tokens_predicted_total"] == 85
    assert m["n_busy_slots_per_decode"] == 1
    assert not any(k.startswith("llamacpp:") for k in m)


def test_summarize_slots() -> None:
    s = summarize_slots(SLOTS)
    assert s["slots_busy"] == 2 and s["slots_total"] == 3 and s["slot_n_ctx"] == 256
    assert s["slots_n_decoded"] == [55, 10]
    assert summarize_slots({"error": "x"})["slots_busy"] is None


def test_sample_line_fields() -> None:
    line = sample_line(1.25, 1700000000.5, parse_metrics_text(METRICS), SLOTS)
    assert line["t_s"] == 1.25 and line["wall"] == 1700000000.5
    assert line["requests_processing"] == 1 and line["requests_deferred"] == 0
    assert line["prompt_tokens_seconds"] == pytest.approx(9163.56)
    assert line["n_busy_slots"] == 1  # from n_busy_slots_per_decode
    assert line["kv_cache_usage_ratio"] is None  # gone from current builds
    assert line["slots_busy"] == 2
    assert "error" not in line
    old = sample_line(0, 0, {"kv_cache_usage_ratio": 0.5, "n_busy_slots": 3.0}, None, ["/slots: HTTP 501"])
    assert old["kv_cache_usage_ratio"] == 0.5 and old["n_busy_slots"] == 3.0
    assert old["slots_busy"] is None and old["error"] == "/slots: HTTP 501"
    json.dumps(line, allow_nan=False)


@pytest.fixture
async def fake_server() -> AsyncIterator[str]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=METRICS, content_type="text/plain")

    async def slots(_: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "This server does not support slots endpoint."}}, status=501)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/slots", slots)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_scraper_writes_lines_with_injected_clock(fake_server: str, tmp_path: Path) -> None:
    ticks = iter(range(1000))
    out = tmp_path / "run" / "server.jsonl"
    scraper = MetricsScraper(fake_server, out, interval_s=0.02, clock=lambda: float(next(ticks)))
    await scraper.start()
    await asyncio.sleep(0.15)
    await scraper.stop()
    lines = read_server_timeline(out)
    assert len(lines) >= 3 and scraper.samples == len(lines)
    assert [ln["t_s"] for ln in lines] == sorted(ln["t_s"] for ln in lines)
    assert lines[0]["t_s"] == 0.0 and lines[1]["t_s"] == 1.0
    assert all(ln["requests_processing"] == 1 for ln in lines)
    assert all("/slots: HTTP 501" in ln["error"] for ln in lines)  # partial failure is data, not a crash


async def test_scraper_never_raises_when_server_is_gone(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "server.jsonl"
    async with MetricsScraper(url, out, interval_s=0.02) as scraper:
        await asyncio.sleep(0.08)
    lines = read_server_timeline(out)
    assert lines and scraper.errors == len(lines)
    assert all("/metrics" in ln["error"] and ln["requests_processing"] is None for ln in lines)


def test_read_server_timeline_skips_torn_line(tmp_path: Path) -> None:
    p = tmp_path / "server.jsonl"
    p.write_text('{"t_s": 0.0}\n{"t_s": 0.5}\n{"t_s": 1.')
    assert [ln["t_s"] for ln in read_server_timeline(p)] == [0.0, 0.5]
