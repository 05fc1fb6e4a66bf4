"""Console, Markdown and JSON renderers: same tables, escaped content, strict JSON."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from orpheus_bench.report.console import render_console, render_console_comparison
from orpheus_bench.report.format import Cell, Table
from orpheus_bench.report.json_out import render_json
from orpheus_bench.report.markdown import render_markdown, table_markdown

pytestmark = pytest.mark.unit


def test_console_table_in_the_seed_shape(compiled) -> None:  # type: ignore[no-untyped-def]
    _, after, comparison = compiled
    console = Console(record=True, width=200, color_system=None)
    render_console(after, console)
    text = console.export_text()
    header = re.search(r"^ *Concurrency +n +p50 +p90 +p99 +p50 +req/s +wall s +success +short *$", text, flags=re.M)
    assert header is not None, text  # the second header line; "TTFA"/"total"/"audio s/" sit above
    assert "per level (times in ms)" in text
    assert "1 worker" in text and "4 workers" in text
    assert "audio is noise" in text
    assert text.index("audio is noise") < text.index("per level (times in ms)")  # warnings are the first lines
    console = Console(record=True, width=200, color_system=None)
    render_console_comparison(comparison, console)
    text = console.export_text()
    assert "Before vs After" in text and "faster" in text
    assert "What the factor compares" not in text  # free text is left to the files


def test_markdown_report_has_the_seed_tables(compiled) -> None:  # type: ignore[no-untyped-def]
    before, after, comparison = compiled
    md = render_markdown(after, before, comparison)
    assert "## Before vs After" in md
    assert "| Metric | Before | After | Improvement |" in md
    assert "### Time-to-First-Audio (TTFA)" in md and "### Throughput" in md
    assert md.count("### Time-to-First-Audio (TTFA)") == 2  # after and before
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    single = render_markdown(after)
    assert "Before vs After" not in single and single.startswith("# orpheus-bench report")


def test_markdown_escapes_cells() -> None:
    t = Table("k", "T", ("a|b", "c"), ((Cell("x|y"), Cell("1", strong=True)),), text_columns=(1,))
    md = table_markdown(t)
    assert "| a\\|b | c |" in md
    assert "|---|---|" in md  # text columns are left-aligned
    assert "| x\\|y | **1** |" in md


def test_json_is_strict_and_complete(compiled) -> None:  # type: ignore[no-untyped-def]
    before, after, comparison = compiled
    data = json.loads(render_json(after, before, comparison))
    assert data["schema"] == 1
    assert data["after"]["meta"]["name"] == "after" and data["before"]["meta"]["name"] == "before"
    assert data["comparison"]["rows"][0]["key"] == "ttfa_avg"
    assert data["tables"]["comparison"]["columns"][0] == "Metric"
    assert [t["key"] for t in data["tables"]["after"]][:2] == ["ttfa", "throughput"]
    lv = data["after"]["levels"][0]
    assert lv["ttfa_ms"]["mean"] == pytest.approx(after.levels[0].ttfa_ms.mean)
    single = json.loads(render_json(after))
    assert single["before"] is None and single["comparison"] is None
