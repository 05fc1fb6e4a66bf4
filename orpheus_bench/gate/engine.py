"""The gate engine: load runs, evaluate every rule at every level it names, produce a `GateReport`.

Reading is the only I/O here (`load_run`); `evaluate_runs` is pure over loaded runs, so the calibration
benchmark and tests can evaluate records that never touched a disk. Every number comes from the measures layer
(`orpheus_bench.measures.metrics`: the same estimate, count and bootstrap interval the report and the
capacity search get for the same query at the same level). Input problems never raise: a missing run, a
missing or empty level, or relative rules without a baseline become ERROR checks (exit code 2), so CI still
gets its JUnit and Markdown files. Bad rules raise `ConfigError` earlier, in `load_rules`.

Policies (docs/gates.md):

- warmup requests are excluded everywhere (``record.warmup``); cancelled ones do not count;
- a failed request (an error, or an utterance cut short by a length limit) counts as the worst value in a
  per-request statistic or a stall share unless the rule says ``failed: exclude`` (each rule's output says
  which);
- a check at a level where the client was the bottleneck fails with the reasons, unless
  ``settings.allow_client_bound``;
- a check resting on fewer values than it needs (``min_requests``, and ``min_tail`` beyond a percentile) fails
  with the count, rather than pass on a number that could be noise;
- a run whose run.json says ``complete: false`` (or that has no run.json) fails the "runs complete" rule unless
  ``settings.allow_incomplete`` (then it warns): a partial last level would be judged as if it were whole.

Why one module over 400 lines: the gate's policies (which level is usable, how many requests a rule needs, what a
failed request counts as) are read together by whoever audits a verdict; rendering is in `report.gate`, parsing in
`gate.rules`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from orpheus_bench.gate.decide import (
    Decision,
    Verdict,
    decide_absolute,
    decide_relative,
    decide_relative_estimate,
    relative_limit,
)
from orpheus_bench.gate.model import EXIT_FAIL, EXIT_PASS, EXIT_UNUSABLE, Check, GateReport, RuleResult
from orpheus_bench.gate.rules import AbsoluteRule, GateRules, GateSettings, RelativeRule
from orpheus_bench.measures import metrics
from orpheus_bench.measures.metrics import Metric, RunView
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.table import LevelTable, level_tables
from orpheus_bench.records import RequestRecord, read_records
from orpheus_bench.results.meta import load_run_json

__all__ = [
    "EXIT_FAIL",
    "EXIT_PASS",
    "EXIT_UNUSABLE",
    "Check",
    "GateReport",
    "RuleResult",
    "RunUnusable",
    "evaluate",
    "evaluate_and_print",
    "evaluate_runs",
    "load_run",
    "run_from_records",
]


class RunUnusable(Exception):
    """A run directory that cannot be gated (missing, no records); the message says why."""


# ---- loading ---------------------------------------------------------------------------------------------


def run_from_records(
    records: Sequence[RequestRecord],
    run_json: dict[str, Any] | None = None,
    *,
    name: str = "run",
    path: Path | None = None,
) -> RunView:
    """A run's level tables from records in memory (the pure part of `load_run`)."""
    run_json = run_json or {}
    tables = {t.level: t for t in level_tables(records, run_json)}
    return RunView(name=name, path=path, tables=tables, run_json=run_json)


def load_run(path: str | Path) -> RunView:
    """Read a run directory; `RunUnusable` when it is missing or holds no request records."""
    p = Path(path)
    requests = p / "requests.jsonl"
    if not p.is_dir():
        raise RunUnusable(f"{p}: no such run directory")
    if not requests.is_file():
        raise RunUnusable(f"{p}: no requests.jsonl (is it an orpheus-bench run directory?)")
    records = read_records(str(requests))
    if not records:
        raise RunUnusable(f"{p}: requests.jsonl holds no request record")
    run_json = load_run_json(p)
    return run_from_records(records, run_json, name=str(run_json.get("name") or p.name), path=p)


# ---- level selection -------------------------------------------------------------------------------------


def _select_levels(run: RunView, level: int | str | None) -> list[LevelTable] | str:
    """The levels a rule names, or the reason none can be found."""
    if not run.tables:
        return f"{run.name} has no levels"
    if level is None:
        return [run.tables[k] for k in sorted(run.tables)]
    if level == "top":
        return [run.tables[max(run.tables)]]
    if isinstance(level, int):
        return [run.tables[level]] if level in run.tables else f"{run.name} has no level {level}"
    for t in run.tables.values():
        if level == t.label or level.rstrip("/s") == t.label.rstrip("/s"):
            return [t]
    known = ", ".join(t.label for t in run.tables.values())
    return f"{run.name} has no level {level!r} (levels: {known})"


def _usable(t: LevelTable, role: str) -> str | None:
    if t.n == 0:
        return f"{role} level {t.label} has no measured requests (empty level)"
    return None


def _client_bound(t: LevelTable, role: str, settings: GateSettings) -> str | None:
    if not t.client_bound or settings.allow_client_bound:
        return None
    reasons = "; ".join(t.client_bound_reasons)
    return f"{role} level {t.label} is client-bound ({reasons}): its numbers understate the server"


def _too_few(n: int, needed: int, role: str, q: Query) -> str | None:
    if n >= needed:
        return None
    what = f" for {q.stat}" if q.stat else ""
    return f"{role}: {n} values < {needed} needed{what} (raise requests_per_level)"


def _needed(rule: AbsoluteRule | RelativeRule, settings: GateSettings) -> int:
    return metrics.required_requests(rule.stat, rule.min_requests or settings.min_requests, settings.min_tail)


def _failed_as(spec: Metric, q: Query) -> str | None:
    per_request = spec.scope == "request" or spec.name in ("stall_rate", "continuity_rate")
    return q.failed if per_request else None


# ---- absolute rules --------------------------------------------------------------------------------------


def _absolute_check(rule: AbsoluteRule, spec: Metric, t: LevelTable, settings: GateSettings) -> Check:
    q = rule.query()
    threshold = float(rule.threshold)
    check = Check(t.label, t.level, Verdict.PASS, limit=threshold)
    unusable = _usable(t, "candidate")
    if unusable:
        return replace(check, verdict=Verdict.ERROR, reason=unusable)
    n = metrics.count(t, q)
    if spec.has_interval and n > 1:
        iv = metrics.interval(t, q, n_resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed)
        estimate, low, high = iv.estimate, iv.low, iv.high
        interval = iv
    else:
        estimate, low, high, interval = metrics.estimate(t, q), None, None, None
    check = replace(check, estimate=estimate, n=n, low=low, high=high)
    problem = None if spec.name == "client_bound" else _client_bound(t, "candidate", settings)
    problem = problem or _too_few(n, _needed(rule, settings), "candidate", q)
    if problem:
        return replace(check, verdict=Verdict.FAIL, reason=problem)
    if estimate is None:
        return replace(check, verdict=Verdict.FAIL, reason="no value (no counted request carries it)")
    d = decide_absolute(estimate, rule.op, threshold, interval=interval, mode=rule.decide)
    reason = d.reason
    if math.isinf(estimate) and d.verdict is Verdict.FAIL:
        reason = "the statistic lands on failed requests, which count as the worst value (failed: worst)"
    if spec.boolean and d.verdict is Verdict.FAIL:
        reason = f"{str(bool(estimate)).lower()} is not {rule.op} {str(rule.threshold).lower()}"
        if spec.name == "client_bound" and t.client_bound_reasons:
            reason += f" ({'; '.join(t.client_bound_reasons)})"
    return replace(check, verdict=d.verdict, reason=reason, decided=True)


def _absolute(rule: AbsoluteRule, candidate: RunView, settings: GateSettings) -> RuleResult:
    spec = metrics.get(rule.metric)
    checks: list[Check]
    if spec.scope == "run":
        assert spec.run_value is not None
        value = spec.run_value(candidate)
        threshold = float(rule.threshold)
        if value is None:
            checks = [Check("run", None, Verdict.FAIL, "the run has no value for this metric", limit=threshold)]
        else:
            d = decide_absolute(value, rule.op, threshold)
            checks = [Check("run", None, d.verdict, d.reason, estimate=value, limit=threshold)]
    else:
        levels = _select_levels(candidate, rule.level)
        if isinstance(levels, str):
            checks = [Check(str(rule.level), None, Verdict.ERROR, levels)]
        else:
            checks = [_absolute_check(rule, spec, t, settings) for t in levels]
    return RuleResult(
        rule.title(), "absolute", rule.metric, spec.unit, rule.op, "value",
        settings.confidence if rule.decide != "estimate" else None, tuple(checks),
        failed_as=_failed_as(spec, rule.query()),
    )  # fmt: skip


# ---- relative rules --------------------------------------------------------------------------------------


def _relative_check(
    rule: RelativeRule, spec: Metric, cand: LevelTable, base: LevelTable, settings: GateSettings
) -> Check:
    assert spec.better is not None
    q = rule.query()
    _, limit = relative_limit(spec.better, rule.kind, rule.tolerance)
    check = Check(cand.label, cand.level, Verdict.PASS, limit=limit)
    unusable = _usable(cand, "candidate") or _usable(base, "baseline")
    if unusable:
        return replace(check, verdict=Verdict.ERROR, reason=unusable)
    effect = metrics.relative(
        cand, base, q, kind=rule.kind,
        n_resamples=settings.resamples, confidence=rule.confidence or settings.confidence, seed=settings.seed,
    )  # fmt: skip
    n_c, n_b = metrics.count(cand, q), metrics.count(base, q)
    check = replace(check, estimate=effect.estimate, low=effect.low, high=effect.high, n=n_c, n_baseline=n_b)
    needed = _needed(rule, settings)
    problem = (
        _client_bound(cand, "candidate", settings)
        or _client_bound(base, "baseline", settings)
        or _too_few(n_c, needed, "candidate", q)
        or _too_few(n_b, needed, "baseline", q)
    )
    if problem:
        return replace(check, verdict=Verdict.FAIL, reason=problem)
    if effect.estimate is None:
        c_value, b_value = metrics.estimate(cand, q), metrics.estimate(base, q)
        if c_value is not None and math.isinf(c_value):
            why = "the candidate's statistic lands on failed requests (failed: worst)"
            return replace(check, verdict=Verdict.FAIL, reason=why)
        if b_value is not None and math.isinf(b_value):
            why = "the baseline's statistic lands on failed requests: there is nothing to compare against"
            return replace(check, verdict=Verdict.ERROR, reason=why)
    d: Decision = decide_relative(effect, spec.better, rule.tolerance)
    return replace(check, verdict=d.verdict, reason=d.reason, decided=d.verdict is not Verdict.ERROR)


def _relative(rule: RelativeRule, candidate: RunView, baseline: RunView, settings: GateSettings) -> RuleResult:
    spec = metrics.get(rule.metric)
    assert spec.better is not None
    op, limit = relative_limit(spec.better, rule.kind, rule.tolerance)
    checks: list[Check] = []
    if spec.scope == "run":
        assert spec.run_value is not None
        c, b = spec.run_value(candidate), spec.run_value(baseline)
        if c is None or b is None or (rule.kind == "ratio" and b == 0):
            checks.append(Check("run", None, Verdict.ERROR, "a run has no value (or the baseline's is 0)", limit=limit))
        else:
            est = c / b if rule.kind == "ratio" else c - b
            d = decide_relative_estimate(est, spec.better, rule.kind, rule.tolerance)
            checks.append(Check("run", None, d.verdict, d.reason, estimate=est, limit=limit))
    else:
        cand_levels = _select_levels(candidate, rule.level)
        if isinstance(cand_levels, str):
            checks.append(Check(str(rule.level), None, Verdict.ERROR, cand_levels, limit=limit))
        else:
            for t in cand_levels:
                base = baseline.tables.get(t.level)
                if base is None:
                    # "every level" compares the levels both runs have; a named level must exist in both.
                    verdict = Verdict.SKIP if rule.level is None else Verdict.ERROR
                    checks.append(Check(t.label, t.level, verdict, f"the baseline has no level {t.label}"))
                    continue
                checks.append(_relative_check(rule, spec, t, base, settings))
            if checks and all(c.verdict is Verdict.SKIP for c in checks):
                checks.append(Check("all", None, Verdict.ERROR, "the runs share no level"))
    return RuleResult(
        rule.title(), "relative", rule.metric, spec.unit, op, rule.kind,
        rule.confidence or settings.confidence, tuple(checks), failed_as=_failed_as(spec, rule.query()),
    )  # fmt: skip


def _skipped(rule: AbsoluteRule | RelativeRule, kind: str, reason: str, verdict: Verdict = Verdict.SKIP) -> RuleResult:
    spec = metrics.get(rule.metric)
    op = rule.op if isinstance(rule, AbsoluteRule) else "<="
    compare = "value" if isinstance(rule, AbsoluteRule) else rule.kind
    return RuleResult(
        rule.title(), kind, rule.metric, spec.unit, op, compare, None, (Check("-", None, verdict, reason),)
    )


# ---- whole-run checks ------------------------------------------------------------------------------------


def _completeness(runs: list[tuple[str, RunView]], settings: GateSettings) -> RuleResult:
    checks = []
    for role, run in runs:
        complete = run.run_json.get("complete")
        if complete is True:
            checks.append(Check(role, None, Verdict.PASS, ""))
            continue
        why = "run.json says complete: false" if complete is False else "no run.json: completeness unknown"
        if settings.allow_incomplete:
            checks.append(Check(role, None, Verdict.WARN, f"{why} (allowed by settings.allow_incomplete)"))
        else:
            checks.append(Check(role, None, Verdict.FAIL, f"{why}: the last level may be partial"))
    return RuleResult("runs complete", "run", "complete", "", "==", "value", None, tuple(checks))


def _inputs(problems: list[tuple[str, str]]) -> RuleResult:
    checks = tuple(Check(role, None, Verdict.ERROR, why) for role, why in problems)
    return RuleResult("inputs usable", "run", "inputs", "", "==", "value", None, checks)


# ---- public entry points ---------------------------------------------------------------------------------


def evaluate_runs(
    rules: GateRules,
    candidate: RunView | None,
    baseline: RunView | None = None,
    *,
    seed: int | None = None,
    problems: Sequence[tuple[str, str]] = (),
    candidate_name: str | None = None,
    baseline_name: str | None = None,
) -> GateReport:
    """Evaluate every rule on loaded runs; ``problems`` are (role, reason) input faults found while loading."""
    settings = rules.settings if seed is None else rules.settings.model_copy(update={"seed": seed})
    issues = list(problems)
    has_baseline_issue = any(role == "baseline" for role, _ in issues)
    if rules.relative and baseline is None and not has_baseline_issue and settings.missing_baseline == "error":
        issues.append(("baseline", "relative rules need a baseline run: pass --baseline or set baseline:"))
    results: list[RuleResult] = []
    if issues:
        results.append(_inputs(issues))
    if candidate is not None:
        runs = [("candidate", candidate)] + ([("baseline", baseline)] if baseline and rules.relative else [])
        results.append(_completeness(runs, settings))
    for abs_rule in rules.absolute:
        if candidate is None:
            results.append(_skipped(abs_rule, "absolute", "candidate run unusable"))
        else:
            results.append(_absolute(abs_rule, candidate, settings))
    for rel_rule in rules.relative:
        if candidate is None or baseline is None:
            if candidate is None:
                why = "the candidate run is unusable"
            elif has_baseline_issue:
                why = "the baseline run is unusable"
            elif settings.missing_baseline == "skip":
                why = "no baseline run given (settings.missing_baseline: skip)"
            else:
                why = "no baseline run given"
            results.append(_skipped(rel_rule, "relative", why))
        else:
            results.append(_relative(rel_rule, candidate, baseline, settings))
    notes = []
    if not math.isclose(settings.confidence, 0.95):
        notes.append(f"intervals at {settings.confidence:.0%} confidence")
    if any(r.failed_as == "worst" for r in results):
        notes.append(
            "failed requests (errors, utterances cut short) count as the worst value in per-request statistics "
            "and stall shares (rules marked failed=exclude describe successful requests only)"
        )
    return GateReport(
        candidate=candidate_name or (candidate.name if candidate else "?"),
        baseline=baseline_name or (baseline.name if baseline else None),
        description=rules.description,
        rules=tuple(results),
        settings=settings,
        seed=settings.seed,
        notes=tuple(notes),
    )


def evaluate(
    rules: GateRules,
    candidate_dir: str | Path,
    baseline_dir: str | Path | None = None,
    *,
    seed: int | None = None,
) -> GateReport:
    """Load the runs (the baseline defaults to the rules' ``baseline:``) and evaluate every rule."""
    problems: list[tuple[str, str]] = []
    candidate = baseline = None
    try:
        candidate = load_run(candidate_dir)
    except RunUnusable as exc:
        problems.append(("candidate", str(exc)))
    baseline_path = baseline_dir if baseline_dir is not None else rules.baseline
    if baseline_path is not None:
        try:
            baseline = load_run(baseline_path)
        except RunUnusable as exc:
            problems.append(("baseline", str(exc)))
    return evaluate_runs(
        rules, candidate, baseline, seed=seed, problems=problems,
        candidate_name=str(candidate_dir), baseline_name=None if baseline_path is None else str(baseline_path),
    )  # fmt: skip


def evaluate_and_print(
    rules: GateRules,
    run_dir: str | Path,
    console: Any,
    baseline: str | Path | None = None,
    *,
    junit: str | Path | None = None,
    summary: str | Path | None = None,
    seed: int | None = None,
) -> int:
    """Evaluate, print the console table, write the optional JUnit/Markdown files; return the exit code."""
    from orpheus_bench.report.gate import print_report, write_junit, write_markdown

    report = evaluate(rules, run_dir, baseline, seed=seed)
    print_report(report, console)
    if junit:
        write_junit(report, junit)
    if summary:
        write_markdown(report, summary)
    return report.exit_code
