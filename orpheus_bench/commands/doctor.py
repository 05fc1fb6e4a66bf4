"""`orpheus-bench doctor`: check a llama-server before benchmarking it.

    orpheus-bench doctor --host http://127.0.0.1:8080 [--scenario S] [--max-tokens N] [--concurrency N]

Reports: server up or loading; for each prompt, the per-slot context and max_tokens against the prompt and the
speech its words ask for (about 4-6 frames per word: which prompts get no audio, which will certainly be cut
short, which may be); /metrics on; an Orpheus vocabulary; slots against concurrency. Without --scenario or
--prompt-file the default scenario's prompts (the seed-lengths set) and max_tokens (512) are checked.
Exit codes: 0 no failed check (warnings allowed), 1 a check failed (requests will get no audio or will
certainly be cut short, among others), 3 server unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from orpheus_bench.server.doctor import DoctorReport, run_checks

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3


def register(subparsers: Any) -> None:
    """Add the `doctor` subcommand."""
    p = subparsers.add_parser(
        "doctor",
        help="Check a llama-server for an Orpheus benchmark (context, metrics, vocabulary, slots).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", help="Base URL of llama-server (default: the scenario's, else 127.0.0.1:8080).")
    p.add_argument("--scenario", help="Scenario YAML: its prompts, voice, max_tokens and concurrency are checked.")
    p.add_argument("--prompt-file", help="Prompts to check, one per line (instead of the scenario's).")
    p.add_argument("--max-tokens", type=int, help="Tokens each request asks for (default: the scenario's).")
    p.add_argument("--concurrency", type=int, help="Planned concurrency (default: the scenario's highest).")
    p.add_argument("--api-key", help="Bearer token (or $ORPHEUS_BENCH_API_KEY).")
    p.add_argument("--json", action="store_true", help="Print the report as JSON.")
    p.set_defaults(func=run)


def _inputs(args: argparse.Namespace) -> tuple[str, dict[str, str], int | None, int | None, str | None]:
    """(host, prompts by id, max_tokens, concurrency, voice) from the scenario and the flags."""
    from orpheus_bench.scenario import Scenario, load_scenario

    # The default scenario when none is given: a run without flags would send these prompts and max_tokens.
    sc = load_scenario(args.scenario) if args.scenario else Scenario()
    host = sc.host
    prompts = {p.id: p.text for p in sc.prompts.load()}
    max_tokens: int | None = sc.sampling.max_tokens
    concurrency = (None if sc.load.rate else max(sc.load.concurrency)) if args.scenario else None
    voice = sc.prompts.voice
    if args.prompt_file:
        from orpheus_bench.prompts import from_file

        prompts = {p.id: p.text for p in from_file(args.prompt_file)}
    return (
        args.host or host,
        prompts,
        args.max_tokens if args.max_tokens is not None else max_tokens,
        args.concurrency if args.concurrency is not None else concurrency,
        voice,
    )


def exit_code(report: DoctorReport) -> int:
    """3 when the server could not be reached, 1 when a check failed, else 0."""
    if not report.reachable:
        return EXIT_UNREACHABLE
    return EXIT_OK if report.ok else EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    """Run the checks and print them."""
    host, prompts, max_tokens, concurrency, voice = _inputs(args)
    report = asyncio.run(
        run_checks(
            host,
            prompts=prompts or None,
            max_tokens=max_tokens,
            concurrency=concurrency,
            api_key=args.api_key or os.environ.get("ORPHEUS_BENCH_API_KEY"),
            voice=voice,
        )
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"doctor {report.base_url}: {report.level}")
        for line in report.lines():
            print(f"  {line}")
        for fit in report.prompts:
            if fit.verdict != "fits":
                print(f"    {fit.verdict:9} {fit.prompt_id}: {fit.prompt_tokens} tokens, room {fit.room_tokens}")
    return exit_code(report)
