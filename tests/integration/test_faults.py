"""The fault matrix (issue 8) against the simulator: every request leaves exactly one classified record, the run
never crashes, and the report still renders. Real-server faults (kill mid-stream) live in test_llama_faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cli_signals import sigterm_after_records

from orpheus_bench.cli import main as cli_main
from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.errors import ServerNotReady
from orpheus_bench.records import ErrorClass, RequestRecord, Status, read_records
from orpheus_bench.report.html import render_html
from orpheus_bench.results.compile import compile_run
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.sim import SimConfig, parse_fault, run_simulator_in_thread

pytestmark = pytest.mark.integration

FRAMES = 10


def sim(*faults: str, **kw: object) -> SimConfig:
    cfg: dict = {"slots": 4, "token_ms": 1.0, "audio_frames": FRAMES, "prefill_ms_per_token": 0.02}
    cfg.update(kw)
    return SimConfig(faults=tuple(parse_fault(f) for f in faults), **cfg)


async def run_against(cfg: SimConfig, out: Path, **over: object) -> list[RequestRecord]:
    data: dict = {
        "decode": {"preset": "off"},
        "load": {"concurrency": [2], "requests_per_level": 4},
        "prompts": {"set": "short"},
        "timeouts": {"between_tokens_s": 2.0, "request_s": 10.0, "connect_s": 2.0},
    }
    data.update(over)
    with run_simulator_in_thread(cfg) as url:
        data["host"] = url
        outcome = await execute_run(scenario_from_dict(data), out, doctor=False)
    records = read_records(str(out / "requests.jsonl"))
    # zero lost records: every request sent has exactly one record, and the report renders
    assert len(records) == outcome.records == 2 + 4
    assert len({r.request_id for r in records}) == len(records)
    results = compile_run(out)
    assert "<table" in render_html(results)
    return records


@pytest.mark.parametrize(
    ("fault", "error_class", "message_part"),
    [
        ("http_error:status=500,message=boom", ErrorClass.HTTP, "boom"),
        ("http_error:status=400,message=bad field", ErrorClass.HTTP, "bad field"),
        ("context_error", ErrorClass.NO_AUDIO, "exceed_context_size_error"),
        ("truncate:after_tokens=30", ErrorClass.PROTOCOL, "without its final event"),
        ("disconnect:after_tokens=30", ErrorClass.DISCONNECT, "connection lost"),
        ("malformed:after_tokens=5,variant=nonjson", ErrorClass.PROTOCOL, "not JSON"),
        ("malformed:after_tokens=5,variant=partial_json", ErrorClass.PROTOCOL, "not JSON"),
        ("malformed:after_tokens=5,variant=not_object", ErrorClass.PROTOCOL, "not a JSON object"),
        ("stream_error:after_tokens=5,message=slot crashed", ErrorClass.HTTP, "slot crashed"),
        ("invalid_codes:interval=10", ErrorClass.INVALID_AUDIO, "out of range"),
        ("no_audio", ErrorClass.NO_AUDIO, "no complete audio frame"),
        ("stall:after_tokens=5,stall_s=30", ErrorClass.TIMEOUT, "stalled stream"),
        ("slow:token_s=3", ErrorClass.TIMEOUT, "between chunks"),
        ("slow_headers:delay_s=30", ErrorClass.TIMEOUT, "no response headers"),
        ("huge:tokens=3000", ErrorClass.PROTOCOL, "max_tokens is not being honoured"),
    ],
)
async def test_fault_is_recorded_with_its_class(
    fault: str, error_class: ErrorClass, message_part: str, tmp_path: Path
) -> None:
    # every 2nd request is hit: the run mixes good and bad requests
    spec = f"{fault},every=2" if ":" in fault else f"{fault}:every=2"
    records = await run_against(sim(spec), tmp_path / "run", sampling={"max_tokens": 200})
    bad = [r for r in records if not r.ok]
    good = [r for r in records if r.ok]
    assert len(bad) == 3 and len(good) == 3, [(r.error_class, r.error_message) for r in records]
    for r in bad:
        assert r.error_class is error_class, r.error_message
        assert message_part in (r.error_message or ""), r.error_message
        assert r.t_end_s is not None
        assert r.status is (Status.TIMEOUT if error_class is ErrorClass.TIMEOUT else Status.ERROR)
    assert all(r.frames == FRAMES for r in good)


async def test_partial_audio_is_kept_on_truncation(tmp_path: Path) -> None:
    records = await run_against(sim("truncate:after_tokens=36"), tmp_path / "run", decode={"preset": "off"})
    for r in records:
        assert r.error_class is ErrorClass.PROTOCOL
        assert r.frames == 5 and r.pcm_samples == (5 - 3) * 2048


async def test_few_invalid_codes_are_counted_but_accepted(tmp_path: Path) -> None:
    cfg = sim("invalid_codes:interval=69", audio_frames=20)  # 2 invalid of 140 codes = 1.4% < 2%
    records = await run_against(cfg, tmp_path / "run")
    for r in records:
        assert r.ok, r.error_message
        assert r.invalid_code_count == 2 and r.frames == 18


async def test_text_tokens_and_partial_frame_are_tolerated(tmp_path: Path) -> None:
    records = await run_against(sim("text_tokens:interval=7,every=2", "partial_frame:missing=3"), tmp_path / "run")
    assert all(r.ok for r in records), [r.error_message for r in records]
    texty = [r for r in records if r.text_chars > 0]
    assert texty and all(r.frames == FRAMES for r in texty)
    partial = [r for r in records if r.text_chars == 0]
    assert partial and all(r.frames == FRAMES - 1 for r in partial)


async def test_loading_server_waits_then_runs(tmp_path: Path) -> None:
    records = await run_against(sim(loading_s=1.5), tmp_path / "run")
    assert all(r.ok for r in records)


async def test_server_that_keeps_loading_fails_clearly(tmp_path: Path) -> None:
    with run_simulator_in_thread(sim(loading_s=60)) as url:
        sc = scenario_from_dict({"host": url, "timeouts": {"server_ready_s": 1.0}, "decode": {"preset": "off"}})
        with pytest.raises(ServerNotReady, match="503"):
            await execute_run(sc, tmp_path / "run", doctor=False)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["complete"] is False


def test_api_key_is_sent_and_never_written(tmp_path: Path) -> None:
    secret = "sk-orpheus-very-secret-4711"
    with run_simulator_in_thread(sim(api_key=secret)) as url:
        ok = cli_main(
            [
                "run",
                "--host",
                url,
                "--concurrency",
                "1",
                "--requests-per-level",
                "2",
                "--decode",
                "off",
                "--api-key",
                secret,
                "--out",
                str(tmp_path / "ok"),
                "--quiet",
            ]
        )
        wrong = cli_main(
            [
                "run",
                "--host",
                url,
                "--concurrency",
                "1",
                "--requests-per-level",
                "1",
                "--decode",
                "off",
                "--api-key",
                "wrong-key",
                "--out",
                str(tmp_path / "wrong"),
                "--quiet",
            ]
        )
    assert ok == 0 and wrong == 0
    assert all(r.ok for r in read_records(str(tmp_path / "ok" / "requests.jsonl")))
    denied = read_records(str(tmp_path / "wrong" / "requests.jsonl"))
    assert {r.error_class for r in denied} == {ErrorClass.AUTH}
    assert all("api-key" in (r.error_message or "") for r in denied)
    report = tmp_path / "ok" / "report.html"
    report.write_text(render_html(compile_run(tmp_path / "ok")))
    for f in (tmp_path / "ok").rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="replace"), f


@pytest.mark.slow
def test_sigterm_mid_sweep_records_cancelled_and_marks_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_simulator_in_thread(sim(token_ms=20.0, audio_frames=40)) as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orpheus_bench.cli",
                "run",
                "--host",
                url,
                "--concurrency",
                "4",
                "--requests-per-level",
                "40",
                "--decode",
                "off",
                "--out",
                str(out),
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "120"},
        )
        output = sigterm_after_records(proc, out, records=4)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    records = read_records(str(out / "requests.jsonl"))
    statuses = Counter(r.status for r in records)
    assert statuses[Status.CANCELLED] >= 1 and statuses[Status.OK] >= 4
    assert all(r.t_end_s is not None for r in records)
    assert json.loads((out / "run.json").read_text())["complete"] is False
    assert cli_main(["report", str(out), "-o", str(tmp_path / "partial.html")]) == 0
    assert (tmp_path / "partial.html").stat().st_size > 1000
