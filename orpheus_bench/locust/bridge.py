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

Runs: a test (Start to Stop, or a headless run) is one run. Its `RunSide` opens at the test's first tick and
closes at ``test_stop``, when every user has stopped; a later Start in the web UI opens the next run in a
directory of its own. Options are checked once, at ``init``. In the web UI without ``--step-levels`` the form
drives the levels: each tick hands the form's user count to the level controller (`Bridge.tick`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import gevent
import locust
from locust.runners import STATE_MISSING, STATE_STOPPED, MasterRunner, WorkerRunner

from orpheus_bench.cli_options import api_key_from
from orpheus_bench.errors import ConfigError
from orpheus_bench.locust.levels import LevelState, StepPlan
from orpheus_bench.locust.options import recorded_scenario, scenario_from_options, step_plan
from orpheus_bench.locust.runside import RunSide, load_gate_rules, next_run_path
from orpheus_bench.locust.users import DecoderFactory, UserSide
from orpheus_bench.locust.webui import install_web_ui
from orpheus_bench.records import RequestRecord
from orpheus_bench.rundir import RunDirectory

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
        self.run: RunSide | None = None  # the run in progress, else the last one
        self.users: UserSide | None = None
        self.step_mode = bool(getattr(environment.parsed_options, "step_levels", None))
        self.follow = False  # the web UI's form sets the levels
        self._flushed: set[str] = set()
        self._configured = False
        self._ticker: gevent.Greenlet | None = None
        self._runs = 0
        self._first_dir: RunDirectory | None = None
        self._gate_rules: Any = None
        self._info: dict[str, Any] = {}
        self._readiness: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
        self._bad_form: int | None = None

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
            self.follow = not getattr(options, "headless", False) and not self.step_mode
            sc = scenario_from_options(options, self.env.host)
            self._plan(sc)  # bad step options end Locust here, before anyone presses Start
            self._gate_rules = load_gate_rules(sc.gate) if sc.gate else None
            out = getattr(options, "run_dir", None) or os.path.join(
                "runs", "locust-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            )
            self._first_dir = RunDirectory(out, force=bool(getattr(options, "force", False)))
            self._info = {
                "role": self.role,
                "locust_version": locust.__version__,
                "processes": getattr(options, "processes", None),
                "expect_workers": getattr(options, "expect_workers", None) if self.role == "master" else None,
                "step_levels": self.step_mode,
                "web_ui_form": self.follow,
            }
            web_ui = getattr(self.env, "web_ui", None)
            if web_ui is not None:
                if self.step_mode and self.env.shape_class is not None:
                    # The step shape sets the users: the form greys out its user count and says why.
                    self.env.shape_class.use_common_options = False
                install_web_ui(web_ui, self, getattr(options, "web_base_path", "") or "")
        if self.role != "master":
            local = self.role == "local"
            self.users = UserSide(
                self.env.events,
                node=LOCAL_NODE if local else str(runner.client_id),
                node_index=0,
                publish_record=self._deliver if local else self._send_record,
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
        if self.role != "worker" and self.env.shape_class is None and self._ticker is None:
            self._ticker = gevent.spawn(self._tick_without_shape)
        if self.users is None:
            return
        options = self.env.parsed_options
        try:
            sc = scenario_from_options(options, self.env.host)
        except ConfigError as exc:
            if self._configured:
                log.error("orpheus-bench: %s", exc)
            else:
                self._configured = True
                self.users.fail_setup(str(exc))
            return
        if self._configured:  # a later run of a web UI session: same decoder, maybe another host
            self.users.retarget(sc, api_key_from(options))
            return
        self._configured = True
        if self.role == "worker":
            self.users.node_index = int(getattr(self.env.runner, "worker_index", 0) or 0)
        self.users.configure(sc, api_key_from(options), self._decoder_factory())

    def on_test_stop(self) -> None:
        """``test_stop``: every user has stopped (and every worker flushed): close the run."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not gevent.getcurrent():
            ticker.kill(block=False)
        self._finish_run()
        if self.users is not None:
            self.users.end_run()

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
        if self._running() and runner is not None and runner.state != STATE_STOPPED:
            runner.stop()  # Ctrl-C lands here with users still running: record them as cancelled
        self._finish_run()  # a run whose test_stop never came
        if self.users is not None:
            self.users.close()

    def tick(self, elapsed_s: float | None) -> tuple[int, float] | None:
        """The load shape's tick (`elapsed_s` since Start; None without a shape, where Locust applies ``-t``).

        Opens the run at the test's first tick. Following the form, the form's user count goes to the
        controller and ``-t`` ends the test after the level in progress drains; with ``--step-levels``, ``-t``
        cuts the plan short.
        """
        load = self._form_load() if self.follow else None
        if self.follow and load is None and not self._running():
            return None  # nothing valid to start with (the form asked for no users)
        run = self.run if self._running() else self._open_run()
        if run is None:
            return None
        ctl = run.controller
        run_time = getattr(self.env.parsed_options, "run_time", None) or 0
        capped = elapsed_s is not None and run_time > 0 and elapsed_s >= run_time
        if self.follow:
            if load is not None:
                ctl.want(*load)
            if capped:
                ctl.end_after_drain()
        elif self.step_mode and capped:
            log.info("orpheus-bench: --run-time reached before the last level ended")
            return None
        out = ctl.tick()
        if out is None and ctl.failed is not None:
            log.error("orpheus-bench: stopping: %s", ctl.failed)
        return out

    def _tick_without_shape(self) -> None:
        # A locustfile without StepLoadShape: Locust sets the user count; levels still need their controller.
        while self.tick(None) is not None:
            gevent.sleep(TICK_S)
        run = self.run
        if run is not None and (run.controller.failed is not None or run.controller.finished):
            runner = self.env.runner
            if getattr(self.env.parsed_options, "headless", False):
                runner.quit()
            else:
                runner.stop()

    # ---- runs ---------------------------------------------------------------------------------------------
    def _plan(self, sc: Any) -> StepPlan:
        plan = step_plan(self.env.parsed_options, sc, follow=self.follow)
        if self.env.shape_class is None and not self.step_mode and not self.follow:
            # Locust itself holds -u users and ends the run at -t: one open-ended level.
            plan = dataclasses.replace(plan, duration_s=None)
        return plan

    def _running(self) -> bool:
        return self.run is not None and not self.run.finished

    def _open_run(self) -> RunSide | None:
        """The next run: the first in ``--run-dir``, later ones (web UI: Start after Stop) beside it."""
        assert self._first_dir is not None
        options = self.env.parsed_options
        number = self._runs + 1
        try:
            sc = scenario_from_options(options, self.env.host)  # the form may have changed the host
            plan = self._plan(sc)
            rundir = self._first_dir if number == 1 else RunDirectory(next_run_path(self._first_dir.path, number))
        except ConfigError as exc:
            log.error("orpheus-bench: cannot start run %d: %s", number, exc)
            return None
        self._runs = number
        self.run = RunSide(
            recorded_scenario(sc, plan),
            plan,
            rundir,
            gate_rules=self._gate_rules,
            publish=self._publish,
            nodes=self._nodes,
            locust_info=self._info,
            api_key=api_key_from(options),
            run_id=number,
            users_running=lambda: int(self.env.runner.user_count),
        )
        log.info("orpheus-bench: run directory %s", self.run.rundir.path)
        for node, (snac, error) in self._readiness.items():  # decoders stay loaded from one run to the next
            self.run.on_ready(node, snac, error)
        return self.run

    def _finish_run(self) -> None:
        run = self.run
        if run is None or run.finished:
            return
        code = run.finish()
        log.info("orpheus-bench: run %s closed (complete: %s)", run.rundir.path, run.rundir.meta.get("complete"))
        if code is not None:
            prev = self.env.process_exit_code
            self.env.process_exit_code = code if prev is None else max(prev, code)

    def _form_load(self) -> tuple[int, float | None] | None:
        """(users, spawn rate) the web UI's form asks for; None (logged once per value) when it asks for none."""
        options = self.env.parsed_options
        raw = getattr(options, "num_users", None)
        users = 1 if raw is None else int(raw)
        if users < 1:
            if self._bad_form != users:
                self._bad_form = users
                log.error("orpheus-bench: user_count %d: a level needs at least 1 user; the load is unchanged", users)
            return None
        rate = getattr(options, "spawn_rate", None)
        if isinstance(rate, int | float) and math.isfinite(rate) and rate > 0:
            return users, float(rate)
        return users, None

    # ---- wiring -------------------------------------------------------------------------------------------
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

    # the run's side, whichever way the report came
    def _on_ready(self, node: str, snac: dict[str, Any] | None, error: str | None) -> None:
        self._readiness[node] = (snac, error)  # for the next runs too: a decoder is loaded once
        if self._running():
            assert self.run is not None
            self.run.on_ready(node, snac, error)

    def _deliver(self, record: RequestRecord, run_id: int) -> None:
        run = self.run
        if run is None or run.run_id != run_id or run.finished:
            log.warning("orpheus-bench: record %s of closed run %d dropped", record.request_id, run_id)
            return
        run.on_record(record)

    def _on_idle(self, node: str, run_id: int, index: int, lag_ms: list[float], decode: dict[str, Any] | None) -> None:
        run = self.run
        if run is not None and run.run_id == run_id and not run.finished:
            run.on_idle(node, index, lag_ms, decode)

    def _local_ready(self, snac: dict[str, Any] | None, error: str | None) -> None:
        self._on_ready(LOCAL_NODE, snac, error)

    def _local_idle(self, run_id: int, index: int, lag_ms: list[float], decode: dict[str, Any] | None) -> None:
        self._on_idle(LOCAL_NODE, run_id, index, lag_ms, decode)

    # worker -> master
    def _send_record(self, record: RequestRecord, run_id: int) -> None:
        self.env.runner.send_message(MSG_RECORD, {"run": run_id, "record": record.to_dict()})

    def _send_ready(self, snac: dict[str, Any] | None, error: str | None) -> None:
        self.env.runner.send_message(MSG_READY, {"snac": snac, "error": error})

    def _send_idle(self, run_id: int, index: int, lag_ms: list[float], decode: dict[str, Any] | None) -> None:
        data = {"run": run_id, "index": index, "lag_ms": lag_ms, "decode": decode}
        self.env.runner.send_message(MSG_IDLE, data)

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
        self._deliver(RequestRecord.from_dict(msg.data["record"]), int(msg.data["run"]))

    def _on_ready_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        self._on_ready(str(msg.node_id), msg.data.get("snac"), msg.data.get("error"))

    def _on_idle_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        lag = list(data.get("lag_ms") or [])
        self._on_idle(str(msg.node_id), int(data["run"]), int(data["index"]), lag, data.get("decode"))

    def _on_flushed_msg(self, environment: Any, msg: Any, **_: Any) -> None:
        self._flushed.add(str(msg.node_id))


def run_dir_of(environment: Any) -> Path | None:
    """The run directory a local runner or master writes (None on a worker)."""
    bridge = _bridges.get(id(environment))
    return bridge.run.rundir.path if bridge is not None and bridge.run is not None else None
