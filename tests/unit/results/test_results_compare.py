"""Before vs after: factors from hand-built closed loops with constant timings (so intervals collapse onto them)."""

from __future__ import annotations

from typing import Any

import pytest
from synthetic_runs import SyntheticSpec, synthetic_records

from orpheus_bench.records import AudioChunk, ErrorClass
from orpheus_bench.report.compare_tables import comparison_table, improvement_text, work_table
from orpheus_bench.results.compare import compare
from orpheus_bench.results.compile import compile_records
from orpheus_bench.results.model import RunResults

pytestmark = pytest.mark.unit


def closed_loop(  # type: ignore[no-untyped-def]
    make_record,
    spec: dict[int, tuple[float, float, int]],
    n: int = 10,
    name: str = "x",
    levels_json: list[dict[str, Any]] | None = None,
    samples: int = 24_000,
) -> RunResults:
    """level -> (ttfa s, total s, failures among the n measured); the level's workers send in lockstep batches.

    With no warmup, batch k of ``level`` requests is sent the instant batch k-1 ended, so every full batch was
    sent with the level's concurrency in flight; a last, partial batch was not.
    """
    recs = []
    clock = 0.0
    for level, (ttfa, total, fails) in spec.items():
        for i in range(n):
            start = clock + (i // level) * total
            err = ErrorClass.HTTP if i < fails else None
            recs.append(
                make_record(level=level, seq=i, start=start, ttfa=ttfa, total=total, error=err, samples=samples)
            )
        clock += (n // level + 1) * total + 1.0
    return compile_records(recs, {"name": name, "levels": levels_json or []})


@pytest.fixture
def runs(make_record):  # type: ignore[no-untyped-def]
    before = closed_loop(make_record, {1: (1.0, 4.0, 0), 2: (2.0, 6.0, 2)}, name="before")
    after = closed_loop(make_record, {1: (0.2, 0.5, 0), 2: (0.4, 0.8, 0), 4: (0.8, 1.2, 0)}, name="after")
    return before, after


def test_ttfa_latency_factors_by_hand(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    c = compare(before, after, n_resamples=300)
    assert c.shared_levels == (1, 2) and c.comparable_levels == (1, 2)
    ttfa = c.row("ttfa_avg")
    assert ttfa.before_range == (pytest.approx(1000.0), pytest.approx(2000.0))
    assert ttfa.after_range == (pytest.approx(200.0), pytest.approx(400.0))  # the comparable levels only
    assert ttfa.before_value == pytest.approx(1500.0)  # mean over the shared levels 1 and 2
    assert ttfa.after_value == pytest.approx(300.0)
    assert ttfa.effect.estimate == pytest.approx(5.0)
    assert (ttfa.effect.low, ttfa.effect.high) == (pytest.approx(5.0), pytest.approx(5.0))
    assert ttfa.per_level == (pytest.approx(5.0), pytest.approx(5.0))
    assert ttfa.levels == (1, 2)
    assert c.row("best_ttfa").effect.estimate == pytest.approx(1000.0 / 200.0)
    # Before's failed requests delivered no audio: its level-2 latency is its 8 successes' 6 s.
    total = c.row("total_latency")
    assert total.effect.estimate == pytest.approx(5000.0 / 650.0)
    assert total.per_level == (pytest.approx(6000 / 800), pytest.approx(4000 / 500))  # (min, max)


def test_throughput_capacity_success_by_hand(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    c = compare(before, after, n_resamples=400)
    tp = c.row("throughput")
    # Little's law on the rows sent at full concurrency. Before: level 1, 1 x 10 / (10 x 4 s) = 0.25 req/s;
    # level 2, 2 x 8 successes / (10 x 6 s) = 0.267. After: level 4 holds 4 in flight for its first 8 requests
    # (the last batch of 2 is the drain): 4 x 8 / (8 x 1.2 s) = 3.33 req/s, its best level.
    assert before.level(2).throughput_rps == pytest.approx(2 * 8 / 60)
    assert after.level(4).throughput_rps == pytest.approx(4 / 1.2)
    assert tp.before_value == pytest.approx(2 * 8 / 60) and tp.after_value == pytest.approx(4 / 1.2)
    assert tp.effect.estimate == pytest.approx((4 / 1.2) / (2 * 8 / 60))
    cap = c.row("max_concurrency")
    assert (cap.before_value, cap.after_value, cap.after_open) == (1.0, 4.0, True)
    assert cap.effect.estimate == pytest.approx(4.0)
    # Before's level 2 (8/10 ok) resamples to 10/10 about 11% of the time: capacity 2, ratio 2.
    assert cap.effect.low == pytest.approx(2.0) and cap.effect.high == pytest.approx(4.0)
    sr = c.row("success_rate")
    assert sr.effect.kind == "difference"
    assert sr.effect.estimate == pytest.approx(0.1)
    assert any("'+'" in n for n in c.notes)


def test_equal_work_rows_and_table_read_like_the_seed(runs) -> None:  # type: ignore[no-untyped-def]
    before, after = runs
    c = compare(before, after, n_resamples=300)
    assert c.equal_work and c.work_ratio == pytest.approx(1.0)  # every request delivered 1 s of audio
    t = comparison_table(c)
    assert t.columns[:4] == ("Metric", "Before", "After", "Improvement")
    assert [r[0].text for r in t.rows] == [
        "TTFA (avg)",
        "Best TTFA",
        "Throughput",
        "Max concurrency",
        "Total latency",
        "Success rate (complete)",
    ]
    cells = {r[0].text: r for r in t.rows}
    assert cells["TTFA (avg)"][1].text == "1,000–2,000 ms"
    assert cells["TTFA (avg)"][3].text == "5.0x faster (per level 5.0x–5.0x)"
    assert cells["TTFA (avg)"][4].text == "5.00x–5.00x"
    assert cells["Max concurrency"][2].text == "4+ workers"
    assert cells["Max concurrency"][3].text.startswith("4.0x capacity")
    assert cells["Total latency"][1].text == "4.0–6.0 s"
    assert cells["Total latency"][3].text.startswith("7.7x reduction")
    assert cells["Success rate (complete)"][1].text == "90.0%" and cells["Success rate (complete)"][2].text == "100%"
    work = {r[0].text: r for r in work_table(c).rows}
    assert work["Audio per request"][1].text == "1.00 s" and work["Audio per request"][2].text == "1.00 s"


def test_different_work_is_compared_per_unit_of_work(make_record) -> None:  # type: ignore[no-untyped-def]
    # After's requests are twice as fast but deliver only half the audio (cut short): per request the speed-up
    # is 2x, per audio second there is none, and the headline must say the latter.
    before = closed_loop(make_record, {1: (1.0, 4.0, 0), 2: (1.0, 4.0, 0)}, name="before", samples=48_000)
    after = closed_loop(make_record, {1: (0.5, 2.0, 0), 2: (0.5, 2.0, 0)}, name="after", samples=24_000)
    c = compare(before, after, n_resamples=200)
    assert not c.equal_work and c.work_ratio == pytest.approx(0.5)
    tp = c.row("throughput")
    assert tp.metric == "Throughput (audio s per wall s)"
    # Level 2: 2 x 10 x 2 s of audio / (10 x 4 s) = 1.0 audio s per wall s before; 2 x 10 x 1 s / 20 s after.
    assert tp.before_value == pytest.approx(1.0) and tp.after_value == pytest.approx(1.0)
    assert "within noise" in improvement_text(tp)[0]
    total = c.row("total_latency")
    assert total.metric == "Time per audio second (RTF)"
    assert total.effect.estimate == pytest.approx(1.0)  # 4 s for 2 s of audio = 2 s for 1 s
    assert any("did different work" in line for line in c.first_lines)


def test_client_bound_levels_never_feed_a_factor(make_record) -> None:  # type: ignore[no-untyped-def]
    flagged = [{"level": 2, "label": "c=2", "client_bound": True, "client_bound_reasons": ["decode queue wait p90"]}]
    before = closed_loop(make_record, {1: (1.0, 4.0, 0), 2: (2.0, 6.0, 0)}, name="before")
    after = closed_loop(make_record, {1: (0.2, 0.5, 0), 2: (9.0, 10.0, 0)}, name="after", levels_json=flagged)
    c = compare(before, after, n_resamples=200)
    assert c.comparable_levels == (1,)
    ttfa = c.row("ttfa_avg")
    assert ttfa.levels == (1,) and ttfa.effect.estimate == pytest.approx(5.0)  # level 2's 9 s never enters
    assert [(e.level, "after client-bound" in e.reason) for e in c.exclusions] == [(2, True)]
    assert any("Left out of the headline factors: 2 workers" in line for line in c.first_lines)
    # Decode-queue-bound only: the event loop kept up, so the server-attributable rows still use level 2.
    assert c.row("first_window").group == "server"


def test_server_rows_refuse_a_blocking_run(make_record) -> None:  # type: ignore[no-untyped-def]
    # A blocking answer's first token comes with the whole generation: against a streamed run, a "server" first
    # token factor would credit the server with the client's change of mode.
    def streamed(**kw):  # type: ignore[no-untyped-def]
        return make_record(t_first_window_s=kw["ttfa"], **kw)

    def blocking(**kw):  # type: ignore[no-untyped-def]
        return streamed(mode="blocking", **kw)

    before = closed_loop(blocking, {1: (1.0, 1.0, 0)}, name="before")
    after = closed_loop(streamed, {1: (0.2, 0.5, 0)}, name="after")
    c = compare(before, after, n_resamples=100)
    for key in ("first_window", "first_token"):
        row = c.row(key)
        assert row.effect.estimate is None and row.levels == ()
        assert row.unavailable is not None and row.unavailable.startswith("before sent blocking requests")
    assert c.row("ttfa_avg").effect.estimate == pytest.approx(5.0)  # the seed's TTFA comparison still stands
    both = compare(closed_loop(streamed, {1: (1.0, 1.0, 0)}, name="b"), after, n_resamples=100)
    assert both.row("first_window").effect.estimate == pytest.approx(5.0)  # two streamed runs: the rows stand


def test_no_comparable_level_says_so_instead_of_a_number(make_record) -> None:  # type: ignore[no-untyped-def]
    flagged = [{"level": 1, "label": "c=1", "client_bound": True, "client_bound_reasons": ["event-loop lag p99"]}]
    before = closed_loop(make_record, {1: (1.0, 4.0, 0)}, name="before")
    after = closed_loop(make_record, {1: (0.2, 0.5, 0)}, name="after", levels_json=flagged)
    c = compare(before, after, n_resamples=100)
    ttfa = c.row("ttfa_avg")
    assert ttfa.unavailable and ttfa.effect.estimate is None
    text, ci, _ = improvement_text(ttfa)
    assert text.startswith("no factor: no level is comparable") and ci == "–"


def test_too_few_requests_exclude_a_level(make_record) -> None:  # type: ignore[no-untyped-def]
    before = closed_loop(make_record, {1: (1.0, 4.0, 0)}, n=3, name="before")
    after = closed_loop(make_record, {1: (0.2, 0.5, 0)}, n=3, name="after")
    c = compare(before, after, n_resamples=100)
    assert c.comparable_levels == ()
    assert "3 requests with a value, 5 needed" in c.exclusions[0].reason


def test_same_run_is_within_noise_and_deterministic() -> None:
    res = compile_records(synthetic_records(SyntheticSpec(levels=(1, 2), requests_per_level=12, jitter=0.3)))
    c1 = compare(res, res, n_resamples=300, seed=3)
    c2 = compare(res, res, n_resamples=300, seed=3)
    assert c1 == c2
    for row in c1.rows:
        if row.effect.kind == "difference":
            assert row.effect.estimate == pytest.approx(0.0)
            continue
        assert row.effect.estimate == pytest.approx(1.0), row.key
        text, _, tone = improvement_text(row)
        assert "within noise" in text and tone is None, row.key


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
    assert c.row("ttfa_avg").unavailable
    assert c.row("best_ttfa").effect.estimate == pytest.approx(2.0)  # each run's own best level still compares
    assert any("share no level" in n for n in c.notes)


def test_first_lines_carry_the_doctor_and_the_cut_short_share(make_record) -> None:  # type: ignore[no-untyped-def]
    doctor = {"checks": [{"name": "context", "level": "error", "message": "9 of 9 prompts will be cut short"}]}
    recs = [make_record(level=1, seq=i, start=float(i), ttfa=0.1, total=1.0, stop_reason="limit") for i in range(6)]
    for r in recs:
        r.chunks = [AudioChunk(0.1, 24_000, 0.09, window=0)]
    cut = compile_records(recs, {"name": "after", "doctor": doctor})
    whole = compile_records([make_record(level=1, seq=i, start=float(i)) for i in range(6)], {"name": "before"})
    c = compare(whole, cut, n_resamples=100)
    assert c.first_lines[0] == "after: doctor error: context: 9 of 9 prompts will be cut short"
    assert any(line.startswith("after: 6 of 6 measured requests were cut short") for line in c.first_lines)
    assert c.row("success_rate").after_value == 0.0
