"""benchmarks/max_streams.py still runs with every client path (tiny sizes): it makes the README's stream figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "max_streams.py"


def test_paths_side_by_side_with_streams_per_process() -> None:
    args = ["--levels", "4", "--duration-s", "3", "--settle-s", "1", "--retries", "0", "--paths", "aiohttp,stream"]
    args += ["--processes", "2", "--cpu-streams", "4", "--breakdown", "4"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| stream x2 ")]
    assert rows, out
    ramp_row = [c.strip() for c in rows[0]]
    assert ramp_row[2] == "4" and ramp_row[3] == "2"  # 4 streams in total, 2 per process
    assert "stream x2: largest level that held" in out and "per process" in out
    assert "client CPU per token, us" in out and "stream / aiohttp" in out
    assert "bare asyncio protocol" in out and "bare aiohttp loop" in out
