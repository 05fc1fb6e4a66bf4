"""The record: JSON round trip, tolerant reading, and derived numbers against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orpheus_bench.records import AudioChunk, ErrorClass, RequestRecord, ServerTimings, Status, read_records

pytestmark = pytest.mark.unit


def make() -> RequestRecord:
    r = RequestRecord(
        request_id="abc",
        level=4,
        worker=1,
        seq=7,
        warmup=False,
        prompt_id="p/1",
        prompt="<script>x</script>",
        voice="tara",
        mode="stream",
        protocol="native",
        driver="aiohttp",
        wall_start=1700000000.0,
        run_offset_s=3.0,
        t_first_token_s=0.120,
        t_first_window_s=0.200,
        t_first_pcm_s=0.250,
        t_end_s=2.0,
        pcm_samples=48_000,
        timings=ServerTimings(prompt_n=30, prompt_ms=20.0, predicted_n=280, predicted_ms=900.0),
    )
    r.chunks = [AudioChunk(t_ready_s=0.25, samples=2048, t_tokens_s=0.2, decode_s=0.04, queue_s=0.01)]
    r.invalid_codes = [0, 2, 0, 0, 1, 0, 0]
    return r


def test_derived_numbers() -> None:
    r = make()
    assert r.ttfa_s == 0.250 and r.audio_seconds == 2.0
    assert r.rtf == pytest.approx(1.0)  # 2 s wall for 2 s of audio
    assert r.invalid_code_count == 3
    assert r.end_offset_run_s == pytest.approx(5.0)
    # TTFA split: 100 ms queue (derived) + 20 ms prefill = 120 ms first token; + 80 ms + 50 ms = 250 ms
    assert r.prefill_s == pytest.approx(0.020)
    assert r.queue_s == pytest.approx(0.100)
    assert r.generation_to_window_s == pytest.approx(0.080)
    assert r.first_decode_s == pytest.approx(0.050)
    assert r.queue_s + r.prefill_s + r.generation_to_window_s + r.first_decode_s == pytest.approx(r.ttfa_s)
    assert r.chunks[0].lag_s == pytest.approx(0.05)


def test_round_trip_and_unknown_keys() -> None:
    r = make()
    r.fail(ErrorClass.DISCONNECT, "gone")
    r.fail(ErrorClass.TIMEOUT, "later failures do not overwrite the first")
    data = json.loads(r.to_json())
    data["field_from_a_newer_version"] = 1
    back = RequestRecord.from_dict(data)
    assert back == r
    assert back.status is Status.ERROR and back.error_class is ErrorClass.DISCONNECT


def test_read_records_skips_a_torn_last_line(tmp_path: Path) -> None:
    p = tmp_path / "requests.jsonl"
    p.write_text(make().to_json() + "\n" + make().to_json()[:40])
    assert len(read_records(str(p))) == 1


def test_no_audio_means_no_rtf() -> None:
    r = make()
    r.pcm_samples = 0
    assert r.rtf is None


@pytest.mark.parametrize(
    ("fields", "outcome", "limit"),
    [
        ({"end_of_speech": True, "stop_reason": "limit"}, "complete", None),  # <custom_token_2> was streamed
        ({"stop_reason": "word"}, "complete", None),  # the stop string (end of speech) matched
        ({"stop_reason": "eos"}, "complete", None),
        ({"stop_reason": "stop"}, "complete", None),  # openai finish_reason for both
        ({"stop_reason": "limit", "truncated": False}, "cut_short", "max_tokens"),
        ({"stop_reason": "length"}, "cut_short", "max_tokens"),
        ({"stop_reason": "limit", "truncated": True}, "cut_short", "slot_context"),
        ({"stop_reason": None}, "cut_short", "no_end_of_speech"),
    ],
)
def test_outcome_complete_or_cut_short(fields: dict[str, object], outcome: str, limit: str | None) -> None:
    r = make()
    for name, value in fields.items():
        setattr(r, name, value)
    assert r.outcome == outcome and r.cut_limit == limit
    assert r.complete is (outcome == "complete") and r.cut_short is (outcome == "cut_short")


def test_failed_request_is_neither_complete_nor_cut_short() -> None:
    r = make()
    r.stop_reason = "word"
    r.fail(ErrorClass.DISCONNECT, "gone")
    assert r.outcome == "disconnect" and not r.complete and not r.cut_short and r.cut_limit is None


def test_client_bound_is_derived_from_decode_queue_waits() -> None:
    r = make()
    assert not r.client_bound
    r.chunks = [AudioChunk(t_ready_s=1.0, samples=2048, t_tokens_s=0.5, queue_s=0.2, window=i) for i in range(5)]
    assert r.client_bound  # p90 of the queue waits is 200 ms > 100 ms
    assert "client_bound" not in json.loads(r.to_json())  # derived, never stored
