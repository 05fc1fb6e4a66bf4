"""The benchmark scripts still run (tiny sizes): they are how the README's performance numbers are made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_parse_throughput_prints_ratio() -> None:
    out = run("parse_throughput.py", "--streams", "2", "--frames", "10", "--repeat", "1")
    assert "events/s" in out


def test_harness_overhead_small() -> None:
    out = run("harness_overhead.py", "--streams", "2", "--decode", "off", "--min-measured", "2")
    assert "p50" in out and "p99" in out


def test_decode_throughput_small() -> None:
    out = run(
        "decode_throughput.py",
        "--streams",
        "1",
        "--frames",
        "5",
        "--fidelity-frames",
        "6",
        "--repeat",
        "1",
        "--skip",
        "cost",
    )
    rows = {line.split("  ")[0].strip(): line.split() for line in out.splitlines() if line.strip()}
    # 6 frames: the reference window outputs (6 - 3) x 2048 samples; blocking decodes all 6 exactly
    assert rows["reference (28 tok)"][-1] == "6144"
    assert rows["blocking"][1] == "exact" and rows["blocking"][-1] == "12288"
    assert "ratio to ref" in out
