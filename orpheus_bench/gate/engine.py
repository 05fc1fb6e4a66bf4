"""The gate engine: load runs, evaluate every rule at every level it names, produce a `GateReport`.

Reading is the only I/O here (`load_run`); `evaluate_runs` is pure over loaded runs, so the calibration
benchmark and tests can evaluate records that never touched a disk. Input problems never raise: a missing run,
a missing or empty level, or relative rules without a baseline become ERROR checks (exit code 2), so CI still
gets its JUnit and Markdown files. Bad rules raise `ConfigError` earlier, in `load_rules`.

Policies (docs/gates.md):

- warmup requests are excluded everywhere (``record.warmup``);
- a check at a level where the client was the bottleneck fails with the runner's reasons, unless
  ``settings.allow_client_bound``;
- a check resting on fewer values than it needs (``min_requests``, and ``min_tail`` beyond a percentile) fails
  with the count, rather than pass on a number that could be noise;
- a run whose run.json says ``complete: false`` (or that has no run.json) fails the "runs complete" rule unless
  ``settings.allow_incomplete`` (then it warns): a partial last level would be judged as if it were whole.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orpheus_bench.gate.decide import (
    Decision,
    Verdict,
    bootstrap_interval,
    bootstrap_relative,
    check_seed,
    decide_absolute,
    decide_relative,
    decide_relative_estimate,
    relative_limit,
    worst,
)
from orpheus_bench.gate.metrics import (
    LevelData,
    MetricQuery,
    MetricSpec,
    RunData,
    bootstrap_inputs,
    get_metric,
    level_estimate,
    required_requests,
    value_count,
)
from orpheus_bench.gate.rules import AbsoluteRule, GateRules, GateSettings, RelativeRule
from orpheus_bench.records import RequestRecord, read_records
from orpheus_bench.results.compile import compile_records, load_run_json

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_UNUSABLE = 2


@dataclass(frozen=True)
class Check:
    """One rule at one level (or once for the run)."""

    subject: str  # level label ("c=4"), "run", or the run's role ("candidate")
    level: int | None
    verdict: Verdict
    reason: str = ""
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    n_baseline: int | None = None
    limit: float | None = None  # threshold (absolute) or the worst acceptable ratio/difference (relative)
    decided: bool = False  # the verdict came from comparing the estimate/interval with the limit (no precondition)


@dataclass(frozen=True)
class RuleResult:
    """A rule and its checks; ``compare`` is "value" (absolute), "ratio" or "difference" (relative)."""

    title: str
    kind: str  # "absolute" | "relative" | "run"
    metric: str
    unit: str
    op: str
    compare: str
    confidence: float | None
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of its checks."""
        return worst([c.verdict for c in self.checks]) if self.checks else Verdict.ERROR


@dataclass(frozen=True)
class GateReport:
    """Every rule's result for one candidate (and baseline)."""

    candidate: str
    baseline: str | None
    description: str | None
    rules: tuple[RuleResult, ...]
    settings: GateSettings
    seed: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Verdict:
        """The worst rule verdict."""
        return worst([r.verdict for r in self.rules])

    @property
    def exit_code(self) -> int:
        """0 pass (warnings and skips included), 1 a rule failed, 2 the input is unusable."""
        v = self.verdict
        return EXIT_UNUSABLE if v is Verdict.ERROR else EXIT_FAIL if v is Verdict.FAIL else EXIT_PASS

    def count(self, verdict: Verdict) -> int:
        """Rules with this verdict."""
        return sum(1 for r in self.rules if r.verdict is verdict)


class RunUnusable(Exception):
    """A run directory that cannot be gated (missing, no records); the message says why."""


# ---- loading ---------------------------------------------------------------------------------------------


def run_from_records(
    records: Sequence[RequestRecord],
    run_json: dict[str, Any] | None = None,
    *,
    name: str = "run",
    path: Path | None = None,
) -> RunData:
    """Build a `RunData` from records in memory (the pure part of `load_run`)."""
    run_json = run_json or {}
    results = compile_records(records, run_json, run_dir=path or ".")
    infos = {
        e["level"]: e for e in run_json.get("levels") or [] if isinstance(e, dict) and isinstance(e.get("level"), int)
    }
    grouped: dict[int, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if not r.warmup:
            grouped[r.level].append(r)
    levels = {}
    for lv in results.levels:
        info = infos.get(lv.level, {})
        raw = info.get("label") or next((r.level_label for r in grouped[lv.level] if r.level_label), None)
        levels[lv.level] = LevelData(lv.level, str(raw or f"c={lv.level}"), lv, tuple(grouped[lv.level]), info)
    return RunData(name=name, path=path, run_json=run_json, results=results, levels=levels)


def load_run(path: str | Path) -> RunData:
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


def _select_levels(run: RunData, level: int | str | None) -> list[LevelData] | str:
    """The levels a rule names, or the reason none can be found."""
    if not run.levels:
        return f"{run.name} has no levels"
    if level is None:
        return [run.levels[k] for k in sorted(run.levels)]
    if level == "top":
        return [run.levels[max(run.levels)]]
    if isinstance(level, int):
        return [run.levels[level]] if level in run.levels else f"{run.name} has no level {level}"
    for lv in run.levels.values():
        if level in (lv.label, lv.result.label):
            return [lv]
    known = ", ".join(lv.label for lv in run.levels.values())
    return f"{run.name} has no level {level!r} (levels: {known})"


def _usable(lv: LevelData, role: str) -> str | None:
    if lv.result.n == 0:
        return f"{role} level {lv.label} has no measured requests (empty level)"
    return None


def _client_bound(lv: LevelData, role: str, settings: GateSettings) -> str | None:
    if not lv.result.client_bound or settings.allow_client_bound:
        return None
    reasons = "; ".join(lv.client_bound_reasons) or "marked client-bound"
    return f"{role} level {lv.label} is client-bound ({reasons}): its numbers understate the server"


def _too_few(n: int, needed: int, role: str, q: MetricQuery) -> str | None:
    if n >= needed:
        return None
    what = f" for {q.stat}" if q.stat else ""
    return f"{role}: {n} values < {needed} needed{what} (raise requests_per_level)"


def _needed(rule: AbsoluteRule | RelativeRule, settings: GateSettings) -> int:
    return required_requests(rule.stat, rule.min_requests or settings.min_requests, settings.min_tail)


# ---- absolute rules --------------------------------------------------------------------------------------


def _absolute_check(rule: AbsoluteRule, spec: MetricSpec, lv: LevelData, settings: GateSettings, seed: int) -> Check:
    q = MetricQuery(rule.stat, rule.preroll_ms)
    threshold = float(rule.threshold)
    check = Check(lv.label, lv.level, Verdict.PASS, limit=threshold)
    unusable = _usable(lv, "candidate")
    if unusable:
        return replace(check, verdict=Verdict.ERROR, reason=unusable)
    estimate = level_estimate(spec, lv, q)
    n = value_count(spec, lv, q)
    interval = None
    if spec.has_interval and estimate is not None and n > 1:
        values, stat = bootstrap_inputs(spec, lv, q)
        interval = bootstrap_interval(
            values, stat, n_resamples=settings.resamples, confidence=settings.confidence, seed=seed
        )
    check = replace(
        check, estimate=estimate, n=n, low=interval.low if interval else None, high=interval.high if interval else None
    )
    problem = None if spec.name == "client_bound" else _client_bound(lv, "candidate", settings)
    problem = problem or _too_few(n, _needed(rule, settings), "candidate", q)
    if problem:
        return replace(check, verdict=Verdict.FAIL, reason=problem)
    if estimate is None:
        return replace(check, verdict=Verdict.FAIL, reason="no value (no successful request carries it)")
    d = decide_absolute(estimate, rule.op, threshold, interval=interval, mode=rule.decide)
    reason = d.reason
    if spec.boolean and d.verdict is Verdict.FAIL:
        reason = f"{str(bool(estimate)).lower()} is not {rule.op} {str(rule.threshold).lower()}"
        if spec.name == "client_bound" and lv.client_bound_reasons:
            reason += f" ({'; '.join(lv.client_bound_reasons)})"
    return replace(check, verdict=d.verdict, reason=reason, decided=True)


def _absolute(rule: AbsoluteRule, index: int, candidate: RunData, settings: GateSettings) -> RuleResult:
    spec = get_metric(rule.metric)
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
            checks = [
                _absolute_check(rule, spec, lv, settings, check_seed(settings.seed, 0, index, lv.level))
                for lv in levels
            ]
    return RuleResult(
        rule.title(), "absolute", rule.metric, spec.unit, rule.op, "value",
        settings.confidence if rule.decide != "estimate" else None, tuple(checks),
    )  # fmt: skip


# ---- relative rules --------------------------------------------------------------------------------------


def _relative_check(
    rule: RelativeRule, spec: MetricSpec, cand: LevelData, base: LevelData, settings: GateSettings, seed: int
) -> Check:
    assert spec.better is not None
    q = MetricQuery(rule.stat, rule.preroll_ms)
    _, limit = relative_limit(spec.better, rule.kind, rule.tolerance)
    check = Check(cand.label, cand.level, Verdict.PASS, limit=limit)
    unusable = _usable(cand, "candidate") or _usable(base, "baseline")
    if unusable:
        return replace(check, verdict=Verdict.ERROR, reason=unusable)
    c_values, c_stat = bootstrap_inputs(spec, cand, q)
    b_values, b_stat = bootstrap_inputs(spec, base, q)
    effect = bootstrap_relative(
        c_values, c_stat, b_values, b_stat, kind=rule.kind,
        n_resamples=settings.resamples, confidence=rule.confidence or settings.confidence, seed=seed,
    )  # fmt: skip
    n_c, n_b = value_count(spec, cand, q), value_count(spec, base, q)
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
    d: Decision = decide_relative(effect, spec.better, rule.tolerance)
    return replace(check, verdict=d.verdict, reason=d.reason, decided=d.verdict is not Verdict.ERROR)


def _relative(
    rule: RelativeRule, index: int, candidate: RunData, baseline: RunData, settings: GateSettings
) -> RuleResult:
    spec = get_metric(rule.metric)
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
            for lv in cand_levels:
                base = baseline.levels.get(lv.level)
                if base is None:
                    # "every level" compares the levels both runs have; a named level must exist in both.
                    verdict = Verdict.SKIP if rule.level is None else Verdict.ERROR
                    checks.append(Check(lv.label, lv.level, verdict, f"the baseline has no level {lv.label}"))
                    continue
                seed = check_seed(settings.seed, 1, index, lv.level)
                checks.append(_relative_check(rule, spec, lv, base, settings, seed))
            if checks and all(c.verdict is Verdict.SKIP for c in checks):
                checks.append(Check("all", None, Verdict.ERROR, "the runs share no level"))
    return RuleResult(
        rule.title(), "relative", rule.metric, spec.unit, op, rule.kind,
        rule.confidence or settings.confidence, tuple(checks),
    )  # fmt: skip


def _skipped(rule: AbsoluteRule | RelativeRule, kind: str, reason: str, verdict: Verdict = Verdict.SKIP) -> RuleResult:
    spec = get_metric(rule.metric)
    op = rule.op if isinstance(rule, AbsoluteRule) else "<="
    compare = "value" if isinstance(rule, AbsoluteRule) else rule.kind
    return RuleResult(
        rule.title(), kind, rule.metric, spec.unit, op, compare, None, (Check("-", None, verdict, reason),)
    )


# ---- whole-run checks ------------------------------------------------------------------------------------


def _completeness(runs: list[tuple[str, RunData]], settings: GateSettings) -> RuleResult:
    checks = []
    for role, run in runs:
        complete = run.complete
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
    candidate: RunData | None,
    baseline: RunData | None = None,
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
    for i, abs_rule in enumerate(rules.absolute):
        if candidate is None:
            results.append(_skipped(abs_rule, "absolute", "candidate run unusable"))
        else:
            results.append(_absolute(abs_rule, i, candidate, settings))
    for i, rel_rule in enumerate(rules.relative):
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
            results.append(_relative(rel_rule, i, candidate, baseline, settings))
    notes = []
    if not math.isclose(settings.confidence, 0.95):
        notes.append(f"intervals at {settings.confidence:.0%} confidence")
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
    from orpheus_bench.gate.outputs import print_report, write_junit, write_markdown

    report = evaluate(rules, run_dir, baseline, seed=seed)
    print_report(report, console)
    if junit:
        write_junit(report, junit)
    if summary:
        write_markdown(report, summary)
    return report.exit_code
