"""Console tables (rich): the end-of-run summary in the seed's shape, and the before/after comparison.

`render_console(results, console)` is what ``orpheus-bench run`` prints when a sweep ends: the run's warnings
first (doctor findings, cut-short shares, client-bound levels, random SNAC weights), then one row per level with
concurrency, TTFA p50/p90/p99, total latency p50, throughput, audio seconds per wall second, success and
cut-short rates, client-bound levels marked.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from orpheus_bench.report.compare_tables import comparison_tables
from orpheus_bench.report.format import Table
from orpheus_bench.report.tables import console_table
from orpheus_bench.results.compare import Comparison
from orpheus_bench.results.model import RunResults

_TONE_STYLE = {"good": "green", "bad": "red", "warn": "yellow"}


def to_rich(table: Table, *, notes: bool = True, text_columns: bool = True) -> RichTable:
    """A rich table with the same cells as ``table`` (numbers right-aligned; ``text_columns=False`` drops the
    free-text columns, e.g. the comparison's explanations, which a terminal cannot fit)."""
    caption = "\n".join(table.notes) if notes and table.notes else None
    out = RichTable(
        title=table.title,
        box=box.SIMPLE_HEAVY,
        caption=caption,
        caption_justify="left",
        pad_edge=False,
        collapse_padding=True,
    )
    keep = [i for i in range(len(table.columns)) if text_columns or i not in table.text_columns]
    for i in keep:
        text = i in table.text_columns
        # Numbers never wrap (a folded "1,23|4" misreads); free text does.
        out.add_column(
            table.columns[i],
            justify="left" if text or i == 0 else "right",
            no_wrap=not text,
            overflow="fold" if text else "ellipsis",
        )
    for row in table.rows:
        cells = []
        for cell in (row[i] for i in keep):
            style = _TONE_STYLE.get(cell.tone or "", "")
            if cell.strong:
                style = f"bold {style}".strip()
            cells.append(Text(cell.text, style=style))
        out.add_row(*cells)
    return out


def print_warnings(warnings: tuple[str, ...], console: Console) -> None:
    """Print each warning on its own line, in yellow."""
    for warning in warnings:
        console.print(Text(f"⚠ {warning}", style="yellow"))


def render_console(results: RunResults, console: Console | None = None) -> None:
    """Print the run's warnings (what a reader must know first), then its per-level summary table."""
    console = console or Console()
    print_warnings(results.warnings, console)
    console.print(to_rich(console_table(results)))


def render_console_comparison(comparison: Comparison, console: Console | None = None) -> None:
    """Print the comparison's first lines, then the before/after tables."""
    console = console or Console()
    print_warnings(comparison.first_lines, console)
    for table in comparison_tables(comparison):
        console.print(to_rich(table, text_columns=False))
