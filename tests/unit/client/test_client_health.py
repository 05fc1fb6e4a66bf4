"""Client-bound verdicts: per record (decode backlog), per level (loop lag and its cause, decode queue, processes)."""

from __future__ import annotations

import json

import pytest
from record_factory import new_record

from orpheus_bench.client.processes import describe_exit, resolve_processes, worker_torch_threads
from orpheus_bench.client.runner import Ticket
from orpheus_bench.levels import LevelOutcome, LevelPlan, ProcessHealth
from orpheus_bench.prompts import Prompt
from orpheus_bench.records import AudioChunk, RequestRecord
from orpheus_bench.scenario import scenario_from_dict

pytestmark = pytest.mark.unit


def record(queue_ms: list[float]) -> RequestRecord:
    r = new_record()
    r.chunks = [AudioChunk(t_ready_s=1.0, samples=2048, t_tokens_s=0.5, queue_s=q / 1000.0) for q in queue_ms]
    return r


def test_record_with_backlogged_decode_is_client_bound() -> None:
    assert record([5, 5, 5, 5, 5, 5, 5, 5, 5, 400, 500]).client_bound
    assert not record([5] * 20 + [400]).client_bound  # one slow window is not a backlog
    assert not record([]).client_bound


def test_level_summary_flags_loop_lag_and_decode_queue() -> None:
    plan = LevelPlan(0, "concurrency", 4.0, 4, 10, None)
    calm = LevelOutcome(plan, 0.0, 1.0, 14, loop_lag_ms=[1.0] * 100, records=[record([5] * 10)])
    assert calm.summary()["client_bound"] is False
    laggy = LevelOutcome(plan, 0.0, 1.0, 14, loop_lag_ms=[1.0] * 95 + [80.0] * 5, records=[record([5] * 10)])
    s = laggy.summary()
    assert s["client_bound"] is True and "event-loop lag" in s["client_bound_reasons"][0]
    backlog = LevelOutcome(plan, 0.0, 1.0, 14, loop_lag_ms=[1.0] * 100, records=[record([300] * 10)])
    assert "decode queue" in backlog.summary()["client_bound_reasons"][0]


# ---- why a loop lagged, and levels spread over several processes (issue 16) ---------------------------------
LAGGY = [1.0] * 95 + [80.0] * 5


def test_lag_reason_says_harness_busy_or_no_core() -> None:
    plan = LevelPlan(0, "concurrency", 4.0, 4, 10, None)
    busy = LevelOutcome(plan, 0.0, 10.0, 14, loop_lag_ms=LAGGY, loop_cpu_s=9.5, loop_wait_s=0.1)
    s = busy.summary()
    assert s["client"]["loop_lag_cause"] == "harness_busy"
    assert "the harness was busy: its loop thread used 95% of a core" in s["client_bound_reasons"][0]
    starved = LevelOutcome(plan, 0.0, 10.0, 14, loop_lag_ms=LAGGY, loop_cpu_s=2.0, loop_wait_s=3.0)
    s = starved.summary()
    assert s["client"]["loop_lag_cause"] == "machine_busy" and s["client"]["loop_wait_share"] == 0.3
    assert "the machine gave it no core: its loop thread used 20% of a core, waited 30%" in s["client_bound_reasons"][0]
    blocked = LevelOutcome(plan, 0.0, 10.0, 14, loop_lag_ms=LAGGY, loop_cpu_s=2.0, loop_wait_s=0.0)
    assert blocked.summary()["client"]["loop_lag_cause"] == "blocked"
    # Without schedstat (not Linux), a lagging loop far below a full core can only have waited for one.
    unknown = LevelOutcome(plan, 0.0, 10.0, 14, loop_lag_ms=LAGGY, loop_cpu_s=2.0)
    assert unknown.summary()["client"]["loop_lag_cause"] == "machine_busy"
    calm = LevelOutcome(plan, 0.0, 10.0, 14, loop_lag_ms=[1.0] * 100, loop_cpu_s=9.5)
    assert calm.summary()["client"]["loop_lag_cause"] is None and not calm.summary()["client_bound"]


def test_multi_process_level_is_judged_by_its_worst_process() -> None:
    plan = LevelPlan(0, "concurrency", 64.0, 64, 10, None)
    outcome = LevelOutcome(plan, 0.0, 10.0, 74, records=[record([5] * 10)])
    outcome.processes = [
        ProcessHealth("parent", 1, 10.0, [0.5] * 100, 0.3, 0.0),
        ProcessHealth("worker 0", 2, 10.0, [1.0] * 100, 4.0, 0.1, sent=37),
        ProcessHealth("worker 1", 3, 10.0, LAGGY, 9.0, 0.1, sent=37, exit="killed by SIGKILL"),
    ]
    s = outcome.summary()
    client = s["client"]
    assert client["worst_process"] == "worker 1" and client["loop_lag_p99_ms"] == pytest.approx(80.0)
    assert client["loop_cpu_share"] == pytest.approx(0.9)
    assert [p["name"] for p in client["processes"]] == ["parent", "worker 0", "worker 1"]
    assert [p["loop_cpu_share"] for p in client["processes"]] == pytest.approx([0.03, 0.4, 0.9])
    assert client["processes"][2]["exit"] == "killed by SIGKILL" and client["processes"][1]["sent"] == 37
    assert s["client_bound"] and len(s["client_bound_reasons"]) == 1
    assert "in worker 1 (the harness was busy" in s["client_bound_reasons"][0]


def test_one_process_summary_keeps_its_shape() -> None:
    plan = LevelPlan(0, "concurrency", 4.0, 4, 10, None)
    s = LevelOutcome(plan, 0.0, 1.0, 14, loop_lag_ms=[1.0] * 100, loop_cpu_s=0.1).summary()
    assert "processes" not in s["client"] and "worst_process" not in s["client"]
    assert s["client"]["loop_cpu_share"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("load", "cores", "expected"),
    [
        ({"concurrency": [1, 2, 4, 8, 12]}, 2, 1),  # the default sweep stays in one process
        ({"concurrency": [16, 64]}, 2, 2),
        ({"concurrency": [256]}, 4, 4),
        ({"concurrency": [256]}, 64, 8),  # at most one per 32 streams
        ({"concurrency": [4096]}, 64, 8),  # and 8 in all
        ({"rate": [0.5, 1, 2]}, 8, 1),  # 2/s x 6 s of audio: about 12 in flight
        ({"rate": [50.0]}, 8, 8),
    ],
)
def test_auto_processes(load: dict[str, object], cores: int, expected: int) -> None:
    sc = scenario_from_dict({"load": load})
    assert resolve_processes(sc, cores=cores) == expected
    assert resolve_processes(scenario_from_dict({"load": load, "client": {"processes": 3}}), cores=cores) == 3


def test_worker_torch_threads_share_the_cores() -> None:
    sc = scenario_from_dict({})
    assert worker_torch_threads(sc, 1, cores=8) is None  # one process: the decode service's own default
    assert worker_torch_threads(sc, 2, cores=8) == 3
    assert worker_torch_threads(sc, 2, cores=2) == 1
    assert worker_torch_threads(scenario_from_dict({"decode": {"threads": 5}}), 4, cores=8) == 5


def test_ticket_round_trip_and_exit_words() -> None:
    t = Ticket(level=4, label="c=4", worker=3, seq=9, warmup=False, prompt=Prompt("short/0", "Hi."), keep_audio=True)
    assert Ticket.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(1) == "exit code 1"
