"""`orpheus-bench run --processes N` against the simulator: one run, one clock, one requests.jsonl, nothing lost.

Worker processes are real (``python -m orpheus_bench.client.worker_process``); the simulator runs in a thread of
the test process and the workers reach it over TCP. The kill test SIGKILLs a worker mid-level: every request it
was handed still has exactly one record, those it had in flight written by the parent as ``client`` errors, and
the run finishes on the surviving worker. Capacity search and gates run unchanged on multi-process sub-runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cli_signals import records_written, sigterm_after_records

from orpheus_bench.capacity.driver import CapacityPlan, run_capacity
from orpheus_bench.capacity.search import SearchConfig
from orpheus_bench.capacity.slo import parse_slo
from orpheus_bench.cli import main as cli_main
from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.gate.engine import evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.records import ErrorClass, RequestRecord, Status, read_records
from orpheus_bench.results.compile import compile_run
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.sim import SimConfig, run_simulator_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scenario(url: str, **over: Any) -> Any:
    data: dict[str, Any] = {
        "host": url,
        "decode": {"preset": "off"},
        "prompts": {"set": "short"},
        "load": {"concurrency": [2, 4], "requests_per_level": 8},
        "client": {"processes": 2},
        "timeouts": {"between_tokens_s": 5.0, "request_s": 30.0},
    }
    data.update(over)
    return scenario_from_dict(data)


def records_of(out: Path) -> list[RequestRecord]:
    return read_records(str(out / "requests.jsonl"))


async def test_two_processes_share_one_run(tmp_path: Path) -> None:
    with run_simulator_in_thread(SimConfig(slots=8, token_ms=2.0, audio_frames=10)) as url:
        outcome = await execute_run(scenario(url), tmp_path / "run", doctor=False)
    records = records_of(tmp_path / "run")
    assert outcome.complete and outcome.records == len(records) == (2 + 8) + (4 + 8)
    assert all(r.ok for r in records), [r.error_message for r in records if not r.ok]
    assert len({r.request_id for r in records}) == len(records)
    for level, workers in ((2, 2), (4, 4)):
        mine = [r for r in records if r.level == level]
        assert sorted(r.seq for r in mine) == list(range(len(mine)))  # one counter for the whole level
        assert sum(r.warmup for r in mine) == workers
        assert {r.worker for r in mine} == set(range(workers))
    # One run clock: requests of the second level were all sent after the first level's last one ended.
    first_end = max(r.end_offset_run_s or 0.0 for r in records if r.level == 2)
    assert min(r.run_offset_s for r in records if r.level == 4) >= first_end - 1e-6
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["complete"] and meta["client"]["processes"] == 2 and len(meta["client"]["pids"]) == 2
    procs = meta["levels"][1]["client"]["processes"]
    assert [p["name"] for p in procs] == ["parent", "worker 0", "worker 1"]
    assert sum(p["sent"] for p in procs) == 12 and all(p["loop_cpu_share"] is not None for p in procs)
    assert meta["levels"][1]["client"]["worst_process"] in {"parent", "worker 0", "worker 1"}
    assert compile_run(tmp_path / "run").level(4).n == 8


async def test_open_loop_keeps_one_schedule_across_processes(tmp_path: Path) -> None:
    with run_simulator_in_thread(SimConfig(slots=16, token_ms=1.0, audio_frames=6)) as url:
        sc = scenario(url, load={"rate": [20.0], "requests_per_level": 16, "seed": 3})
        await execute_run(sc, tmp_path / "run", doctor=False)
    records = sorted(records_of(tmp_path / "run"), key=lambda r: r.seq)
    scheduled = [r.scheduled_offset_s for r in records]
    assert all(s is not None for s in scheduled) and scheduled == sorted(scheduled)  # type: ignore[type-var]
    # Sent on (or just after) their schedule, whichever process sent them.
    assert all(0.0 <= (r.send_delay_s or 0.0) < 0.5 for r in records)


async def test_killed_worker_leaves_one_record_per_request(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_simulator_in_thread(SimConfig(slots=8, token_ms=10.0, audio_frames=30)) as url:
        sc = scenario(url, load={"concurrency": [4], "requests_per_level": 12})
        run = asyncio.ensure_future(execute_run(sc, out, doctor=False))
        pids: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not run.done():
            meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
            pids = meta.get("client", {}).get("pids", [])
            done = records_written(out)
            if pids and done >= 2:
                break
            await asyncio.sleep(0.05)
        assert pids, "the workers never started"
        os.kill(pids[0], signal.SIGKILL)
        outcome = await asyncio.wait_for(run, 120)
    records = records_of(out)
    assert outcome.complete and outcome.records == len(records) == 4 + 12
    assert sorted(r.seq for r in records) == list(range(16))  # nothing lost, nothing twice
    assert len({r.request_id for r in records}) == 16
    lost = [r for r in records if not r.ok]
    assert lost, "the killed worker had requests in flight"
    for r in lost:
        assert r.error_class is ErrorClass.CLIENT and r.status is Status.ERROR
        assert "worker 0" in (r.error_message or "") and "SIGKILL" in (r.error_message or "")
        assert r.extra.get("recorded_by") == "parent" and r.t_end_s is not None
    assert all(r.ok for r in records if r not in lost)  # the survivor took over the killed worker's streams
    level = json.loads((out / "run.json").read_text())["levels"][0]
    assert level["sent"] == 16
    exits = {p["name"]: p["exit"] for p in level["client"]["processes"]}
    assert exits["worker 0"] == "killed by SIGKILL" and exits["worker 1"] is None


async def test_capacity_and_gate_on_multi_process_runs(tmp_path: Path) -> None:
    sim = SimConfig(slots=3, token_ms=4.0, busy_alpha=0.0, audio_frames=8, prefill_ms_per_token=0.0)
    with run_simulator_in_thread(sim) as url:
        sc = scenario(url, load={"concurrency": [1]})
        plan = CapacityPlan(
            sc,
            parse_slo("ttfa_p95_ms<=400,goodput>=0.9"),
            SearchConfig(start=2.0, max_load=8.0, probe_requests=8, edge_requests=8, max_requests=16),
        )
        result = await run_capacity(plan, tmp_path / "cap", doctor=False, max_steps=3)
    assert result.levels, "the search measured nothing"
    sub = tmp_path / "cap" / "levels" / "c=2"
    meta = json.loads((sub / "run.json").read_text())
    assert meta["client"]["processes"] == 2 and meta["complete"]
    assert len(records_of(sub)) == 2 + 8
    merged = compile_run(tmp_path / "cap")
    assert merged.levels and merged.level(2).n == 8
    rules = rules_from_dict({"settings": {"min_requests": 5}, "absolute": ["success_rate >= 0.99 at c=2"]})
    assert evaluate(rules, sub).exit_code == 0
    # A client-bound multi-process level says which process lagged and why; the gate passes that on.
    level = meta["levels"][0]
    assert all(" in parent " in r or " in worker " in r for r in level["client_bound_reasons"] if "lag" in r)
    bound = evaluate(rules_from_dict({"settings": {"min_requests": 5}, "absolute": ["client_bound == false"]}), sub)
    assert bound.exit_code == (1 if level["client_bound"] else 0)


def test_sigterm_with_worker_processes_records_cancelled(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_simulator_in_thread(SimConfig(slots=8, token_ms=20.0, audio_frames=40)) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orpheus_bench.cli", "run", "--host", url, "--concurrency", "4",
             "--requests-per-level", "40", "--decode", "off", "--processes", "2", "--out", str(out), "--quiet",
             "--no-doctor"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "120"},
        )  # fmt: skip
        output = sigterm_after_records(proc, out, records=4)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    records = records_of(out)
    statuses = Counter(r.status for r in records)
    assert statuses[Status.CANCELLED] >= 1 and statuses[Status.OK] >= 4
    assert all(r.t_end_s is not None for r in records) and len({r.seq for r in records}) == len(records)
    meta = json.loads((out / "run.json").read_text())
    assert meta["complete"] is False
    for pid in meta["client"]["pids"]:  # no worker left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert cli_main(["report", str(out), "-o", str(tmp_path / "partial.html")]) == 0
