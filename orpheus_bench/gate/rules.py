"""Gate rules: a validated YAML file of absolute thresholds and relative (vs a baseline run) regression limits.

Unknown keys are errors and every field is described (``orpheus-bench gate --help-rules`` lists them). A rule
is a mapping, or a one-line shorthand that expands to the same mapping::

    absolute:
      - ttfa_ms p50 <= 300 at c=2                # metric [statistic] op value [at LEVEL] [preroll N ms]
      - throughput_rps >= 10 at c=12
      - success_rate >= 0.999                     # no level: every level of the run
      - stall_rate at preroll 250 ms <= 0.01
      - client_bound == false
      - ttfa_p95_ms <= 500                        # the capacity SLO spelling means the same rule
      - ttfa_ms p95 <= 500 failed=exclude         # over successful requests only (default: failures count as inf)
    relative:
      - ttfa_ms p50 regress <= 10%                # ratio candidate/baseline may not exceed 1.10
      - success_rate regress <= 0.005             # a plain number: a difference, in the metric's units

Rules are written in the one rule language of `orpheus_bench.measures.query` (the capacity SLO parses the same
words) and name metrics of the one registry, `orpheus_bench.measures.metrics`. Any problem becomes one
`ConfigError(field, message)` naming the rule (``absolute[2].metric``), before any run is read. See
docs/gates.md for the decision rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from orpheus_bench.measures.metrics import DEFAULT_MIN_REQUESTS, DEFAULT_MIN_TAIL, get, names
from orpheus_bench.measures.query import STATISTICS, Query, parse_words

Op = Literal["<=", "<", ">=", ">", "==", "!="]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateSettings(_Strict):
    """How decisions are made; every rule may override the statistical ones."""

    confidence: float = Field(
        DEFAULT_CONFIDENCE, gt=0.5, lt=1.0, description="Two-sided confidence of bootstrap intervals."
    )
    resamples: int = Field(DEFAULT_RESAMPLES, ge=200, le=100_000, description="Bootstrap resamples per check.")
    seed: int = Field(0, ge=0, description="Bootstrap seed: the same runs and seed always give the same verdicts.")
    min_requests: int = Field(
        DEFAULT_MIN_REQUESTS,
        ge=1,
        description="Values a check needs at a level (per run); fewer fails the check with the reason.",
    )
    min_tail: int = Field(
        DEFAULT_MIN_TAIL,
        ge=1,
        description="A percentile pQ also needs this many values beyond it: n >= min_tail / (1 - Q/100).",
    )
    allow_incomplete: bool = Field(
        False, description="Accept runs whose run.json says complete: false (or that have no run.json)."
    )
    allow_client_bound: bool = Field(
        False, description="Accept checks at levels where the client was the bottleneck (their numbers are low)."
    )
    missing_baseline: Literal["error", "skip"] = Field(
        "error",
        description="Relative rules without a baseline run: error (exit 2) or skip (shown as skipped).",
    )


class _RuleBase(_Strict):
    name: str | None = Field(None, description="Name shown in outputs (default: the rule in words).")
    metric: str = Field(description="Metric name; `orpheus-bench gate --help-rules` lists them.")
    stat: str | None = Field(None, description=f"Statistic of a per-request metric: {', '.join(STATISTICS)}.")
    level: int | str | None = Field(
        None,
        description="Concurrency level (4), a run label ('c=4', 'rate=2/s'), 'top' (highest) or 'all' (default).",
    )
    preroll_ms: int | None = Field(None, ge=0, description="Pre-roll of stall metrics, in milliseconds.")
    stall_budget_ms: float = Field(
        0.0, ge=0.0, description="Stall metrics: only stalls longer than this count (default: every stall)."
    )
    failed: Literal["worst", "exclude"] = Field(
        "worst",
        description="What a failed request (an error, or an utterance cut short) counts as in a per-request "
        "statistic or a stall share: worst (+inf latency, a stalled stream: a failure never helps a rule pass) or "
        "exclude (the statistic describes successful requests only).",
    )
    min_requests: int | None = Field(None, ge=1, description="Overrides settings.min_requests for this rule.")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in names():
            raise ValueError(f"unknown metric {v!r}; known: {', '.join(names())}")
        return v

    @field_validator("stat")
    @classmethod
    def _known_stat(cls, v: str | None) -> str | None:
        if v is not None and v not in STATISTICS and not re.fullmatch(r"p\d+(\.\d+)?", v):
            raise ValueError(f"unknown statistic {v!r}; known: {', '.join(STATISTICS)} (or any pNN)")
        return v

    @field_validator("level")
    @classmethod
    def _level(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str):
            v = v.strip()
            if v == "all":
                return None
            m = re.fullmatch(r"(?:c=)?(\d+)", v)
            if m:
                return int(m.group(1))
            if not v:
                raise ValueError("empty level")
        if isinstance(v, int) and v <= 0:
            raise ValueError("a level is a positive integer")
        return v

    def query(self) -> Query:
        """What the rule measures, in the measures layer's terms."""
        return Query(self.metric, self.stat, self.preroll_ms, self.stall_budget_ms, self.failed)

    def _check_shape(self) -> None:
        spec = get(self.metric)
        if spec.scope == "request" and self.stat is None:
            raise ValueError(f"{self.metric} is per request: name a statistic ({', '.join(STATISTICS)})")
        if spec.scope != "request" and self.stat is not None:
            raise ValueError(f"{self.metric} is one number per {spec.scope}: it takes no statistic")
        if spec.needs_preroll and self.preroll_ms is None:
            raise ValueError(f"{self.metric} needs preroll_ms (e.g. 250)")
        if not spec.needs_preroll and self.preroll_ms is not None:
            raise ValueError(f"{self.metric} takes no preroll_ms")
        if spec.scope == "run" and self.level is not None:
            raise ValueError(f"{self.metric} is one number per run: it takes no level")

    def describe(self) -> str:
        """The rule's subject in words, e.g. ``ttfa_ms p50 at c=2`` (the rule language's own words)."""
        return self.query().describe(self.level)


class AbsoluteRule(_RuleBase):
    """A threshold on one run's metric (``ttfa_ms p50 <= 300 at c=2``)."""

    op: Op = Field(description="Comparison the metric must satisfy: <=, <, >=, >, ==, !=.")
    threshold: float | bool = Field(description="Value on the right of `op`, in the metric's unit.")
    decide: Literal["estimate", "confident_pass", "confident_fail"] = Field(
        "estimate",
        description="estimate: compare the point estimate; confident_pass: pass only when the whole bootstrap "
        "interval satisfies the rule; confident_fail: fail only when the whole interval violates it.",
    )

    @model_validator(mode="after")
    def _shape(self) -> AbsoluteRule:
        self._check_shape()
        spec = get(self.metric)
        if spec.boolean:
            if self.op not in ("==", "!="):
                raise ValueError(f"{self.metric} is true or false: use == or !=")
            if not isinstance(self.threshold, bool):
                raise ValueError(f"{self.metric} compares with true or false")
        elif isinstance(self.threshold, bool):
            raise ValueError(f"{self.metric} compares with a number, not {self.threshold}")
        if self.decide != "estimate" and not spec.has_interval:
            raise ValueError(f"{self.metric} has no bootstrap interval: use decide: estimate")
        return self

    def title(self) -> str:
        """Name, or the rule in words."""
        value = str(self.threshold).lower() if isinstance(self.threshold, bool) else f"{self.threshold:g}"
        return self.name or f"{self.describe()} {self.op} {value}"


class RelativeRule(_RuleBase):
    """A regression limit against a baseline run (``ttfa_ms p50 may not regress more than 10%``)."""

    tolerance: float = Field(
        ge=0.0,
        description="Allowed regression: a fraction for ratio (0.10 = 10% worse), the metric's units for "
        "difference. A check fails only when the whole bootstrap interval lies beyond it.",
    )
    compare: Literal["ratio", "difference"] | None = Field(
        None, description="candidate/baseline (ratio) or candidate - baseline (difference); default per metric."
    )
    confidence: float | None = Field(None, gt=0.5, lt=1.0, description="Overrides settings.confidence for this rule.")

    @model_validator(mode="after")
    def _shape(self) -> RelativeRule:
        self._check_shape()
        spec = get(self.metric)
        if spec.better is None:
            raise ValueError(f"{self.metric} has no better direction; gate it with an absolute rule")
        return self

    @property
    def kind(self) -> str:
        """The comparison used: the rule's, else the metric's default."""
        return self.compare or get(self.metric).compare

    def title(self) -> str:
        """Name, or the rule in words."""
        limit = f"{self.tolerance * 100:g}%" if self.kind == "ratio" else f"{self.tolerance:g}"
        return self.name or f"{self.describe()} regress <= {limit}"


class GateRules(_Strict):
    """A gate file: settings, absolute rules on the candidate, relative rules against a baseline."""

    version: Literal[1] = Field(1, description="Rules file format version.")
    description: str | None = Field(None, description="What this gate protects, shown in outputs.")
    baseline: str | None = Field(
        None, description="Baseline run directory for relative rules; --baseline overrides it."
    )
    settings: GateSettings = Field(default_factory=GateSettings, description="Decision settings.")
    absolute: list[AbsoluteRule] = Field(default_factory=list, description="Thresholds on the candidate run.")
    relative: list[RelativeRule] = Field(default_factory=list, description="Limits relative to the baseline.")

    @field_validator("absolute", mode="before")
    @classmethod
    def _absolute_shorthand(cls, v: Any) -> Any:
        return _expand(v, parse_absolute)

    @field_validator("relative", mode="before")
    @classmethod
    def _relative_shorthand(cls, v: Any) -> Any:
        return _expand(v, parse_relative)

    @model_validator(mode="after")
    def _not_empty(self) -> GateRules:
        if not self.absolute and not self.relative:
            raise ValueError("the file holds no rule (absolute: or relative:)")
        return self


# ---- the one-line shorthand -------------------------------------------------------------------------------


def _expand(rules: Any, parse: Any) -> Any:
    if not isinstance(rules, list):
        return rules
    out = []
    for i, rule in enumerate(rules):
        try:
            out.append(parse(rule) if isinstance(rule, str) else rule)
        except ValueError as exc:
            raise ValueError(f"rule {i}: {exc}") from None
    return out


def parse_absolute(text: str) -> dict[str, Any]:
    """``"ttfa_ms p50 <= 300 at c=2"`` (or ``"ttfa_p50_ms<=300"``) -> the mapping of an `AbsoluteRule`."""
    return parse_words(text)


def parse_relative(text: str) -> dict[str, Any]:
    """``"ttfa_ms p50 regress <= 10% at c=2"`` -> the mapping of a `RelativeRule` (``%`` means a ratio)."""
    return parse_words(text, relative=True)


# ---- loading -------------------------------------------------------------------------------------------


def _format_validation(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "rules"
    msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(loc, msg)


def rules_from_dict(data: Any) -> GateRules:
    """Validate a mapping (as read from YAML); the first problem becomes a `ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError("rules", "a rules file holds a mapping with absolute: and/or relative: lists")
    try:
        return GateRules.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(exc) from None


def load_rules(path: str | Path) -> GateRules:
    """Read and validate a rules YAML file (safe loader)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("rules", f"no such file: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError("rules", f"{p} is not valid YAML: {exc}") from None
    return rules_from_dict(data)


def describe_rule_fields() -> list[tuple[str, str, str]]:
    """(name, default, description) of every field of the rules format, for --help-rules."""
    out: list[tuple[str, str, str]] = []
    for prefix, model in (
        ("", GateRules),
        ("settings.", GateSettings),
        ("absolute[].", AbsoluteRule),
        ("relative[].", RelativeRule),
    ):
        for name, info in model.model_fields.items():
            if model is GateRules and name in ("settings", "absolute", "relative"):
                continue
            default = "required" if info.is_required() else repr(info.default)
            out.append((prefix + name, default, info.description or ""))
    return out
