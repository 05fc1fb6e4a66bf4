"""One real run, one answer: the console table, the report's JSON, the gate and the capacity SLO agree exactly.

Every output asks the measures layer (`orpheus_bench.measures`) the same question with the same seed, so TTFA
p95, total latency p50, throughput, success rate and a stall rate, with their 95% intervals, are the same numbers
wherever they are shown. The run is on a real llama-server with the tiny model; every utterance completes, so
the gate's and the capacity's failed-request rule (failures count as the worst value) and the report's
description of the requests that delivered audio describe the same requests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orpheus_bench.capacity.slo import evaluate_table, parse_slo
from orpheus_bench.client.whole_run import execute_run
from orpheus_bench.gate.engine import evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.measures.metrics import estimate
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.table import level_tables
from orpheus_bench.records import read_records
from orpheus_bench.report.format import fmt_ms, fmt_num, fmt_pct
from orpheus_bench.report.json_out import results_dict
from orpheus_bench.report.tables import console_table
from orpheus_bench.results.compile import compile_run
from orpheus_bench.results.meta import load_run_json
from orpheus_bench.scenario import scenario_from_dict

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESAMPLES = 2000
QUESTIONS = {  # the report's headline key -> (gate rule, capacity SLO term)
    "ttfa_ms p95": ("ttfa_ms p95 <= 100000", "ttfa_p95_ms<=100000"),
    "total_ms p50": ("total_ms p50 <= 100000", "total_p50_ms<=100000"),
    "success_rate": ("success_rate >= 0", "success_rate>=0"),
    "stall_rate preroll 250 ms": ("stall_rate at preroll 250 ms <= 1", "continuity>=0"),
    "throughput_rps": ("throughput_rps >= 0", None),
}


async def test_console_report_gate_and_capacity_give_one_answer(llama_server_np4: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sc = scenario_from_dict(
        {
            "host": llama_server_np4,
            "prompts": {"set": "short"},
            "sampling": {"max_tokens": 512, "seed": 3},
            "decode": {"preset": "off"},
            "load": {"concurrency": [2], "requests_per_level": 40},
        }
    )
    assert (await execute_run(sc, run, doctor=False)).complete
    results = compile_run(run, n_resamples=RESAMPLES)
    level = results.level(2)
    assert level.ok == 40 and level.cut_short == 0  # every utterance complete: all outputs count the same requests

    # The report's JSON: the level's headline intervals.
    data = json.loads(json.dumps(results_dict(results)))
    report = data["after"]["levels"][0]["intervals"]

    # The gate: the same statistics as absolute rules, decided with their intervals.
    rules = rules_from_dict(
        {"settings": {"resamples": RESAMPLES, "allow_client_bound": True, "min_requests": 20},
         "absolute": [{**_mapping(gate), "decide": "confident_pass"} for gate, _ in QUESTIONS.values()]}
    )  # fmt: skip
    gate = {r.metric: r.checks[0] for r in evaluate(rules, run).rules if r.kind == "absolute"}

    # The capacity SLO: the same level's table (how the search reads a load), the same terms.
    (table,) = level_tables(read_records(str(run / "requests.jsonl")), load_run_json(run))
    slo = parse_slo(",".join(term for _, term in QUESTIONS.values() if term), preroll_ms=250)
    capacity = {t.key: t for t in evaluate_table(table, slo, resamples=RESAMPLES).terms}

    for key, (rule, term) in QUESTIONS.items():
        mine = report[key]
        assert None not in (mine["estimate"], mine["low"], mine["high"]), key  # a value and an interval to agree on
        check = gate[rule.split()[0]]
        assert (check.estimate, check.low, check.high) == (mine["estimate"], mine["low"], mine["high"]), key
        if term is None:
            continue
        slo_term = capacity[next(t.key for t in slo.level_terms if t.key == parse_slo(term).level_terms[0].key)]
        if key.startswith("stall_rate"):
            # Capacity asks the share that played without a stall: one minus the same share, interval mirrored.
            assert slo_term.value == pytest.approx(1.0 - mine["estimate"])
            assert (slo_term.low, slo_term.high) == pytest.approx((1.0 - mine["high"], 1.0 - mine["low"]))
        else:
            assert (slo_term.value, slo_term.low, slo_term.high) == (mine["estimate"], mine["low"], mine["high"])

    # The console table shows the same point estimates (formatted).
    row = {c: cell.text for c, cell in zip(console_table(results).columns, console_table(results).rows[0], strict=True)}
    assert row["total\np50"] == fmt_ms(report["total_ms p50"]["estimate"])
    assert row["req/s"] == fmt_num(report["throughput_rps"]["estimate"])
    assert row["success"] == fmt_pct(report["success_rate"]["estimate"])
    assert report["throughput_rps"]["estimate"] == estimate(table, Query("throughput_rps"))


def _mapping(rule: str) -> dict[str, object]:
    from orpheus_bench.gate.rules import parse_absolute

    return parse_absolute(rule)
