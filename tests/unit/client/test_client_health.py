"""Client-bound verdicts: per record (decode backlog) and per level (loop lag, decode queue)."""

from __future__ import annotations

import pytest
from record_factory import new_record

from orpheus_bench.levels import LevelOutcome, LevelPlan
from orpheus_bench.records import AudioChunk, RequestRecord

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
