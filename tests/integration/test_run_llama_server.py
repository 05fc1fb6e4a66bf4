"""`orpheus-bench run` against a real llama-server serving the tiny Orpheus-format model.

The 1-slot server must show TTFA growing with concurrency (requests queue for the slot); the 4-slot server much
less. The same pipeline assertions as against the simulator: valid frames, PCM sample counts, no invalid codes.
Tests that count tokens run on the fixed tiny model (it never ends speech); the default one ends each utterance
with the stop word after about 4.7 frames per word, and the records show it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.prompts import builtin
from orpheus_bench.records import read_records
from orpheus_bench.results.compile import compile_run
from orpheus_bench.scenario import scenario_from_dict

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_TOKENS = 70  # 10 frames per request: on the fixed tiny model, which never ends speech by itself


async def sweep(url: str, out: Path, decode: str = "off") -> list:
    sc = scenario_from_dict(
        {
            "host": url,
            "prompts": {"set": "short"},
            "sampling": {"max_tokens": MAX_TOKENS, "seed": 7},
            "decode": {"preset": decode, "snac_model": "random", "device": "cpu"},
            "load": {"concurrency": [1, 2, 4], "requests_per_level": 4},
        }
    )
    outcome = await execute_run(sc, out)
    assert outcome.complete
    return read_records(str(out / "requests.jsonl"))


def ttfa_p50_by_level(out: Path) -> dict[int, float]:
    return {lv.level: lv.ttfa_ms.p50 for lv in compile_run(out).levels}  # type: ignore[misc]


async def test_single_slot_queues_four_slots_do_not(
    llama_server_fixed_np1: str, llama_server_fixed_np4: str, tmp_path: Path
) -> None:
    one = await sweep(llama_server_fixed_np1, tmp_path / "np1")
    four = await sweep(llama_server_fixed_np4, tmp_path / "np4")
    for records in (one, four):
        assert len(records) == (1 + 4) + (2 + 4) + (4 + 4)
        assert all(r.ok for r in records), [r.error_message for r in records if not r.ok]
        for r in records:
            assert r.invalid_code_count == 0 and r.frames == MAX_TOKENS // 7
            assert r.timings is not None and r.timings.predicted_n == MAX_TOKENS
            assert r.stop_reason == "limit"
    t1 = ttfa_p50_by_level(tmp_path / "np1")
    t4 = ttfa_p50_by_level(tmp_path / "np4")
    # one slot: the 4th concurrent request waits for three whole generations
    assert t1[4] > 2.0 * t1[1], t1
    # four slots: growth at c=4 is clearly smaller than with one slot
    assert t4[4] / t4[1] < t1[4] / t1[1], (t4, t1)
    meta = json.loads((tmp_path / "np4" / "run.json").read_text())
    assert meta["doctor"] is not None and meta["server_props"] is not None
    assert (tmp_path / "np4" / "server.jsonl").read_text().strip()


async def test_decoded_stream_against_real_server(llama_server_fixed_np4: str, tmp_path: Path) -> None:
    sc = scenario_from_dict(
        {
            "host": llama_server_fixed_np4,
            "prompts": {"set": "short"},
            "sampling": {"max_tokens": MAX_TOKENS},
            "decode": {"preset": "reference", "snac_model": "random", "device": "cpu"},
            "load": {"concurrency": [2], "requests_per_level": 2},
        }
    )
    await execute_run(sc, tmp_path / "run", doctor=False)
    records = read_records(str(tmp_path / "run" / "requests.jsonl"))
    assert len(records) == 4
    for r in records:
        assert r.ok, r.error_message
        assert r.pcm_samples == (MAX_TOKENS // 7 - 3) * 2048
        assert r.ttfa_s > r.t_first_audio_token_s  # type: ignore[operator]


async def test_records_of_utterances_that_end_by_the_stop_word(llama_server_np4: str, tmp_path: Path) -> None:
    sc = scenario_from_dict(
        {
            "host": llama_server_np4,
            "prompts": {"set": "short"},  # the scenario's default sampling: max_tokens 512, stop <custom_token_2>
            "decode": {"preset": "off"},
            "load": {"concurrency": [2], "requests_per_level": 4},
        }
    )
    await execute_run(sc, tmp_path / "run", doctor=False)
    records = read_records(str(tmp_path / "run" / "requests.jsonl"))
    words = {p.id: len(p.text.split()) for p in builtin("short")}
    assert len(records) == 2 + 4
    for r in records:
        assert r.ok and r.stop_reason == "word", (r.stop_reason, r.error_message)
        assert r.invalid_code_count == 0 and r.audio_tokens == 7 * r.frames  # whole frames
        assert 4 <= r.frames / words[r.prompt_id] <= 6, (r.prompt_id, r.frames)
        assert r.timings is not None and r.timings.predicted_n is not None and r.timings.predicted_n < 512
