"""The metric registry on crafted levels: estimates, counts, failures as the worst value, the bootstrap inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from orpheus_bench.gate.engine import evaluate, load_run
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.measures import bootstrap, metrics
from orpheus_bench.measures.query import EXCLUDE, Query
from orpheus_bench.measures.table import LevelTable, level_tables
from orpheus_bench.results.compile import compile_records

pytestmark = pytest.mark.unit


def _mixed(kit: Any) -> tuple[LevelTable, Any]:
    """40 good requests (TTFA 190-210 ms), one failure, one cancelled, one with invalid codes, one that stalls."""
    recs = kit.level_records(4, kit.spread(0.2), warmup=4)
    recs += [kit.record(4, 100, None, 0.5, ok=False), kit.record(4, 101, 0.3, cancelled=True)]
    recs += [kit.record(4, 102, 0.25, invalid=3), kit.record(4, 103, 0.25, chunk_gap_s=0.2)]
    (table,) = level_tables(recs)
    return table, compile_records(recs).level(4)


@pytest.mark.parametrize(
    ("q", "from_result"),
    [
        (Query("ttfa_ms", "p50"), lambda lv: lv.ttfa_ms.p50),
        (Query("ttfa_ms", "p95"), lambda lv: lv.ttfa_ms.p95),
        (Query("total_ms", "mean"), lambda lv: lv.total_ms.mean),
        (Query("rtf", "p90"), lambda lv: lv.rtf.p90),
        (Query("throughput_rps"), lambda lv: lv.throughput_rps),
        (Query("audio_per_wall_s"), lambda lv: lv.audio_s_per_wall_s),
        (Query("tokens_per_s"), lambda lv: lv.tokens_per_s),
        (Query("success_rate"), lambda lv: lv.success_rate),
        (Query("invalid_code_rate"), lambda lv: lv.invalid_code_rate),
        (Query("stall_rate", preroll_ms=0), lambda lv: lv.stall_at(0).stall_rate),
        (Query("continuity_rate", preroll_ms=0), lambda lv: lv.stall_at(0).continuity_rate),
        (Query("stall_time_ratio", preroll_ms=0), lambda lv: lv.stall_at(0).stall_time_ratio),
    ],
)
def test_the_report_and_the_registry_agree_and_the_bootstrap_reproduces_both(
    kit: Any, q: Query, from_result: Any
) -> None:
    table, result = _mixed(kit)
    expected = from_result(result)
    assert expected is not None
    # The report describes the requests that delivered audio: the same query, asked that way, is its number.
    described = metrics.descriptive(q)
    assert metrics.estimate(table, described) == pytest.approx(expected)
    matrix, stat = metrics.inputs(table, described)
    assert float(bootstrap.point(matrix, stat)) == pytest.approx(expected)


def test_counts_and_failures_counted_as_the_worst_value(kit: Any) -> None:
    table, result = _mixed(kit)
    assert result.n == 44 and result.cancelled == 1 and table.n == 43  # cancelled requests do not count
    assert metrics.count(table, Query("success_rate")) == 43
    assert metrics.estimate(table, Query("success_rate")) == pytest.approx(42 / 43)
    # A rule's TTFA counts the failure as +inf; over successful requests only, 42 values.
    assert metrics.count(table, Query("ttfa_ms", "p50")) == 43
    assert metrics.count(table, Query("ttfa_ms", "p50", failed=EXCLUDE)) == 42
    assert math.isinf(metrics.estimate(table, Query("ttfa_ms", "max")) or 0.0)
    assert metrics.estimate(table, Query("ttfa_ms", "max", failed=EXCLUDE)) == pytest.approx(250.0)
    # Stall share: the stalled stream and the failure (which played nothing) out of 43.
    assert metrics.estimate(table, Query("stall_rate", preroll_ms=0)) == pytest.approx(2 / 43)
    assert metrics.estimate(table, Query("stall_rate", preroll_ms=0, failed=EXCLUDE)) == pytest.approx(1 / 42)


def test_stall_rate_at_a_preroll_not_precomputed_and_a_stall_budget(kit: Any) -> None:
    table, result = _mixed(kit)
    assert result.stall_at(400) is None
    # Three chunks 115 ms late in total: 400 ms of pre-roll absorbs them.
    assert metrics.estimate(table, Query("stall_rate", preroll_ms=400, failed=EXCLUDE)) == 0.0
    # At no pre-roll the stalls last 115 ms each; a 120 ms budget tolerates them.
    tolerant = Query("stall_rate", preroll_ms=0, stall_budget_ms=120.0, failed=EXCLUDE)
    assert metrics.estimate(table, tolerant) == 0.0


def test_warmups_are_excluded(kit: Any) -> None:
    table, _ = _mixed(kit)
    assert all(not r.warmup for r in table.rows)
    assert metrics.estimate(table, Query("ttfa_ms", "max", failed=EXCLUDE)) == pytest.approx(250.0)  # warmups: 5 s


@pytest.mark.parametrize(
    ("stat", "min_requests", "min_tail", "needed"),
    [("p50", 30, 2, 30), ("mean", 30, 2, 30), (None, 30, 2, 30), ("p90", 10, 2, 20), ("p95", 30, 2, 40),
     ("p99", 30, 2, 200), ("p95", 60, 2, 60), ("max", 30, 2, 30)],
)  # fmt: skip
def test_required_requests(stat: str | None, min_requests: int, min_tail: int, needed: int) -> None:
    assert metrics.required_requests(stat, min_requests, min_tail) == needed


def test_throughput_statistic_is_littles_law_on_the_held_rows(kit: Any) -> None:
    (table,) = level_tables(kit.level_records(2, kit.spread(0.2)))
    matrix, stat = metrics.inputs(table, Query("throughput_rps"))
    slower = matrix.copy()
    slower[:, 1] *= 2.0  # every request took twice as long: the closed loop would have served half as many
    assert float(stat(slower[None])[0]) / float(stat(matrix[None])[0]) == pytest.approx(0.5)
    # 2 workers x 40 successes / the 40 latencies, each TTFA + 0.3 s.
    assert metrics.estimate(table, Query("throughput_rps")) == pytest.approx(
        2 * 40 / sum(t + 0.3 for t in kit.spread(0.2))
    )


def test_run_metric_hook_gates_a_provider(kit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_REGISTRY", dict(metrics._REGISTRY))
    metrics.register_run_metric(
        "test_capacity_streams", lambda run: 6.0, unit="streams", description="test capacity", better="higher"
    )
    assert "test_capacity_streams" in metrics.names()
    run = kit.run("cap", kit.level_records(1, kit.spread(0.2)))
    report = evaluate(rules_from_dict({"absolute": ["test_capacity_streams >= 8"]}), run)
    assert report.rules[-1].checks[0].estimate == 6.0 and report.exit_code == 1
    assert evaluate(rules_from_dict({"absolute": ["test_capacity_streams >= 4"]}), run).exit_code == 0
    with pytest.raises(ValueError, match="already registered"):
        metrics.register_run_metric("test_capacity_streams", lambda run: 1.0, unit="", description="", better=None)


def test_a_request_without_a_value_does_not_count(kit: Any) -> None:
    recs = [*kit.level_records(1, kit.spread(0.2, n=5)), kit.record(1, 50, None, 0.4)]
    (table,) = level_tables(recs)
    matrix, _ = metrics.inputs(table, Query("ttfa_ms", "p50"))
    assert np.sum(np.isfinite(matrix)) == 5 and metrics.count(table, Query("ttfa_ms", "p50")) == 5


def test_open_loop_throughput_follows_completions_not_latencies(kit: Any) -> None:
    recs = kit.level_records(2, kit.spread(0.2))
    for r in recs:
        r.scheduled_offset_s = r.run_offset_s
    run = load_run(kit.run("open", recs))
    (table,) = run.tables.values()
    assert table.kind == "rate"
    matrix, stat = metrics.inputs(table, Query("throughput_rps"))
    span = table.completion_span_s
    assert span is not None and float(stat(matrix[None])[0]) == pytest.approx(39 / span)


def test_every_metric_asked_of_a_level_uses_the_same_resamples(kit: Any) -> None:
    # Two metrics of one level with one seed: the same rows are drawn, so a capacity SLO can judge them jointly.
    table, _ = _mixed(kit)
    seed = bootstrap.level_seed(0, table.level)
    a, a_stat = metrics.inputs(table, Query("success_rate"))
    b, _ = metrics.inputs(table, Query("throughput_rps"))
    ia = list(bootstrap.resample_indices(a.shape[0], 300, seed))
    ib = list(bootstrap.resample_indices(b.shape[0], 300, seed))
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib, strict=True))
    assert bootstrap.draws(a, a_stat, n_resamples=300, seed=seed).shape == (300,)
