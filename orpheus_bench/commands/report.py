"""`orpheus-bench report`: one run, or a before/after pair, as HTML (default), Markdown or JSON.

    orpheus-bench report runs/after -o reports/after.html
    orpheus-bench report --before runs/before --after runs/after -o reports/compare.html --ttfa-target-ms 200
    orpheus-bench report runs/after --format md            # Markdown to stdout (PR comments, CI summaries)
    orpheus-bench report --before B --after A --format json -o out.json

Without ``-o``, HTML goes to ``<run>/report.html`` (or ``<after>/compare.html``) and Markdown/JSON to stdout.
The console tables are printed too (to stderr when the report itself goes to stdout). Exit codes: 0 written,
2 a run directory is missing or unreadable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.bootstrap import DEFAULT_RESAMPLES
from orpheus_bench.report.console import print_warnings, render_console_comparison, to_rich
from orpheus_bench.report.format import DEFAULT_TTFA_TARGET_MS
from orpheus_bench.report.tables import throughput_table, ttfa_table
from orpheus_bench.results.compare import Comparison, compare
from orpheus_bench.results.compile import compile_run
from orpheus_bench.results.model import RunResults


def register(subparsers: Any) -> None:
    """Add the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="Render a run (or a before/after pair) as an HTML, Markdown or JSON report.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", nargs="?", help="Run directory to report on (or use --after/--before).")
    p.add_argument("--after", help="Run directory of the 'after' run (with --before: a comparison report).")
    p.add_argument("--before", help="Run directory of the 'before' run (the baseline).")
    p.add_argument("-o", "--output", help="Output file (default: see above).")
    p.add_argument(
        "--format",
        choices=("html", "md", "json"),
        default=None,
        help="Output format (default: from the -o suffix, else html).",
    )
    p.add_argument(
        "--ttfa-target-ms",
        type=float,
        default=DEFAULT_TTFA_TARGET_MS,
        help="TTFA target for the status column (default: %(default)g).",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="Bootstrap resamples for every interval, per level and in the comparison (default: %(default)d).",
    )
    p.add_argument("--seed", type=int, default=0, help="Bootstrap random seed (default: 0).")
    p.add_argument(
        "--audio-per-level",
        type=int,
        default=2,
        help="Kept WAVs embedded per level in HTML (default: %(default)d; 0: none).",
    )
    p.add_argument("--no-plots", action="store_true", help="HTML without plots (faster, tables only).")
    p.add_argument("--quiet", action="store_true", help="Do not print the console tables.")
    p.set_defaults(func=run)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return {".md": "md", ".markdown": "md", ".json": "json"}.get(suffix, "html")


def _runs(args: argparse.Namespace) -> tuple[Path, Path | None]:
    after = args.after or args.run_dir
    if args.run_dir and args.after and args.run_dir != args.after:
        raise ConfigError("run_dir", "give the run either as the positional argument or as --after, not both")
    if not after:
        raise ConfigError("run_dir", "which run? give a run directory (or --before B --after A)")
    return Path(after), Path(args.before) if args.before else None


def _default_output(fmt: str, after: Path, before: Path | None) -> Path | None:
    if fmt != "html":
        return None  # stdout
    return after / ("compare.html" if before is not None else "report.html")


def _print_console(
    console: Console,
    after: RunResults,
    before: RunResults | None,
    comparison: Comparison | None,
    target_ms: float,
) -> None:
    if comparison is not None:
        render_console_comparison(comparison, console)
    for role, results in (("after", after), ("before", before)):
        if results is None:
            continue
        if before is not None:
            console.rule(f"{role}: {results.meta.name}")
        console.print(to_rich(ttfa_table(results, target_ms), notes=False))
        console.print(to_rich(throughput_table(results), notes=False))
        print_warnings(results.warnings, console)


def run(args: argparse.Namespace) -> int:
    """Compile the run(s), render the chosen format and write it."""
    fmt = _format(args)
    after_dir, before_dir = _runs(args)
    # The per-level intervals come from the same engine, seed and resamples as the comparison's and the gate's.
    after = compile_run(after_dir, n_resamples=args.bootstrap, seed=args.seed)
    before = compile_run(before_dir, n_resamples=args.bootstrap, seed=args.seed) if before_dir is not None else None
    comparison = compare(before, after, n_resamples=args.bootstrap, seed=args.seed) if before is not None else None
    output = Path(args.output) if args.output else _default_output(fmt, after_dir, before_dir)
    console = Console(stderr=output is None)
    if not args.quiet:
        _print_console(console, after, before, comparison, args.ttfa_target_ms)

    if fmt == "html":
        from orpheus_bench.report.html import render_html  # matplotlib is imported only when needed

        text = render_html(
            after,
            before,
            comparison,
            ttfa_target_ms=args.ttfa_target_ms,
            audio_per_level=max(0, args.audio_per_level),
            include_plots=not args.no_plots,
        )
    elif fmt == "md":
        from orpheus_bench.report.markdown import render_markdown

        text = render_markdown(after, before, comparison, ttfa_target_ms=args.ttfa_target_ms)
    else:
        from orpheus_bench.report.json_out import render_json

        text = render_json(after, before, comparison, ttfa_target_ms=args.ttfa_target_ms)

    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console.print(f"report written: {output}")
    return 0
