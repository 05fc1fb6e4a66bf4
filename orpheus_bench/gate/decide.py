"""Verdicts: pure decisions from estimates and bootstrap intervals (no files, no runs).

Relative rules compare a candidate with a baseline through the ratio ``candidate / baseline`` (or the
difference ``candidate - baseline``) of one statistic at one level, with a percentile-bootstrap interval that
resamples requests within the level of each run (`orpheus_bench.measures.stats.bootstrap_effect`). The
*limit* is the worst acceptable value of that ratio: ``1 + tolerance`` for a metric where lower is better,
``1 - tolerance`` where higher is better (``±tolerance`` for a difference). A check

- fails when the whole interval lies beyond the limit (a regression larger than the tolerance, with the
  requested confidence);
- warns when the point estimate is beyond the limit but the interval reaches back over it (inconclusive:
  more requests would tell);
- passes otherwise.

Absolute rules compare the point estimate with the threshold by default; ``confident_pass`` passes only when
the whole interval satisfies the rule and ``confident_fail`` fails only when the whole interval violates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from orpheus_bench.measures.bootstrap import Interval
from orpheus_bench.measures.query import satisfies


class Verdict(str, Enum):
    """Outcome of a check or rule, in increasing severity."""

    PASS = "pass"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"  # the input is unusable: exit code 2

    @property
    def severity(self) -> int:
        """Order used to combine verdicts: the worst wins."""
        return _SEVERITY[self]


_SEVERITY = {Verdict.PASS: 0, Verdict.SKIP: 1, Verdict.WARN: 2, Verdict.FAIL: 3, Verdict.ERROR: 4}


def worst(verdicts: list[Verdict]) -> Verdict:
    """The most severe verdict (PASS for none)."""
    return max(verdicts, key=lambda v: v.severity, default=Verdict.PASS)


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict with the reason a reader sees beside it."""

    verdict: Verdict
    reason: str


def decide_absolute(
    estimate: float, op: str, threshold: float, *, interval: Interval | None = None, mode: str = "estimate"
) -> Decision:
    """Judge an absolute rule (see the module docstring for ``mode``)."""
    ok = satisfies(estimate, op, threshold)
    if mode == "estimate" or op in ("==", "!="):
        return Decision(Verdict.PASS if ok else Verdict.FAIL, "" if ok else f"{estimate:g} is not {op} {threshold:g}")
    if interval is None or interval.low is None or interval.high is None:
        return Decision(Verdict.FAIL, "no bootstrap interval (too few values?)")
    low, high = interval.low, interval.high
    # For < and <=, the interval's high end is the one that must satisfy (pass) or its low end violate (fail).
    upper = op in ("<=", "<")
    pass_end, fail_end = (high, low) if upper else (low, high)
    if mode == "confident_pass":
        if satisfies(pass_end, op, threshold):
            return Decision(Verdict.PASS, "")
        return Decision(Verdict.FAIL, f"the interval is not entirely {op} {threshold:g}")
    if not satisfies(fail_end, op, threshold):
        return Decision(Verdict.FAIL, f"the whole interval lies beyond {threshold:g}")
    if not ok:
        return Decision(Verdict.WARN, f"estimate beyond {threshold:g}, but the interval reaches back over it")
    return Decision(Verdict.PASS, "")


def relative_limit(better: str, kind: str, tolerance: float) -> tuple[str, float]:
    """The comparison and limit a ratio or difference must meet: e.g. ``("<=", 1.10)`` for lower-is-better."""
    if kind == "ratio":
        return ("<=", 1.0 + tolerance) if better == "lower" else (">=", 1.0 - tolerance)
    return ("<=", tolerance) if better == "lower" else (">=", -tolerance)


def decide_relative(effect: Interval, better: str, tolerance: float) -> Decision:
    """Judge a relative rule from its bootstrap interval (see the module docstring)."""
    op, limit = relative_limit(better, effect.kind, tolerance)
    if effect.estimate is None:
        why = "the baseline's value is 0" if effect.kind == "ratio" else "a run has no value"
        return Decision(Verdict.ERROR, f"{effect.kind} undefined: {why}")
    if effect.low is None or effect.high is None:
        return Decision(Verdict.ERROR, "too few resamples gave a value: no interval")
    beyond = not satisfies(effect.estimate, op, limit)
    whole_beyond = not satisfies(effect.low if op == "<=" else effect.high, op, limit)
    if whole_beyond:
        return Decision(Verdict.FAIL, f"regression beyond tolerance at {effect.confidence:.0%} confidence")
    if beyond:
        return Decision(Verdict.WARN, "estimate beyond tolerance, interval reaches back over it: inconclusive")
    return Decision(Verdict.PASS, "")


def decide_relative_estimate(estimate: float, better: str, kind: str, tolerance: float) -> Decision:
    """Judge a relative rule on a point estimate alone (run-wide metrics, which have no interval)."""
    op, limit = relative_limit(better, kind, tolerance)
    if satisfies(estimate, op, limit):
        return Decision(Verdict.PASS, "no interval for a run metric: decided on the estimate")
    return Decision(Verdict.FAIL, "beyond tolerance (no interval for a run metric: decided on the estimate)")
