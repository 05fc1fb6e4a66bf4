"""`orpheus-bench report`: argument handling, default outputs, formats and errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from orpheus_bench.commands import report
from orpheus_bench.errors import ConfigError

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    return parser.parse_args(["report", *argv])


def test_single_run_html_defaults_into_the_run_dir(run_dirs, capsys) -> None:  # type: ignore[no-untyped-def]
    _, after = run_dirs
    args = parse(str(after), "--no-plots", "--audio-per-level", "0")
    assert args.func(args) == 0
    html = (after / "report.html").read_text()
    assert 'data-table="ttfa"' in html and 'data-table="comparison"' not in html
    out = capsys.readouterr().out
    assert "Time-to-First-Audio" in out and "report written" in out


def test_markdown_to_stdout_with_target(run_dirs, capsys) -> None:  # type: ignore[no-untyped-def]
    before, after = run_dirs
    args = parse(
        "--before",
        str(before),
        "--after",
        str(after),
        "--format",
        "md",
        "--ttfa-target-ms",
        "5000",
        "--bootstrap",
        "100",
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# orpheus-bench report")
    assert "| 5000ms |" in captured.out  # the target column follows --ttfa-target-ms
    assert "Before vs After" in captured.err  # console tables go to stderr when the report is on stdout


def test_json_format_from_suffix(run_dirs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before, after = run_dirs
    out = tmp_path / "r" / "compare.json"
    args = parse("--before", str(before), "--after", str(after), "-o", str(out), "--quiet", "--bootstrap", "50")
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert data["comparison"]["n_resamples"] == 50


def test_usage_errors(run_dirs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before, after = run_dirs
    with pytest.raises(ConfigError):
        args = parse()
        args.func(args)
    with pytest.raises(ConfigError):
        args = parse(str(before), "--after", str(after))
        args.func(args)
    with pytest.raises(ConfigError):
        args = parse(str(tmp_path / "missing"), "--format", "md")
        args.func(args)
