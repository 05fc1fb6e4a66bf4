"""compile_records / compile_run against hand-computed values: warmup exclusion, measured window, rates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from record_factory import new_record
from synthetic_runs import write_run_dir

from orpheus_bench.audio.wav import write_wav
from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.metrics import max_concurrency
from orpheus_bench.records import AudioChunk, ErrorClass, ServerTimings, Status
from orpheus_bench.results.compile import compile_records, compile_run, level_label

pytestmark = pytest.mark.unit


def level_two(make_record):  # type: ignore[no-untyped-def]
    """Level 2: two warmups (one ends far later than everything) and five measured requests.

    measured: r2 start 1.0 total 1.0 (end 2.0), r3 start 1.0 total 1.5 (end 2.5), r4 start 2.0 total 2.0
    (end 4.0), r5 start 2.5 http error ending 2.55, r6 cancelled at 3.0 (end 3.1).
    window = 4.0 - 1.0 = 3.0 s. In flight when each was sent (sent by then minus ended by then): r2 and r3 at
    1.0: 4 - 1 = 3; r4 at 2.0: 5 - 2 = 3; r5 at 2.5: 6 - 3 = 3; all >= 2, so r2..r5 are the steady-state rows.
    Throughput = 2 x 3 successes / (1.0 + 1.5 + 2.0 + 0.05) s of latency = 6 / 4.55 = 1.3187 req/s.
    """
    return [
        make_record(level=2, seq=0, warmup=True, start=0.0, ttfa=0.05, total=0.6),
        make_record(level=2, seq=1, warmup=True, start=0.0, ttfa=0.05, total=9.0),
        make_record(level=2, seq=2, start=1.0, ttfa=0.1, total=1.0),
        make_record(level=2, seq=3, start=1.0, ttfa=0.2, total=1.5),
        make_record(level=2, seq=4, start=2.0, ttfa=0.3, total=2.0),
        make_record(level=2, seq=5, start=2.5, total=0.05, error=ErrorClass.HTTP),
        make_record(level=2, seq=6, start=3.0, total=0.1, error=ErrorClass.CANCELLED, status=Status.CANCELLED),
    ]


def test_level_statistics_by_hand(make_record) -> None:  # type: ignore[no-untyped-def]
    res = compile_records(level_two(make_record))
    lv = res.level(2)
    assert (lv.n, lv.n_warmup, lv.ok, lv.cancelled) == (5, 2, 3, 1)
    assert lv.success_rate == pytest.approx(3 / 4)  # cancelled are not counted against the server
    assert lv.errors == {"cancelled": 1, "http": 1}
    assert lv.ttfa_ms.mean == pytest.approx(200.0)
    assert lv.ttfa_ms.p50 == pytest.approx(200.0)
    assert lv.ttfa_ms.p90 == pytest.approx(280.0)
    assert (lv.ttfa_ms.min, lv.ttfa_ms.max) == (pytest.approx(100.0), pytest.approx(300.0))
    assert lv.total_ms.mean == pytest.approx(1500.0)
    assert lv.window_s == pytest.approx(3.0)
    assert lv.throughput_rps == pytest.approx(6 / 4.55)
    assert "steady state: the 4 of 4 measured requests" in lv.throughput_basis
    assert lv.audio_s == pytest.approx(3.0)  # three ok requests of 24000 samples
    assert lv.audio_s_per_wall_s == pytest.approx(2 * 3.0 / 4.55)
    assert lv.rtf.p50 == pytest.approx(1.5)  # 1.0, 1.5 and 2.0 wall s per audio s
    assert lv.label == "2 workers"


def test_throughput_rests_on_requests_sent_at_full_concurrency(make_record) -> None:  # type: ignore[no-untyped-def]
    recs = level_two(make_record)
    # Without the warmups, an early request sent alone at 0.0 (one in flight, not two) counts as measured.
    early_alone = [*recs[2:], make_record(level=2, seq=9, start=0.0, ttfa=0.05, total=0.6)]
    lv = compile_records(early_alone).level(2)
    # It stretches the display window to 4.0 s, but throughput still rests on r2..r5 only: 2 x 3 / 4.55.
    assert lv.window_s == pytest.approx(4.0)
    assert lv.throughput_rps == pytest.approx(6 / 4.55)
    assert "the 4 of 5 measured requests" in lv.throughput_basis


def test_throughput_without_a_held_level_falls_back_to_the_window(make_record) -> None:  # type: ignore[no-untyped-def]
    # Two workers that never had two requests in flight: successes / (first measured send -> last measured end).
    recs = [make_record(level=2, seq=i, start=float(i), ttfa=0.1, total=0.5) for i in range(4)]
    lv = compile_records(recs).level(2)
    assert lv.throughput_rps == pytest.approx(4 / 3.5)
    assert "never held" in lv.throughput_basis


def test_invalid_codes_tokens_and_decode_lag(make_record) -> None:  # type: ignore[no-untyped-def]
    a = make_record(seq=0, audio_tokens=700, invalid_codes=[0, 1, 0, 2, 0, 0, 0], tokens_generated=701)
    a.chunks = [AudioChunk(0.1, 12_000, 0.09), AudioChunk(0.6, 12_000, 0.55)]
    a.t_first_token_s, a.t_last_token_s = 0.05, 0.75
    b = make_record(
        seq=1, start=1.0, total=0.05, audio_tokens=300, invalid_codes=[0, 0, 0, 1, 0, 0, 0], error=ErrorClass.HTTP
    )
    lv = compile_records([a, b]).level(1)
    assert lv.invalid_codes == (0, 1, 0, 3, 0, 0, 0)  # failed requests' codes count too
    assert lv.audio_tokens == 1000
    assert lv.invalid_code_rate == pytest.approx(4 / 1000)
    assert lv.decode_lag_ms.p50 == pytest.approx(30.0)  # lags 10 ms and 50 ms
    assert lv.decode_lag_ms.max == pytest.approx(50.0)
    assert lv.stream_tokens_per_s.p50 == pytest.approx(701 / 0.7)
    assert lv.tokens_per_s == pytest.approx(701 / 1.05)  # window 0.0 -> end of b at 1.05


def test_ttfa_split_parts_add_up(make_record) -> None:  # type: ignore[no-untyped-def]
    recs = []
    for i, (first_token, window, pcm, prompt_ms) in enumerate([(0.05, 0.12, 0.15, 20.0), (0.09, 0.20, 0.25, 30.0)]):
        r = make_record(seq=i, start=float(i), ttfa=pcm, total=1.0)
        r.t_first_token_s, r.t_first_window_s = first_token, window
        r.timings = ServerTimings(prompt_n=10, prompt_ms=prompt_ms)
        recs.append(r)
    split = compile_records(recs).level(1).ttfa_split
    assert split.n == 2
    assert split.prefill_ms == pytest.approx(25.0)
    assert split.queue_ms == pytest.approx(((50 - 20) + (90 - 30)) / 2)
    assert split.to_first_token_ms == pytest.approx(70.0)
    assert split.generation_ms == pytest.approx(((120 - 50) + (200 - 90)) / 2)
    assert split.decode_ms == pytest.approx(((150 - 120) + (250 - 200)) / 2)
    parts = split.queue_ms + split.prefill_ms + split.generation_ms + split.decode_ms  # type: ignore[operator]
    assert parts == pytest.approx(split.ttfa_ms)
    recs[1].timings = None  # one request without server timings: prefill/queue cannot be split honestly
    split = compile_records(recs).level(1).ttfa_split
    assert split.prefill_ms is None and split.queue_ms is None and split.to_first_token_ms == pytest.approx(70.0)


def test_client_bound_from_run_json_or_records(make_record) -> None:  # type: ignore[no-untyped-def]
    recs = [make_record(level=1, seq=0), make_record(level=4, seq=0)]
    run_json = {"levels": [{"level": 1, "label": "c=1", "client_bound": True, "client": {"loop_lag_p99_ms": 40.0}}]}
    res = compile_records(recs, run_json)
    assert res.level(1).client_bound and res.level(1).client == {"loop_lag_p99_ms": 40.0}
    assert not res.level(4).client_bound
    # A request whose chunks waited past the threshold on the client's decode queue is client-bound itself.
    recs[1].chunks = [AudioChunk(t_ready_s=0.1, samples=24_000, t_tokens_s=0.0, queue_s=0.5, window=0)]
    res = compile_records(recs, run_json)
    assert res.summary.client_bound_levels == (1, 4)
    assert any(w.startswith("Client-bound at 1 worker, 4 workers") for w in res.warnings)


def test_max_concurrency_definition(make_record) -> None:  # type: ignore[no-untyped-def]
    def run(rates: dict[int, int]):  # type: ignore[no-untyped-def]
        recs = []
        for level, fails in rates.items():
            for i in range(100):
                err = ErrorClass.HTTP if i < fails else None
                recs.append(make_record(level=level, seq=i, start=float(i), error=err))
        return compile_records(recs)

    res = run({1: 0, 2: 1, 4: 2, 8: 0})  # 4 is below 99%: the limit is 2 even though 8 passed again
    assert (res.summary.max_concurrency, res.summary.max_concurrency_open) == (2, False)
    res = run({1: 0, 2: 0, 4: 1})
    assert (res.summary.max_concurrency, res.summary.max_concurrency_open) == (4, True)
    res = run({1: 5})
    assert res.summary.max_concurrency is None
    assert max_concurrency({}) == (None, False)


def test_level_labels() -> None:
    assert level_label(1, None) == "1 worker"
    assert level_label(4, "c=4") == "4 workers"
    assert level_label(2, "rate=2.0") == "rate=2.0"


def test_summary_and_prompts(make_record) -> None:  # type: ignore[no-untyped-def]
    extra = make_record(level=1, seq=0, ttfa=0.09, total=0.5, prompt="A longer prompt.", prompt_id="p1")
    recs = [*level_two(make_record), extra]
    res = compile_records(recs)
    s = res.summary
    assert (s.requests, s.warmup, s.measured, s.ok) == (8, 2, 6, 4)
    assert s.success_rate == pytest.approx(4 / 5)
    assert s.best_ttfa_level == 1 and s.best_ttfa_mean_ms == pytest.approx(90.0)
    assert s.max_throughput_level == 1 and s.max_throughput_rps == pytest.approx(2.0)  # 1 ok / 0.5 s
    assert [p.prompt_id for p in res.prompts] == ["p0", "p1"]  # shortest first
    assert res.prompts[0].n == 5 and res.prompts[0].ok == 3


def test_compile_run_reads_a_directory(tmp_path: Path, make_record) -> None:  # type: ignore[no-untyped-def]
    recs = level_two(make_record)
    recs[2].extra["audio_file"] = "audio/first.wav"
    recs[3].extra["audio_file"] = "../../etc/passwd"  # must never leave the run directory
    write_wav(tmp_path / "run" / "audio" / "first.wav", np.zeros(2400))
    write_wav(tmp_path / "run" / "audio" / f"{recs[4].request_id}.wav", np.zeros(2400))
    write_wav(tmp_path / "run" / "audio" / "stray.wav", np.zeros(2400))
    run_json = {
        "name": "after",
        "driver": "locust",
        "complete": False,
        "scenario": {"mode": "stream", "protocol": "native", "api_key": "sk-secret"},
        "snac": {"spec": "random", "random_weights": True},
        "levels": [{"level": 2, "label": "c=2", "started_s": 0.0, "ended_s": 9.0, "client_bound": False}],
        "client_host": "box",
    }
    samples = [
        {
            "t_s": 0.0,
            "requests_processing": 1,
            "requests_deferred": 0,
            "tokens_predicted_total": 100,
            "slots_busy": None,
            "n_busy_slots": 1.5,
        },
        {
            "t_s": 0.5,
            "metrics": {"requests_processing": 2},
            "tokens_predicted_total": 150,
            "slots": [{"is_processing": True}, {"is_processing": False}],
        },
        {"t_s": 1.0, "error": "scrape failed"},
    ]
    d = write_run_dir(tmp_path / "run", recs, run_json, server_samples=samples)
    with (d / "requests.jsonl").open("a") as fh:
        fh.write(
            '{"request_id": "torn',
        )  # a crash mid-write
    res = compile_run(d)
    assert res.meta.name == "after" and res.meta.driver == "locust" and res.meta.complete is False
    assert res.meta.snac_random is True
    assert res.meta.scenario["api_key"] == "<redacted>"
    assert "sk-secret" not in json.dumps(res.to_dict())
    assert res.meta.other["client_host"] == "box"
    assert res.level(2).started_run_s == 0.0 and res.level(2).ended_run_s == 9.0
    assert any("did not complete" in w for w in res.warnings)
    assert any("audio is noise" in w for w in res.warnings)
    assert [a.rel_path for a in res.audio] == ["audio/first.wav", f"audio/{recs[4].request_id}.wav", "audio/stray.wav"]
    assert res.audio[0].request_id == recs[2].request_id and res.audio[2].request_id is None
    assert [s.t_run_s for s in res.server] == [0.0, 0.5, 1.0]
    assert res.server[0].busy_slots == 1.5 and res.server[1].busy_slots == 1.0  # n_busy_slots, then /slots list
    assert res.server[1].processing == 2.0
    assert res.server[0].tokens_per_s is None and res.server[1].tokens_per_s == pytest.approx(100.0)
    assert res.server[2].busy_slots is None


def test_compile_run_without_run_json_and_missing_dir(tmp_path: Path, make_record) -> None:  # type: ignore[no-untyped-def]
    d = write_run_dir(tmp_path / "bare", [make_record()])
    res = compile_run(d)
    assert res.meta.name == "bare" and res.meta.driver == "aiohttp" and res.meta.complete is None
    with pytest.raises(ConfigError):
        compile_run(tmp_path / "nothing")


def test_to_dict_is_json_ready(make_record) -> None:  # type: ignore[no-untyped-def]
    res = compile_records(level_two(make_record))
    data = json.loads(json.dumps(res.to_dict()))
    assert data["levels"][0]["stalls"][0]["stall_rate"] == 0.0
    assert data["summary"]["measured"] == 5


def test_levels_sharing_an_integer_are_flagged(make_record) -> None:  # type: ignore[no-untyped-def]
    a = make_record(level=1, seq=0, level_label="rate=0.5/s")
    b = make_record(level=1, seq=1, start=2.0, level_label="rate=1/s")
    res = compile_records([a, b])
    assert len(res.levels) == 1
    assert any("several load levels (rate=0.5/s, rate=1/s)" in w for w in res.warnings)


def test_decode_off_runs_say_what_ttfa_means() -> None:
    from orpheus_bench.results.compile import compile_records

    rec = new_record(
        seq=1,
        driver="aiohttp",
        t_first_pcm_s=0.1,
        t_end_s=0.5,
        pcm_samples=2048,
    )
    off = compile_records([rec], {"snac": {"decode": {"mode": "off"}}})
    on = compile_records([rec], {"snac": {"decode": {"mode": "reference"}}})
    assert any("Decoding was off" in w for w in off.warnings)
    assert not any("Decoding was off" in w for w in on.warnings)
