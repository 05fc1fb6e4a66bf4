"""Throughput measures the server: closed loops replayed against FIFO servers of known service rate.

The replay is the simulator's own discrete-event model (`sim.timing.simulate_schedule`, through the gate's
calibration replay): a request holds one of ``k`` slots for a fixed service time (no per-token slowdown, no
prefill, no jitter), so the server's true rate is ``min(c, k) / service`` at ``c`` concurrent workers. Warmups
queue in front of the first measured requests and the level drains at its end, which is what biased the old
first-send-to-last-end window.
"""

from __future__ import annotations

import pytest

from orpheus_bench.gate.calibrate import replay_level
from orpheus_bench.measures import metrics
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.table import level_tables
from orpheus_bench.sim.config import SimConfig

pytestmark = pytest.mark.unit

FRAMES = 2  # 14 audio tokens + the stop word = 15 steps of 10 ms: the first at 0 (no prefill), 14 x 10 ms after
SERVICE_S = 14 * 0.010
PROMPTS = ["Hello there."]


def fifo(slots: int) -> SimConfig:
    return SimConfig(
        slots=slots, token_ms=10.0, busy_alpha=0.0, prefill_base_ms=0.0, prefill_ms_per_token=0.0, jitter=0.0,
        audio_frames=FRAMES, slot_prompt_similarity=1.0,
    )  # fmt: skip


def measured_throughput(slots: int, concurrency: int, requests: int, jitter: float = 0.0, seed: int = 0) -> float:
    config = fifo(slots).model_copy(update={"jitter": jitter, "seed": seed})
    records = replay_level(config, PROMPTS, level=concurrency, requests=requests)
    (table,) = level_tables(records)
    value = metrics.estimate(table, Query("throughput_rps"))
    assert value is not None
    return value


def test_service_time_of_the_replayed_server() -> None:
    (one,) = [r for r in replay_level(fifo(1), PROMPTS, level=1, requests=1) if not r.warmup]
    assert one.t_end_s == pytest.approx(SERVICE_S)


@pytest.mark.parametrize("slots", [1, 4])
def test_throughput_within_5_percent_of_the_true_rate_and_never_declining(slots: int) -> None:
    for multiple in (1, 2, 5, 10):
        previous = 0.0
        for c in range(1, 33):
            true_rate = min(c, slots) / SERVICE_S
            got = measured_throughput(slots, c, multiple * c)
            assert got == pytest.approx(true_rate, rel=0.05), (slots, c, multiple * c)
            assert got >= previous * (1 - 1e-9), (slots, c, multiple * c)  # a constant-rate server never declines
            previous = got


def test_the_issue_example_is_no_longer_biased_low() -> None:
    # A 1-slot FIFO server at a constant rate; 12 workers x 8 measured requests reported 0.42x its rate when the
    # window ran from the first measured send (while 11 warmups still queued) to the last end.
    got = measured_throughput(1, 12, 8)
    assert got == pytest.approx(1 / SERVICE_S, rel=0.01)


def test_jittered_service_is_unbiased_on_average() -> None:
    # Lognormal jitter (sigma 0.2) on every step: the mean over seeds stays within 5% of the true rate.
    for slots, c in ((1, 8), (4, 4), (4, 16)):
        values = [measured_throughput(slots, c, 5 * c, jitter=0.2, seed=s) for s in range(12)]
        assert sum(values) / len(values) == pytest.approx(min(c, slots) / SERVICE_S, rel=0.05), (slots, c)


def test_throughput_interval_brackets_the_estimate() -> None:
    records = replay_level(fifo(2).model_copy(update={"jitter": 0.2}), PROMPTS, level=4, requests=40)
    (table,) = level_tables(records)
    iv = metrics.interval(table, Query("throughput_rps"), n_resamples=500)
    assert iv.low is not None and iv.high is not None and iv.estimate is not None
    assert iv.low < iv.estimate < iv.high
    assert "steady state" in table.throughput_basis()
