"""The one rule language: both spellings parse to the same query, and the gate and the capacity SLO answer alike."""

from __future__ import annotations

from typing import Any

import pytest

from orpheus_bench.capacity.slo import evaluate_table, parse_slo
from orpheus_bench.gate.engine import evaluate
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.measures.query import EXCLUDE, WORST, Query, parse_term
from orpheus_bench.measures.table import level_tables

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("gate", "capacity", "query"),
    [
        ("ttfa_ms p95 <= 500", "ttfa_p95_ms<=500", Query("ttfa_ms", "p95")),
        ("total_ms p99 < 2000", "total_p99_ms<2000", Query("total_ms", "p99")),
        ("rtf p95 < 1", "rtf_p95<1", Query("rtf", "p95")),
        ("ttfa_ms mean <= 400", "ttfa_mean_ms<=400", Query("ttfa_ms", "mean")),
        ("continuity_rate >= 0.99", "continuity>=0.99", Query("continuity_rate")),
        ("success_rate >= 99%", "success_rate>=0.99", Query("success_rate")),
    ],
)
def test_both_spellings_are_one_term(gate: str, capacity: str, query: Query) -> None:
    a, b = parse_term(gate), parse_term(capacity)
    assert a.query == b.query == query
    assert (a.op, float(a.threshold)) == (b.op, float(b.threshold))
    assert a.compact() == b.compact()


def test_failed_requests_option_and_levels() -> None:
    term = parse_term("ttfa_ms p95 <= 500 at c=4 failed=exclude")
    assert term.query.failed == EXCLUDE and term.level == "c=4"
    assert parse_term("ttfa_p95_ms<=500").query.failed == WORST  # the one default, for gates and SLOs alike
    with pytest.raises(ValueError, match="failed= takes"):
        parse_term("ttfa_ms p95 <= 500 failed=ignore")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ttfa_p95<=500", "ttfa_p95_ms"),
        ("rtf_p95_ms<1", "no unit"),
        ("ttfa_p0_ms<=5", "(0, 100]"),
        ("<= 5", "no metric"),
        ("ttfa_ms p95 <= fast", "not a number"),
    ],
)
def test_parse_errors_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        parse_term(text)


def test_the_gate_and_the_capacity_slo_give_the_same_answer(kit: Any) -> None:
    # One level with three failures in 43: both count them as +inf (the one default), so p95's rank (39.9 of
    # 0..42) reaches into them and both fail p95 <= 260 ms, while p50 <= 260 ms passes in both, with the same
    # value and interval.
    recs = kit.level_records(1, kit.spread(0.2, n=40)) + [kit.record(1, 99 + i, None, 0.5, ok=False) for i in range(3)]
    run = kit.run("one", recs)
    rules = rules_from_dict(
        {"settings": {"min_requests": 10}, "absolute": [
            {"metric": "ttfa_ms", "stat": "p50", "op": "<=", "threshold": 260, "decide": "confident_pass"},
            "ttfa_p95_ms <= 260",
        ]}
    )  # fmt: skip
    report = evaluate(rules, run)
    p50_check = next(r for r in report.rules if r.title.startswith("ttfa_ms p50")).checks[0]
    p95_check = next(r for r in report.rules if r.title.startswith("ttfa_ms p95")).checks[0]
    assert p50_check.verdict.value == "pass" and p95_check.verdict.value == "fail"
    slo = parse_slo("ttfa_p50_ms<=260,ttfa_ms p95 <= 260")
    (table,) = level_tables(recs)
    ev = evaluate_table(table, slo, resamples=2000, seed=0)
    p50, p95 = ev.terms
    assert p50.met and not p95.met
    assert (p50.value, p50.low, p50.high) == pytest.approx((p50_check.estimate, p50_check.low, p50_check.high))
    assert p95.value == p95_check.estimate == float("inf")
