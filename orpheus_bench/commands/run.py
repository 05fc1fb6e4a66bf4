"""`orpheus-bench run`: a sweep against a server (or one it starts), into a run directory.

Flags override the scenario file's fields; everything is validated before any request is sent. Exit codes:
0 run complete (and gates passed), 1 a gate failed, 2 bad input, 3 server unusable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
from typing import Any

from orpheus_bench.cli_options import (
    add_client_options,
    add_scenario_options,
    api_key_from,
    float_list,
    int_list,
    safe_cli_args,
    scenario_from_args,
)
from orpheus_bench.scenario import describe_fields


def register(sub: Any) -> None:
    """Add the `run` subcommand."""
    p = sub.add_parser(
        "run",
        help="Run a load sweep and write a run directory.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scenario_options(p)
    add_client_options(p)
    p.add_argument("--concurrency", type=int_list("load.concurrency"), help="Levels, e.g. 1,2,4,8,12.")
    p.add_argument("--rate", type=float_list("load.rate"), help="Open loop: arrivals/s per level, e.g. 0.5,1,2.")
    p.add_argument("--burstiness", type=float, help="Open loop: gamma shape (1 = Poisson).")
    p.add_argument("--requests-per-level", type=int, help="Measured requests per level (after warmup).")
    p.add_argument("--duration-per-level", type=float, help="Seconds per level instead of a request count.")
    p.add_argument("--no-warmup", action="store_true", help="Do not send warmup requests.")
    p.add_argument("--keep-audio", type=int, help="Keep N sample WAVs per level.")
    p.add_argument("--gate", help="Gate rules YAML checked at the end (exit 1 when a rule fails).")
    p.add_argument("--out", help="Run directory (default runs/<timestamp>).")
    p.add_argument("--force", action="store_true", help="Replace an existing run directory.")
    p.add_argument("--no-doctor", action="store_true", help="Skip the server checks before the run.")
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    p.add_argument("--help-scenario", action="store_true", help="List every scenario field and exit.")
    p.set_defaults(func=main)


def run_async_with_signals(coro: Any) -> Any:
    """Run a coroutine; SIGINT/SIGTERM cancel it (so in-flight requests are recorded as cancelled)."""

    async def wrapper() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        interrupted: list[int] = []

        def on_signal(signum: int) -> None:
            interrupted.append(signum)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await coro
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise

    return asyncio.run(wrapper())


def main(args: argparse.Namespace) -> int:
    """Entry point of `orpheus-bench run`."""
    if args.help_scenario:
        for name, default, desc in describe_fields():
            print(f"{name:32} {default:24} {desc}")
        return 0
    from rich.console import Console

    from orpheus_bench.client.progress import RichProgress
    from orpheus_bench.client.whole_run import execute_run
    from orpheus_bench.gate import evaluate_and_print, load_rules

    sc = scenario_from_args(args)
    gate_rules = load_rules(sc.gate) if sc.gate else None
    out = args.out or os.path.join("runs", dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    console = Console()
    hooks = RichProgress(Console(stderr=True), quiet=args.quiet)
    with hooks:
        try:
            outcome = run_async_with_signals(
                execute_run(
                    sc,
                    out,
                    api_key=api_key_from(args),
                    force=args.force,
                    hooks=hooks,
                    cli_args={"argv": safe_cli_args(sys.argv[1:])},
                    doctor=not args.no_doctor,
                )
            )
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted: partial run kept in {out} (run.json says complete: false)")
            _print_results(out, console)
            return 130
    _print_results(out, console)
    console.print(f"records: {outcome.records}  run directory: {outcome.run_dir}")
    if gate_rules is not None:
        return evaluate_and_print(gate_rules, outcome.run_dir, console)
    return 0


def _print_results(out: str, console: Any) -> None:
    from orpheus_bench.report.console import render_console
    from orpheus_bench.results.compile import compile_run

    try:
        results = compile_run(out)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]no results to show: {exc}")
        return
    render_console(results, console)
