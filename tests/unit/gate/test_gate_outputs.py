"""Outputs: JUnit XML shape (testsuite/testcase/failure), Markdown table, console table and reasons."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orpheus_bench.gate.engine import GateReport, evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.report.gate import print_report, render_markdown, write_junit, write_markdown

pytestmark = pytest.mark.unit

RULES = {
    "absolute": ["ttfa_ms p50 <= 300", "ttfa_ms p50 <= 100 at c=1", "success_rate >= 0.99 at c=8"],
    "relative": ["ttfa_ms p50 regress <= 10%", "throughput_rps regress <= 5%"],
}


@pytest.fixture
def report(kit: Any) -> GateReport:
    base = kit.run("base", kit.level_records(1, kit.spread(0.2)))
    cand = kit.run("cand", kit.level_records(1, kit.spread(0.3)))
    return evaluate(rules_from_dict(RULES), cand, base)


def test_junit_shape(report: GateReport, tmp_path: Path) -> None:
    path = write_junit(report, tmp_path / "out" / "gates.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    # One testcase per rule, plus the whole-run rules (runs complete).
    assert len(cases) == len(report.rules) == 6
    assert suite.get("tests") == "6"
    by_name = {c.get("name"): c for c in cases}
    assert set(by_name) >= {"ttfa_ms p50 <= 300", "ttfa_ms p50 regress <= 10%", "runs complete"}
    assert by_name["ttfa_ms p50 <= 300"].find("failure") is None
    failure = by_name["ttfa_ms p50 at c=1 <= 100"].find("failure")
    assert failure is not None and failure.get("message") == "c=1: 300 is not <= 100"
    regress = by_name["ttfa_ms p50 regress <= 10%"].find("failure")
    assert regress is not None and "+50.0%" in (regress.text or "")
    error = by_name["success_rate at c=8 >= 0.99"].find("error")
    assert error is not None and "has no level 8" in (error.get("message") or "")
    # The candidate's requests take 0.6 s instead of 0.5 s, so its closed loop also serves 1/6 fewer per second.
    tp = by_name["throughput_rps regress <= 5%"].find("failure")
    assert tp is not None and "-16.7%" in (tp.text or "")
    assert suite.get("failures") == "3" and suite.get("errors") == "1" and suite.get("skipped") == "0"
    for case in cases:
        assert case.get("classname", "").startswith("orpheus_bench.gate.")
        assert case.find("system-out") is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["seed"] == "0" and props["confidence"] == "0.95"


def test_junit_skipped(kit: Any, tmp_path: Path) -> None:
    run = kit.run("only", kit.level_records(1, kit.spread(0.2)))
    rules = rules_from_dict({"settings": {"missing_baseline": "skip"}, "relative": ["ttfa_ms p50 regress <= 10%"]})
    root = ET.parse(write_junit(evaluate(rules, run), tmp_path / "g.xml")).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("skipped") == "1"
    assert any(c.find("skipped") is not None for c in suite.iter("testcase"))


def test_markdown(report: GateReport, tmp_path: Path) -> None:
    text = render_markdown(report)
    lines = text.splitlines()
    assert lines[0].startswith("### ⛔ error") and "exit 2" in lines[0]
    assert "| rule | level | estimate | interval | limit | n | verdict | reason |" in lines
    row = next(line for line in lines if line.startswith("| ttfa_ms p50 regress <= 10%"))
    assert "+50.0%" in row and "<= +10.0%" in row and "40/40" in row and "❌ fail" in row
    path = write_markdown(report, tmp_path / "s.md")
    write_markdown(report, path)
    assert path.read_text(encoding="utf-8") == text  # rewritten, not appended


def test_console(report: GateReport) -> None:
    console = Console(record=True, width=160)
    print_report(report, console)
    out = console.export_text()
    assert "ttfa_ms p50 regress <= 10%" in out and "+50.0%" in out
    assert "fail: ttfa_ms p50 at c=1 <= 100 @ c=1: 300 is not <= 100" in out
    assert "gate ERROR (exit 2)" in out
