"""The Locust step plan and level controller, driven with an injected clock (no gevent, no Locust)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from orpheus_bench.errors import ConfigError
from orpheus_bench.locust.levels import LevelController, LevelState, StepPlan
from orpheus_bench.locust.options import recorded_scenario, step_plan
from orpheus_bench.records import ErrorClass, RequestRecord, Status
from orpheus_bench.scenario import Scenario

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Harness:
    """A controller with a fake clock, a recording publisher and a fixed set of user processes."""

    def __init__(self, plan: StepPlan, nodes: set[str] | None = None) -> None:
        self.clock = Clock()
        self.published: list[LevelState] = []
        self.nodes = nodes if nodes is not None else {"a", "b"}
        self.ended: list[dict[str, Any]] = []
        self.ctl = LevelController(
            plan,
            publish=self.published.append,
            nodes=lambda: set(self.nodes),
            on_level_end=self.ended.append,
            clock=self.clock,
            wall=lambda: 1_700_000_000.0,
        )

    def finish(self, *, warmup: bool, status: Status = Status.OK, duration_s: float = 0.5) -> RequestRecord:
        st = self.ctl.state
        assert st is not None
        rec = RequestRecord(
            request_id=f"r{len(self.published)}-{self.clock.t}",
            level=st.users,
            worker=0,
            seq=0,
            warmup=warmup,
            prompt_id="p",
            prompt="hi",
            voice=None,
            mode="stream",
            protocol="native",
            driver="locust",
            wall_start=0.0,
            run_offset_s=self.ctl.run_clock(),
            level_label=st.label,
            t_end_s=duration_s,
            status=status,
        )
        if status is not Status.OK:
            rec.error_class = ErrorClass.CANCELLED if status is Status.CANCELLED else ErrorClass.HTTP
        self.ctl.record(rec)
        return rec

    def idle_all(self, lag_ms: float = 1.0) -> None:
        st = self.ctl.state
        assert st is not None
        for n in self.nodes:
            self.ctl.idle(n, st.index, [lag_ms])


def test_quota_gives_every_user_an_equal_share_of_at_least_the_requested_count() -> None:
    plan = StepPlan((1, 2, 4, 12), requests=20)
    assert [plan.quota(u) for u in plan.levels] == [20, 10, 5, 2]
    assert StepPlan((3,), duration_s=5.0).quota(3) is None
    assert plan.rate(12) == 12.0 and StepPlan((4,), spawn_rate=0.5).rate(4) == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"levels": ()}, {"levels": (1, 0)}, {"levels": (1,), "requests": 0}, {"levels": (1,), "duration_s": -1.0}],
)
def test_bad_plans_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        StepPlan(**kwargs)


def test_request_levels_wait_for_decoders_then_run_drain_and_step_up() -> None:
    h = Harness(StepPlan((1, 2), requests=2))
    assert h.ctl.tick() == (1, 1.0)
    assert h.published[-1].phase == "wait" and h.published[-1].nodes == 2
    h.ctl.ready("a")
    assert h.published[-1].phase == "wait"  # b is still loading SNAC
    h.clock.t += 3.0
    h.ctl.ready("b")
    run = h.published[-1]
    assert (run.phase, run.index, run.users, run.quota, run.warmup) == ("run", 0, 1, 2, True)
    assert run.allowed() == 3  # one warmup + the quota
    h.finish(warmup=True)
    h.finish(warmup=False)
    assert h.published[-1].phase == "run"
    h.finish(warmup=False)
    assert h.published[-1].phase == "drain"  # at once, without waiting for a tick
    assert h.ctl.tick() == (1, 1.0)  # nobody idle yet: still draining
    h.idle_all()
    assert h.ctl.tick() == (2, 2.0)
    level2 = h.published[-1]
    assert (level2.phase, level2.index, level2.users, level2.quota) == ("run", 1, 2, 1)
    summary = h.ended[0]
    assert (summary["level"], summary["label"], summary["sent"], summary["warmup"]) == (1, "c=1", 3, 1)
    assert summary["started_s"] == pytest.approx(3.0) and not summary["interrupted"]
    assert summary["client"]["loop_lag_max_ms"] == 1.0
    for _ in range(2):
        h.finish(warmup=True)
    h.finish(warmup=False)
    assert h.published[-1].phase == "run"
    h.finish(warmup=False)
    assert h.published[-1].phase == "drain"
    h.idle_all()
    assert h.ctl.tick() is None
    assert h.ctl.finished and h.published[-1].phase == "done"
    assert [s["level"] for s in h.ended] == [1, 2] and h.ended[1]["sent"] == 4


def test_cancelled_and_other_level_records_do_not_count_towards_the_quota() -> None:
    h = Harness(StepPlan((2,), requests=2), nodes={"local"})
    h.ctl.tick()
    h.ctl.ready("local")
    h.finish(warmup=False, status=Status.CANCELLED)
    h.finish(warmup=False, status=Status.CANCELLED)
    assert h.published[-1].phase == "run"
    straggler = h.finish(warmup=False)
    straggler_other = RequestRecord.from_dict({**straggler.to_dict(), "level_label": "c=9", "request_id": "x"})
    h.ctl.record(straggler_other)
    assert h.published[-1].phase == "run"
    h.finish(warmup=False, status=Status.ERROR)  # a failed request is still a measured request
    assert h.published[-1].phase == "drain"


def test_duration_levels_drain_at_the_deadline_and_time_out_when_a_process_never_goes_idle() -> None:
    h = Harness(StepPlan((3,), duration_s=10.0, drain_timeout_s=5.0))
    h.ctl.tick()
    h.ctl.ready("a")
    h.ctl.ready("b")
    st = h.published[-1]
    assert st.phase == "run" and st.deadline_s == pytest.approx(0.0 + 10.0)
    h.clock.t += 9.9
    assert h.ctl.tick() == (3, 3.0) and h.published[-1].phase == "run"
    h.clock.t += 0.2
    h.ctl.tick()
    assert h.published[-1].phase == "drain"
    h.ctl.idle("a", 0, [])
    h.ctl.idle("b", 7, [])  # an idle report for another level says nothing about this one
    h.clock.t += 4.0
    assert h.ctl.tick() == (3, 3.0)
    h.clock.t += 2.0
    assert h.ctl.tick() is None
    assert h.ended[0]["interrupted"] is True


def test_a_decoder_that_fails_to_load_stops_the_run() -> None:
    h = Harness(StepPlan((1,), requests=1))
    h.ctl.tick()
    h.ctl.ready("a", error="decoder failed to load: OSError: no weights")
    assert h.ctl.tick() is None
    assert h.ctl.failed is not None and "no weights" in h.ctl.failed


def test_close_mid_level_keeps_a_summary_marked_interrupted() -> None:
    h = Harness(StepPlan((4,), requests=100), nodes={"local"})
    h.ctl.tick()
    h.ctl.ready("local")
    h.finish(warmup=True)
    h.ctl.close(interrupted=True)
    assert h.ended[0]["interrupted"] is True and h.ended[0]["sent"] == 1
    assert h.ctl.tick() is None  # closed: the shape stops
    h.ctl.close(interrupted=True)
    assert len(h.ended) == 1


def test_level_state_travels_as_a_plain_dict() -> None:
    st = LevelState(2, 8, "drain", True, 3, 12.5, 1_700_000_000.0, 2)
    msg = st.to_message()
    assert LevelState.from_message({**msg, "unknown": 1}) == st
    assert st.label == "c=8"
    with pytest.raises(ValueError):
        LevelState.from_message({**msg, "phase": "sprint"})


def _options(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "step_levels": None,
        "step_requests": None,
        "step_duration": None,
        "num_users": None,
        "spawn_rate": None,
        "run_time": None,
    }
    base.update(kw)
    return argparse.Namespace(**base)


def test_step_plan_from_options_and_scenario() -> None:
    sc = Scenario()
    plan = step_plan(_options(step_levels=[1, 2, 4], step_duration=30.0), sc)
    assert (plan.levels, plan.requests, plan.duration_s) == ((1, 2, 4), None, 30.0)
    plan = step_plan(_options(step_levels=[1, 2]), sc)  # the scenario's requests_per_level
    assert (plan.requests, plan.duration_s) == (sc.load.requests_per_level, None)
    plain = step_plan(_options(num_users=4, spawn_rate=2.0, run_time=30), sc)
    assert (plain.levels, plain.duration_s, plain.requests, plain.spawn_rate) == ((4,), 30, None, 2.0)
    assert plain.drain_timeout_s > sc.timeouts.request_s
    with pytest.raises(ConfigError):
        step_plan(_options(step_levels=[1], step_requests=5, step_duration=3.0), sc)
    recorded = recorded_scenario(sc, plan)
    assert recorded.load.concurrency == [1, 2] and recorded.load.requests_per_level == plan.requests
