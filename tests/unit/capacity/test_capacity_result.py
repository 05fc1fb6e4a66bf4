"""The answer's derived numbers, ``capacity_result.json``, the merged run view and the capacity page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orpheus_bench.capacity.merge import LoadGroup, MeasurementRecords, merge_levels
from orpheus_bench.capacity.result import (
    RESULT_FILE,
    CapacityResult,
    LoadResult,
    capacity_streams,
    read_result,
    write_result,
)
from orpheus_bench.capacity.search import RATE, Finished, SearchConfig
from orpheus_bench.capacity.slo import Slo, evaluate_level, parse_slo
from orpheus_bench.records import RequestRecord
from orpheus_bench.report.capacity import capacity_section, goodput_plot, levels_table
from orpheus_bench.results.compile import compile_records

pytestmark = pytest.mark.unit

Stream = Callable[..., RequestRecord]
SLO = parse_slo("ttfa_p95_ms<=300,goodput>=0.9")
CONFIG = SearchConfig(probe_requests=10, edge_requests=10, max_requests=40)


def level(
    make_stream: Stream, load: float, ttfa_s: float, n: int = 10, window_s: float = 2.0, slo: Slo = SLO
) -> LoadResult:
    records = [make_stream(ttfa_s, seq=i, level=int(load)) for i in range(n)]
    evaluation = evaluate_level(records, slo, resamples=200)
    return LoadResult(
        load=load,
        label=CONFIG.label(load),
        level=int(load),
        evaluation=evaluation,
        window_s=window_s,
        # Given by hand: n requests over the level's window (the driver asks the measures layer for these).
        throughput_rps=evaluation.ok / window_s,
        goodput_rps=evaluation.good / window_s,
        busy_s=n * 0.6,
        ttfa_p50_ms=ttfa_s * 1000.0,
        ttfa_p95_ms=ttfa_s * 1000.0,
        client_bound=False,
        measurements=(f"levels/c={int(load)}",),
    )


@pytest.fixture
def finished(make_stream: Stream) -> CapacityResult:
    levels = (
        level(make_stream, 1, 0.1, window_s=4.0),
        level(make_stream, 2, 0.15, window_s=2.0),
        level(make_stream, 4, 0.25, window_s=1.5),
        level(make_stream, 3, 0.2, window_s=1.6),
        level(make_stream, 8, 0.6, window_s=2.5),
    )
    ordered = tuple(sorted(levels, key=lambda lv: lv.load))
    return CapacityResult(SLO.to_dict(), CONFIG, ordered, Finished(4.0, 8.0, "bracketed", False), steps=5)


def test_answer_numbers(finished: CapacityResult) -> None:
    assert finished.capacity_streams == 4.0 and finished.confidence == 1.0 and finished.confident
    limiting = finished.limiting_term
    assert limiting is not None and limiting.key == "ttfa_p95_ms<=300" and limiting.value == pytest.approx(600.0)
    assert finished.knee_load == 4.0  # 10 good requests in 1.5 s: the most SLO-meeting requests per second
    assert finished.warnings == ()
    text = finished.summary()
    assert "Capacity: 4 concurrent streams" in text and "Breaks at c=8: ttfa_p95_ms<=300 failed first" in text


def test_result_file_round_trip_and_gate_key(finished: CapacityResult, tmp_path: Path) -> None:
    path = write_result(tmp_path, finished)
    data = json.loads(path.read_text())
    for key, value in {
        "complete": True,
        "capacity_streams": 4.0,
        "confident": True,
        "limiting_term": "ttfa_p95_ms<=300",
        "break_load": 8.0,
        "load_kind": "concurrency",
        "open_ended": False,
    }.items():
        assert data[key] == value, key
    again = read_result(tmp_path)
    assert again is not None and again.to_dict() == finished.to_dict()
    assert capacity_streams(tmp_path) == 4.0
    assert capacity_streams(tmp_path / "missing") is None
    (tmp_path / RESULT_FILE).write_text("{not json")
    assert read_result(tmp_path) is None


def test_unfinished_and_none_results(make_stream: Stream) -> None:
    running = CapacityResult(SLO.to_dict(), CONFIG, (level(make_stream, 1, 0.1),), None, steps=1)
    assert running.capacity_streams is None and not running.confident
    assert running.warnings == ("The search did not finish; run the same command again to resume it.",)
    nothing = CapacityResult(
        SLO.to_dict(), CONFIG, (level(make_stream, 1, 0.9),), Finished(None, 1.0, "below_min", False), steps=2
    )
    assert nothing.capacity_streams == 0.0 and nothing.confidence is None
    assert "not met even at c=1" in nothing.summary()


def test_rate_capacity_in_streams_by_littles_law(make_stream: Stream) -> None:
    config = SearchConfig(kind=RATE, start=1.0, min_load=0.1, max_load=10.0, probe_requests=10, edge_requests=10)
    lv = level(make_stream, 2.5, 0.1, window_s=4.0)  # 10 requests x 0.6 s busy over 4 s = 1.5 in flight
    result = CapacityResult(SLO.to_dict(), config, (lv,), Finished(2.5, None, "max_load", True), steps=1)
    assert result.capacity_streams == pytest.approx(1.5)
    assert any("at least" in w for w in result.warnings)


def test_capacity_page_tables_and_plot(finished: CapacityResult, tmp_path: Path) -> None:
    table = levels_table(finished)
    assert table.columns[:5] == ("load", "requests", "goodput", "good req/s", "req/s")
    assert "ttfa_p95_ms<=300" in table.columns and "goodput>=0.9" in table.columns
    labels = [row[0].text for row in table.rows]
    assert labels[3] == "c=4 ◀ capacity" and labels[4] == "c=8 ✕ break"
    assert table.rows[4][2].text == "0%" and table.rows[4][-1].text == "misses"
    uri = goodput_plot(finished)
    assert uri is not None and uri.startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(uri.split(",", 1)[1])
    assert capacity_section(tmp_path) is None
    write_result(tmp_path, finished)
    section = capacity_section(tmp_path)
    assert section is not None and [t.key for t in section.tables] == [
        "capacity_answer",
        "capacity_levels",
        "capacity_request_terms",
    ]
    assert len(section.plots) == 1 and section.summary == finished.summary()


def test_merged_view_keeps_each_levels_throughput(make_stream: Stream) -> None:
    def measurement(name: str, start: float, n: int, warm: int) -> MeasurementRecords:
        recs = [make_stream(0.1, seq=i, level=2, start_s=start + 0.5 * (i // 2), warmup=i < warm) for i in range(n)]
        return MeasurementRecords(name, tuple(recs), {"client_bound": False, "warmup": warm, "client": {"x": 1}})

    first = measurement("levels/c=2", 100.0, 8, 2)
    second = measurement("levels/c=2-m2", 7.0, 6, 2)  # its own run clock: overlaps the first one's
    one = LoadGroup(1.0, 1, "c=1", "concurrency", (measurement("levels/c=1", 3.0, 4, 1),))
    two = LoadGroup(2.0, 2, "c=2", "concurrency", (first, second))
    records, levels = merge_levels([two, one], SLO)
    assert [lv["level"] for lv in levels] == [1, 2] and levels[1]["measurements"] == ["levels/c=2", "levels/c=2-m2"]
    assert levels[1]["started_s"] >= levels[0]["ended_s"]
    measured = [r for r in records if not r.warmup]
    assert all(r.extra["slo"] == {"good": True, "failed": []} for r in measured)
    results = compile_records(records, {"levels": levels})
    lv2 = results.level(2)
    # Each measurement's window: first measured send -> last measured end; the merged window is their sum.
    # Measured requests start in pairs every 0.5 s after the two warmups; each lasts 0.1 s + 5 chunks.
    window_first = (101.5 + 0.1 + 5 * 2048 / 24000) - 100.5
    window_second = (8.0 + 0.1 + 5 * 2048 / 24000) - 7.5
    assert lv2.n == 10 and lv2.window_s == pytest.approx(window_first + window_second)
    assert results.level(1).label == "1 worker"
