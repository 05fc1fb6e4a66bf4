"""Cells, tables and number formats: what every renderer (console, Markdown, HTML, JSON) shows the same way.

A `Table` holds display text (and the number behind it, for sorting) so the console, Markdown and HTML show
exactly the same cells; the formats below are the only place a number becomes text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTFA_TARGET_MS = 200.0
DASH = "–"


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: display text, the number behind it (for sorting), and a tone (good/bad/warn)."""

    text: str
    value: float | None = None
    tone: str | None = None
    strong: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table with notes that explain its numbers."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    text_columns: tuple[int, ...] = ()  # free-text columns: left-aligned and wrapped


def fmt_ms(value: float | None) -> str:
    """Milliseconds: one decimal below 1000 ms, thousands separators above ("941.8", "4,012")."""
    if value is None:
        return DASH
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def fmt_num(value: float | None, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals, or a dash."""
    return DASH if value is None else f"{value:,.{digits}f}"


def fmt_pct(value: float | None) -> str:
    """A fraction as a percentage: "100%", "99.5%"."""
    if value is None:
        return DASH
    pct = value * 100.0
    return f"{pct:.0f}%" if pct in (0.0, 100.0) else f"{pct:.1f}%"


def fmt_factor(value: float) -> str:
    """An improvement factor: "5.2x", "15x" ("∞" for a division by zero)."""
    if value == float("inf"):
        return "∞"
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def fmt_factor_precise(value: float) -> str:
    """A factor with enough digits for an interval's ends: "4.83x", "44.6x", "251x"."""
    if value == float("inf"):
        return "∞"
    if value >= 100:
        return f"{value:.0f}x"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def table_dicts(tables: Sequence[Table]) -> list[dict[str, Any]]:
    """Tables as plain dicts (for JSON/|tojson)."""
    return [
        {"key": t.key, "title": t.title, "columns": list(t.columns), "text_columns": list(t.text_columns),
         "rows": [[c.text for c in row] for row in t.rows], "notes": list(t.notes)}
        for t in tables
    ]  # fmt: skip
