"""Renderers of compiled results: console (rich), Markdown, JSON and one self-contained HTML file.

Every renderer reads `RunResults` / `Comparison` and the tables built from them (`results.tables`); none of
them computes a statistic of its own, so the console, a PR comment and the HTML report always agree.
"""

from __future__ import annotations

from orpheus_bench.report.console import render_console, render_console_comparison

__all__ = ["render_console", "render_console_comparison"]
