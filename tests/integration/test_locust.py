"""Locust runs the whole pipeline: headless runs of ``locustfiles/tts.py`` against the simulator (and llama-server).

Locust runs as a subprocess, so gevent's monkey-patching never touches this pytest process; the simulator
serves from a thread here. Each test checks the run directory against Locust's own CSV statistics and the
simulator's request counter: every request the server saw is one record, and one ``TTS total`` entry.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orpheus_bench.records import RequestRecord, Status, read_records
from orpheus_bench.results.compile import compile_run
from orpheus_bench.sim import SimConfig, SimStats, SimulatorThread, parse_fault

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).with_name("locust")
TTS_LOCUSTFILE = REPO / "locustfiles" / "tts.py"


@dataclass
class LocustRun:
    """What one headless Locust run left behind."""

    returncode: int
    log: str
    run_dir: Path
    records: list[RequestRecord]
    run_json: dict[str, Any]
    stats: list[dict[str, str]]  # rows of <csv>_stats.csv
    failures: list[dict[str, str]]  # rows of <csv>_failures.csv

    def locust_count(self, name: str, column: str = "Request Count") -> int:
        """Locust's count for an entry name, summed over request types (levels, warmups)."""
        return sum(int(r[column]) for r in self.stats if r["Name"] == name)


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[tuple[str, SimStats]]:
    config = getattr(request, "param", None) or SimConfig(token_ms=2.0, audio_frames=8)
    sim = SimulatorThread(config)
    url = sim.start()
    try:
        assert sim.server is not None
        yield url, sim.server.stats
    finally:
        sim.stop()


def run_locust(
    tmp_path: Path, host: str, *args: str, locustfile: Path = TTS_LOCUSTFILE, timeout_s: float = 180.0
) -> LocustRun:
    """Run Locust headless into ``tmp_path/run`` and read everything it wrote."""
    run_dir = tmp_path / "run"
    csv_prefix = tmp_path / "locust"
    cmd = [
        str(LOCUST), "-f", str(locustfile), "--headless", "--host", host, "--only-summary",
        "--run-dir", str(run_dir), "--csv", str(csv_prefix), *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    log = proc.stdout + proc.stderr
    assert (run_dir / "run.json").is_file(), log[-4000:]

    def rows(suffix: str) -> list[dict[str, str]]:
        path = Path(f"{csv_prefix}_{suffix}.csv")
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    return LocustRun(
        returncode=proc.returncode,
        log=log,
        run_dir=run_dir,
        records=read_records(str(run_dir / "requests.jsonl")),
        run_json=json.loads((run_dir / "run.json").read_text(encoding="utf-8")),
        stats=rows("stats"),
        failures=rows("failures"),
    )


def assert_one_record_per_request(run: LocustRun, sim_stats: SimStats) -> None:
    """Nothing lost, nothing counted twice: server requests = records = Locust's TTS total count."""
    ids = [r.request_id for r in run.records]
    assert len(ids) == len(set(ids)), "a request was recorded twice"
    assert len(run.records) == sim_stats.requests_total, run.log[-3000:]
    fired = [r for r in run.records if r.status is not Status.CANCELLED]
    assert run.locust_count("TTS total") == len(fired)
    assert run.run_json["records"] == len(run.records)
    assert all(r.driver == "locust" for r in run.records)


def test_headless_four_users_for_a_bounded_time(tmp_path: Path, simulator: tuple[str, SimStats]) -> None:
    url, sim_stats = simulator
    gate = tmp_path / "gate.yaml"
    gate.write_text("absolute:\n  - success_rate >= 0.9\n", encoding="utf-8")
    run = run_locust(tmp_path, url, "-u", "4", "-r", "4", "-t", "3s", "--decode", "off", "--gate", str(gate))
    assert run.returncode == 0, run.log[-4000:]
    assert_one_record_per_request(run, sim_stats)
    meta = run.run_json
    assert meta["driver"] == "locust" and meta["complete"] is True
    assert [lv["label"] for lv in meta["levels"]] == ["c=4"]
    assert meta["scenario"]["load"]["concurrency"] == [4]
    assert Counter(r.warmup for r in run.records)[True] == 4  # one warmup per user
    assert all(r.ok and r.level == 4 and r.level_label == "c=4" for r in run.records)
    # TTFA and first token are their own entries, fired once per successful request.
    assert run.locust_count("TTFA") == len(run.records)
    assert run.locust_count("first token") == len(run.records)
    ttfa_row = next(r for r in run.stats if r["Name"] == "TTFA" and r["Type"] == "c=4")
    measured = [r.ttfa_s * 1000.0 for r in run.records if not r.warmup and r.ttfa_s is not None]
    assert float(ttfa_row["Average Response Time"]) == pytest.approx(statistics.mean(measured), rel=0.01)
    # response_length carries audio milliseconds.
    total_row = next(r for r in run.stats if r["Name"] == "TTS total" and r["Type"] == "c=4")
    audio_ms = [r.pcm_samples * 1000 // 24000 for r in run.records if not r.warmup]
    assert float(total_row["Average Content Size"]) == pytest.approx(statistics.mean(audio_ms), rel=0.01)
    results = compile_run(run.run_dir)  # what `orpheus-bench report` reads
    level = results.level(4)
    assert level.n == len(run.records) - 4 and level.ok == level.n


def test_step_shape_tags_levels_and_excludes_one_warmup_per_user(
    tmp_path: Path, simulator: tuple[str, SimStats]
) -> None:
    url, sim_stats = simulator
    run = run_locust(tmp_path, url, "--step-levels", "1,2", "--step-requests", "3", "--decode", "off")
    assert run.returncode == 0, run.log[-4000:]
    assert_one_record_per_request(run, sim_stats)
    by_level = {lv: [r for r in run.records if r.level == lv] for lv in (1, 2)}
    for users, recs in by_level.items():
        warmups = [r for r in recs if r.warmup]
        assert len(warmups) == users
        assert sum(1 for r in recs if not r.warmup) >= 3  # each user: ceil(3 / users) measured
        assert {r.level_label for r in recs} == {f"c={users}"}
    levels = run.run_json["levels"]
    assert [(lv["label"], lv["sent"], lv["interrupted"]) for lv in levels] == [
        ("c=1", len(by_level[1]), False),
        ("c=2", len(by_level[2]), False),
    ]
    # Levels are drained: nothing of level 1 ends after level 2's first request was sent.
    end_1 = max(r.end_offset_run_s or 0.0 for r in by_level[1])
    assert end_1 <= min(r.run_offset_s for r in by_level[2])
    assert {r["Type"] for r in run.stats if r["Name"] == "TTS total"} == {"c=1", "c=1 warmup", "c=2", "c=2 warmup"}
    results = compile_run(run.run_dir)
    assert [lv.level for lv in results.levels] == [1, 2]
    assert results.level(1).n_warmup == 1 and results.level(2).n_warmup == 2


def test_two_processes_merge_one_complete_record_set(tmp_path: Path, simulator: tuple[str, SimStats]) -> None:
    url, sim_stats = simulator
    run = run_locust(
        tmp_path, url, "--processes", "2", "--step-levels", "2,4", "--step-requests", "8", "--decode", "off"
    )
    assert run.returncode == 0, run.log[-4000:]
    assert_one_record_per_request(run, sim_stats)
    assert run.run_json["locust"]["role"] == "master" and run.run_json["complete"] is True
    assert {r.worker % 2 for r in run.records} == {0, 1}  # both worker processes sent records
    for users in (2, 4):
        recs = [r for r in run.records if r.level == users]
        assert sum(r.warmup for r in recs) == users and sum(not r.warmup for r in recs) >= 8
        seqs = [r.seq for r in recs]
        assert len(seqs) == len(set(seqs))  # sequence numbers are unique across the processes


@pytest.mark.parametrize(
    "simulator",
    [SimConfig(token_ms=2.0, audio_frames=8, faults=(parse_fault("http_error:status=500,every=2"),))],
    indirect=True,
)
def test_server_errors_are_locust_failures_and_http_records(tmp_path: Path, simulator: tuple[str, SimStats]) -> None:
    url, sim_stats = simulator
    run = run_locust(tmp_path, url, "-u", "2", "-r", "2", "-t", "2s", "--decode", "off")
    assert run.returncode == 1  # Locust's exit code when requests failed (no gates here)
    assert_one_record_per_request(run, sim_stats)
    failed = [r for r in run.records if not r.ok]
    assert failed and all(r.error_class is not None and r.error_class.value == "http" for r in failed)
    assert all(r.http_status == 500 for r in failed)
    assert len(failed) == sim_stats.error_responses
    assert run.locust_count("TTS total", "Failure Count") == len(failed)
    assert sum(int(r["Occurrences"]) for r in run.failures) == len(failed)
    assert all("[http] HTTP 500" in r["Error"] and r["Name"] == "TTS total" for r in run.failures)
    assert run.locust_count("TTFA") == len(run.records) - len(failed)  # only successes have a TTFA entry


SLOW_DECODE_LOCUSTFILE = '''
"""orpheus-bench's user with a decoder that takes {decode_s} s per window on its (OS) thread."""
import numpy as np
from gevent.monkey import get_original

from orpheus_bench.locust.adapter import OrpheusTTSUser, StepLoadShape

_blocking_sleep = get_original("time", "sleep")  # blocks the calling OS thread, hub or not


class SlowDecoder:
    def decode_batch(self, windows):
        _blocking_sleep({decode_s})
        return [np.zeros(w.keep_end - w.keep_start, dtype=np.float32) for w in windows]


class SlowDecodeUser(OrpheusTTSUser):
    decoder_factory = staticmethod(lambda scenario: SlowDecoder())


class Shape(StepLoadShape):
    pass
'''

PREFILL_S = 0.3
SHORT_AND_LONG_PROMPTS = [
    "Hello there, friend.",
    "Hello again, friend.",
    "This is a much longer sentence that keeps the simulated speaker talking for many frames, long enough that "
    "its decode windows keep the decoder busy while other requests start and wait for their first token.",
]


@pytest.mark.parametrize(
    "simulator",
    # A fixed 0.3 s prefill and audio proportional to the prompt: short prompts give 1 frame (no decode
    # window), the long one 12 frames (9 windows of 0.1 s decode each).
    [SimConfig(token_ms=5.0, audio_frames=0, audio_frames_per_char=0.06, prefill_base_ms=300.0,
               prefill_ms_per_token=0.0)],
    indirect=True,
)  # fmt: skip
def test_slow_decode_runs_off_the_hub(tmp_path: Path, simulator: tuple[str, SimStats]) -> None:
    url, sim_stats = simulator
    locustfile = tmp_path / "slow_decode.py"
    locustfile.write_text(textwrap.dedent(SLOW_DECODE_LOCUSTFILE.format(decode_s=0.1)), encoding="utf-8")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(SHORT_AND_LONG_PROMPTS) + "\n", encoding="utf-8")
    run = run_locust(
        tmp_path, url, "-u", "3", "-r", "3", "-t", "5s", "--decode", "reference", "--prompts", str(prompts),
        locustfile=locustfile,
    )  # fmt: skip
    assert run.returncode == 0, run.log[-4000:]
    assert_one_record_per_request(run, sim_stats)
    decoded = [c for r in run.records for c in r.chunks]
    assert decoded and min(c.decode_s for c in decoded) >= 0.09  # the slow decoder really ran
    assert run.run_json["snac"]["description"] == "custom decoder SlowDecoder"
    # Requests started while another user's windows were decoding still see their first token on time: had
    # the 0.1 s decodes run on the hub, first tokens landing during one would be stamped up to 1 s late.
    first_token = [r.t_first_token_s for r in run.records if r.t_first_token_s is not None]
    late = [t for t in first_token if t > PREFILL_S + 0.08]
    assert len(first_token) >= 10 and len(late) <= 1, sorted(first_token)
    lag_p99 = run.run_json["levels"][0]["client"]["loop_lag_p99_ms"]
    assert lag_p99 < 100.0  # the hub never stalled for a decode


def test_real_llama_server_complete_utterances(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A bounded run of 2 users against llama-server with the tiny model, decoding every utterance with SNAC."""
    host = request.getfixturevalue("llama_server_np4")
    # 512 tokens leave room for the short prompts' utterances (about 50 frames): every request must complete.
    # Chunked decoding keeps two streams' SNAC within this 2-core machine (the reference window would queue).
    run = run_locust(
        tmp_path, host, "-u", "2", "-r", "2", "-t", "25s", "--max-tokens", "512", "--snac-model", "random",
        "--device", "cpu", "--decode", "chunked", "--prompt-set", "short", timeout_s=300.0,
    )  # fmt: skip
    assert run.returncode == 0, run.log[-4000:]  # no request failed
    done = [r for r in run.records if r.status is not Status.CANCELLED]
    assert done and all(r.complete and r.stop_reason == "word" for r in done), [r.outcome for r in done]
    assert all(r.pcm_samples > 0 and r.ttfa_s is not None and r.frames >= 30 for r in done)
    ids = [r.request_id for r in run.records]
    assert ids and len(ids) == len(set(ids))
    fired = [r for r in run.records if r.status is not Status.CANCELLED]
    assert run.locust_count("TTS total") == len(fired) == len(run.records)
    assert run.run_json["complete"] is True and run.run_json["snac"]["random_weights"] is True
    assert sum(r.warmup for r in run.records) == 2
    results = compile_run(run.run_dir)
    level = results.level(2)
    assert level.n == len(run.records) - 2 and level.n >= 2, run.log[-3000:]
    assert level.success_rate == 1.0 and level.cut_short == 0 and level.audio_s > 0
