"""Compiled results: a run directory in, a frozen `RunResults` out, and the before/after comparison of two.

`compile_run(run_dir)` reads the records once and asks the measures layer (`orpheus_bench.measures`) for every
statistic; `compare(before, after)` builds the seed's before/after comparison with bootstrap intervals from the
same engine the gate uses. The renderers in `orpheus_bench.report` turn both into tables and pages.
"""

from __future__ import annotations

from orpheus_bench.measures.bootstrap import Interval
from orpheus_bench.measures.playback import PREROLLS_MS, StallStats
from orpheus_bench.measures.stats import Summary
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
