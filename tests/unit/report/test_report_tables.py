"""Golden structure of the tables: column headers, one row per level, status and formatting rules."""

from __future__ import annotations

import pytest

from orpheus_bench.records import AudioChunk, ErrorClass
from orpheus_bench.report.format import fmt_factor, fmt_ms, fmt_pct
from orpheus_bench.report.tables import (
    console_table,
    errors_table,
    invalid_codes_table,
    metadata_table,
    prompts_table,
    run_tables,
    stall_table,
    streaming_table,
    throughput_table,
    ttfa_split_table,
    ttfa_table,
)
from orpheus_bench.results.compile import compile_records

pytestmark = pytest.mark.unit


def backlogged_chunk(t_ready_s: float) -> AudioChunk:
    return AudioChunk(t_ready_s=t_ready_s, samples=24_000, t_tokens_s=t_ready_s - 0.6, queue_s=0.5, window=0)


@pytest.fixture
def results(make_record):  # type: ignore[no-untyped-def]
    recs = [
        make_record(level=1, seq=0, start=0.0, ttfa=0.15, total=0.5),
        make_record(level=1, seq=1, start=0.5, ttfa=0.25, total=0.5),
        # Its one chunk waited 0.5 s on the decode queue: a client-bound request.
        make_record(level=4, seq=0, start=2.0, ttfa=0.9, total=1.5, chunks=[backlogged_chunk(0.9)]),
        make_record(level=4, seq=1, start=2.0, total=0.1, error=ErrorClass.TIMEOUT),
    ]
    return compile_records(recs, {"name": "after", "scenario": {"sampling": {"temperature": 0.3}}})


def test_ttfa_table_shape_and_status(results) -> None:  # type: ignore[no-untyped-def]
    t = ttfa_table(results, target_ms=200)
    assert t.title == "Time-to-First-Audio (TTFA)"
    assert t.columns == ("Concurrency", "TTFA mean (ms)", "p50", "p90", "p99", "min", "n", "Target", "Status")
    assert [[c.text for c in r] for r in t.rows] == [
        ["1 worker", "200.0", "200.0", "240.0", "249.0", "150.0", "2", "200ms", "✓ Met target"],
        ["4 workers ⚠ client-bound", "900.0", "900.0", "900.0", "900.0", "900.0", "1", "200ms", "⚠ Above target"],
    ]
    assert any("average" in n for n in t.notes)  # says which statistic maps to the seed's number
    assert ttfa_table(results, target_ms=150).rows[0][-1].text == "⚠ Above target"


def test_throughput_table_shape(results) -> None:  # type: ignore[no-untyped-def]
    t = throughput_table(results)
    assert t.columns == (
        "Concurrency", "Throughput", "Total latency mean (ms)", "p50", "p99", "Success rate", "Cut short",
        "complete/n", "audio s / request", "throughput rests on",
    )  # fmt: skip
    rows = [[c.text for c in r] for r in t.rows]
    # One worker, two requests of 0.5 s back to back, both sent with one in flight: 1 x 2 / 1.0 s.
    assert rows[0] == ["1 worker", "2.00 req/s", "500.0", "500.0", "500.0", "100%", "0%", "2/2", "1.00",
                       "2 steady-state req"]  # fmt: skip
    # Four workers, but only two requests were ever in flight: 1 success / (2.0 -> 3.5 s).
    assert rows[1][1] == "0.67 req/s"
    assert rows[1][5:] == ["50.0%", "0%", "1/2", "1.00", "window (never held)"]
    assert t.rows[1][5].tone == "bad"


def test_console_table_has_the_seed_columns(results) -> None:  # type: ignore[no-untyped-def]
    t = console_table(results)
    assert t.columns == (
        "Concurrency",
        "n",
        "TTFA\np50",
        "TTFA\np90",
        "TTFA\np99",
        "total\np50",
        "req/s",
        "audio s/\nwall s",
        "success",
        "cut\nshort",
    )
    assert t.title.endswith("(times in ms)")
    assert t.rows[1][0].text == "4 workers ⚠"  # short marker; the note explains it
    assert len(t.rows) == 2


def test_beyond_the_seed_tables(results) -> None:  # type: ignore[no-untyped-def]
    assert streaming_table(results).columns[1:4] == ("audio s / wall s", "RTF p50", "RTF p90")
    assert any("below 1 is faster than real time" in n for n in streaming_table(results).notes)
    assert stall_table(results).columns == (
        "Concurrency",
        "pre-roll 0 ms",
        "pre-roll 100 ms",
        "pre-roll 250 ms",
        "pre-roll 500 ms",
        "pre-roll 1500 ms",
    )
    assert stall_table(results).rows[0][1].text == "100% · 0 stalls, 0.00 s"
    split = ttfa_split_table(results)
    assert "queue + network (derived)" in split.columns and "prefill (server)" in split.columns
    assert errors_table(results).columns == ("Concurrency", "measured", "ok", "cancelled", "timeout")
    assert [c.text for c in errors_table(results).rows[1]] == ["4 workers ⚠ client-bound", "2", "1", "0", "1"]
    assert invalid_codes_table(results).columns[2:9] == tuple(f"slot {i}" for i in range(7))
    assert prompts_table(results).rows[0][1].text == "Hello."
    meta = {r[0].text: r[1].text for r in metadata_table(results).rows}
    assert meta["run"] == "after" and meta["sampling"] == "temperature=0.3"
    assert [t.key for t in run_tables(results)] == [
        "ttfa",
        "throughput",
        "intervals",
        "streaming",
        "stalls",
        "ttfa_split",
        "errors",
        "invalid_codes",
        "prompts",
        "metadata",
    ]


def test_formatting_rules() -> None:
    assert fmt_ms(941.84) == "941.8"
    assert fmt_ms(4012.4) == "4,012"
    assert fmt_ms(None) == "–"
    assert fmt_pct(1.0) == "100%" and fmt_pct(0.995) == "99.5%"
    assert fmt_factor(5.24) == "5.2x" and fmt_factor(15.16) == "15x" and fmt_factor(float("inf")) == "∞"


def test_intervals_table_shows_the_headline_statistics_with_intervals(make_record) -> None:  # type: ignore[no-untyped-def]
    from orpheus_bench.report.tables import intervals_table

    recs = [make_record(level=1, seq=i, start=float(i), ttfa=0.1 + 0.01 * i, total=1.0) for i in range(10)]
    res = compile_records(recs, n_resamples=500)
    table = intervals_table(res)
    assert table.columns[:4] == ("Concurrency", "ttfa_ms p50", "ttfa_ms p95", "total_ms p50")
    iv = res.level(1).intervals["ttfa_ms p50"]
    assert iv.estimate == pytest.approx(145.0) and iv.low is not None and iv.low < 145.0 < (iv.high or 0.0)
    assert table.rows[0][1].text.startswith("145.0 [")
    assert table.rows[0][table.columns.index("success_rate")].text == "100% [100%, 100%]"
