"""`orpheus-bench gate` through `orpheus_bench.cli.main`: exit codes 0/1/2, output files, the run command's hook."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orpheus_bench import cli
from orpheus_bench.gate.engine import evaluate_and_print
from orpheus_bench.gate.rules import load_rules

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def only_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other subcommands may be mid-construction in this tree; the gate's exit codes do not depend on them.
    monkeypatch.setattr(cli, "COMMANDS", ["gate"])


@pytest.fixture
def runs(kit: Any) -> tuple[Path, Path]:
    base = kit.run("main", kit.level_records(2, kit.spread(0.2), warmup=2))
    cand = kit.run("candidate", kit.level_records(2, kit.spread(0.3), warmup=2))
    return base, cand


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_exit_0_on_pass_with_outputs(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = runs
    rules = write(tmp_path, "absolute:\n  - success_rate >= 0.99\nrelative:\n  - ttfa_ms p50 regress <= 5%\n")
    junit, summary = tmp_path / "o" / "g.xml", tmp_path / "o" / "s.md"
    argv = [
        "gate",
        str(base),
        "--rules",
        str(rules),
        "--baseline",
        str(base),
        "--junit",
        str(junit),
        "--summary",
        str(summary),
    ]
    assert cli.main(argv) == 0
    assert ET.parse(junit).getroot().find("testsuite") is not None
    assert "✅ pass" in summary.read_text(encoding="utf-8")
    assert "gate PASS (exit 0)" in capsys.readouterr().out


def test_exit_1_on_regression(runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, cand = runs
    rules = write(tmp_path, "relative:\n  - ttfa_ms p50 regress <= 10%\n")
    assert cli.main(["gate", str(cand), "--rules", str(rules), "--baseline", str(base), "--seed", "7"]) == 1


@pytest.mark.parametrize(
    ("rules_text", "extra", "why"),
    [
        ("absolute:\n  - nonsense_metric p50 <= 1\n", [], "unknown metric"),
        ("relative:\n  - ttfa_ms p50 regress <= 10%\n", [], "need a baseline"),
        ("absolute:\n  - success_rate >= 0.99 at c=16\n", [], "has no level 16"),
        ("absolute:\n  - success_rate >= 0.99\n", ["--baseline", "/nonexistent/run"], ""),
    ],
)
def test_exit_2_on_unusable_input(
    runs: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rules_text: str,
    extra: list[str],
    why: str,
) -> None:
    _, cand = runs
    rules = write(tmp_path, rules_text)
    assert cli.main(["gate", str(cand), "--rules", str(rules), *extra]) == 2
    captured = capsys.readouterr()
    assert why in captured.out + captured.err


def test_exit_2_on_missing_arguments_and_files(runs: tuple[Path, Path], tmp_path: Path) -> None:
    _, cand = runs
    assert cli.main(["gate", str(cand)]) == 2
    assert cli.main(["gate", str(cand), "--rules", str(tmp_path / "none.yaml")]) == 2
    rules = write(tmp_path, "absolute:\n  - success_rate >= 0.99\n")
    assert cli.main(["gate", str(tmp_path / "no-run"), "--rules", str(rules)]) == 2


def test_help_rules_lists_fields_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gate", "--help-rules"]) == 0
    out = capsys.readouterr().out
    assert "settings.confidence" in out and "stall_rate" in out and "needs preroll_ms" in out


def test_run_command_hook_signature(runs: tuple[Path, Path], tmp_path: Path) -> None:
    # `orpheus-bench run --gate` calls load_rules(path) then evaluate_and_print(rules, run_dir, console=console).
    _, cand = runs
    rules = load_rules(write(tmp_path, "absolute:\n  - ttfa_ms p50 <= 250\n"))
    console = Console(record=True, width=140)
    assert evaluate_and_print(rules, cand, console=console) == 1
    assert "gate FAIL (exit 1)" in console.export_text()
