"""Faults with the real llama-server: the server killed mid-sweep (issue 8, item 4)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.records import ErrorClass, read_records
from orpheus_bench.report.html import render_html
from orpheus_bench.results.compile import compile_run
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.profiles import resolve_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_server_killed_mid_stream(llama_server_binary: Path, tiny_fixed_model_path: Path, tmp_path: Path) -> None:
    # The fixed model: every finished request is exactly 100 frames, and 700-token streams are long enough that
    # some are in flight at the kill (the default model would end a short prompt's speech after about 50 frames).
    server = LlamaServer(resolve_profile("test-np4"), tiny_fixed_model_path, log_path=tmp_path / "server.log")
    server.start()
    out = tmp_path / "run"
    try:
        sc = scenario_from_dict(
            {
                "host": server.url,
                "prompts": {"set": "short"},
                "sampling": {"max_tokens": 700},  # long streams (1024-token slots), so some are in flight at the kill
                "decode": {"preset": "off"},
                "load": {"concurrency": [2], "requests_per_level": 30},
                "timeouts": {"connect_s": 2, "between_tokens_s": 5},
            }
        )
        run = asyncio.ensure_future(execute_run(sc, out, doctor=False))
        jsonl = out / "requests.jsonl"
        for _ in range(600):  # wait for finished records and streams in flight
            await asyncio.sleep(0.05)
            if jsonl.exists() and jsonl.read_text().count("\n") >= 3:
                break
        await asyncio.sleep(0.4)  # both workers are now streaming their next request
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        outcome = await asyncio.wait_for(run, 120)
    finally:
        server.stop()
    records = read_records(str(jsonl))
    assert outcome.complete and len(records) == outcome.records == 2 + 30  # nothing lost
    classes = Counter(r.error_class for r in records)
    assert classes[None] >= 3  # the finished records are intact
    assert all(r.frames == 100 for r in records if r.ok)
    cut = [r for r in records if r.error_class is ErrorClass.DISCONNECT]
    assert cut, classes  # the streams in flight at the kill
    assert all(r.frames < 100 for r in cut)
    assert any(r.frames > 0 and r.pcm_samples > 0 for r in cut)  # with the audio received so far
    assert classes[ErrorClass.CONNECT] >= 1  # and what came after found no server
    assert "<table" in render_html(compile_run(out))
