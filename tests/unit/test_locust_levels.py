"""The Locust step plan and level controller, driven with an injected clock (no gevent, no Locust)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from orpheus_bench.errors import ConfigError
from orpheus_bench.locust.levels import LevelController, LevelState, StepPlan
from orpheus_bench.locust.options import recorded_scenario, step_plan
from orpheus_bench.locust.runside import next_run_path
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

    def __init__(self, plan: StepPlan, nodes: set[str] | None = None, *, track_users: bool = False) -> None:
        self.clock = Clock()
        self.published: list[LevelState] = []
        self.nodes = nodes if nodes is not None else {"a", "b"}
        self.ended: list[dict[str, Any]] = []
        self.running_users = 0  # what Locust runs now, when the controller is told (track_users)
        self.ctl = LevelController(
            plan,
            publish=self.published.append,
            nodes=lambda: set(self.nodes),
            on_level_end=self.ended.append,
            clock=self.clock,
            wall=lambda: 1_700_000_000.0,
            run=2,
            users_running=(lambda: self.running_users) if track_users else None,
        )

    def finish(
        self, *, warmup: bool, status: Status = Status.OK, duration_s: float = 0.5, label: str | None = None
    ) -> RequestRecord:
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
            level_label=label or st.label,
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
    st = LevelState(2, 8, "drain", True, 3, 12.5, 1_700_000_000.0, 2, run=3, repeat=1)
    msg = st.to_message()
    assert LevelState.from_message({**msg, "unknown": 1}) == st
    assert st.label == "c=8 #2"
    with pytest.raises(ValueError):
        LevelState.from_message({**msg, "phase": "sprint"})
    older = {k: v for k, v in msg.items() if k not in ("run", "repeat")}  # from a worker one version behind
    assert LevelState.from_message(older) == LevelState(2, 8, "drain", True, 3, 12.5, 1_700_000_000.0, 2)


# ---- follow plans: the web UI's form sets the user count ------------------------------------------------


def _follow(plan: StepPlan | None = None, **kw: Any) -> Harness:
    h = Harness(plan or StepPlan((1,), follow=True), nodes={"local"}, **kw)
    return h


def _measure(h: Harness, users: int, measured: int = 2) -> None:
    for _ in range(users):
        h.finish(warmup=True)
    for _ in range(measured):
        h.finish(warmup=False)


def test_follow_plan_runs_the_form_count_and_makes_each_change_a_new_level() -> None:
    h = _follow()
    h.ctl.want(3, 3.0)
    assert h.ctl.tick() == (3, 3.0)
    assert (h.published[-1].phase, h.published[-1].users, h.published[-1].run) == ("wait", 3, 2)
    h.ctl.want(4, 2.0)  # edited before the decoders were loaded: nothing ran at 3
    assert h.ctl.tick() == (4, 2.0) and h.published[-1].users == 4
    h.ctl.ready("local")
    run = h.published[-1]
    assert (run.phase, run.index, run.label, run.quota, run.deadline_s) == ("run", 0, "c=4", None, None)
    _measure(h, 4, measured=5)
    h.clock.t += 60.0
    assert h.ctl.tick() == (4, 2.0) and h.published[-1].phase == "run"  # held: no quota, no deadline
    h.ctl.want(6, 6.0)
    assert h.ctl.tick() == (4, 6.0) and h.published[-1].phase == "drain"
    h.idle_all()
    assert h.ctl.tick() == (6, 6.0)
    level2 = h.published[-1]
    assert (level2.phase, level2.index, level2.label) == ("run", 1, "c=6")
    assert [(s["label"], s["sent"], s["interrupted"]) for s in h.ended] == [("c=4", 9, False)]
    _measure(h, 6)
    h.finish(warmup=False, status=Status.CANCELLED)  # in flight when Stop was pressed
    h.ctl.stop()
    assert [(s["label"], s["interrupted"]) for s in h.ended] == [("c=4", False), ("c=6", False)]
    assert h.ended[1]["sent"] == 9 and h.ctl.complete and h.ctl.tick() is None


def test_follow_plan_waits_for_locust_to_stop_users_before_a_smaller_level_runs() -> None:
    h = _follow(track_users=True)
    h.ctl.want(6)
    h.ctl.tick()
    h.ctl.ready("local")
    h.running_users = 6
    _measure(h, 6)
    h.ctl.want(2)
    h.ctl.tick()
    h.idle_all()
    assert h.ctl.tick() == (2, 2.0)
    assert (h.published[-1].phase, h.published[-1].label) == ("wait", "c=2")  # 6 users could still send
    h.running_users = 4
    h.ctl.tick()
    assert h.published[-1].phase == "wait"
    h.running_users = 2
    h.ctl.tick()
    assert (h.published[-1].phase, h.published[-1].index) == ("run", 1)


def test_follow_plan_stop_cuts_short_only_a_level_with_its_own_end() -> None:
    quota = _follow(StepPlan((1,), requests=50, follow=True))
    quota.ctl.want(2)
    quota.ctl.tick()
    quota.ctl.ready("local")
    _measure(quota, 2)
    quota.ctl.stop()
    assert quota.ended[0]["interrupted"] is True and not quota.ctl.complete

    loading = _follow()  # stopped while the decoders were still loading: nothing ran, nothing to summarise
    loading.ctl.tick()
    loading.ctl.stop()
    assert loading.ended == [] and not loading.ctl.complete

    draining = _follow()  # stopped while a level drained for a new count: that level had ended
    draining.ctl.want(2)
    draining.ctl.tick()
    draining.ctl.ready("local")
    _measure(draining, 2)
    draining.ctl.want(3)
    draining.ctl.tick()
    assert draining.published[-1].phase == "drain"
    draining.ctl.stop()
    assert [s["interrupted"] for s in draining.ended] == [False] and draining.ctl.complete


def test_follow_level_with_a_quota_or_a_run_time_ends_the_test_after_its_drain() -> None:
    h = _follow(StepPlan((1,), requests=2, follow=True))
    h.ctl.want(2)
    h.ctl.tick()
    h.ctl.ready("local")
    _measure(h, 2, measured=2)
    assert h.published[-1].phase == "drain"
    h.idle_all()
    assert h.ctl.tick() is None and h.ctl.finished and h.ctl.complete
    assert h.published[-1].phase == "done"

    capped = _follow()
    capped.ctl.want(3)
    capped.ctl.tick()
    capped.ctl.ready("local")
    _measure(capped, 3)
    capped.ctl.end_after_drain()  # -t reached
    capped.ctl.tick()
    assert capped.published[-1].phase == "drain"
    capped.idle_all()
    assert capped.ctl.tick() is None and capped.ctl.complete and capped.ended[0]["interrupted"] is False


def test_a_user_count_tried_again_is_a_level_of_its_own() -> None:
    h = _follow()
    for users in (3, 6, 3):
        h.ctl.want(users)
        h.ctl.tick()
        if users == 3 and not h.ended:
            h.ctl.ready("local")
        elif h.published[-1].phase == "drain":
            h.idle_all()
            h.ctl.tick()
        _measure(h, users, measured=1)
    st = h.ctl.state
    assert st is not None and (st.label, st.repeat, st.index) == ("c=3 #2", 1, 2)
    h.finish(warmup=False, label="c=3")  # a straggler of the first level at 3 users
    h.ctl.stop()
    assert [s["label"] for s in h.ended] == ["c=3", "c=6", "c=3 #2"]
    assert [s["level"] for s in h.ended] == [3, 6, 3] and h.ended[2]["sent"] == 4


def test_next_run_path_never_reuses_a_directory(tmp_path: Path) -> None:
    first = tmp_path / "ui"
    assert next_run_path(first, 2) == tmp_path / "ui-2"
    (tmp_path / "ui-2").mkdir()
    assert next_run_path(first, 2) == tmp_path / "ui-2"  # empty: nothing to lose
    (tmp_path / "ui-2" / "run.json").write_text("{}")
    (tmp_path / "ui-3").write_text("a file")
    assert next_run_path(first, 2) == tmp_path / "ui-4"


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
    # The web UI: levels follow the form; -t caps the test instead of timing the level.
    form = step_plan(_options(num_users=3, spawn_rate=1.5, run_time=30), sc, follow=True)
    assert (form.follow, form.levels, form.duration_s, form.requests, form.spawn_rate) == (True, (3,), None, None, 1.5)
    assert step_plan(_options(step_requests=8), sc, follow=True).requests == 8
