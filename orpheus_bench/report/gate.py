"""Renderings of a `GateReport`: a rich console table, JUnit XML and Markdown; each reads only the report.

Every output shows, for every check (a rule at one level), the estimate, its interval, the limit and the
verdict with its reason. Relative checks on a ratio are shown as a change in percent (``+8.0%`` = the candidate
is 8% higher than the baseline). JUnit has one testcase per rule (a ``failure`` element for FAIL, ``error`` for
an unusable input, ``skipped`` for SKIP) and lists the rule's checks in ``system-out``; Markdown is a table
for a CI job summary or a PR comment.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from orpheus_bench.gate.decide import Verdict
from orpheus_bench.gate.model import Check, GateReport, RuleResult

_STYLE = {
    Verdict.PASS: "green",
    Verdict.SKIP: "dim",
    Verdict.WARN: "yellow",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
}
_MD_MARK = {
    Verdict.PASS: "✅ pass",
    Verdict.SKIP: "⏭️ skip",
    Verdict.WARN: "⚠️ warn",
    Verdict.FAIL: "❌ fail",
    Verdict.ERROR: "⛔ error",
}


# ---- number formatting -----------------------------------------------------------------------------------


def _num(x: float, unit: str = "") -> str:
    if math.isinf(x):
        return "∞ (failed)"  # the statistic lands on failed requests, which count as the worst value
    if unit == "ms":
        return f"{x:.1f} ms"
    text = f"{x:.4g}"
    return f"{text} {unit}".rstrip() if unit else text


def _shown(rule: RuleResult, x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "∞"
    if rule.compare == "ratio":
        return f"{(x - 1.0) * 100.0:+.1f}%"
    if rule.compare == "difference":
        return f"{x:+.4g}"
    if rule.metric == "client_bound":
        return "true" if x else "false"
    return _num(x, rule.unit)


def format_estimate(rule: RuleResult, check: Check) -> str:
    """The estimate as a reader sees it (``312.4 ms``, ``+8.0%``, ``+0.002``)."""
    return _shown(rule, check.estimate)


def format_interval(rule: RuleResult, check: Check) -> str:
    """``[low, high]`` in the estimate's form (without the unit), or ``-``."""
    if check.low is None or check.high is None:
        return "-"
    if rule.compare == "value" and rule.unit == "ms":
        return f"[{check.low:.1f}, {check.high:.1f}]"
    if rule.compare == "value":
        return f"[{check.low:.4g}, {check.high:.4g}]"
    return f"[{_shown(rule, check.low)}, {_shown(rule, check.high)}]"


def format_limit(rule: RuleResult, check: Check) -> str:
    """The limit with its comparison (``<= 300.0 ms``, ``<= +10.0%``)."""
    if check.limit is None:
        return "-"
    return f"{rule.op} {_shown(rule, check.limit)}"


def format_n(check: Check) -> str:
    """Values behind the check: ``40`` or ``candidate/baseline``."""
    if check.n is None:
        return "-"
    return str(check.n) if check.n_baseline is None else f"{check.n}/{check.n_baseline}"


def headline(report: GateReport) -> str:
    """One line: the verdict and the counts."""
    counts = ", ".join(
        f"{report.count(v)} {v.value}" for v in (Verdict.PASS, Verdict.WARN, Verdict.FAIL, Verdict.ERROR, Verdict.SKIP)
        if report.count(v)
    )  # fmt: skip
    against = f" vs {report.baseline}" if report.baseline else ""
    word = {0: "PASS", 1: "FAIL", 2: "ERROR"}[report.exit_code]
    return f"gate {word} (exit {report.exit_code}): {report.candidate}{against}: {counts}"


# ---- console ---------------------------------------------------------------------------------------------


def print_report(report: GateReport, console: Any) -> None:
    """Print the checks table, the reasons of checks that did not pass, and the headline, with rich."""
    from rich import box
    from rich.table import Table

    title = "Gate" + (f": {report.description}" if report.description else "")
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("rule", overflow="fold", min_width=18)
    table.add_column("level", no_wrap=True)
    table.add_column("estimate", justify="right", no_wrap=True)
    table.add_column(f"{report.settings.confidence:.0%} interval", justify="right", no_wrap=True)
    table.add_column("limit", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    reasons: list[tuple[str, str]] = []
    for rule in report.rules:
        for i, check in enumerate(rule.checks):
            style = _STYLE[check.verdict]
            table.add_row(
                rule.title if i == 0 else "",
                check.subject,
                format_estimate(rule, check),
                format_interval(rule, check),
                format_limit(rule, check),
                format_n(check),
                f"[{style}]{check.verdict.value}[/]",
            )
            if check.reason and check.verdict is not Verdict.PASS:
                reasons.append((style, f"{check.verdict.value}: {rule.title} @ {check.subject}: {check.reason}"))
    console.print(table)
    for style, line in reasons:
        console.print(line, style=style, markup=False, highlight=False)
    notes = [
        f"intervals: {report.settings.confidence:.0%} bootstrap, {report.settings.resamples} resamples, "
        f"seed {report.seed}",
        *report.notes,
    ]
    console.print("; ".join(notes), style="dim", markup=False, highlight=False)
    style = _STYLE[report.verdict if report.exit_code else Verdict.PASS]
    console.print(headline(report), style=style, markup=False, highlight=False)


# ---- JUnit -----------------------------------------------------------------------------------------------


def _check_line(rule: RuleResult, check: Check) -> str:
    parts = [
        f"{check.subject}: {check.verdict.value}",
        f"estimate {format_estimate(rule, check)}",
        f"interval {format_interval(rule, check)}",
        f"limit {format_limit(rule, check)}",
        f"n {format_n(check)}",
    ]
    if check.reason:
        parts.append(check.reason)
    return "; ".join(parts)


def junit_tree(report: GateReport) -> ET.ElementTree:
    """The JUnit XML document: ``testsuites > testsuite > testcase`` (one per rule)."""
    failures = report.count(Verdict.FAIL)
    errors = report.count(Verdict.ERROR)
    skipped = report.count(Verdict.SKIP)
    attrs = {
        "name": "orpheus-bench gate",
        "tests": str(len(report.rules)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": "0",
    }
    suites = ET.Element("testsuites", attrs)
    suite = ET.SubElement(suites, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("candidate", report.candidate),
        ("baseline", report.baseline or ""),
        ("confidence", f"{report.settings.confidence:g}"),
        ("resamples", str(report.settings.resamples)),
        ("seed", str(report.seed)),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for rule in report.rules:
        case = ET.SubElement(
            suite, "testcase", {"classname": f"orpheus_bench.gate.{rule.kind}", "name": rule.title, "time": "0"}
        )
        bad = [c for c in rule.checks if c.verdict is rule.verdict]
        summary = "; ".join(f"{c.subject}: {c.reason or c.verdict.value}" for c in bad)
        if rule.verdict is Verdict.FAIL:
            el = ET.SubElement(case, "failure", {"message": summary, "type": "GateFailure"})
            el.text = "\n".join(_check_line(rule, c) for c in bad)
        elif rule.verdict is Verdict.ERROR:
            el = ET.SubElement(case, "error", {"message": summary, "type": "GateInputError"})
            el.text = "\n".join(_check_line(rule, c) for c in bad)
        elif rule.verdict is Verdict.SKIP:
            ET.SubElement(case, "skipped", {"message": summary})
        out = ET.SubElement(case, "system-out")
        failed = [f"failed requests count as: {rule.failed_as}"] if rule.failed_as else []
        out.text = "\n".join([*(_check_line(rule, c) for c in rule.checks), *failed])
    return ET.ElementTree(suites)


def write_junit(report: GateReport, path: str | Path) -> Path:
    """Write the JUnit XML file (parent folders created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tree = junit_tree(report)
    ET.indent(tree)
    tree.write(p, encoding="utf-8", xml_declaration=True)
    return p


# ---- Markdown --------------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: GateReport) -> str:
    """A Markdown summary: headline, then one table row per check."""
    mark = _MD_MARK[report.verdict if report.exit_code else Verdict.PASS]
    lines = [f"### {mark} — {_md(headline(report))}", ""]
    if report.description:
        lines += [_md(report.description), ""]
    lines += [
        "| rule | level | estimate | interval | limit | n | verdict | reason |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for rule in report.rules:
        for i, check in enumerate(rule.checks):
            cells = [
                rule.title if i == 0 else "",
                check.subject,
                format_estimate(rule, check),
                format_interval(rule, check),
                format_limit(rule, check),
                format_n(check),
                _MD_MARK[check.verdict],
                check.reason,
            ]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines += [
        "",
        f"Intervals: {report.settings.confidence:.0%} percentile bootstrap over requests within each level, "
        f"{report.settings.resamples} resamples, seed {report.seed}. Relative estimates are candidate vs "
        "baseline (a ratio shown as % change). Exit codes: 0 pass, 1 a rule failed, 2 input unusable.",
        *(f"Note: {_md(n)}." for n in report.notes),
        "",
    ]
    return "\n".join(lines)


def write_markdown(report: GateReport, path: str | Path) -> Path:
    """Write the Markdown summary (``$GITHUB_STEP_SUMMARY`` is a file per step, so it may be named here)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_markdown(report), encoding="utf-8")
    return p
