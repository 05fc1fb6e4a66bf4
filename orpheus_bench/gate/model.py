"""The gate's report model: checks, rule results and the report with its exit code. Pure data.

`orpheus_bench.gate.engine` builds a `GateReport`; the renderers in `orpheus_bench.report.gate` (console,
JUnit XML, Markdown) read only this model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orpheus_bench.gate.decide import Verdict, worst
from orpheus_bench.gate.rules import GateSettings

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
    failed_as: str | None = None  # per-request rules: what a failed request counted as ("worst" or "exclude")

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
