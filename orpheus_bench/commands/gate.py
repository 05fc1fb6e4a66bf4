"""`orpheus-bench gate`: judge a run against rules (and a baseline run), for CI.

Exit codes: 0 every rule passed (warnings and skips allowed), 1 a rule failed (a regression, a threshold
missed, a client-bound level, too few requests, an incomplete run), 2 the input is unusable (missing run,
missing or empty level, bad rules, relative rules without a baseline). Rules syntax: docs/gates.md.
"""

from __future__ import annotations

import argparse
from typing import Any

CI_LOG_WIDTH = 140


def register(sub: Any) -> None:
    """Add the `gate` subcommand."""
    p = sub.add_parser(
        "gate",
        help="Check a run against gate rules (and a baseline run); exit 1 on a failed rule.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", nargs="?", help="Candidate run directory.")
    p.add_argument("--rules", help="Gate rules YAML (e.g. scenarios/gates/ci.yaml).")
    p.add_argument("--baseline", help="Baseline run directory for relative rules (overrides the rules' baseline:).")
    p.add_argument("--junit", help="Write JUnit XML here (one testcase per rule).")
    p.add_argument("--summary", help="Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).")
    p.add_argument("--seed", type=int, help="Bootstrap seed (overrides settings.seed).")
    p.add_argument("--help-rules", action="store_true", help="List every rules-file field and metric, then exit.")
    p.set_defaults(func=main)


def _help_rules() -> int:
    from orpheus_bench.gate.rules import describe_rule_fields
    from orpheus_bench.measures.metrics import get, names

    for name, default, desc in describe_rule_fields():
        print(f"{name:28} {default:12} {desc}")
    print("\nmetrics:")
    for name in names():
        spec = get(name)
        extra = " (needs preroll_ms)" if spec.needs_preroll else ""
        better = f", {spec.better} is better" if spec.better else ""
        print(f"  {name:20} {spec.scope:8} {spec.unit:6} {spec.description}{extra}{better}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point of `orpheus-bench gate`."""
    if args.help_rules:
        return _help_rules()
    from orpheus_bench.errors import ConfigError

    if not args.run_dir:
        raise ConfigError("run_dir", "name the candidate run directory")
    if not args.rules:
        raise ConfigError("rules", "--rules FILE is required")
    from rich.console import Console

    from orpheus_bench.gate.engine import evaluate_and_print
    from orpheus_bench.gate.rules import load_rules

    rules = load_rules(args.rules)
    console = Console()
    if not console.is_terminal:
        # CI logs do not wrap lines: a wide table reads better there than rich's default of 80 columns.
        console = Console(width=CI_LOG_WIDTH)
    return evaluate_and_print(
        rules, args.run_dir, console, args.baseline, junit=args.junit, summary=args.summary, seed=args.seed
    )
