"""`orpheus-bench export`: a run's records as one flat table (Parquet or CSV) for pandas, DuckDB or a sheet.

    orpheus-bench export runs/after --format parquet        # -> runs/after/requests.parquet
    orpheus-bench export runs/after --format csv -o out.csv

One row per request (warmups included, flagged in ``warmup``) with the raw fields and derived columns
(``ttfa_ms``, ``total_ms``, ``audio_seconds``, ``rtf``, stalls per pre-roll, ...); see
`orpheus_bench.results.flatten`. Exit codes: 0 written, 2 the run directory has no records.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orpheus_bench.errors import ConfigError
from orpheus_bench.records import read_records
from orpheus_bench.results.compile import load_run_json
from orpheus_bench.results.flatten import flatten_records


def register(subparsers: Any) -> None:
    """Add the `export` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="Export a run's per-request records as Parquet or CSV, with derived columns.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", help="Run directory (holds requests.jsonl).")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="Default: parquet.")
    p.add_argument("-o", "--output", help="Output file (default: <run_dir>/requests.<format>).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Flatten the records and write them."""
    import pandas as pd  # heavy; only this command needs it

    run_dir = Path(args.run_dir)
    requests = run_dir / "requests.jsonl"
    if not requests.is_file():
        raise ConfigError("run_dir", f"{run_dir} has no requests.jsonl (is it an orpheus-bench run directory?)")
    name = str(load_run_json(run_dir).get("name") or run_dir.name)
    frame = pd.DataFrame(flatten_records(read_records(str(requests)), run_name=name))
    output = Path(args.output) if args.output else run_dir / f"requests.{args.format}"
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "parquet":
        frame.to_parquet(output, index=False)
    else:
        frame.to_csv(output, index=False)
    print(f"{len(frame)} rows written: {output}")
    return 0
