"""Before vs after: factors from hand-built runs with constant timings (so intervals collapse onto them)."""

from __future__ import annotations

import pytest

from orpheus_bench.records import ErrorClass
from orpheus_bench.results.compare import compare
from orpheus_bench.results.compile import compile_records
from orpheus_bench.results.model import RunResults
from orpheus_bench.results.synthetic import SyntheticSpec, synthetic_records
from orpheus_bench.results.tables import comparison_table, improvement_text

pytestmark = pytest.mark.unit


def closed_loop(make_record, spec: dict[int, tuple[float, float, int]], n: int = 10, name: str = "x") -> RunResults:  # type: ignore[no-untyped-def]
    """level -> (ttfa s, total s, failures among the n measured); requests back to back per worker."""
    recs = []
    clock = 0.0
    for level, (ttfa, total, fails) in spec.items():
        for i in range(n):
            start = clock + (i // level) * total
            err = ErrorClass.HTTP if i < fails else None
            recs.append(make_record(level=level, seq=i, start=start, ttfa=ttfa, total=total, error=err))
        clock += (n // level + 1) * total + 1.0
    return compile_records(recs, {"name": name})


@pytest.fixture
def runs(make_record):  # type: ignore[no-untyped-def]
    before = closed_loop(make_record, {1: (1.0, 4.0, 0), 2: (2.0, 6.0, 2)}, name="before")
    after = closed_loop(make_record, {1: (0.2, 0.5, 0), 2: (0.4, 0.8, 0), 4: (0.8, 1.2, 0)}, name="after")
    return before, after


def test_ttfa_latency_factors_by_hand(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    c = compare(before, after, n_resamples=300)
    assert c.shared_levels == (1, 2)
    ttfa = c.row("ttfa_avg")
    assert ttfa.before_range == (pytest.approx(1000.0), pytest.approx(2000.0))
    assert ttfa.after_range == (pytest.approx(200.0), pytest.approx(800.0))  # every level of the run
    assert ttfa.before_value == pytest.approx(1500.0)  # mean over the shared levels 1 and 2
    assert ttfa.after_value == pytest.approx(300.0)
    assert ttfa.effect.estimate == pytest.approx(5.0)
    assert (ttfa.effect.low, ttfa.effect.high) == (pytest.approx(5.0), pytest.approx(5.0))
    assert ttfa.per_level == (pytest.approx(5.0), pytest.approx(5.0))
    assert c.row("best_ttfa").effect.estimate == pytest.approx(1000.0 / 200.0)
    total = c.row("total_latency")
    assert total.effect.estimate == pytest.approx(5000.0 / 650.0)
    assert total.per_level == (pytest.approx(6000 / 800), pytest.approx(4000 / 500))  # (min, max)


def test_throughput_capacity_success_by_hand(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    c = compare(before, after, n_resamples=400)
    tp = c.row("throughput")
    assert before.summary.max_throughput_rps is not None and after.summary.max_throughput_rps is not None
    assert tp.effect.estimate == pytest.approx(after.summary.max_throughput_rps / before.summary.max_throughput_rps)
    assert after.summary.max_throughput_rps == pytest.approx(10 / (3 * 1.2))  # level 4: 3 rounds of 1.2 s
    cap = c.row("max_concurrency")
    assert (cap.before_value, cap.after_value, cap.after_open) == (1.0, 4.0, True)
    assert cap.effect.estimate == pytest.approx(4.0)
    # Before's level 2 (8/10 ok) resamples to 10/10 about 11% of the time: capacity 2, ratio 2.
    assert cap.effect.low == pytest.approx(2.0) and cap.effect.high == pytest.approx(4.0)
    sr = c.row("success_rate")
    assert sr.effect.kind == "difference"
    assert sr.effect.estimate == pytest.approx(0.1)
    assert any("'+'" in n for n in c.notes)


def test_comparison_table_reads_like_the_seed(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    t = comparison_table(compare(before, after, n_resamples=300))
    assert t.columns[:4] == ("Metric", "Before", "After", "Improvement")
    assert [r[0].text for r in t.rows] == [
        "TTFA (avg)",
        "Best TTFA",
        "Throughput",
        "Max concurrency",
        "Total latency",
        "Success rate",
    ]
    cells = {r[0].text: r for r in t.rows}
    assert cells["TTFA (avg)"][1].text == "1,000–2,000 ms"
    assert cells["TTFA (avg)"][3].text == "5.0x faster (per level 5.0x–5.0x)"
    assert cells["TTFA (avg)"][4].text == "5.00x–5.00x"
    assert cells["Max concurrency"][2].text == "4+ workers"
    assert cells["Max concurrency"][3].text.startswith("4.0x capacity")
    assert cells["Total latency"][1].text == "4.0–6.0 s"
    assert cells["Total latency"][3].text.startswith("7.7x reduction")
    assert cells["Success rate"][1].text == "90.0%" and cells["Success rate"][2].text == "100%"


def test_same_run_is_within_noise_and_deterministic() -> None:
    res = compile_records(synthetic_records(SyntheticSpec(levels=(1, 2), requests_per_level=12, jitter=0.3)))
    c1 = compare(res, res, n_resamples=300, seed=3)
    c2 = compare(res, res, n_resamples=300, seed=3)
    assert c1 == c2
    for row in c1.rows:
        if row.key == "success_rate":
            assert improvement_text(row)[0] == "Stable"
            continue
        assert row.effect.estimate == pytest.approx(1.0)
        text, _, tone = improvement_text(row)
        assert "within noise" in text and tone is None


def test_slower_after_reads_as_slower(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    worse = compare(after, before, n_resamples=200)  # swapped: "after" is the slow run
    text, ci, tone = improvement_text(worse.row("ttfa_avg"))
    assert text.startswith("5.0x slower") and tone == "bad"
    assert ci == "5.00x–5.00x"


def test_runs_without_shared_levels_say_so(make_record) -> None:  # type: ignore[no-untyped-def]
    a = closed_loop(make_record, {1: (1.0, 2.0, 0)})
    b = closed_loop(make_record, {8: (0.5, 1.0, 0)})
    c = compare(a, b, n_resamples=100)
    assert c.shared_levels == ()
    assert c.row("ttfa_avg").effect.estimate == pytest.approx(2.0)
    assert any("share no level" in n for n in c.notes)
