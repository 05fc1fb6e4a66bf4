"""The engine on crafted runs: every rule kind passes and fails, preconditions fail with reasons, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orpheus_bench.gate.decide import Verdict
from orpheus_bench.gate.engine import GateReport, RuleResult, evaluate
from orpheus_bench.gate.rules import rules_from_dict

pytestmark = pytest.mark.unit


def gate(data: dict[str, Any], candidate: Path, baseline: Path | None = None, **kw: Any) -> GateReport:
    return evaluate(rules_from_dict(data), candidate, baseline, **kw)


def rule(report: GateReport, title_start: str) -> RuleResult:
    return next(r for r in report.rules if r.title.startswith(title_start))


@pytest.fixture
def good(kit: Any) -> Path:
    """Two healthy levels: c=1 at ~200 ms TTFA, c=4 at ~400 ms, 40 measured requests each after warmup."""
    recs = kit.level_records(1, kit.spread(0.2), warmup=1)
    recs += kit.level_records(4, kit.spread(0.4), warmup=4, offset=100)
    return kit.run("good", recs)


# ---- absolute rules: each kind passes and fails -------------------------------------------------------


@pytest.mark.parametrize(
    ("passing", "failing"),
    [
        ("ttfa_ms p50 <= 250 at c=1", "ttfa_ms p50 <= 150 at c=1"),
        ("ttfa_ms p95 < 450", "ttfa_ms p95 < 300"),
        ("total_ms mean <= 800", "total_ms mean <= 400"),
        ("rtf p50 <= 2.5", "rtf p50 <= 0.5"),
        ("first_token_ms p90 <= 250", "first_token_ms p90 <= 50"),
        ("throughput_rps >= 1.5 at c=1", "throughput_rps >= 5 at c=1"),
        ("audio_per_wall_s > 0.5", "audio_per_wall_s > 100"),
        ("success_rate >= 0.999", "success_rate > 1"),
        ("invalid_code_rate == 0", "invalid_code_rate != 0"),
        ("stall_rate at preroll 250 ms <= 0.01", "stall_rate at preroll 250 ms >= 0.5"),
        ("continuity_rate preroll 0 >= 0.99", "continuity_rate preroll 0 < 0.5"),
        ("client_bound == false", "client_bound == true"),
        ("requests >= 40", "requests >= 41"),
        ("max_concurrency >= 4", "max_concurrency >= 8"),
    ],
)
def test_absolute_rule_kinds_pass_and_fail(good: Path, passing: str, failing: str) -> None:
    ok = gate({"absolute": [passing]}, good)
    assert ok.exit_code == 0, [(c.subject, c.reason, c.estimate) for r in ok.rules for c in r.checks]
    bad = gate({"absolute": [failing]}, good)
    assert bad.exit_code == 1
    assert bad.rules[-1].verdict is Verdict.FAIL


def test_absolute_checks_every_level_or_the_one_named(good: Path) -> None:
    report = gate({"absolute": ["ttfa_ms p50 <= 300", "ttfa_ms p50 <= 300 at c=4", "ttfa_ms p50 <= 300 at top"]}, good)
    every, named, top = report.rules[1:]
    assert [(c.subject, c.verdict) for c in every.checks] == [("c=1", Verdict.PASS), ("c=4", Verdict.FAIL)]
    assert [c.subject for c in named.checks] == ["c=4"] and [c.subject for c in top.checks] == ["c=4"]
    assert every.checks[0].estimate == pytest.approx(200.0)
    low, high = every.checks[0].low, every.checks[0].high
    assert low is not None and high is not None and low < 200.0 < high


def test_invalid_codes_and_errors_fail(kit: Any) -> None:
    recs = kit.level_records(2, kit.spread(0.2))
    recs[3] = kit.record(2, 3, 0.2, invalid=2)
    recs[4] = kit.record(2, 4, None, 0.5, ok=False)
    run = kit.run("dirty", recs)
    report = gate({"absolute": ["invalid_code_rate == 0", "success_rate >= 0.99"]}, run)
    assert report.exit_code == 1
    inv, succ = report.rules[1:]
    assert inv.checks[0].estimate == pytest.approx(2 / (40 * 196))
    assert succ.checks[0].estimate == pytest.approx(39 / 40)


def test_confident_modes(good: Path) -> None:
    # The c=1 p50 is 200 ms with an interval of a few ms either side.
    near = {"metric": "ttfa_ms", "stat": "p50", "op": "<=", "threshold": 201.0, "level": 1}
    assert gate({"absolute": [near]}, good).exit_code == 0  # estimate passes
    assert gate({"absolute": [{**near, "decide": "confident_pass"}]}, good).exit_code == 1  # interval reaches 201
    below = {**near, "threshold": 199.0}
    assert gate({"absolute": [below]}, good).exit_code == 1
    warn = gate({"absolute": [{**below, "decide": "confident_fail"}]}, good)
    assert warn.exit_code == 0 and warn.rules[-1].verdict is Verdict.WARN
    far = {**near, "threshold": 150.0, "decide": "confident_fail"}
    assert gate({"absolute": [far]}, good).exit_code == 1


# ---- preconditions ---------------------------------------------------------------------------------------


def test_too_few_requests_fail_with_the_count(kit: Any) -> None:
    run = kit.run("small", kit.level_records(1, kit.spread(0.2, n=20)))
    report = gate({"absolute": ["ttfa_ms p50 <= 1000"]}, run)
    check = report.rules[-1].checks[0]
    assert check.verdict is Verdict.FAIL and "20 values < 30 needed" in check.reason
    # p95 needs 2 values beyond it: 40 requests, even when min_requests is lower.
    report = gate({"settings": {"min_requests": 10}, "absolute": ["ttfa_ms p95 <= 1000"]}, run)
    assert "20 values < 40 needed for p95" in report.rules[-1].checks[0].reason
    assert gate({"settings": {"min_requests": 10}, "absolute": ["ttfa_ms p50 <= 1000"]}, run).exit_code == 0


def test_client_bound_level_fails_with_its_reasons(kit: Any) -> None:
    recs = kit.level_records(8, kit.spread(0.2))
    levels = [
        {"level": 8, "label": "c=8", "client_bound": True, "client_bound_reasons": ["event-loop lag p99 80 ms > 50 ms"]}
    ]
    run = kit.run("cb", recs, levels=levels)
    report = gate({"absolute": ["ttfa_ms p50 <= 1000", "client_bound == false"]}, run)
    ttfa, flag = report.rules[1:]
    assert ttfa.checks[0].verdict is Verdict.FAIL and "event-loop lag p99 80 ms" in ttfa.checks[0].reason
    assert flag.checks[0].verdict is Verdict.FAIL
    assert flag.checks[0].reason == "true is not == false (event-loop lag p99 80 ms > 50 ms)"
    allowed = gate({"settings": {"allow_client_bound": True}, "absolute": ["ttfa_ms p50 <= 1000"]}, run)
    assert allowed.exit_code == 0


def test_incomplete_run_fails_unless_allowed(kit: Any) -> None:
    recs = kit.level_records(1, kit.spread(0.2))
    partial = kit.run("partial", recs, complete=False)
    report = gate({"absolute": ["success_rate >= 0.99"]}, partial)
    assert report.exit_code == 1
    assert "complete: false" in rule(report, "runs complete").checks[0].reason
    allowed = gate({"settings": {"allow_incomplete": True}, "absolute": ["success_rate >= 0.99"]}, partial)
    assert allowed.exit_code == 0 and rule(allowed, "runs complete").verdict is Verdict.WARN
    no_meta = kit.run("nometa", recs, run_json=False)
    assert (
        "no run.json" in rule(gate({"absolute": ["success_rate >= 0.99"]}, no_meta), "runs complete").checks[0].reason
    )


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing", "no such run directory"),
        ("no_records", "no requests.jsonl"),
        ("empty_file", "holds no request record"),
        ("missing_level", "has no level 8"),
        ("empty_level", "no measured requests (empty level)"),
    ],
)
def test_unusable_input_exits_2(kit: Any, tmp_path: Path, setup: str, words: str) -> None:
    level = 1
    if setup == "missing":
        run = tmp_path / "nope"
    elif setup == "no_records":
        run = tmp_path / "bare"
        run.mkdir()
    elif setup == "empty_file":
        run = kit.run("empty", [])
    elif setup == "missing_level":
        run, level = kit.run("one", kit.level_records(1, kit.spread(0.2))), 8
    else:  # only warmups at c=2
        run, level = kit.run("warm", kit.level_records(1, kit.spread(0.2)) + kit.level_records(2, [], warmup=2)), 2
    report = gate({"absolute": [f"ttfa_ms p50 <= 1000 at c={level}"]}, run)
    assert report.exit_code == 2
    reasons = " ".join(c.reason for r in report.rules for c in r.checks)
    assert words in reasons


# ---- relative rules --------------------------------------------------------------------------------------


def test_relative_same_run_passes_and_slower_fails(kit: Any, good: Path) -> None:
    slow = kit.level_records(1, kit.spread(0.26), warmup=1) + kit.level_records(
        4, kit.spread(0.4), warmup=4, offset=100
    )
    candidate = kit.run("slow", slow)
    rules = {"relative": ["ttfa_ms p50 regress <= 10%"]}
    same = gate(rules, good, good)
    assert same.exit_code == 0
    check = same.rules[-1].checks[0]
    assert check.estimate == pytest.approx(1.0) and check.low is not None and check.low < 1.0 < (check.high or 0)
    worse = gate(rules, candidate, good)
    assert worse.exit_code == 1
    c1, c4 = worse.rules[-1].checks
    assert c1.verdict is Verdict.FAIL and c1.estimate == pytest.approx(1.3) and c1.limit == pytest.approx(1.1)
    assert c4.verdict is Verdict.PASS
    assert gate(rules, good, candidate).exit_code == 0  # faster is never a regression


def test_relative_inconclusive_warns(kit: Any) -> None:
    base = kit.run("base", kit.level_records(1, kit.spread(0.2, width=0.8)))
    cand = kit.run("cand", kit.level_records(1, kit.spread(0.224, width=0.8)))
    report = gate({"relative": ["ttfa_ms p50 regress <= 10%"]}, cand, base)
    check = report.rules[-1].checks[0]
    assert check.estimate == pytest.approx(1.12)
    assert check.verdict is Verdict.WARN and report.exit_code == 0


def test_relative_higher_is_better_and_differences(kit: Any, good: Path) -> None:
    # A closed loop whose requests take 0.9 s instead of 0.5 s: throughput drops; success drops by 5 points.
    recs = [kit.record(1, i, t, 0.9, start_s=0.9 * i) for i, t in enumerate(kit.spread(0.2))]
    recs[5] = kit.record(1, 5, None, 0.9, ok=False, start_s=4.5)
    recs[6] = kit.record(1, 6, None, 0.9, ok=False, start_s=5.4)
    cand = kit.run("cand", recs)
    report = gate(
        {"relative": ["throughput_rps regress <= 5% at c=1", "success_rate regress <= 0.01 at c=1"]}, cand, good
    )
    tp, succ = report.rules[-2:]
    assert tp.verdict is Verdict.FAIL and tp.op == ">=" and tp.checks[0].limit == pytest.approx(0.95)
    assert tp.checks[0].estimate == pytest.approx((38 / 36.0) / (40 / 20.0), rel=0.01)
    assert succ.compare == "difference" and succ.checks[0].estimate == pytest.approx(-0.05)
    assert succ.verdict in (Verdict.FAIL, Verdict.WARN)


def test_relative_levels_not_shared(kit: Any, good: Path) -> None:
    cand = kit.run("wide", kit.level_records(1, kit.spread(0.2)) + kit.level_records(8, kit.spread(0.5), offset=100))
    every = gate({"relative": ["ttfa_ms p50 regress <= 10%"]}, cand, good)
    assert [(c.subject, c.verdict) for c in every.rules[-1].checks] == [("c=1", Verdict.PASS), ("c=8", Verdict.SKIP)]
    assert every.exit_code == 0
    named = gate({"relative": ["ttfa_ms p50 regress <= 10% at c=8"]}, cand, good)
    assert named.exit_code == 2 and "baseline has no level c=8" in named.rules[-1].checks[0].reason
    only8 = kit.run("only8", kit.level_records(8, kit.spread(0.5)))
    assert gate({"relative": ["ttfa_ms p50 regress <= 10%"]}, only8, good).exit_code == 2


def test_relative_too_few_in_the_baseline(kit: Any, good: Path) -> None:
    small = kit.run("small", kit.level_records(1, kit.spread(0.2, n=12)))
    report = gate({"relative": ["ttfa_ms p50 regress <= 10% at c=1"]}, good, small)
    assert report.exit_code == 1 and "baseline: 12 values < 30" in report.rules[-1].checks[0].reason


def test_relative_without_baseline(good: Path, tmp_path: Path) -> None:
    rules = {"absolute": ["success_rate >= 0.99"], "relative": ["ttfa_ms p50 regress <= 10%"]}
    report = gate(rules, good)
    assert report.exit_code == 2
    assert "need a baseline" in rule(report, "inputs usable").checks[0].reason
    skipped = gate({**rules, "settings": {"missing_baseline": "skip"}}, good)
    assert skipped.exit_code == 0 and skipped.rules[-1].verdict is Verdict.SKIP
    missing = gate(rules, good, tmp_path / "gone")
    assert missing.exit_code == 2 and rule(missing, "success_rate").verdict is Verdict.PASS


def test_baseline_from_rules_file(good: Path) -> None:
    report = evaluate(rules_from_dict({"baseline": str(good), "relative": ["ttfa_ms p50 regress <= 10%"]}), good)
    assert report.exit_code == 0 and report.baseline == str(good)


def test_fixed_seed_gives_the_same_interval(kit: Any, good: Path) -> None:
    noisy = kit.run("noisy", kit.level_records(1, [0.2 + 0.05 * ((i * 7919) % 13) / 13 for i in range(40)]))
    rules = {"relative": ["ttfa_ms p50 regress <= 10% at c=1"]}
    a = gate(rules, noisy, good, seed=3).rules[-1].checks[0]
    b = gate(rules, noisy, good, seed=3).rules[-1].checks[0]
    c = gate(rules, noisy, good, seed=4).rules[-1].checks[0]
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == c.estimate


def test_warmups_do_not_count(kit: Any, good: Path) -> None:
    # Same measured requests as `good` at c=1, but ten very slow warmups: no regression.
    recs = kit.level_records(1, kit.spread(0.2), warmup=10) + kit.level_records(
        4, kit.spread(0.4), warmup=4, offset=100
    )
    cand = kit.run("warm", recs)
    assert gate({"relative": ["ttfa_ms p50 regress <= 1%", "ttfa_ms max regress <= 1%"]}, cand, good).exit_code == 0


def test_open_loop_level_named_by_its_label(kit: Any) -> None:
    recs = kit.level_records(2, kit.spread(0.2))
    levels = [{"level": 2, "label": "rate=1.5/s", "kind": "rate", "client_bound": False}]
    run = kit.run("open", recs, levels=levels)
    report = gate({"absolute": ["ttfa_ms p50 <= 300 at rate=1.5/s"]}, run)
    assert report.exit_code == 0 and report.rules[-1].checks[0].subject == "rate=1.5/s"
    missing = gate({"absolute": ["ttfa_ms p50 <= 300 at rate=9/s"]}, run)
    assert missing.exit_code == 2 and "levels: rate=1.5/s" in missing.rules[-1].checks[0].reason


def test_skip_reasons_say_why(good: Path, tmp_path: Path) -> None:
    rel = {"relative": ["ttfa_ms p50 regress <= 10%"]}
    reason = gate(rel, good).rules[-1].checks[0].reason
    assert reason == "no baseline run given"
    skip = gate({**rel, "settings": {"missing_baseline": "skip"}}, good).rules[-1].checks[0].reason
    assert skip == "no baseline run given (settings.missing_baseline: skip)"
    assert gate(rel, good, tmp_path / "gone").rules[-1].checks[0].reason == "the baseline run is unusable"
    assert gate(rel, tmp_path / "gone", good).rules[-1].checks[0].reason == "the candidate run is unusable"
