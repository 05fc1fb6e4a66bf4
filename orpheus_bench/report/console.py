"""Console tables (rich): the end-of-run summary in the seed's shape, and the before/after comparison.

`render_console(results, console)` is what ``orpheus-bench run`` prints when a sweep ends: one row per level
with concurrency, TTFA p50/p90/p99, total latency p50, throughput, audio seconds per wall second and success
rate, client-bound levels marked, then the run's warnings.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from orpheus_bench.results.compare import Comparison
from orpheus_bench.results.model import RunResults
from orpheus_bench.results.tables import Table, comparison_table, console_table

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
    """Print the per-level summary table of one run, then its warnings."""
    console = console or Console()
    console.print(to_rich(console_table(results)))
    print_warnings(results.warnings, console)


def render_console_comparison(comparison: Comparison, console: Console | None = None) -> None:
    """Print the before/after table."""
    console = console or Console()
    console.print(to_rich(comparison_table(comparison), text_columns=False))
