"""One Locust process's part of a run, created at Locust's ``init`` event and wired by its role.

- local runner: the run's side (`RunSide`) and the users' side (`UserSide`) in one process, called directly.
- master (``--master``, or the parent of ``--processes N``): the run's side only; level states go to the workers
  as ``orpheus_level`` messages, records, readiness and idle reports come back as messages.
- worker: the users' side only; it receives its options with the master's spawn message.

Nothing is lost at the end: when the master stops (a finished step shape, ``-t``, Ctrl-C) its ``test_stopping``
listener asks every worker to stop its users and waits for each worker's ``orpheus_flushed``, which a worker
sends after the records of its last (possibly cancelled) requests. Messages from one worker arrive in order, so
the master has every record before it closes the run directory; nothing is counted twice because each record
travels exactly once, either by direct call (local) or by message (distributed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
import locust
from locust.runners import STATE_MISSING, STATE_STOPPED, MasterRunner, WorkerRunner

from orpheus_bench.cli_options import api_key_from
from orpheus_bench.errors import ConfigError
from orpheus_bench.locust.levels import LevelState
from orpheus_bench.locust.options import recorded_scenario, scenario_from_options, step_plan
from orpheus_bench.locust.runside import RunSide
from orpheus_bench.locust.users import DecoderFactory, UserSide
from orpheus_bench.records import RequestRecord

log = logging.getLogger(__name__)

MSG_LEVEL = "orpheus_level"  # master -> workers: the LevelState
MSG_FLUSH = "orpheus_flush"  # master -> workers: stop your users and send what is left
MSG_RECORD = "orpheus_record"  # worker -> master: one finished record (RequestRecord.to_dict())
MSG_READY = "orpheus_ready"  # worker -> master: decoder loaded (snac description) or its error
MSG_IDLE = "orpheus_idle"  # worker -> master: nothing in flight at a draining level (+ hub lag, decode stats)
MSG_FLUSHED = "orpheus_flushed"  # worker -> master: users stopped, every record sent
LOCAL_NODE = "local"
FLUSH_MARGIN_S = 30.0
TICK_S = 0.5

_bridges: dict[int, Bridge] = {}


def bridge_of(environment: Any) -> Bridge:
    """The bridge of a Locust environment (created by the ``init`` listener)."""
    try:
        return _bridges[id(environment)]
    except KeyError:
        raise RuntimeError(
            "orpheus-bench's Locust listeners did not run: import orpheus_bench.locust.adapter"
        ) from None


class Bridge:
    """See the module docstring."""

    def __init__(self, environment: Any) -> None:
        self.env = environment
        runner = environment.runner
        self.role = "master" if isinstance(runner, MasterRunner) else "local"
        if isinstance(runner, WorkerRunner):
            self.role = "worker"
        self.run: RunSide | None = None
        self.users: UserSide | None = None
        self.step_mode = bool(getattr(environment.parsed_options, "step_levels", None))
        self._flushed: set[str] = set()
        self._configured = False
        self._ticker: gevent.Greenlet | None = None

    # ---- Locust events ---------------------------------------------------------------------------------
    @classmethod
    def install(cls, environment: Any) -> Bridge:
        """``init``: build this process's sides; a bad option ends Locust with exit code 2 before any request."""
        bridge = cls(environment)
        _bridges[id(environment)] = bridge
        try:
            bridge._setup()
        except ConfigError as exc:
            log.error("orpheus-bench: %s", exc)
            raise SystemExit(2) from None
        return bridge

    def _setup(self) -> None:
        options = self.env.parsed_options
        runner = self.env.runner
        if self.role != "worker":
            sc = scenario_from_options(options, self.env.host)
            plan = step_plan(options, sc)
            if self.env.shape_class is None and not self.step_mode:
                # Locust itself holds -u users and ends the run at -t: one open-ended level.
                plan = dataclasses.replace(plan, duration_s=None)
            out = getattr(options, "run_dir", None) or os.path.join(
                "runs", "locust-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            )
            info = {
                "role": self.role,
                "locust_version": locust.__version__,
                "processes": getattr(options, "processes", None),
                "expect_workers": getattr(options, "expect_workers", None) if self.role == "master" else None,
                "step_levels": self.step_mode,
            }
            self.run = RunSide(
                recorded_scenario(sc, plan),
                plan,
                out,
                force=bool(getattr(options, "force", False)),
                publish=self._publish,
                nodes=self._nodes,
                locust_info=info,
                api_key=api_key_from(options),
            )
            log.info("orpheus-bench: run directory %s", self.run.rundir.path)
        if self.role != "master":
            local = self.role == "local"
            self.users = UserSide(
                self.env.events,
                node=LOCAL_NODE if local else str(runner.client_id),
                node_index=0,
                publish_record=self._run_side().on_record if local else self._send_record,
                report_ready=self._local_ready if local else self._send_ready,
                report_idle=self._local_idle if local else self._send_idle,
            )
        if self.role == "master":
            runner.register_message(MSG_RECORD, self._on_record_msg)
            runner.register_message(MSG_READY, self._on_ready_msg)
            runner.register_message(MSG_IDLE, self._on_idle_msg)
            runner.register_message(MSG_FLUSHED, self._on_flushed_msg)
        elif self.role == "worker":
            runner.register_message(MSG_LEVEL, self._on_level_msg)
            runner.register_message(MSG_FLUSH, self._on_flush_msg, concurrent=True)

    def on_test_start(self) -> None:
        """``test_start``: the users' side resolves its scenario (a worker has the master's options by now)."""
        if self.run is not None and self.env.shape_class is None and self._ticker is None:
            self._ticker = gevent.spawn(self._tick_without_shape)
        if self.users is None or self._configured:
            return
        self._configured = True
        options = self.env.parsed_options
        try:
            sc = scenario_from_options(options, self.env.host)
        except ConfigError as exc:
            self.users.fail_setup(str(exc))
            return
        if self.role == "worker":
            self.users.node_index = int(getattr(self.env.runner, "worker_index", 0) or 0)
        self.users.configure(sc, api_key_from(options), self._decoder_factory())

    def on_test_stopping(self) -> None:
        """``test_stopping`` on the master: collect every worker's last records before anything closes."""
        if self.role != "master":
            return
        nodes = self._nodes()
        self.env.runner.send_message(MSG_FLUSH, {})
        deadline = time.monotonic() + (self.env.stop_timeout or 0.0) + FLUSH_MARGIN_S
        while not nodes <= self._flushed and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = nodes - self._flushed
        if missing:
            log.error("orpheus-bench: no final records from workers %s; the run may miss requests", sorted(missing))

    def on_quitting(self) -> None:
        """``quitting``: stop what still runs, close the run directory, set the exit code from the gates."""
        runner = self.env.runner
        if self._ticker is not None:
            self._ticker.kill(block=False)
        if self.run is not None:
            if runner is not None and runner.state != STATE_STOPPED:
                runner.stop()  # Ctrl-C lands here with users still running: record them as cancelled
            code = self.run.finish()
            if code is not None:
                self.env.process_exit_code = code
        if self.users is not None:
            self.users.close()

    def tick(self, elapsed_s: float) -> tuple[int, float] | None:
        """The load shape's tick: the level controller, capped by ``-t`` in step mode."""
        run = self._run_side()
        run_time = getattr(self.env.parsed_options, "run_time", None)
        if self.step_mode and run_time and elapsed_s >= run_time:
            log.info("orpheus-bench: --run-time reached before the last level ended")
            return None
        out = run.controller.tick()
        if out is None and run.controller.failed is not None:
            log.error("orpheus-bench: stopping: %s", run.controller.failed)
        return out

    def _tick_without_shape(self) -> None:
        # A locustfile without StepLoadShape: Locust sets the user count; levels still need their controller.
        run = self._run_side()
        while run.controller.tick() is not None:
            gevent.sleep(TICK_S)
        if run.controller.failed is not None or run.controller.finished:
            runner = self.env.runner
            if getattr(self.env.parsed_options, "headless", False):
                runner.quit()
            else:
                runner.stop()

    # ---- wiring -------------------------------------------------------------------------------------------
    def _run_side(self) -> RunSide:
        if self.run is None:
            raise RuntimeError(f"a Locust {self.role} has no run side")
        return self.run

    def _decoder_factory(self) -> DecoderFactory | None:
        for cls in self.env.user_classes:
            factory = getattr(cls, "decoder_factory", None)
            if factory is not None:
                return factory
        return None

    def _nodes(self) -> set[str]:
        if self.role == "local":
            return {LOCAL_NODE}
        return {str(c.id) for c in self.env.runner.clients.all if c.state != STATE_MISSING}

    def _publish(self, state: LevelState) -> None:
        if self.role == "local":
            assert self.users is not None
            self.users.apply(state)
        else:
            self.env.runner.send_message(MSG_LEVEL, state.to_message())

    def _local_ready(self, snac: dict[str, Any] | None, error: str | None) -> None:
        self._run_side().on_ready(LOCAL_NODE, snac, error)

    def _local_idle(self, index: int, lag_ms: list[float], decode: dict[str, Any] | None) -> None:
        self._run_side().on_idle(LOCAL_NODE, index, lag_ms, decode)

    # worker -> master
    def _send_record(self, record: RequestRecord) -> None:
        self.env.runner.send_message(MSG_RECORD, record.to_dict())

    def _send_ready(self, snac: dict[str, Any] | None, error: str | None) -> None:
        self.env.runner.send_message(MSG_READY, {"snac": snac, "error": error})

    def _send_idle(self, index: int, lag_ms: list[float], decode: dict[str, Any] | None) -> None:
        self.env.runner.send_message(MSG_IDLE, {"index": index, "lag_ms": lag_ms, "decode": decode})

    def _on_level_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        assert self.users is not None
        self.users.apply(LevelState.from_message(msg.data))

    def _on_flush_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        runner = self.env.runner
        if runner.state != STATE_STOPPED:
            runner.stop()  # kills the users: in-flight requests are recorded as cancelled and sent first
        runner.send_message(MSG_FLUSHED, {})

    # master <- worker
    def _on_record_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        self._run_side().on_record(RequestRecord.from_dict(msg.data))

    def _on_ready_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        self._run_side().on_ready(str(msg.node_id), msg.data.get("snac"), msg.data.get("error"))

    def _on_idle_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        self._run_side().on_idle(
            str(msg.node_id), int(data["index"]), list(data.get("lag_ms") or []), data.get("decode")
        )

    def _on_flushed_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        self._flushed.add(str(msg.node_id))


def run_dir_of(environment: Any) -> Path | None:
    """The run directory a local runner or master writes (None on a worker)."""
    bridge = _bridges.get(id(environment))
    return bridge.run.rundir.path if bridge is not None and bridge.run is not None else None
