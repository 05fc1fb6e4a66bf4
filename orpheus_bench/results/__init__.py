"""Compiled results: a run directory in, a frozen `RunResults` out, compared and tabulated for every output.

`compile_run(run_dir)` reads the records once and computes every statistic (stats.py for percentiles and the
bootstrap, stalls.py for playback continuity); `compare(before, after)` builds the seed's before/after table
with bootstrap intervals; tables.py turns both into the tables that the console, Markdown and HTML render.
"""

from __future__ import annotations

from orpheus_bench.measures.playback import PREROLLS_MS, StallStats
from orpheus_bench.measures.stats import Interval, Summary
from orpheus_bench.results.compare import Comparison, ComparisonRow, compare
from orpheus_bench.results.compile import AUDIO_FILE_KEY, compile_records, compile_run
from orpheus_bench.results.model import (
    AudioSample,
    LevelResult,
    RequestRow,
    RunMeta,
    RunResults,
    RunSummary,
    ServerSample,
    TtfaSplit,
)

__all__ = [
    "AUDIO_FILE_KEY",
    "PREROLLS_MS",
    "AudioSample",
    "Comparison",
    "ComparisonRow",
    "Interval",
    "LevelResult",
    "RequestRow",
    "RunMeta",
    "RunResults",
    "RunSummary",
    "ServerSample",
    "StallStats",
    "Summary",
    "TtfaSplit",
    "compare",
    "compile_records",
    "compile_run",
]
