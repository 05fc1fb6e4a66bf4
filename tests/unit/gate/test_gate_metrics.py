"""Metrics: point estimates agree with the compiled results, bootstrap statistics reproduce them, the run hook."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from orpheus_bench.gate import metrics
from orpheus_bench.gate.engine import evaluate, load_run
from orpheus_bench.gate.metrics import (
    MetricQuery,
    bootstrap_inputs,
    get_metric,
    level_estimate,
    metric_names,
    register_run_metric,
    required_requests,
    value_count,
)
from orpheus_bench.gate.rules import rules_from_dict
from orpheus_bench.measures.playback import stall_stats

pytestmark = pytest.mark.unit


def _mixed_level(kit: Any) -> Any:
    recs = kit.level_records(4, kit.spread(0.2), warmup=4)
    recs += [kit.record(4, 100, None, 0.5, ok=False), kit.record(4, 101, 0.3, cancelled=True)]
    recs += [kit.record(4, 102, 0.25, invalid=3), kit.record(4, 103, 0.25, chunk_gap_s=0.2)]
    return load_run(kit.run("mixed", recs)).levels[4]


@pytest.mark.parametrize(
    ("metric", "q", "from_result"),
    [
        ("ttfa_ms", MetricQuery("p50"), lambda lv: lv.ttfa_ms.p50),
        ("ttfa_ms", MetricQuery("p95"), lambda lv: lv.ttfa_ms.p95),
        ("total_ms", MetricQuery("mean"), lambda lv: lv.total_ms.mean),
        ("rtf", MetricQuery("p90"), lambda lv: lv.rtf.p90),
        ("throughput_rps", MetricQuery(), lambda lv: lv.throughput_rps),
        ("audio_per_wall_s", MetricQuery(), lambda lv: lv.audio_s_per_wall_s),
        ("tokens_per_s", MetricQuery(), lambda lv: lv.tokens_per_s),
        ("success_rate", MetricQuery(), lambda lv: lv.success_rate),
        ("invalid_code_rate", MetricQuery(), lambda lv: lv.invalid_code_rate),
        ("stall_rate", MetricQuery(preroll_ms=0), lambda lv: lv.stall_at(0).stall_rate),
        ("continuity_rate", MetricQuery(preroll_ms=0), lambda lv: lv.stall_at(0).continuity_rate),
        ("stall_time_ratio", MetricQuery(preroll_ms=0), lambda lv: lv.stall_at(0).stall_time_ratio),
    ],
)
def test_estimates_equal_the_compiled_results_and_the_bootstrap_statistic(
    kit: Any, metric: str, q: MetricQuery, from_result: Any
) -> None:
    lv = _mixed_level(kit)
    spec = get_metric(metric)
    expected = from_result(lv.result)
    assert expected is not None
    assert level_estimate(spec, lv, q) == pytest.approx(expected)
    # The bootstrap's statistic on the unresampled data is the same number, so intervals surround the estimate.
    values, stat = bootstrap_inputs(spec, lv, q)
    assert stat([values[None]])[0] == pytest.approx(expected)


def test_mixed_level_counts(kit: Any) -> None:
    lv = _mixed_level(kit)
    assert lv.result.n == 44 and lv.result.cancelled == 1
    assert value_count(get_metric("success_rate"), lv, MetricQuery()) == 43  # cancelled requests do not count
    assert value_count(get_metric("ttfa_ms"), lv, MetricQuery("p50")) == 42  # successful requests only
    assert level_estimate(get_metric("success_rate"), lv, MetricQuery()) == pytest.approx(42 / 43)
    stalled = stall_stats(lv.ok_records, 0)
    assert stalled.stalled_streams == 1  # the request whose chunks came 200 ms apart


def test_stall_rate_at_a_preroll_not_precomputed(kit: Any) -> None:
    lv = _mixed_level(kit)
    spec = get_metric("stall_rate")
    q = MetricQuery(preroll_ms=400)  # 3 chunks x 115 ms late in total: 400 ms of pre-roll absorbs it
    assert lv.result.stall_at(400) is None
    assert level_estimate(spec, lv, q) == 0.0
    assert level_estimate(spec, lv, MetricQuery(preroll_ms=0)) == pytest.approx(1 / 42)


def test_warmups_are_excluded(kit: Any) -> None:
    lv = _mixed_level(kit)
    assert all(not r.warmup for r in lv.records)
    assert level_estimate(get_metric("ttfa_ms"), lv, MetricQuery("max")) == pytest.approx(250.0)  # warmups took 5 s


@pytest.mark.parametrize(
    ("stat", "min_requests", "min_tail", "needed"),
    [("p50", 30, 2, 30), ("mean", 30, 2, 30), (None, 30, 2, 30), ("p90", 10, 2, 20), ("p95", 30, 2, 40),
     ("p99", 30, 2, 200), ("p95", 60, 2, 60), ("max", 30, 2, 30)],
)  # fmt: skip
def test_required_requests(stat: str | None, min_requests: int, min_tail: int, needed: int) -> None:
    assert required_requests(stat, min_requests, min_tail) == needed


def test_throughput_statistic_scales_with_cycle_time(kit: Any) -> None:
    lv = load_run(kit.run("tp", kit.level_records(2, kit.spread(0.2)))).levels[2]
    spec = get_metric("throughput_rps")
    values, stat = bootstrap_inputs(spec, lv, MetricQuery())
    slower = values.copy()
    slower[:, 1] *= 2.0  # every request took twice as long: the closed loop would have served half as many
    ratio = stat([slower[None]])[0] / stat([values[None]])[0]
    assert ratio == pytest.approx(0.5)


def test_run_metric_hook_gates_a_provider(kit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_REGISTRY", dict(metrics._REGISTRY))
    register_run_metric(
        "test_capacity_streams", lambda run: 6.0, unit="streams", description="test capacity", better="higher"
    )
    assert "test_capacity_streams" in metric_names()
    run = kit.run("cap", kit.level_records(1, kit.spread(0.2)))
    report = evaluate(rules_from_dict({"absolute": ["test_capacity_streams >= 8"]}), run)
    rule = report.rules[-1]
    assert rule.checks[0].estimate == 6.0
    assert report.exit_code == 1
    report = evaluate(rules_from_dict({"absolute": ["test_capacity_streams >= 4"]}), run)
    assert report.exit_code == 0
    with pytest.raises(ValueError, match="already registered"):
        register_run_metric("test_capacity_streams", lambda run: 1.0, unit="", description="", better=None)


def test_request_values_drop_missing(kit: Any) -> None:
    recs = [*kit.level_records(1, kit.spread(0.2, n=5)), kit.record(1, 50, None, 0.4)]
    lv = load_run(kit.run("missing", recs)).levels[1]
    values = metrics.request_values(get_metric("ttfa_ms"), lv)
    assert values.size == 5 and np.all(np.isfinite(values))


def test_closed_loop_span() -> None:
    cycles = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 1.0, 1.0], [1.0, np.nan, 1.0, 1.0]])
    assert metrics.closed_loop_span(cycles, 2).tolist() == [2.0, 3.0, 2.0]
    assert metrics.closed_loop_span(cycles[:1], 1).tolist() == [4.0]


def test_open_loop_throughput_ignores_cycle_times(kit: Any) -> None:
    recs = kit.level_records(2, kit.spread(0.2))
    for r in recs:
        r.scheduled_offset_s = r.run_offset_s
    lv = load_run(kit.run("open", recs)).levels[2]
    values, stat = bootstrap_inputs(get_metric("throughput_rps"), lv, MetricQuery())
    slower = values.copy()
    slower[:, 1] *= 2.0  # arrivals follow their schedule: slower requests do not lower the arrival rate
    assert stat([slower[None]])[0] == pytest.approx(stat([values[None]])[0])
