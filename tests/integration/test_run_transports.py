"""Both client transports against the simulator: the same records, the same error classes and messages.

The fault matrix (test_faults.py) runs on the default stream transport; this keeps the aiohttp path, which the
benchmarks still compare against, classifying alike, and checks what only a transport decides: blocking answers,
a refused connection, timestamps in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.records import ErrorClass, RequestRecord, read_records
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.sim import SimConfig, parse_fault, run_simulator_in_thread

pytestmark = pytest.mark.integration

TRANSPORTS = ["stream", "aiohttp"]


async def run(transport: str, out: Path, *faults: str, **over: Any) -> list[RequestRecord]:
    cfg = SimConfig(slots=4, token_ms=1.0, audio_frames=8, faults=tuple(parse_fault(f) for f in faults))
    data: dict[str, Any] = {
        "decode": {"preset": "off"},
        "load": {"concurrency": [2], "requests_per_level": 4},
        "prompts": {"set": "short"},
        "timeouts": {"between_tokens_s": 1.5, "request_s": 10.0, "connect_s": 2.0},
        "client": {"transport": transport, "processes": 1},
    }
    data.update(over)
    with run_simulator_in_thread(cfg) as url:
        data.setdefault("host", url)
        outcome = await execute_run(scenario_from_dict(data), out, doctor=False)
    records = read_records(str(out / "requests.jsonl"))
    assert len(records) == outcome.records == 6
    assert json.loads((out / "run.json").read_text())["driver"] == transport
    return records


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_clean_stream_timestamps_in_order(transport: str, tmp_path: Path) -> None:
    for r in await run(transport, tmp_path / "run"):
        assert r.ok and r.frames == 8, r.error_message
        assert r.driver == transport  # the record says which transport carried it
        t = [r.t_headers_s, r.t_first_byte_s, r.t_first_token_s, r.t_first_audio_token_s, r.t_first_pcm_s]
        assert all(x is not None for x in t) and t == sorted(t), t  # type: ignore[type-var]
        assert r.t_end_s is not None and r.t_end_s >= (r.t_last_token_s or 0.0)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "error_class", "message_part"),
    [
        ("http_error:status=503,message=busy,every=2", ErrorClass.HTTP, "busy"),
        ("context_error:every=2", ErrorClass.NO_AUDIO, "exceed_context_size_error"),
        ("disconnect:after_tokens=20,every=2", ErrorClass.DISCONNECT, "connection lost"),
        ("stall:after_tokens=5,stall_s=30,every=2", ErrorClass.TIMEOUT, "stalled stream"),
        ("slow_headers:delay_s=30,every=2", ErrorClass.TIMEOUT, "no response headers"),
    ],
)
async def test_faults_classified_alike(
    transport: str, fault: str, error_class: ErrorClass, message_part: str, tmp_path: Path
) -> None:
    records = await run(transport, tmp_path / "run", fault, sampling={"max_tokens": 200})
    bad = [r for r in records if not r.ok]
    assert len(bad) == 3, [(r.error_class, r.error_message) for r in records]
    for r in bad:
        assert r.error_class is error_class and message_part in (r.error_message or ""), r.error_message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_blocking_answers(transport: str, tmp_path: Path) -> None:
    for r in await run(transport, tmp_path / "run", mode="blocking"):
        assert r.ok and r.mode == "blocking" and r.frames == 8, r.error_message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_connection_is_a_connect_error(transport: str, tmp_path: Path) -> None:
    records = await run(transport, tmp_path / "run", host="http://127.0.0.1:9")
    assert {r.error_class for r in records} == {ErrorClass.CONNECT}
    assert all("cannot connect" in (r.error_message or "") for r in records)
