"""The calibration's fast version: replayed runs follow the timing model; fixed-seed A/A and A/B error rates."""

from __future__ import annotations

from typing import Any

import pytest

from orpheus_bench.core.prompt import format_prompt
from orpheus_bench.gate.calibrate import (
    Rate,
    calibrate,
    replay_level,
    replay_pairs,
    replay_run,
    rule_alarms,
    tally,
)
from orpheus_bench.gate.engine import evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.measures import metrics
from orpheus_bench.measures.query import Query
from orpheus_bench.sim.config import SimConfig
from orpheus_bench.sim.timing import estimate_prompt_tokens

pytestmark = pytest.mark.unit

TEXT = "Hello there, thanks for calling. How can I help you today?"


def test_wilson_interval() -> None:
    low, high = Rate(0, 20).interval
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-3)
    low, high = Rate(5, 10).interval
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert Rate(0, 0).interval == (0.0, 1.0)


def test_replay_without_jitter_follows_the_timing_model() -> None:
    cfg = SimConfig(token_ms=10.0, audio_frames=8, jitter=0.0, busy_alpha=0.0)
    records = replay_level(cfg, [TEXT], level=1, requests=3)
    assert [r.warmup for r in records] == [True, False, False, False]
    tokens = estimate_prompt_tokens(format_prompt(TEXT, "tara"))
    first, second = records[0], records[1]
    # Cold slot: the whole prompt is evaluated; then the first window needs 28 audio tokens (27 more steps).
    assert first.t_first_token_s == pytest.approx((2.0 + 0.5 * tokens) / 1000)
    assert first.t_first_pcm_s == pytest.approx((2.0 + 0.5 * tokens + 27 * 10.0) / 1000)
    assert first.t_end_s == pytest.approx((2.0 + 0.5 * tokens + 56 * 10.0) / 1000)  # 56 audio + end of speech
    # The same prompt again: all but one token come from the slot's cache.
    assert second.t_first_token_s == pytest.approx(2.5 / 1000)
    assert second.run_offset_s == pytest.approx(first.t_end_s)
    assert len(first.chunks) == 5 and first.audio_tokens == 56


def test_replay_queues_beyond_the_slots() -> None:
    cfg = SimConfig(token_ms=5.0, audio_frames=8, jitter=0.0, slots=2)
    run = replay_run(cfg, [TEXT], levels=[2, 4], requests=20)
    c2, c4 = run.tables[2], run.tables[4]
    assert c2.n == c4.n == 20 and c4.n_warmup == 4
    p50_2, p50_4 = (metrics.estimate(t, Query("ttfa_ms", "p50")) for t in (c2, c4))
    assert p50_2 is not None and p50_4 is not None and p50_4 > 1.5 * p50_2
    # Two slots serve the same requests at 2 or 4 workers: the steady-state throughput cannot grow past 2.
    tp_2, tp_4 = (metrics.estimate(t, Query("throughput_rps")) for t in (c2, c4))
    assert tp_2 is not None and tp_4 == pytest.approx(tp_2, rel=0.02)
    assert run.run_json["complete"] is True


def test_fixed_seed_calibration_no_false_alarm_and_detects_20_percent() -> None:
    rules = rules_from_dict({"relative": ["ttfa_ms p50 regress <= 5%"]})
    cfg = SimConfig(token_ms=10.0, audio_frames=6, jitter=0.5)
    reports = replay_pairs(rules, cfg, [TEXT], levels=[2], requests=40, pairs=6, slowdowns=[0.2], seed=1)
    (aa, ab) = calibrate(reports)
    assert aa.pairs == ab.pairs == 6
    assert aa.any_rule.k == 0
    assert ab.any_rule.k == 6
    assert aa.unusable == ab.unusable == 0
    # Re-deciding at another tolerance uses the same intervals: a 60% tolerance hides a 20% slowdown.
    assert sum(rule_alarms(r, 0.6)["ttfa_ms p50"] for r in reports[0.2]) == 0


def test_tally_counts_precondition_failures_apart(kit: Any) -> None:
    base = kit.run("base", kit.level_records(8, kit.spread(0.2)))
    flagged = [{"level": 8, "label": "c=8", "client_bound": True, "client_bound_reasons": ["event-loop lag"]}]
    cand = kit.run("cand", kit.level_records(8, kit.spread(0.2)), levels=flagged)
    rules = rules_from_dict({"relative": ["ttfa_ms p50 regress <= 5%"]})
    reports = [evaluate(rules, cand, base), evaluate(rules, base, base)]
    result = tally("A/A", 0.0, reports)
    assert result.any_rule.k == 1 and result.preconditions == 1 and result.pairs == 2
    # Re-deciding at another tolerance cannot clear a precondition failure.
    assert rule_alarms(reports[0], 0.5) == {"ttfa_ms p50": True}
