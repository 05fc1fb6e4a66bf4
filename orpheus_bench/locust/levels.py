"""Levels for Locust: the plan, the state every user process follows, and the controller that walks it.

A level runs in phases. ``wait``: its users are spawned but hold still until every user process reports its
decoder ready (first level), or until Locust has stopped the users a smaller level no longer needs. ``run``:
each user sends one warmup request (when warmups are on), then requests until its quota (``ceil(requests /
users)`` measured requests each, so a level measures at least ``requests``) is used or the level's deadline
passes. ``drain``: nobody starts a request; the level ends once every user process reports nothing in flight.
The next level then adds users, so a request is never measured while the load is changing under it, as with
the aiohttp runner's levels. A step plan walks fixed user counts (``--step-levels``, or one level of ``-u``
users); a *follow* plan (the web UI) takes each user count set in the form (`LevelController.want`) as a new
level, and Stop ends its level where it stands: for a level without a quota or deadline, its natural end.

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

    levels: tuple[int, ...]  # a follow plan: the user count of its first level (until the form says otherwise)
    requests: int | None = None  # measured requests per level (at least), or None
    duration_s: float | None = None  # seconds per level (warmups included), or None
    warmup: bool = True  # each user's first request of a level is a warmup
    spawn_rate: float | None = None  # users per second when a level adds users; None = all at once
    drain_timeout_s: float = 330.0  # give up waiting for a level's last requests after this
    follow: bool = False  # levels follow `LevelController.want` (the web UI's form) instead of `levels`

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
    run: int = 0  # which run of this Locust process (a web UI session can hold several)
    repeat: int = 0  # earlier levels of this run with the same user count

    @property
    def label(self) -> str:
        """The level's label in records, run.json and Locust's request types (``c=4``, again: ``c=4 #2``)."""
        return f"c={self.users}" + (f" #{self.repeat + 1}" if self.repeat else "")

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
            run=int(data.get("run", 0)),
            repeat=int(data.get("repeat", 0)),
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
    retargeted: bool = False  # follow plan: the form asked for another user count while this level ran


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
        run: int = 0,
        users_running: Callable[[], int] | None = None,
    ) -> None:
        self.plan = plan
        self._publish = publish
        self._nodes = nodes
        self._on_level_end = on_level_end
        self._clock = clock
        self._wall = wall
        self._run = run
        self._users_running = users_running  # how many users Locust runs now (None: do not wait for it)
        self._origin: float | None = None
        self.origin_wall: float | None = None
        self._ready: set[str] = set()
        self._open: _Open | None = None
        self._wanted: tuple[int, float | None] | None = None
        self._last = False  # end the plan once the level in progress has drained
        self._ran: list[int] = []  # user counts of the levels closed so far
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

    @property
    def complete(self) -> bool:
        """The run did what it set out to: every planned level ran (follow: levels ran, none was cut short)."""
        if self.failed is not None or not self.plan.follow:
            return self.failed is None and self.finished
        return bool(self.summaries) and not any(s["interrupted"] for s in self.summaries)

    def _set(self, state: LevelState) -> None:
        assert self._open is not None
        self._open.state = state
        self._publish(state)

    def _level_state(self, index: int, users: int, phase: Phase) -> LevelState:
        assert self.origin_wall is not None
        return LevelState(
            index=index,
            users=users,
            phase=phase,
            warmup=self.plan.warmup,
            quota=self.plan.quota(users),
            deadline_s=None,
            origin_wall=self.origin_wall,
            nodes=max(1, len(self._nodes())),
            run=self._run,
            repeat=self._ran.count(users),
        )

    def _enter(self, index: int, users: int, phase: Phase) -> None:
        self._open = _Open(self._level_state(index, users, phase))
        if phase == "run":
            self._start_run()
        else:
            self._publish(self._open.state)

    def _start_run(self) -> None:
        assert self._open is not None
        now = self.run_clock()
        self._open.started_s = now
        deadline = None if self.plan.duration_s is None else now + self.plan.duration_s
        self._set(replace(self._open.state, phase="run", deadline_s=deadline))

    def _maybe_start_run(self) -> None:
        op = self._open
        if op is None or op.state.phase != "wait" or not self._nodes() <= self._ready:
            return
        # A smaller level starts once Locust has stopped the users it no longer needs: a user about to be
        # stopped must not begin a request of the new level.
        if self._users_running is not None and self._users_running() > op.state.users:
            return
        self._start_run()

    def _drain(self) -> None:
        assert self._open is not None
        self._open.drain_started_s = self.run_clock()
        self._set(replace(self._open.state, phase="drain"))

    # ---- what the load shape calls -----------------------------------------------------------------
    def want(self, users: int, spawn_rate: float | None = None) -> None:
        """Follow plan: the user count (and spawn rate) asked for now; a change becomes a new level."""
        if users <= 0:
            raise ConfigError("user_count", "a level needs at least one user")
        self._wanted = (users, spawn_rate)

    def end_after_drain(self) -> None:
        """End the plan after the level in progress has drained (a run-time limit reached)."""
        self._last = True

    def tick(self) -> tuple[int, float] | None:
        """Locust's ``LoadTestShape.tick``: (users, spawn rate), or None when the plan is done (or failed)."""
        if self.failed is not None or self.finished:
            return None
        if self._origin is None:
            self._origin = self._clock()
            self.origin_wall = self._wall()
            self._enter(0, self._wanted_users(self.plan.levels[0]), "wait")
        op = self._open
        if op is None:  # closed early: the run is stopping
            return None
        phase = op.state.phase
        if phase == "wait":
            if self._last and op.started_s is None:
                self._finish(op)
                return None
            users = self._wanted_users(op.state.users)
            if users != op.state.users:  # the form changed before anything ran at this level
                self._set(self._level_state(op.state.index, users, "wait"))
            self._maybe_start_run()
        elif phase == "run" and (self._run_over(op) or self._retarget(op)):
            self._drain()
        elif phase == "drain":
            assert op.drain_started_s is not None
            timed_out = self.run_clock() - op.drain_started_s > self.plan.drain_timeout_s
            if self._nodes() <= op.idle or timed_out:
                self._close(interrupted=timed_out)
                nxt = self._next_users(op)
                if nxt is None:
                    self._finish(op)
                    return None
                fewer = nxt < op.state.users and self._users_running is not None
                self._enter(op.state.index + 1, nxt, "wait" if fewer else "run")
        state = self._open.state if self._open else op.state
        return state.users, self._rate(state.users)

    def _finish(self, op: _Open) -> None:
        self.finished = True
        self._open = None
        self._publish(replace(op.state, phase="done"))

    def _wanted_users(self, default: int) -> int:
        return self._wanted[0] if self.plan.follow and self._wanted is not None else default

    def _rate(self, users: int) -> float:
        if self.plan.follow and self._wanted is not None and self._wanted[1]:
            return float(self._wanted[1])
        return self.plan.rate(users)

    def _retarget(self, op: _Open) -> bool:
        if self.plan.follow and self._wanted_users(op.state.users) != op.state.users:
            op.retargeted = True
        return op.retargeted

    def _next_users(self, op: _Open) -> int | None:
        """The user count of the level after `op`, or None when the plan is done."""
        if self._last:
            return None
        if not self.plan.follow:
            nxt = op.state.index + 1
            return self.plan.levels[nxt] if nxt < len(self.plan.levels) else None
        users = self._wanted_users(op.state.users)
        # A level that ended on its own quota or deadline ends the plan, unless the form asked for more.
        return users if op.retargeted or users != op.state.users else None

    def _run_over(self, op: _Open) -> bool:
        st = op.state
        if self._last:
            return True
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
        self._maybe_start_run()

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

    def stop(self) -> None:
        """The run is stopping (Stop, Ctrl-C, ``-t``): end the level in progress where it stands; idempotent.

        A step plan's level is cut short (``interrupted``), as the plan had more to do. A follow plan's level
        ends normally unless it had a quota or deadline it had not reached; one that never ran (decoders still
        loading, users still being stopped) leaves no summary at all.
        """
        op = self._open
        if op is None:
            return
        if not self.plan.follow:
            self.close(interrupted=True)
            return
        if op.started_s is None and not op.records:
            self._open = None
            return
        st = op.state
        self.close(interrupted=st.phase == "run" and (st.quota is not None or st.deadline_s is not None))

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
        summary["label"] = st.label  # ``c=4 #2`` for a second level of 4 users
        summary["quota_per_user"] = st.quota
        if op.decode:
            summary["decode_service"] = op.decode
        self._ran.append(st.users)
        self.summaries.append(summary)
        if self._on_level_end is not None:
            self._on_level_end(summary)
