"""How many real-time voices does a server hold: SLO goodput and a capacity search (issue 10).

``slo`` parses an SLO such as ``"ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99"`` and judges requests (goodput)
and load levels on it; ``search`` is the pure policy choosing the next load (grow, bisect, confirm, stop on
saturation); ``driver`` runs it with the real runner into a resumable run directory; ``result`` is the answer
(``capacity_result.json``); ``merge`` lays all measurements out as one ordinary run; ``report`` builds the
capacity page's tables and plot. ``orpheus-bench capacity`` (`orpheus_bench.commands.capacity`) is the CLI.
"""

from __future__ import annotations

from orpheus_bench.capacity.result import RESULT_FILE, CapacityResult, LoadResult, capacity_streams, read_result
from orpheus_bench.capacity.search import Finished, LoadObservation, Measure, SearchConfig, next_step
from orpheus_bench.capacity.slo import LevelEvaluation, Slo, SloTerm, evaluate_level, judge_request, parse_slo

__all__ = [
    "RESULT_FILE",
    "CapacityResult",
    "Finished",
    "LevelEvaluation",
    "LoadObservation",
    "LoadResult",
    "Measure",
    "SearchConfig",
    "Slo",
    "SloTerm",
    "capacity_streams",
    "evaluate_level",
    "judge_request",
    "next_step",
    "parse_slo",
    "read_result",
]
