"""orpheus-bench's additions to Locust's web UI, made through Locust's documented extension points.

- A **TTS levels** tab (template arguments ``extended_tabs`` and ``extended_tables``; its rows ride on every
  ``/stats/requests`` poll as ``extended_stats``): one row per level of the run in progress, or of the last run
  once stopped, with TTFA p50/p95, first token and total p50, real-time factor and stall share, computed by
  `orpheus_bench.locust.live` from the level's records.
- ``/orpheus-bench/report``: the orpheus-bench HTML report of that run, linked from the Download Data tab
  (``extended_csv_files``). While the test runs it is drawn without plots: rendering runs on the hub that
  times the users' requests, and tables take milliseconds where plots take seconds.
- ``/orpheus-bench/levels``: the same rows as JSON, for scripts and tests.
- ``/swarm``'s answer says what drives the load (the form's user count, or the step shape) instead of
  Locust's "Swarming started using shape class ...", which read as if the form were ignored.

Routes are added with a Flask blueprint on ``web_ui.app`` (honouring ``--web-base-path`` and ``--web-login``),
responses extended with ``after_request``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from flask import Blueprint, Response, jsonify, make_response, request

from orpheus_bench.locust.runside import RunSide

TAB_KEY = "orpheus-bench"
TAB_TITLE = "TTS levels"
REPORT_ROUTE = "orpheus-bench/report"
LEVELS_ROUTE = "orpheus-bench/levels"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "Run"),
    ("level", "Level"),
    ("phase", "Phase"),
    ("ok", "OK"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
    ("ttfa_p50_ms", "TTFA p50 (ms)"),
    ("ttfa_p95_ms", "TTFA p95 (ms)"),
    ("first_token_p50_ms", "First token p50 (ms)"),
    ("total_p50_ms", "TTS total p50 (ms)"),
    ("rtf_p50", "RTF p50"),
    ("stall_share_pct", "Stall share % (no pre-roll)"),
)


class LiveSource(Protocol):
    """What the web UI reads from the Locust bridge."""

    run: RunSide | None  # the run in progress, else the last one
    follow: bool  # the form's user count drives the levels
    env: Any


def live_rows(source: LiveSource) -> list[dict[str, Any]]:
    """The TTS tab's rows: one per level of the current (or last) run."""
    return [] if source.run is None else [view.row() for view in source.run.live.views()]


def running(source: LiveSource) -> bool:
    """A run is open."""
    return source.run is not None and not source.run.finished


def swarm_message(source: LiveSource) -> str:
    """What a Start in the web UI does."""
    options = source.env.parsed_options
    if source.follow:
        users = getattr(options, "num_users", None)
        return f"Swarming {users} users: each user count you set is one orpheus-bench level (tab {TAB_TITLE})"
    levels = ",".join(str(u) for u in getattr(options, "step_levels", None) or [])
    return f"Swarming with --step-levels {levels}: the step shape sets the users, not the form"


def render_run_report(run_dir: Path, *, plots: bool) -> str:
    """The orpheus-bench HTML report of a run directory, as ``orpheus-bench report`` draws it."""
    # Imported here: matplotlib and the results layer are not needed until someone asks for a report.
    from orpheus_bench.report.html import render_html
    from orpheus_bench.results.compile import compile_run

    return render_html(compile_run(run_dir), include_plots=plots)


def install_web_ui(web_ui: Any, source: LiveSource, base_path: str = "") -> None:
    """Add the TTS tab, the report and levels routes and the ``/swarm`` message to Locust's web UI."""
    base = base_path.rstrip("/")
    web_ui.template_args.update(
        extended_tabs=[{"title": TAB_TITLE, "key": TAB_KEY}],
        extended_tables=[{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}],
        extended_csv_files=[
            {"href": f"./{REPORT_ROUTE}", "title": "orpheus-bench report of this run (HTML)"},
            {"href": f"./{LEVELS_ROUTE}", "title": "orpheus-bench levels of this run (JSON)"},
        ],
    )

    def report() -> Response:
        run = source.run
        if run is None:
            return make_response("No orpheus-bench run yet: press Start, then open this page again.", 404)
        try:
            html = render_run_report(run.rundir.path, plots=not running(source))
        except Exception as exc:  # the report is a view: whatever breaks it, the load test goes on
            return make_response(f"The report of {run.rundir.path} cannot be drawn: {type(exc).__name__}: {exc}", 503)
        response = make_response(html)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response

    def levels() -> Response:
        run = source.run
        return jsonify(
            {
                "run_dir": None if run is None else str(run.rundir.path),
                "running": running(source),
                "complete": None if run is None else run.rundir.meta.get("complete"),
                "levels": live_rows(source),
            }
        )

    blueprint = Blueprint("orpheus_bench", __name__, url_prefix=base or None)
    blueprint.add_url_rule(f"/{REPORT_ROUTE}", "report", web_ui.auth_required_if_enabled(report))
    blueprint.add_url_rule(f"/{LEVELS_ROUTE}", "levels", web_ui.auth_required_if_enabled(levels))
    web_ui.app.register_blueprint(blueprint)

    stats_path, swarm_path = f"{base}/stats/requests", f"{base}/swarm"

    @web_ui.app.after_request
    def _extend(response: Response) -> Response:
        if request.path not in (stats_path, swarm_path) or not response.is_json:
            return response
        data = response.get_json(silent=True)
        if not isinstance(data, dict):
            return response
        if request.path == stats_path:
            data["extended_stats"] = [{"key": TAB_KEY, "data": live_rows(source)}]
        elif data.get("success"):
            data["message"] = swarm_message(source)
        response.set_data(json.dumps(data))
        return response
