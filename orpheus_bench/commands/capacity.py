"""`orpheus-bench capacity`: how many streams a server holds under an SLO, found by a resumable load search.

Example::

    orpheus-bench capacity --host http://127.0.0.1:8080 \\
        --slo "ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99" --preroll-ms 250 --out runs/cap

The search grows the load (concurrency, or arrival rate with ``--search rate``) until the SLO breaks, bisects,
re-measures both edges until each verdict is confident, and stops early when the server saturates. It prints
goodput beside throughput for every load, the capacity, where it broke and which SLO term failed first, and
writes ``capacity_result.json`` plus a merged run (``report`` and ``gate`` read the directory). Running the same
command again on an interrupted search resumes it. The scenario flags are those of ``run``.

Exit codes: 0 search finished (or stopped by --max-steps; run again to continue), 2 bad input, 3 server
unusable, 130 interrupted (resumable).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

from orpheus_bench.capacity.driver import CapacityHooks, CapacityPlan, Measurement, run_capacity
from orpheus_bench.capacity.result import CapacityResult, LoadResult, read_result
from orpheus_bench.capacity.search import CONCURRENCY, RATE, SearchConfig, confident
from orpheus_bench.capacity.slo import DEFAULT_CONFIDENCE, DEFAULT_PREROLL_MS, DEFAULT_RESAMPLES, parse_slo
from orpheus_bench.cli_options import (
    add_client_options,
    add_scenario_options,
    api_key_from,
    safe_cli_args,
    scenario_from_args,
)
from orpheus_bench.commands.run import run_async_with_signals

DEFAULT_PROBE_REQUESTS = 20
DEFAULT_MAX_REQUESTS = 120


def register(sub: Any) -> None:
    """Add the `capacity` subcommand."""
    p = sub.add_parser(
        "capacity",
        help="Find how many streams meet an SLO (goodput, capacity search).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scenario_options(p)
    add_client_options(p)
    g = p.add_argument_group("SLO and search")
    g.add_argument(
        "--slo",
        required=True,
        help="Comma-separated terms, e.g. 'ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99' (see docs/capacity.md).",
    )
    g.add_argument("--preroll-ms", type=int, default=DEFAULT_PREROLL_MS, help="Player pre-roll for stall terms.")
    g.add_argument("--search", choices=[CONCURRENCY, RATE], default=CONCURRENCY,
                   help="Search closed-loop concurrency (default) or open-loop arrival rate.")  # fmt: skip
    g.add_argument("--start", type=float, help="First load (default 1 stream, or 1 req/s).")
    g.add_argument("--max-load", type=float, help="Highest load tried (default 64 streams, or 100 req/s).")
    g.add_argument("--min-load", type=float, help="Lowest load stepped down to (default 1, or start/16).")
    g.add_argument("--growth", type=float, default=2.0, help="Growth factor before the SLO breaks (default 2).")
    g.add_argument("--resolution", type=float, default=0.1, help="Rate search: stop bisecting at hi/lo <= 1+this.")
    g.add_argument("--requests-per-level", type=int, help="Measured requests of a first measurement (default 20).")
    g.add_argument("--edge-requests", type=int, default=30, help="Requests a confident edge verdict needs (30).")
    g.add_argument("--max-requests-per-level", type=int, default=DEFAULT_MAX_REQUESTS,
                   help="Stop re-measuring a level at this many requests (default 120).")  # fmt: skip
    g.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="Required pass share (0.95).")
    g.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="Bootstrap resamples per level.")
    g.add_argument("--burstiness", type=float, help="Open loop: gamma shape of inter-arrival times (1 = Poisson).")
    g.add_argument("--no-warmup", action="store_true", help="Do not send warmup requests before each measurement.")
    g.add_argument("--max-steps", type=int, help="Stop after N measurements (run again to continue).")
    p.add_argument("--out", help="Search directory (default runs/capacity-<timestamp>); an existing one resumes.")
    p.add_argument("--force", action="store_true", help="Replace an existing search directory.")
    p.add_argument("--no-doctor", action="store_true", help="Skip the server checks before the first level.")
    p.add_argument("--quiet", action="store_true", help="No progress bars or step lines.")
    p.set_defaults(func=main)


def search_config(args: argparse.Namespace, probe_requests: int) -> SearchConfig:
    """The search settings from the flags (defaults depend on --search)."""
    if args.search == CONCURRENCY:
        start = args.start if args.start is not None else 1.0
        max_load = args.max_load if args.max_load is not None else 64.0
        min_load = args.min_load if args.min_load is not None else 1.0
    else:
        start = args.start if args.start is not None else 1.0
        max_load = args.max_load if args.max_load is not None else 100.0
        min_load = args.min_load if args.min_load is not None else start / 16.0
    return SearchConfig(
        kind=args.search,
        start=start,
        growth=args.growth,
        max_load=max(max_load, start),
        min_load=min(min_load, start),
        resolution=args.resolution,
        probe_requests=probe_requests,
        edge_requests=args.edge_requests,
        max_requests=max(args.max_requests_per_level, probe_requests, args.edge_requests),
        confidence=args.confidence,
    )


class _Progress(CapacityHooks):
    """Progress bars of each measurement (the run's view) plus one line per search step."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        from orpheus_bench.client.progress import RichProgress

        self.quiet = quiet
        self.bars = RichProgress(Console(stderr=True), quiet=quiet)
        self.console = self.bars.console

    def __enter__(self) -> _Progress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.__exit__(*exc)

    def status(self, message: str) -> None:
        """Forwarded to the run's view."""
        self.bars.status(message)

    def level_start(self, plan: Any, total: int | None) -> None:
        """Forwarded to the run's view."""
        self.bars.level_start(plan, total)

    def record(self, record: Any) -> None:
        """Forwarded to the run's view."""
        self.bars.record(record)

    def level_end(self, outcome: Any) -> None:
        """Forwarded to the run's view."""
        self.bars.level_end(outcome)

    def resumed(self, measurements: int) -> None:
        """Say that an earlier search is being continued."""
        if not self.quiet:
            self.console.log(f"resuming the search: {measurements} complete measurement(s) kept")

    def step_start(self, measurement: Measurement) -> None:
        """One line per measurement: which load, why, how many requests."""
        if not self.quiet:
            self.console.log(
                f"[bold]{measurement.directory.split('/')[-1]}[/bold] {measurement.phase}: {measurement.reason} "
                f"-> {measurement.requests} requests"
            )

    def step_end(self, measurement: Measurement, level: LoadResult, search: SearchConfig) -> None:
        """The load's pooled verdict, goodput beside throughput."""
        if self.quiet:
            return
        ev = level.evaluation
        verdict = "[green]meets[/green]" if ev.meets else "[red]misses[/red]"
        sure = "" if confident(level.observation(), search) else " (not confident yet)"
        goodput = "-" if ev.goodput is None else f"{ev.goodput:.0%}"
        tp = "-" if level.throughput_rps is None else f"{level.throughput_rps:.2f}"
        failed = ", ".join(t.key for t in ev.failed_terms)
        self.console.log(
            f"  {level.label}: {verdict}{sure}  n={ev.n} goodput {goodput} throughput {tp} req/s"
            + (f"  failed: {failed}" if failed else "")
        )


def print_result(result: CapacityResult, console: Any) -> None:
    """The answer, the per-load table and the warnings."""
    from rich.text import Text

    from orpheus_bench.report.capacity import answer_table, levels_table
    from orpheus_bench.report.console import print_warnings, to_rich

    console.print(to_rich(levels_table(result)))
    console.print(to_rich(answer_table(result), notes=False))
    console.print(Text(result.summary(), style="bold"))
    print_warnings(result.warnings, console)


def main(args: argparse.Namespace) -> int:
    """Entry point of `orpheus-bench capacity`."""
    from rich.console import Console

    sc = scenario_from_args(args)
    slo = parse_slo(args.slo, preroll_ms=args.preroll_ms)
    probe = args.requests_per_level or sc.load.requests_per_level or DEFAULT_PROBE_REQUESTS
    plan = CapacityPlan(sc, slo, search_config(args, probe), resamples=args.resamples)
    out = args.out or os.path.join("runs", dt.datetime.now().strftime("capacity-%Y%m%d-%H%M%S"))
    console = Console()
    if sc.gate:
        console.print(f"note: capacity does not apply gates; run `orpheus-bench gate {out} --rules {sc.gate}` after")
    with _Progress(args.quiet) as hooks:
        try:
            result = run_async_with_signals(
                run_capacity(
                    plan,
                    out,
                    api_key=api_key_from(args),
                    force=args.force,
                    hooks=hooks,
                    cli_args={"argv": safe_cli_args(sys.argv[1:])},
                    doctor=not args.no_doctor,
                    max_steps=args.max_steps,
                )
            )
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted: run the same command again to resume the search in {out}")
            partial = read_result(out)
            if partial is not None and partial.levels:
                print_result(partial, console)
            return 130
    print_result(result, console)
    if not result.complete:
        console.print(f"[yellow]stopped after {result.steps} measurement(s); run the same command to continue")
    console.print(f"search directory: {out} (capacity_result.json; `orpheus-bench report {out}` for the report)")
    return 0
