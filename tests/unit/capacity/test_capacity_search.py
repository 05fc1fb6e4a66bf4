"""The search policy against oracles: exact capacities, open ends, stepping down, confirmation, saturation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from orpheus_bench.capacity.search import (
    RATE,
    Finished,
    LoadObservation,
    Measure,
    SearchConfig,
    bracket,
    confident,
    midpoint,
    next_step,
    saturation,
)
from orpheus_bench.errors import ConfigError

pytestmark = pytest.mark.unit

FAST = SearchConfig(probe_requests=10, edge_requests=30, max_requests=120)


@dataclass
class Oracle:
    """A server whose verdict at each load is a function; pooled request counts grow with each measurement."""

    meets: Callable[[float], bool]
    share: Callable[[float, int], float] | None = None  # pass share given load and pooled n
    throughput: Callable[[float], float] | None = None
    ttfa: Callable[[float], float] | None = None

    def observe(self, load: float, n: int) -> LoadObservation:
        met = self.meets(load)
        share = self.share(load, n) if self.share else (1.0 if met else 0.0)
        return LoadObservation(
            load,
            n,
            met,
            share,
            self.throughput(load) if self.throughput else None,
            self.ttfa(load) if self.ttfa else None,
        )


def drive(oracle: Oracle, config: SearchConfig, limit: int = 80) -> tuple[Finished, list[Measure]]:
    obs: dict[float, LoadObservation] = {}
    counts: dict[float, int] = {}
    steps: list[Measure] = []
    for _ in range(limit):
        step = next_step(obs, config)
        if isinstance(step, Finished):
            return step, steps
        assert step.requests > 0
        steps.append(step)
        counts[step.load] = counts.get(step.load, 0) + step.requests
        obs[step.load] = oracle.observe(step.load, counts[step.load])
    raise AssertionError(f"no answer after {limit} steps: {steps[-5:]}")


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 7, 8, 13, 31, 33, 63])
def test_finds_the_exact_concurrency_capacity(capacity: int) -> None:
    done, steps = drive(Oracle(lambda c: c <= capacity), FAST)
    assert (done.capacity, done.break_load, done.stop_reason, done.open_ended) == (
        capacity,
        capacity + 1,
        "bracketed",
        False,
    )
    distinct = {s.load for s in steps}
    # Growth and bisection are logarithmic; each edge is re-measured once to reach the 30 requests.
    assert len(distinct) <= 2 * math.ceil(math.log2(capacity + 1)) + 2
    confirms = [s for s in steps if s.phase == "confirm"]
    assert {s.load for s in confirms} == {capacity, capacity + 1}
    assert all(s.requests == 20 for s in confirms)  # 10 probe requests topped up to 30
    assert steps[0] == Measure(1.0, 10, "grow", "first level")


def test_never_breaking_is_open_ended_at_max_load() -> None:
    done, steps = drive(Oracle(lambda c: True), replace(FAST, max_load=20))
    assert (done.capacity, done.break_load, done.stop_reason, done.open_ended) == (20, None, "max_load", True)
    assert [s.load for s in steps if s.phase == "grow"] == [1, 2, 4, 8, 16, 20]


def test_failing_at_the_lowest_load_means_no_capacity() -> None:
    done, steps = drive(Oracle(lambda c: False), FAST)
    assert (done.capacity, done.break_load, done.stop_reason) == (None, 1, "below_min")
    assert [s.load for s in steps] == [1, 1]  # measured, then confirmed


def test_steps_down_when_the_start_is_above_capacity() -> None:
    done, steps = drive(Oracle(lambda c: c <= 3), replace(FAST, start=16))
    assert (done.capacity, done.break_load) == (3, 4)
    assert [s.load for s in steps if s.phase == "shrink"] == [8, 4, 2]


def test_uncertain_edge_is_remeasured_up_to_the_maximum_then_accepted() -> None:
    oracle = Oracle(lambda c: c <= 6, share=lambda c, n: 0.8 if c == 6 else (1.0 if c < 6 else 0.0))
    done, steps = drive(oracle, FAST)
    assert (done.capacity, done.break_load) == (6, 7)
    at_edge = [s.requests for s in steps if s.load == 6]
    assert at_edge == [10, 20, 30, 60]  # probe, to 30, doubled to 60, to the 120 maximum
    assert not confident(LoadObservation(6, 120, True, 0.8), FAST)


def test_a_flipped_edge_moves_the_bracket() -> None:
    # c=5 passes on its probe but fails once re-measured (more requests reveal the truth).
    def meets(c: float) -> bool:
        return c <= 4 or (c == 5 and counts.get(5.0, 0) <= 10)

    counts: dict[float, int] = {}
    obs: dict[float, LoadObservation] = {}
    for _ in range(60):
        step = next_step(obs, FAST)
        if isinstance(step, Finished):
            break
        counts[step.load] = counts.get(step.load, 0) + step.requests
        met = meets(step.load)
        obs[step.load] = LoadObservation(step.load, counts[step.load], met, 1.0 if met else 0.0)
    assert isinstance(step, Finished)
    assert (step.capacity, step.break_load) == (4, 5)


def test_noise_above_the_break_is_ignored() -> None:
    obs = {
        1.0: LoadObservation(1, 30, True, 1.0),
        2.0: LoadObservation(2, 30, True, 1.0),
        3.0: LoadObservation(3, 30, False, 0.0),
        4.0: LoadObservation(4, 30, True, 1.0),
    }
    assert bracket(obs) == (2.0, 3.0)
    assert next_step(obs, FAST) == Finished(2.0, 3.0, "bracketed", False)


def test_saturation_stops_the_growth() -> None:
    # Throughput flattens from 4 streams on while TTFA grows with the load; the SLO never breaks.
    oracle = Oracle(
        lambda c: True,
        throughput=lambda c: 10.0 * min(c, 4.0),
        ttfa=lambda c: 100.0 * max(1.0, c / 4.0),
    )
    done, steps = drive(oracle, FAST)
    assert (done.capacity, done.stop_reason, done.open_ended, done.saturated_at) == (8, "saturation", True, 8)
    assert max(s.load for s in steps) == 8


def test_no_saturation_while_throughput_still_grows() -> None:
    obs = {
        2.0: LoadObservation(2, 30, True, 1.0, throughput_rps=10.0, ttfa_p50_ms=100.0),
        4.0: LoadObservation(4, 30, True, 1.0, throughput_rps=18.0, ttfa_p50_ms=180.0),
    }
    assert saturation(obs, FAST) is None
    obs[4.0] = replace(obs[4.0], throughput_rps=10.5)
    assert saturation(obs, FAST) == 4.0


def test_rate_search_resolves_to_the_resolution() -> None:
    config = SearchConfig(kind=RATE, start=1.0, max_load=100.0, min_load=0.1, resolution=0.1, probe_requests=10)
    done, steps = drive(Oracle(lambda r: r <= 3.3), config)
    assert done.capacity is not None and done.break_load is not None
    assert done.capacity <= 3.3 < done.break_load
    assert done.break_load / done.capacity <= 1.1
    assert all(s.load == round(s.load, 3) for s in steps)  # readable labels


def test_midpoint_rules() -> None:
    assert midpoint(4, 8, FAST) == 6 and midpoint(4, 5, FAST) is None and midpoint(4, 6, FAST) == 5
    rate = SearchConfig(kind=RATE, resolution=0.25)
    assert midpoint(1.0, 1.2, rate) is None
    assert midpoint(1.0, 4.0, rate) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "tokens"}, "search"),
        ({"start": 1.5}, "start"),
        ({"start": 10, "max_load": 5}, "start"),
        ({"growth": 1.0}, "growth"),
        ({"probe_requests": 0}, "requests-per-level"),
        ({"max_requests": 10}, "max-requests-per-level"),
        ({"confidence": 1.0}, "confidence"),
        ({"kind": RATE, "resolution": 0}, "resolution"),
    ],
)
def test_config_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SearchConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_config_round_trip_and_labels() -> None:
    config = SearchConfig(kind=RATE, start=0.5, max_load=8.0, min_load=0.05)
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert config.label(1.5) == "rate=1.5/s" and FAST.label(4.0) == "c=4"
