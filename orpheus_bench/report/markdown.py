"""Markdown output (``--format md``): the same tables as the HTML report, for PR comments and CI summaries."""

from __future__ import annotations

from collections.abc import Sequence

from orpheus_bench.report.compare_tables import comparison_tables
from orpheus_bench.report.format import DEFAULT_TTFA_TARGET_MS, Table
from orpheus_bench.report.json_out import report_first_lines
from orpheus_bench.report.tables import run_tables
from orpheus_bench.results.compare import Comparison
from orpheus_bench.results.model import RunResults


def _escape(text: str) -> str:
    # Pipes end a cell and newlines end a row; angle brackets would become HTML in most renderers.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def table_markdown(table: Table, *, heading: str = "###") -> str:
    """One table as a Markdown section: heading, pipe table, notes in italics."""
    lines = [f"{heading} {_escape(table.title)}", ""]
    lines.append("| " + " | ".join(_escape(c) for c in table.columns) + " |")
    left = {0, *table.text_columns}
    lines.append("|" + "|".join("---" if i in left else "---:" for i in range(len(table.columns))) + "|")
    for row in table.rows:
        cells = [f"**{_escape(c.text)}**" if c.strong else _escape(c.text) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"_{_escape(n)}_  " for n in table.notes)
    return "\n".join(lines) + "\n"


def _run_section(results: RunResults, title: str, target_ms: float, warnings: bool) -> list[str]:
    out = [f"## {_escape(title)}", ""]
    if warnings:
        out.extend(f"> ⚠ {_escape(w)}" for w in results.warnings)
        if results.warnings:
            out.append("")
    out.extend(table_markdown(t) for t in run_tables(results, target_ms))
    return out


def render_markdown(
    after: RunResults,
    before: RunResults | None = None,
    comparison: Comparison | None = None,
    *,
    ttfa_target_ms: float = DEFAULT_TTFA_TARGET_MS,
) -> str:
    """The report as Markdown: the comparison first (if any), then each run's tables."""
    parts: list[str] = ["# orpheus-bench report", ""]
    first = report_first_lines(after, before, comparison)
    parts.extend(f"> ⚠ {_escape(line)}" for line in first)
    if first:
        parts.append("")
    if comparison is not None:
        head, *more = comparison_tables(comparison)
        parts.append(table_markdown(head, heading="##"))
        parts.extend(table_markdown(t) for t in more)
    runs: Sequence[tuple[RunResults, str]] = (
        [(after, f"After: {after.meta.name}"), (before, f"Before: {before.meta.name}")]
        if before is not None
        else [(after, after.meta.name)]
    )
    for results, title in runs:
        # A single run's warnings are the report's first lines already; a pair's are repeated in its section.
        parts.extend(_run_section(results, title, ttfa_target_ms, warnings=before is not None))
    return "\n".join(parts)
