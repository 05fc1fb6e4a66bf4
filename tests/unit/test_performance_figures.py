"""README's stream and CPU figures match the committed benchmark outputs they were copied from (issue 16).

Each figure is read out of ``benchmarks/results/*.txt`` (the raw output of the command named in its first line)
and must appear, as printed there, in README.md's Performance section; rerunning a benchmark and committing its
output without updating the README (or the other way round) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def performance_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Performance")
    return " ".join(text[start : text.index("\n## ", start + 1)].split())


def table_row(text: str, first_cells: list[str]) -> list[str]:
    """The cells of the first table row starting with these cells."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[: len(first_cells)] == first_cells:
            return cells
    raise AssertionError(f"no row {first_cells} in the results file")


def test_streams_held_match_max_streams_output() -> None:
    out = (RESULTS / "max_streams.txt").read_text(encoding="utf-8")
    readme = performance_section()
    held = dict(re.findall(r"^(\S+(?: x\d+)?): largest level that held, lag p99 < 5 ms: (\d+) streams", out, re.M))
    assert f"held **{held['stream']} streams** on the stream transport" in readme
    assert f"and **{held['aiohttp']}** on the old aiohttp path" in readme
    per = int(held["stream x2"]) // 2
    assert f"held **{held['stream x2']} in total, {per} per process**" in readme


def test_cpu_per_token_matches_max_streams_output() -> None:
    out = (RESULTS / "max_streams.txt").read_text(encoding="utf-8")
    readme = performance_section()
    for streams in ("16", "64"):
        cells = table_row(out, [streams])
        aiohttp, stream, ratio = cells[1], cells[2], cells[5]
        assert f"{stream} vs {aiohttp} us at {streams}" in readme, (streams, aiohttp, stream)
        assert f"({ratio}x)" in readme
    bare = table_row(out, ["stream", "bare asyncio protocol (connect, write, count in data_received)"])
    assert f"costs {bare[3]} us per token" in readme


def test_overhead_and_parsing_match_their_outputs() -> None:
    readme = performance_section()
    ho = (RESULTS / "harness_overhead-transports.txt").read_text(encoding="utf-8")
    p50s, p99s = [], []
    for streams in ("1", "16", "64"):
        event = table_row(ho, ["off/stream", streams])[3]
        p50, p99 = (x.strip() for x in event.split("/"))
        p50s.append(p50)
        p99s.append(p99)
    assert f"{' / '.join(p50s)} ms (p50)" in readme and f"p99 {' / '.join(p99s)} ms" in readme
    first = table_row(ho, ["off/stream", "64"])[6].split("/")
    first_old = table_row(ho, ["off/aiohttp", "64"])[6].split("/")
    assert f"p99 {first[1].strip()} vs {first_old[1].strip()} ms" in readme
    pt = (RESULTS / "parse_throughput.txt").read_text(encoding="utf-8")
    means = dict(re.findall(r"(pipeline off(?:, json)?) ([\d,]+) ev/s", pt))
    assert f"parses {means['pipeline off']} SSE events per second" in readme
    assert f"{means['pipeline off, json']} with `json.loads`" in readme
