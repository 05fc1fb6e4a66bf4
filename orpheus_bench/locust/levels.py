"""Step levels for Locust: the plan, the state every user process follows, and the controller that walks it.

A level runs in phases. ``wait``: its users are spawned but hold still until every user process reports its
decoder ready (first level only). ``run``: each user sends one warmup request (when warmups are on), then
requests until its quota (``ceil(requests / users)`` measured requests: every user does the same share, so a
level measures at least ``requests``) is used or the level's deadline passes. ``drain``: nobody starts a
request; the level ends once every user process reports nothing in flight. The next level then adds users, so
a request is never measured while the load is changing under it, as with the aiohttp runner's levels.

The controller runs where the load shape runs (the local runner or the master); it only calls the `publish`
callback with each new `LevelState` and reads the injected clocks, so it is tested without Locust. Level
summaries reuse the aiohttp runner's `LevelOutcome.summary`, so run.json's ``levels`` read the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from orpheus_bench.errors import ConfigError
from orpheus_bench.levels import LevelOutcome, LevelPlan
from orpheus_bench.records import RequestRecord, Status

Phase = Literal["wait", "run", "drain", "done"]
PHASES: tuple[Phase, ...] = ("wait", "run", "drain", "done")


@dataclass(frozen=True, slots=True)
class StepPlan:
    """Which user counts to walk and how long to hold each."""

    levels: tuple[int, ...]
    requests: int | None = None  # measured requests per level (at least), or None
    duration_s: float | None = None  # seconds per level (warmups included), or None
    warmup: bool = True  # each user's first request of a level is a warmup
    spawn_rate: float | None = None  # users per second when a level adds users; None = all at once
    drain_timeout_s: float = 330.0  # give up waiting for a level's last requests after this

    def __post_init__(self) -> None:
        if not self.levels or any(u <= 0 for u in self.levels):
            raise ConfigError("step_levels", "levels must be positive user counts, e.g. 1,2,4,8,12")
        if self.requests is not None and self.requests <= 0:
            raise ConfigError("step_requests", "must be a positive number of requests")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError("step_duration", "must be a positive number of seconds")

    def quota(self, users: int) -> int | None:
        """Measured requests each user sends at a level of `users` users."""
        return None if self.requests is None else math.ceil(self.requests / users)

    def rate(self, users: int) -> float:
        """The spawn rate Locust gets for a level."""
        return float(self.spawn_rate) if self.spawn_rate else float(max(users, 1))


@dataclass(frozen=True, slots=True)
class LevelState:
    """What every user process must know about the current level; travels as a Locust message."""

    index: int
    users: int
    phase: Phase
    warmup: bool
    quota: int | None
    deadline_s: float | None  # run clock: no request starts at or after it
    origin_wall: float  # epoch seconds of the run clock's zero
    nodes: int  # user processes taking part (1 when local)

    @property
    def label(self) -> str:
        """The level's label in records, run.json and Locust's request types."""
        return f"c={self.users}"

    def allowed(self) -> float:
        """Requests one user may send at this level (warmup included)."""
        if self.quota is None:
            return math.inf
        return self.quota + (1 if self.warmup else 0)

    def to_message(self) -> dict[str, Any]:
        """A msgpack-friendly dict."""
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> LevelState:
        """Rebuild from `to_message`; unknown keys are ignored."""
        phase = data.get("phase")
        if phase not in PHASES:
            raise ValueError(f"unknown level phase {phase!r}")
        return cls(
            index=int(data["index"]),
            users=int(data["users"]),
            phase=phase,
            warmup=bool(data["warmup"]),
            quota=None if data.get("quota") is None else int(data["quota"]),
            deadline_s=None if data.get("deadline_s") is None else float(data["deadline_s"]),
            origin_wall=float(data["origin_wall"]),
            nodes=int(data.get("nodes", 1)),
        )


@dataclass
class _Open:
    """Bookkeeping of the level in progress."""

    state: LevelState
    started_s: float | None = None
    drain_started_s: float | None = None
    records: list[RequestRecord] = field(default_factory=list)
    idle: set[str] = field(default_factory=set)
    lag_ms: list[float] = field(default_factory=list)
    decode: dict[str, Any] = field(default_factory=dict)


class LevelController:
    """Walks a `StepPlan`; see the module docstring. Not thread-safe: call it from one hub."""

    def __init__(
        self,
        plan: StepPlan,
        *,
        publish: Callable[[LevelState], None],
        nodes: Callable[[], set[str]],
        on_level_end: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self._publish = publish
        self._nodes = nodes
        self._on_level_end = on_level_end
        self._clock = clock
        self._wall = wall
        self._origin: float | None = None
        self.origin_wall: float | None = None
        self._ready: set[str] = set()
        self._open: _Open | None = None
        self.summaries: list[dict[str, Any]] = []
        self.failed: str | None = None
        self.finished = False

    # ---- clocks and state --------------------------------------------------------------------------
    def run_clock(self) -> float:
        """Seconds since the run clock's zero (the first tick)."""
        return 0.0 if self._origin is None else self._clock() - self._origin

    @property
    def state(self) -> LevelState | None:
        """The level in progress (None before the first tick and after the last level)."""
        return self._open.state if self._open else None

    def _set(self, state: LevelState) -> None:
        assert self._open is not None
        self._open.state = state
        self._publish(state)

    def _enter(self, index: int, phase: Phase) -> None:
        users = self.plan.levels[index]
        assert self.origin_wall is not None
        state = LevelState(
            index=index,
            users=users,
            phase=phase,
            warmup=self.plan.warmup,
            quota=self.plan.quota(users),
            deadline_s=None,
            origin_wall=self.origin_wall,
            nodes=max(1, len(self._nodes())),
        )
        self._open = _Open(state)
        if phase == "run":
            self._start_run()
        else:
            self._publish(state)

    def _start_run(self) -> None:
        assert self._open is not None
        now = self.run_clock()
        self._open.started_s = now
        deadline = None if self.plan.duration_s is None else now + self.plan.duration_s
        self._set(replace(self._open.state, phase="run", deadline_s=deadline))

    def _drain(self) -> None:
        assert self._open is not None
        self._open.drain_started_s = self.run_clock()
        self._set(replace(self._open.state, phase="drain"))

    # ---- what the load shape calls -----------------------------------------------------------------
    def tick(self) -> tuple[int, float] | None:
        """Locust's ``LoadTestShape.tick``: (users, spawn rate), or None when the plan is done (or failed)."""
        if self.failed is not None or self.finished:
            return None
        if self._origin is None:
            self._origin = self._clock()
            self.origin_wall = self._wall()
            self._enter(0, "wait")
        op = self._open
        if op is None:  # closed early: the run is stopping
            return None
        phase = op.state.phase
        if phase == "wait" and self._nodes() <= self._ready:
            self._start_run()
        elif phase == "run" and self._run_over(op):
            self._drain()
        elif phase == "drain":
            assert op.drain_started_s is not None
            timed_out = self.run_clock() - op.drain_started_s > self.plan.drain_timeout_s
            if self._nodes() <= op.idle or timed_out:
                self._close(interrupted=timed_out)
                nxt = op.state.index + 1
                if nxt >= len(self.plan.levels):
                    self.finished = True
                    self._open = None
                    self._publish(replace(op.state, phase="done"))
                    return None
                self._enter(nxt, "run")
        state = self._open.state if self._open else op.state
        return state.users, self.plan.rate(state.users)

    def _run_over(self, op: _Open) -> bool:
        st = op.state
        if st.deadline_s is not None and self.run_clock() >= st.deadline_s:
            return True
        if st.quota is not None:
            measured = sum(1 for r in op.records if not r.warmup and r.status is not Status.CANCELLED)
            return measured >= st.quota * st.users
        return False

    # ---- what the user processes report -------------------------------------------------------------
    def ready(self, node: str, error: str | None = None) -> None:
        """A user process has its decoder loaded (or failed to load it: the run stops)."""
        if error is not None:
            self.failed = f"{node}: {error}"
            return
        self._ready.add(node)
        op = self._open
        if op is not None and op.state.phase == "wait" and self._nodes() <= self._ready:
            self._start_run()

    def record(self, record: RequestRecord) -> None:
        """A request finished somewhere; levels are drained, so it belongs to the level in progress."""
        op = self._open
        if op is None or record.level_label != op.state.label:
            return  # a straggler of a level that timed out draining: on disk, but not in this level's numbers
        op.records.append(record)
        if record.status is Status.CANCELLED:
            return
        if op.state.phase == "run" and op.state.quota is not None and self._run_over(op):
            self._drain()  # at once, not at the next tick: users stop waiting for more

    def idle(self, node: str, index: int, lag_ms: list[float], decode: dict[str, Any] | None = None) -> None:
        """A user process has nothing in flight at level `index` after the drain began."""
        op = self._open
        if op is None or op.state.index != index:
            return
        op.idle.add(node)
        op.lag_ms.extend(lag_ms)
        if decode:
            op.decode[node] = decode

    def close(self, *, interrupted: bool) -> None:
        """End the level in progress now (the run is stopping); idempotent."""
        if self._open is not None:
            self._close(interrupted=interrupted)
            self._open = None

    def _close(self, *, interrupted: bool) -> None:
        op = self._open
        assert op is not None
        st = op.state
        started = op.started_s if op.started_s is not None else self.run_clock()
        ends = [e for r in op.records if (e := r.end_offset_run_s) is not None]
        plan = LevelPlan(
            index=st.index,
            kind="concurrency",
            value=float(st.users),
            warmup=st.users if st.warmup else 0,
            requests=None if st.quota is None else st.quota * st.users,
            duration_s=self.plan.duration_s,
        )
        outcome = LevelOutcome(
            plan,
            started_s=started,
            ended_s=max([started, *ends]),
            sent=len(op.records),
            loop_lag_ms=op.lag_ms,
            records=op.records,
            interrupted=interrupted,
        )
        summary = outcome.summary()
        summary["quota_per_user"] = st.quota
        if op.decode:
            summary["decode_service"] = op.decode
        self.summaries.append(summary)
        if self._on_level_end is not None:
            self._on_level_end(summary)
