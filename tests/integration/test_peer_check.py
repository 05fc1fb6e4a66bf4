"""The peer check (benchmarks/peer_check.py) runs orpheus-bench and AIPerf against a real llama-server.

A small run (1 and 4 streams, 8 measured requests each, 32 tokens) must print the side-by-side table with a
value from both tools in every column at every level, count exactly the requests asked for, and find the two
tools' request bodies identical on the wire. AIPerf comes from scripts/setup.sh (``.venv/peer``); without it
the test is skipped with that hint, or fails where ``ORPHEUS_BENCH_REQUIRE_TOOLS=1`` (CI), like the
other real-server tests. The README's peer-check tables are also checked against the committed result file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from needs import missing

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "peer_check.py"
RESULT = ROOT / "benchmarks" / "results" / "peer_check.json"
LEVELS = (1, 4)
REQUESTS = 8
TOOLS = ("orpheus-bench", "AIPerf")


def _aiperf() -> Path:
    for candidate in (Path(sys.prefix) / "peer" / "bin" / "aiperf", ROOT / ".venv" / "peer" / "bin" / "aiperf"):
        if candidate.is_file():
            return candidate
    missing("AIPerf is not installed: run scripts/setup.sh (it makes .venv/peer)")


def _table_rows(text: str) -> list[list[str]]:
    """Rows of the side-by-side table (the first pipe table after its title)."""
    start = text.index("side by side (")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


@pytest.mark.integration
@pytest.mark.slow
def test_peer_check_small(llama_server_binary: Path, tmp_path: Path) -> None:
    aiperf = _aiperf()
    out = tmp_path / "peer"
    cmd = [sys.executable, str(SCRIPT), "--levels", ",".join(map(str, LEVELS)), "--requests", str(REQUESTS)]
    cmd += ["--max-tokens", "32", "--aiperf", str(aiperf), "--out", str(out)]
    env = {**os.environ, "LLAMA_SERVER": str(llama_server_binary)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout

    rows = _table_rows(text)
    header, body = rows[0], rows[2:]
    assert header[:3] == ["streams", "tool", "ok/requests"] and len(header) == 8
    for level in LEVELS:
        mine = {row[1]: row for row in body if row[0] == str(level)}
        assert set(mine) == {*TOOLS, "ratio ours/AIPerf"}, body
        for tool in TOOLS:
            assert mine[tool][2] == f"{REQUESTS}/{REQUESTS}", mine[tool]
            for cell in mine[tool][3:]:
                assert re.fullmatch(r"[\d,]+\.\d+", cell) and float(cell.replace(",", "")) > 0, mine[tool]
        assert all(re.fullmatch(r"\d+\.\d+", cell) for cell in mine["ratio ours/AIPerf"][3:]), mine

    assert "bodies on the wire: IDENTICAL" in text
    result = json.loads((out / "peer_check.json").read_text(encoding="utf-8"))
    assert result["probe"]["identical"], result["probe"]["differences"]
    assert [lv["streams"] for lv in result["levels"]] == list(LEVELS)
    for lv in result["levels"]:
        for tool in TOOLS:
            assert lv[tool]["requests"] == REQUESTS and lv[tool]["warmup"] == lv["streams"], (tool, lv[tool])
        assert lv["orpheus-bench"]["prompt_counts"] == lv["AIPerf"]["prompt_counts"]
        assert lv["aiperf_inputs_differences"] == []
        # the tokenizer is the model's own: AIPerf's output counts equal the server's on every request
        assert set(lv["AIPerf"]["server_minus_aiperf_output_tokens"]) == {"0"}


@pytest.mark.unit
def test_readme_quotes_the_committed_peer_check() -> None:
    """The README's peer-check tables are what `peer_check.py --markdown` prints from the committed result."""
    printed = subprocess.run(
        [sys.executable, str(SCRIPT), "--markdown", str(RESULT)], capture_output=True, text=True, check=True
    ).stdout
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    for line in printed.splitlines():
        if line.strip():
            assert line in readme, f"benchmarks/README.md lacks this line of the peer check result: {line}"
