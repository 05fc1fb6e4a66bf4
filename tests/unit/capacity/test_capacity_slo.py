"""SLO parsing, per-request verdicts and goodput arithmetic on crafted records."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from orpheus_bench.capacity.slo import VALID_AUDIO, evaluate_level, judge_request, parse_slo
from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.table import level_tables
from orpheus_bench.records import ErrorClass, RequestRecord, Status

pytestmark = pytest.mark.unit

Stream = Callable[..., RequestRecord]


def test_parse_issue_example_with_implied_terms() -> None:
    slo = parse_slo("ttfa_p95_ms<=500, rtf_p95<1 ,continuity>=0.99", preroll_ms=250)
    assert slo.text == "ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99"
    assert [t.key for t in slo.level_terms] == ["ttfa_p95_ms<=500", "rtf_p95<1", "continuity>=0.99"]
    request = {t.key: t for t in slo.request_terms}
    assert list(request) == [VALID_AUDIO, "ttfa_ms<=500", "max_stall_ms<=0"]
    assert request["ttfa_ms<=500"].implied and request["ttfa_ms<=500"].derived_from == "ttfa_p95_ms<=500"
    assert slo.stall_term.threshold == 0.0 and slo.preroll_ms == 250
    p95 = slo.level_terms[0]
    assert (p95.quantity, p95.stat, p95.op, p95.threshold) == ("ttfa_ms", "p95", "<=", 500.0)


def test_ttfa_budget_comes_from_the_tail_term_unless_given() -> None:
    derived = parse_slo("ttfa_p50_ms<=300,ttfa_p99_ms<1000,ttfa_mean_ms<=400")
    assert [t.key for t in derived.request_terms if t.quantity == "ttfa_ms"] == ["ttfa_ms<1000"]
    explicit = parse_slo("ttfa_ms<=250,ttfa_p99_ms<=1000,max_stall_ms<=100")
    budgets = [t for t in explicit.request_terms if t.quantity in ("ttfa_ms", "max_stall_ms")]
    assert [(t.key, t.implied) for t in budgets] == [("ttfa_ms<=250", False), ("max_stall_ms<=100", False)]


def test_share_accepts_percent_and_no_ttfa_budget_without_ttfa_terms() -> None:
    slo = parse_slo("goodput>=95%,rtf_p90<0.8")
    assert slo.level_terms[0].threshold == pytest.approx(0.95)
    assert not any(t.quantity == "ttfa_ms" for t in slo.terms)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("latency_p95_ms<=5", "unknown term"),
        ("ttfa_p95<=500", "ttfa_p95_ms"),
        ("rtf_p95_ms<1", "no unit"),
        ("goodput>=99", "between 0 and 1"),
        ("ttfa_p95_ms>=500", "use <= or <"),
        ("continuity<=0.9", "use >= or >"),
        ("ttfa_ms<=500", "goodput>=0.95"),
        ("ttfa_p95_ms<=500,ttfa_p95_ms<=400", "twice"),
        ("ttfa_p0_ms<=5", "(0, 100]"),
        ("ttfa_p95_ms<=abc", "not a number"),
        ("ttfa_p95_ms=500", "use <=, <, >= or >"),
        ("ttfa_p95_ms<=0", "> 0"),
        ("goodput>=0.9,max_stall_ms>=5", "from above"),
        ("ttfa p95 <= 5", "unknown term"),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_slo(text)
    assert info.value.field == "slo"
    assert message in info.value.message


def test_negative_preroll_is_rejected() -> None:
    with pytest.raises(ConfigError, match="pre-roll"):
        parse_slo("goodput>=0.9", preroll_ms=-1)


# ---- per-request verdicts ---------------------------------------------------------------------------


def test_judge_request_each_term(make_stream: Stream) -> None:
    slo = parse_slo("ttfa_p95_ms<=500,goodput>=0.9", preroll_ms=100)
    good = judge_request(make_stream(0.2), slo)
    assert good.good and good.failed == ()

    slow = judge_request(make_stream(0.6), slo)
    assert not slow.good and slow.failed == ("ttfa_ms<=500",)

    # A 150 ms gap after the 3rd chunk: 100 ms of pre-roll absorbs 100 ms of it, a 50 ms stall remains.
    gap = make_stream(0.2, gap_after=3, gap_s=0.15)
    stalled = judge_request(gap, slo)
    assert stalled.failed == ("max_stall_ms<=0",)
    (table,) = level_tables([gap])
    assert table.playback(100).max_stall_ms[0] == pytest.approx(50.0, abs=0.01)
    tolerant = parse_slo("ttfa_p95_ms<=500,goodput>=0.9,max_stall_ms<=60", preroll_ms=100)
    assert judge_request(gap, tolerant).good

    invalid = judge_request(make_stream(0.2, invalid=1), slo)
    assert invalid.failed[0] == VALID_AUDIO

    failed = judge_request(make_stream(0.2, error=ErrorClass.DISCONNECT), slo)
    assert failed.failed == (VALID_AUDIO, "ttfa_ms<=500", "max_stall_ms<=0")


def test_explicit_per_request_rtf_and_total_terms(make_stream: Stream) -> None:
    slo = parse_slo("rtf<1,total_ms<=600,goodput>=0.5")
    # 6 chunks = 0.512 s of audio, ending at ttfa + 5 chunks: rtf = (0.1 + 0.427) / 0.512 = 1.03
    record = make_stream(0.1)
    assert record.rtf == pytest.approx((0.1 + 5 * 2048 / 24000) / (6 * 2048 / 24000))
    assert judge_request(record, slo).failed == ("rtf<1",)
    assert judge_request(make_stream(0.01), slo).good


# ---- goodput and level terms ------------------------------------------------------------------------


def test_goodput_arithmetic_on_crafted_records(make_stream: Stream) -> None:
    slo = parse_slo("ttfa_p95_ms<=500,success_rate>=0.95,goodput>=0.5", preroll_ms=250)
    records = [make_stream(0.1 + 0.01 * i, seq=i) for i in range(6)]  # 6 good
    records += [make_stream(0.7, seq=6), make_stream(0.9, seq=7)]  # TTFA over budget
    records.append(make_stream(0.2, seq=8, invalid=3))  # invalid codes
    records.append(make_stream(0.2, seq=9, error=ErrorClass.HTTP))  # failed
    records += [make_stream(5.0, seq=10 + i, warmup=True) for i in range(2)]  # warmups: ignored
    records.append(make_stream(0.2, seq=12, status=Status.CANCELLED))  # cancelled: ignored
    ev = evaluate_level(records, slo, resamples=500, seed=1)
    assert (ev.n, ev.ok, ev.good) == (10, 8, 6)
    assert ev.goodput == pytest.approx(0.6)
    assert ev.request_failures == {VALID_AUDIO: 2, "ttfa_ms<=500": 4, "max_stall_ms<=0": 2}
    terms = {t.key: t for t in ev.terms}
    # Two of ten requests failed: the p95 rank (8.55 of 0..9) reaches into them, so p95 TTFA is infinite.
    assert terms["ttfa_p95_ms<=500"].value == math.inf and not terms["ttfa_p95_ms<=500"].met
    assert terms["ttfa_p95_ms<=500"].margin == math.inf
    # Success counts complete utterances (the report's and the gate's success_rate): the request with invalid
    # codes completed, so 9 of 10 succeeded; its codes fail goodput's valid_audio budget instead.
    assert terms["success_rate>=0.95"].value == pytest.approx(0.9) and not terms["success_rate>=0.95"].met
    assert terms["goodput>=0.5"].value == pytest.approx(0.6) and terms["goodput>=0.5"].met
    assert not ev.meets
    assert [t.key for t in ev.failed_terms] == ["ttfa_p95_ms<=500", "success_rate>=0.95"]


def test_percentile_below_the_failures_stays_finite(make_stream: Stream) -> None:
    slo = parse_slo("ttfa_p50_ms<=500")
    records = [make_stream(0.1 * (i + 1), seq=i) for i in range(4)] + [make_stream(0.1, seq=9, error=ErrorClass.HTTP)]
    ev = evaluate_level(records, slo, resamples=0)
    # TTFAs 100, 200, 300, 400, inf: the median is 300 ms.
    assert ev.terms[0].value == pytest.approx(300.0) and ev.meets and ev.pass_share is None


def test_pass_share_clear_and_borderline(make_stream: Stream) -> None:
    slo = parse_slo("ttfa_p90_ms<=300")
    clear = evaluate_level([make_stream(0.1 + 0.001 * i, seq=i) for i in range(30)], slo, seed=5)
    assert clear.meets and clear.pass_share == 1.0
    term = clear.terms[0]
    assert term.low is not None and term.high is not None and term.low <= term.value <= term.high  # type: ignore[operator]
    bad = evaluate_level([make_stream(0.5 + 0.001 * i, seq=i) for i in range(30)], slo, seed=5)
    assert not bad.meets and bad.pass_share == 0.0
    # Half the requests sit just under the threshold, half just over: the verdict is a coin toss.
    mixed = [make_stream(0.29 if i % 2 else 0.31, seq=i) for i in range(30)]
    borderline = evaluate_level(mixed, parse_slo("ttfa_p50_ms<=300"), seed=5)
    assert borderline.pass_share is not None and 0.2 < borderline.pass_share < 0.8
    again = evaluate_level(mixed, parse_slo("ttfa_p50_ms<=300"), seed=5)
    assert again.pass_share == borderline.pass_share  # seeded: repeatable


def test_tightest_term_and_serialisation_round_trip(make_stream: Stream) -> None:
    slo = parse_slo("ttfa_p95_ms<=500,rtf_p95<3,continuity>=0.5")
    ev = evaluate_level([make_stream(0.4, seq=i) for i in range(10)], slo, resamples=200)
    tight = ev.tightest_term
    assert tight is not None and tight.key == "ttfa_p95_ms<=500" and tight.margin == pytest.approx(-0.2)
    from orpheus_bench.capacity.slo import LevelEvaluation

    assert LevelEvaluation.from_dict(ev.to_dict()) == ev


def test_empty_level_misses_every_term() -> None:
    ev = evaluate_level([], parse_slo("goodput>=0.9"))
    assert ev.n == 0 and ev.goodput is None and not ev.meets and ev.terms[0].value is None
