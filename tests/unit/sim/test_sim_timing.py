"""The simulator's pure timing model: prompt token estimates, slot pool, and the discrete-event replay."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from orpheus_bench.sim.timing import (
    Arrival,
    SlotPool,
    TimingModel,
    cached_prompt_tokens,
    common_prefix_len,
    estimate_prompt_tokens,
    simulate_schedule,
)

pytestmark = pytest.mark.unit

ORPHEUS_PROMPT = "<custom_token_3><|begin_of_text|>tara: Hello there!<|eot_id|><custom_token_4><custom_token_5>"


def test_prompt_tokens_count_specials_once_and_text_by_four_chars() -> None:
    # 5 special tokens + "tara: Hello there!" (18 chars -> 5 tokens)
    assert estimate_prompt_tokens(ORPHEUS_PROMPT) == 10
    assert estimate_prompt_tokens("abcd") == 1
    assert estimate_prompt_tokens("abcde") == 2
    assert estimate_prompt_tokens("") == 0
    assert estimate_prompt_tokens([1, 2, 3]) == 3


def test_cached_tokens_reuse_shared_prefix_but_reevaluate_last_token() -> None:
    n = estimate_prompt_tokens(ORPHEUS_PROMPT)
    assert cached_prompt_tokens(ORPHEUS_PROMPT, ORPHEUS_PROMPT) == n - 1
    assert cached_prompt_tokens("", ORPHEUS_PROMPT) == 0
    assert cached_prompt_tokens("zzz", ORPHEUS_PROMPT) == 0
    # Shared: "<custom_token_3><|begin_of_text|>tara: " = 2 specials + 6 chars -> 2 + 1 whole text token.
    other = "<custom_token_3><|begin_of_text|>tara: Goodbye now.<|eot_id|>"
    assert cached_prompt_tokens(ORPHEUS_PROMPT, other) == 3


@pytest.mark.parametrize(
    ("a", "b", "n"), [("", "", 0), ("abc", "abc", 3), ("abc", "abd", 2), ("abc", "ab", 2), ("x", "y", 0)]
)
def test_common_prefix_len(a: str, b: str, n: int) -> None:
    assert common_prefix_len(a, b) == n


def test_common_prefix_len_is_fast_on_huge_prompts() -> None:
    big = "x" * 5_000_000
    assert common_prefix_len(big + "a", big + "b") == 5_000_000
    assert common_prefix_len("y" + big, big) == 0


def test_token_time_grows_with_busy_slots() -> None:
    model = TimingModel(token_ms=10.0, busy_alpha=0.5)
    assert model.token_s(1) == pytest.approx(0.010)
    assert model.token_s(3) == pytest.approx(0.020)
    assert model.token_s(0) == pytest.approx(0.010)


def test_prefill_counts_evaluated_tokens_and_cold_start() -> None:
    model = TimingModel(prefill_base_ms=2.0, prefill_ms_per_token=0.5, cold_start_ms=100.0)
    assert model.prefill_s(10) == pytest.approx(0.007)
    assert model.prefill_s(10, cold=True) == pytest.approx(0.107)


def test_jitter_is_mean_one_and_off_by_default() -> None:
    rng = random.Random(1)
    assert TimingModel().jitter_factor(rng) == 1.0
    assert rng.random() == random.Random(1).random()  # not advanced without jitter
    model = TimingModel(jitter=0.3)
    factors = [model.jitter_factor(rng) for _ in range(20_000)]
    assert statistics.fmean(factors) == pytest.approx(1.0, abs=0.02)
    assert statistics.pstdev(factors) > 0.2
    assert min(factors) > 0


# ---- slot pool -------------------------------------------------------------------------------------------


def test_pool_queues_fifo_and_hands_freed_slot_to_head() -> None:
    pool = SlotPool(1, similarity=0.0)
    first = pool.submit(1, "a")
    assert first is not None and first.slot_id == 0
    assert pool.submit(2, "b") is None
    assert pool.submit(3, "c") is None
    assert (pool.busy, pool.deferred) == (1, 2)
    nxt = pool.release(0)
    assert nxt is not None and nxt.ticket == 2 and nxt.cached_prompt == "a"
    nxt = pool.release(0)
    assert nxt is not None and nxt.ticket == 3
    assert pool.release(0) is None
    assert (pool.busy, pool.deferred) == (0, 0)


def test_pool_cancel_removes_queued_request() -> None:
    pool = SlotPool(1)
    pool.submit(1, "a")
    pool.submit(2, "b")
    pool.submit(3, "c")
    assert pool.cancel(2)
    assert not pool.cancel(2)
    assert not pool.cancel(1)  # admitted, not queued
    nxt = pool.release(0)
    assert nxt is not None and nxt.ticket == 3


def test_pool_prefers_slot_with_cached_prompt_else_least_recently_used() -> None:
    pool = SlotPool(2, similarity=0.5)
    a = pool.submit(1, "hello world one")
    b = pool.submit(2, "something else")
    assert a is not None and b is not None and a.slot_id != b.slot_id
    pool.release(a.slot_id)
    pool.release(b.slot_id)
    again = pool.submit(3, "hello world two")
    assert again is not None and again.slot_id == a.slot_id
    assert again.cached_prompt == "hello world one"
    pool.release(again.slot_id)
    unrelated = pool.submit(4, "zzz")
    assert unrelated is not None and unrelated.slot_id == b.slot_id  # least recently used


def test_release_of_idle_slot_is_an_error() -> None:
    with pytest.raises(ValueError):
        SlotPool(1).release(0)


# ---- discrete-event replay ---------------------------------------------------------------------------------

FLAT = TimingModel(token_ms=10.0, busy_alpha=0.0, prefill_base_ms=5.0, prefill_ms_per_token=0.0)


def test_one_slot_serialises_concurrent_requests() -> None:
    arrivals = [Arrival(0.0, prompt_tokens=4, steps=3, cache_prompt=False) for _ in range(4)]
    out = simulate_schedule(FLAT, 1, arrivals)
    # each request: 5 ms prefill, first step at prefill end, two more steps of 10 ms -> 25 ms
    for k, s in enumerate(out):
        assert s.t_start_s == pytest.approx(0.025 * k)
        assert s.queue_s == pytest.approx(0.025 * k)
        assert s.t_first_step_s == pytest.approx(0.025 * k + 0.005)
        assert s.t_end_s == pytest.approx(0.025 * (k + 1))
        assert s.slot_id == 0
    starts = [s.t_start_s for s in out]
    assert starts == sorted(starts)


def test_enough_slots_means_no_queueing() -> None:
    arrivals = [Arrival(0.0, 4, 3, cache_prompt=False) for _ in range(4)]
    out = simulate_schedule(FLAT, 4, arrivals)
    assert all(s.queue_s == 0 for s in out)
    assert all(s.t_end_s == pytest.approx(0.025) for s in out)
    assert len({s.slot_id for s in out}) == 4


def test_busy_slots_slow_every_step() -> None:
    model = TimingModel(token_ms=10.0, busy_alpha=0.5, prefill_base_ms=0.0, prefill_ms_per_token=0.0)
    alone = simulate_schedule(model, 4, [Arrival(0.0, 1, 11)])[0]
    together = simulate_schedule(model, 4, [Arrival(0.0, 1, 11, cache_prompt=False) for _ in range(3)])
    assert alone.t_end_s == pytest.approx(0.100)
    # three busy slots: 10 ms * (1 + 0.5 * 2) = 20 ms per step
    assert all(s.t_end_s == pytest.approx(0.200) for s in together)


def test_slowdown_ends_when_other_requests_finish() -> None:
    model = TimingModel(token_ms=10.0, busy_alpha=1.0, prefill_base_ms=0.0, prefill_ms_per_token=0.0)
    short, long_ = simulate_schedule(model, 2, [Arrival(0.0, 1, 3), Arrival(0.0, 1, 6, prompt="x")])
    assert short.t_end_s == pytest.approx(0.040)  # two steps at 20 ms with both busy
    gaps = [b - a for a, b in itertools.pairwise(long_.step_times_s)]
    assert gaps[0] == pytest.approx(0.020)
    assert gaps[-1] == pytest.approx(0.010)  # alone again


def test_cold_start_delays_only_the_first_request() -> None:
    model = TimingModel(token_ms=1.0, busy_alpha=0.0, prefill_base_ms=0.0, prefill_ms_per_token=0.0, cold_start_ms=500)
    out = simulate_schedule(model, 2, [Arrival(0.0, 1, 1), Arrival(1.0, 1, 1)])
    assert out[0].t_first_step_s == pytest.approx(0.5)
    assert out[1].t_first_step_s == pytest.approx(1.0)


def test_prompt_cache_shortens_prefill_of_a_repeated_prompt() -> None:
    model = TimingModel(token_ms=1.0, prefill_base_ms=0.0, prefill_ms_per_token=1.0)
    prompt = "x" * 400  # 100 tokens
    first, second = simulate_schedule(model, 1, [Arrival(0.0, 100, 1, prompt), Arrival(1.0, 100, 1, prompt)])
    assert first.cached_tokens == 0 and first.t_first_step_s == pytest.approx(0.100)
    assert second.cached_tokens == 99
    assert second.t_first_step_s == pytest.approx(second.t_start_s + 0.001)


def test_zero_steps_ends_at_prefill() -> None:
    out = simulate_schedule(FLAT, 1, [Arrival(0.0, 4, 0)])[0]
    assert out.step_times_s == () and out.t_end_s == pytest.approx(0.005)


def test_jittered_replay_is_repeatable_per_seed() -> None:
    model = TimingModel(token_ms=10.0, jitter=0.2)
    arrivals = [Arrival(0.01 * i, 10, 20, cache_prompt=False) for i in range(5)]
    a = simulate_schedule(model, 2, arrivals, seed=7)
    b = simulate_schedule(model, 2, arrivals, seed=7)
    c = simulate_schedule(model, 2, arrivals, seed=8)
    assert a == b
    assert [s.t_end_s for s in a] != [s.t_end_s for s in c]
