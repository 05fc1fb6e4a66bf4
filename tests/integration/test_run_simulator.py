"""`orpheus-bench run` end to end against the simulator: record counts, statuses, warmups, TTFA ordering."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orpheus_bench.cli import main as cli_main
from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.records import ErrorClass, Status, read_records
from orpheus_bench.results.compile import compile_run
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.sim import SimConfig, run_simulator_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with run_simulator_in_thread(SimConfig(slots=4, token_ms=1.0, audio_frames=10, prefill_ms_per_token=0.05)) as url:
        yield url


def scenario(url: str, **over: object) -> dict:
    base: dict = {
        "host": url,
        "decode": {"preset": "off"},
        "load": {"concurrency": [1, 4, 12], "requests_per_level": 6},
        "prompts": {"set": "short"},
    }
    for key, value in over.items():
        base[key] = value
    return base


async def test_sweep_writes_one_record_per_request(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    outcome = await execute_run(scenario_from_dict(scenario(sim_url)), out, doctor=False)
    assert outcome.complete
    records = read_records(str(out / "requests.jsonl"))
    assert len(records) == (1 + 6) + (4 + 6) + (12 + 6)
    assert all(r.status is Status.OK for r in records), [r.error_message for r in records if not r.ok]
    warm = Counter(r.level for r in records if r.warmup)
    assert warm == {1: 1, 4: 4, 12: 12}
    assert Counter(r.level for r in records if not r.warmup) == {1: 6, 4: 6, 12: 6}
    for r in records:
        assert r.frames == 10 and r.invalid_code_count == 0
        assert r.t_first_audio_token_s is not None and r.ttfa_s is not None
        assert r.t_first_token_s <= r.t_first_audio_token_s <= r.ttfa_s <= r.t_end_s  # type: ignore[operator]
        assert r.timings is not None and r.timings.predicted_n is not None
    meta = json.loads((out / "run.json").read_text())
    assert meta["complete"] is True and [lv["level"] for lv in meta["levels"]] == [1, 4, 12]
    results = compile_run(out)
    assert [lv.n for lv in results.levels] == [6, 6, 6]  # warmups excluded from stats
    # 12 workers on 4 slots queue: their median TTFA must exceed the single worker's
    by = {lv.level: lv for lv in results.levels}
    assert by[12].ttfa_ms.p50 > by[1].ttfa_ms.p50  # type: ignore[operator]


async def test_decoded_stream_pcm_length_and_ttfa_after_first_audio_token(sim_url: str, tmp_path: Path) -> None:
    data = scenario(sim_url, decode={"preset": "reference"}, load={"concurrency": [1], "requests_per_level": 2})
    data["keep_audio"] = 1
    out = tmp_path / "run"
    await execute_run(scenario_from_dict(data), out, doctor=False)
    records = read_records(str(out / "requests.jsonl"))
    assert len(records) == 3
    for r in records:
        assert r.ok, r.error_message
        assert r.pcm_samples == (10 - 3) * 2048  # reference window: F frames -> (F - 3) x 2048 samples
        assert len(r.chunks) == 7
        assert r.ttfa_s > r.t_first_audio_token_s  # type: ignore[operator]
        assert all(c.lag_s >= 0 and c.decode_s > 0 for c in r.chunks)
    kept = [r for r in records if "audio_file" in r.extra]
    assert len(kept) == 1 and (out / kept[0].extra["audio_file"]).is_file()
    meta = json.loads((out / "run.json").read_text())
    assert meta["snac"]["random_weights"] is True


async def test_openai_protocol_and_blocking_mode(sim_url: str, tmp_path: Path) -> None:
    data = scenario(sim_url, protocol="openai", mode="blocking", load={"concurrency": [2], "requests_per_level": 2})
    data["decode"] = {"preset": "off"}
    await execute_run(scenario_from_dict(data), tmp_path / "run", doctor=False)
    records = read_records(str(tmp_path / "run" / "requests.jsonl"))
    assert len(records) == 4
    assert all(r.ok and r.mode == "blocking" and r.protocol == "openai" and r.frames == 10 for r in records)


async def test_open_loop_records_schedule(sim_url: str, tmp_path: Path) -> None:
    data = scenario(sim_url, load={"rate": [20.0, 30.0], "requests_per_level": 10, "seed": 3})
    await execute_run(scenario_from_dict(data), tmp_path / "run", doctor=False)
    records = read_records(str(tmp_path / "run" / "requests.jsonl"))
    assert len(records) == (20 + 10) + (30 + 10)  # warmup = ceil(rate)
    assert Counter(r.level for r in records) == {20_000: 30, 30_000: 40}  # milli-requests per second
    assert {r.level_label for r in records} == {"rate=20/s", "rate=30/s"}
    scheduled = sorted(r.scheduled_offset_s for r in records)  # type: ignore[type-var]
    assert all(s is not None for s in scheduled)
    assert all(r.send_delay_s is not None and r.send_delay_s >= 0 for r in records)
    assert scheduled[-1] > scheduled[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_every_request_is_a_connect_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code = cli_main(
        [
            "run",
            "--host",
            url,
            "--concurrency",
            "2",
            "--requests-per-level",
            "3",
            "--decode",
            "off",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert code == 0
    records = read_records(str(tmp_path / "run" / "requests.jsonl"))
    assert len(records) == 5
    assert {r.error_class for r in records} == {ErrorClass.CONNECT}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["health"] == "unreachable"


def test_bad_input_exits_2_before_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["run", "--concurrency", "0,2", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "load.concurrency" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


async def test_doctor_findings_are_shown_before_the_run(sim_url: str, tmp_path: Path) -> None:
    from orpheus_bench.client.whole_run import RunHooks

    class Collect(RunHooks):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def status(self, message: str) -> None:
            self.lines.append(message)

    hooks = Collect()
    data = scenario(sim_url, load={"concurrency": [8], "requests_per_level": 1})
    await execute_run(scenario_from_dict(data), tmp_path / "run", hooks=hooks)
    # 8 workers on the simulator's 4 slots: the doctor says requests will queue, and run.json keeps it
    assert any(line.startswith("doctor warn: slots:") for line in hooks.lines), hooks.lines
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert any(c["name"] == "slots" and c["level"] == "warn" for c in meta["doctor"]["checks"])
