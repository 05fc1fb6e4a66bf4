"""Locust command-line options for orpheus-bench, named as in ``orpheus-bench run``, and what they resolve to.

The scenario options are registered by the shared `orpheus_bench.cli_options.add_scenario_options`, on
Locust's parser minus the options Locust already owns (``--host``), so both entry points take the same flags
and map them to the same scenario fields. Locust adds the step-shape options (``--step-levels``, ``--step-requests``,
``--step-duration``), ``--run-dir`` and ``--gate``. A master hands every one of these to its workers with each
spawn message, so workers need no orpheus-bench flags of their own. None of them is listed among the web UI's
custom parameters: the decoder is loaded and the scenario resolved once per process, so a value edited in the
form would be recorded in run.json without being used; the form sets users, spawn rate, host and run time.
"""

from __future__ import annotations

import argparse
from typing import Any, cast

from orpheus_bench.cli_options import add_scenario_options, scenario_from_args
from orpheus_bench.errors import ConfigError
from orpheus_bench.locust.levels import StepPlan
from orpheus_bench.scenario import Scenario

DRAIN_MARGIN_S = 30.0


class _LocustParserView:
    """Forwards ``add_argument`` to Locust's parser, skipping options it already defines."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser

    def add_argument(self, *names: str, **kwargs: Any) -> Any:
        kwargs["include_in_web_ui"] = False  # see the module docstring
        try:
            return self._parser.add_argument(*names, **kwargs)
        except argparse.ArgumentError:
            return None  # Locust's own (--host), or added by an earlier firing of the parser event


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_options(parser: Any) -> None:
    """Register orpheus-bench's options on Locust's parser (``events.init_command_line_parser``)."""
    view = _LocustParserView(parser)
    add_scenario_options(cast(argparse.ArgumentParser, view))
    view.add_argument(
        "--step-levels",
        type=_int_list,
        help="Step shape: user counts to walk, e.g. 1,2,4,8,12 (default: one level of -u users for -t).",
    )
    view.add_argument("--step-requests", type=int, help="Measured requests per level (at least).")
    view.add_argument("--step-duration", type=float, help="Seconds per level instead of a request count.")
    view.add_argument("--no-warmup", action="store_true", help="No warmup request per user and level.")
    view.add_argument("--gate", help="Gate rules YAML: the exit code follows them.")
    view.add_argument("--run-dir", help="orpheus-bench run directory (default runs/locust-<timestamp>).")
    view.add_argument("--force", action="store_true", help="Replace an existing run directory.")


def scenario_from_options(options: Any, host: str | None) -> Scenario:
    """The validated scenario: ``--scenario`` file (if any) plus flags; `host` is Locust's ``--host``."""
    ns = argparse.Namespace(**vars(options))
    ns.host = host or None
    sc = cast(Scenario, scenario_from_args(ns))
    if sc.server.profile:
        raise ConfigError(
            "server.profile", "a Locust run targets a running server: start llama-server first, then pass --host"
        )
    return sc


def step_plan(options: Any, sc: Scenario, *, follow: bool = False) -> StepPlan:
    """The levels to walk: ``--step-levels``, else one level of ``-u`` users held for ``-t`` (or until stopped).

    `follow` (the web UI without ``--step-levels``): levels follow the form's user count, each held until the
    count changes or the test stops (or for ``--step-requests`` / ``--step-duration``); ``-t`` then caps the
    whole test instead of timing one level.
    """
    requests = getattr(options, "step_requests", None)
    duration = getattr(options, "step_duration", None)
    if requests and duration:
        raise ConfigError("step_requests", "give --step-requests or --step-duration, not both")
    drain = sc.timeouts.request_s + DRAIN_MARGIN_S
    levels = getattr(options, "step_levels", None)
    if levels:
        if not requests and not duration:
            requests, duration = sc.load.requests_per_level, sc.load.duration_per_level_s
            if duration:
                requests = None
        return StepPlan(tuple(levels), requests, duration, warmup=sc.load.warmup, drain_timeout_s=drain)
    users = int(getattr(options, "num_users", None) or 1)
    if follow:
        return StepPlan(
            (max(users, 1),),  # a placeholder: the first level takes the form's count
            requests or None,
            duration or None,
            warmup=sc.load.warmup,
            spawn_rate=getattr(options, "spawn_rate", None),
            drain_timeout_s=drain,
            follow=True,
        )
    if not requests and not duration:
        duration = getattr(options, "run_time", None) or None
    return StepPlan(
        (users,),
        requests,
        duration,
        warmup=sc.load.warmup,
        spawn_rate=getattr(options, "spawn_rate", None),
        drain_timeout_s=drain,
    )


def recorded_scenario(sc: Scenario, plan: StepPlan) -> Scenario:
    """The scenario as run.json should hold it: its load says what the step plan ran."""
    load = sc.load.model_copy(
        update={
            "concurrency": list(plan.levels),
            "requests_per_level": plan.requests,
            "duration_per_level_s": plan.duration_s,
        }
    )
    return sc.model_copy(update={"load": load})
