"""The run's side of a Locust run (local runner or master): run directory, records, levels, gates.

It owns the `LevelController` the load shape ticks, writes ``runs/<name>/requests.jsonl`` through the same
`JsonlSink` and ``run.json`` through the same `RunDirectory` as ``orpheus-bench run`` (``driver: "locust"``),
and adds each level's summary as the level ends. When the run is over it closes the directory (``complete``
only when no level was cut short: see `LevelController.complete`) and, when the scenario names gate rules,
evaluates them on the raw records of the run directory: Locust's exit code then follows the gates, not
Locust's rounded percentiles. It also keeps the run's `LiveRun`, the per-level numbers the web UI shows.

One Locust process can make several runs (Start, Stop, Start again in the web UI): each is its own `RunSide`
in its own directory, the first at ``--run-dir``, the next ones beside it (`next_run_path`).
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orpheus_bench.cli_options import safe_cli_args
from orpheus_bench.locust.levels import LevelController, LevelState, StepPlan
from orpheus_bench.locust.live import LiveRun
from orpheus_bench.records import RequestRecord
from orpheus_bench.rundir import RunDirectory
from orpheus_bench.scenario import Scenario
from orpheus_bench.sinks import JsonlSink

log = logging.getLogger(__name__)
PROPS_TIMEOUT_S = 5.0
EXIT_CONFIG = 2


def load_gate_rules(path: str) -> Any:
    """Gate rules, validated before the first request (ConfigError when gates are unavailable or invalid)."""
    from orpheus_bench.gate import load_rules

    return load_rules(path)


def apply_gates(rules: Any, run_dir: Path) -> int:
    """Evaluate gate rules on a finished run directory and print the verdict; the exit code (0 pass, 1 fail)."""
    from rich.console import Console

    from orpheus_bench.gate import evaluate_and_print

    return int(evaluate_and_print(rules, run_dir, Console(stderr=True)))


def next_run_path(first: Path, number: int) -> Path:
    """Where run `number` (2, 3, ...) of a Locust session goes: ``<first>-<number>``, or the next free suffix."""
    n = number
    while True:
        path = first.with_name(f"{first.name}-{n}")
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            return path
        n += 1


def fetch_props(host: str, api_key: str | None) -> dict[str, Any] | None:
    """GET /props (best effort, for run.json); None when the server does not answer it."""
    req = urllib.request.Request(host.rstrip("/") + "/props")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=PROPS_TIMEOUT_S) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if k not in ("chat_template", "chat_template_tool_use")}


class RunSide:
    """Run directory, record sink, level controller and gates of one run."""

    def __init__(
        self,
        sc: Scenario,
        plan: StepPlan,
        rundir: RunDirectory,
        *,
        gate_rules: Any,
        publish: Callable[[LevelState], None],
        nodes: Callable[[], set[str]],
        locust_info: dict[str, Any],
        api_key: str | None = None,
        run_id: int = 1,
        users_running: Callable[[], int] | None = None,
    ) -> None:
        self.scenario = sc
        self.run_id = run_id
        self.gate_rules = gate_rules
        self.rundir = rundir
        self.rundir.start(
            driver="locust",
            scenario=sc.model_dump(mode="json"),
            cli_args={"argv": safe_cli_args(sys.argv[1:])},
            host=sc.host,
            planned_levels=[] if plan.follow else [f"c={u}" for u in plan.levels],
            locust={**locust_info, "session_run": run_id},
        )
        self.sink = JsonlSink(self.rundir.requests_path)
        self.live = LiveRun(self.rundir.path.name)
        self._publish = publish
        self.controller = LevelController(
            plan,
            publish=self._on_state,
            nodes=nodes,
            on_level_end=self._level_end,
            run=run_id,
            users_running=users_running,
        )
        self.finished = False
        self.rundir.update(server_props=fetch_props(sc.host, api_key))

    # ---- from the users' side ----------------------------------------------------------------------
    def on_record(self, record: RequestRecord) -> None:
        """A finished request: on disk first, then counted for its level."""
        if self.finished:
            log.warning("record %s arrived after the run was closed; dropped", record.request_id)
            return
        self.sink.emit(record)
        self.live.record(record)
        self.controller.record(record)

    def on_ready(self, node: str, snac: dict[str, Any] | None, error: str | None) -> None:
        """A user process loaded its decoder (run.json keeps the first description)."""
        if snac is not None and "snac" not in self.rundir.meta:
            self.rundir.update(snac=snac)
        if error is not None:
            log.error("orpheus-bench: %s: %s", node, error)
        self.controller.ready(node, error)

    def on_idle(self, node: str, index: int, lag_ms: list[float], decode: dict[str, Any] | None) -> None:
        """A user process has nothing in flight at a draining level."""
        self.controller.idle(node, index, lag_ms, decode)

    def _on_state(self, state: LevelState) -> None:
        self.live.phase(state.label, state.phase)
        self._publish(state)

    def _level_end(self, summary: dict[str, Any]) -> None:
        self.sink.level_done(int(summary["level"]))
        self.live.ended(str(summary["label"]), interrupted=bool(summary["interrupted"]))
        if self.controller.plan.follow:
            # What the person tried, in order: the scenario's load and the plan say what ran.
            ran = [int(s["level"]) for s in self.controller.summaries]
            self.rundir.meta["scenario"]["load"]["concurrency"] = ran
            self.rundir.meta["planned_levels"] = [str(s["label"]) for s in self.controller.summaries]
        self.rundir.add_level(summary)

    # ---- the end ------------------------------------------------------------------------------------
    def finish(self) -> int | None:
        """Close the level in progress and the run directory; the exit code the gates (or a failure) ask for."""
        if self.finished:
            return None
        self.finished = True
        ctl = self.controller
        ctl.stop()  # a no-op when every level ended on its own
        self.sink.close()
        self.rundir.finish(complete=ctl.complete, records=self.sink.count, failure=ctl.failed)
        if ctl.failed is not None:
            return EXIT_CONFIG
        if self.gate_rules is not None:
            return apply_gates(self.gate_rules, self.rundir.path)
        return None
