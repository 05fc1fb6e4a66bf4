"""Service-level objectives for the capacity search: terms of the one rule language, judged per request and level.

An SLO is written as comma-separated terms, ``"ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99"``, in the rule
language of `orpheus_bench.measures.query` (the gate's spelling, ``ttfa_ms p95 <= 500``, means the same term).
Each term is a query of the one metric registry (`orpheus_bench.measures.metrics`) with a bound:

* per-request budgets judge one request: ``ttfa_ms<=X`` (time to first audio), ``total_ms<=X``, ``rtf<X``,
  ``first_token_ms<=X``, ``max_stall_ms<=X`` (longest playback stall at the SLO's pre-roll);
* level terms judge a load level: a statistic of a latency (``ttfa_p95_ms``, ``total_p99_ms``, ``rtf_p95``,
  ``ttfa_mean_ms``, ``rtf_max``; any ``pNN``), or a share: ``goodput``, ``continuity`` (= ``continuity_rate``),
  ``success_rate``.

Every SLO also judges each request on implied budgets, which together define *goodput*:

* ``valid_audio``: the request succeeded (a complete utterance: a request cut short by a length limit does not
  meet the SLO) with no out-of-range audio code;
* a TTFA budget: the ``ttfa_ms`` budget when given, else the threshold of the level TTFA term with the highest
  statistic (``ttfa_p95_ms<=500`` means a request that waited more than 500 ms missed its budget);
* a stall budget: the ``max_stall_ms`` budget when given, else ``max_stall_ms<=0`` (no stall at all), played by
  the virtual player of `orpheus_bench.measures.playback` at the SLO's pre-roll.

Goodput of a level = the share of its counted requests (warmup and cancelled ones dropped) that met every budget.
Level terms count failures the way every rule does (``failed=worst``, `measures.query`): a failed request sits
beyond every latency bound (+inf) and did not play continuously, so a failure never helps a level pass.
``continuity`` is the share of counted requests that played without a stall longer than the stall budget.

A level *meets* the SLO when every level term holds on the point estimate. Its *pass share* is the share of
bootstrap resamples in which every level term holds (all terms are computed on the same resamples, see
`measures.bootstrap`): the confidence that the level meets the SLO. Which term failed first is the one
furthest beyond its threshold (`TermResult.margin`).

Why one module over 400 lines: parsing an SLO, judging a request and judging a level read the same terms and must
agree; the statistics themselves come from `measures`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures import bootstrap, metrics
from orpheus_bench.measures.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from orpheus_bench.measures.query import COMPARE, WORST, Budget, Query, Term, parse_term, satisfies
from orpheus_bench.measures.table import LevelTable, level_tables
from orpheus_bench.records import RequestRecord, Status

DEFAULT_PREROLL_MS = 250

REQUEST = "request"
LEVEL = "level"
UPPER_OPS = ("<=", "<")
LOWER_OPS = (">=", ">")
SHARES = ("goodput", "continuity_rate", "success_rate")
REQUEST_QUANTITIES = ("ttfa_ms", "total_ms", "rtf", "first_token_ms", "max_stall_ms")
VALID_AUDIO = "valid_audio"
_HELP = (
    "known terms: ttfa_ms, total_ms, rtf, first_token_ms, max_stall_ms (per request); ttfa_pNN_ms, total_pNN_ms, "
    "rtf_pNN, *_mean, *_max (or 'ttfa_ms p95'), goodput, continuity, success_rate (per level)"
)


@dataclass(frozen=True, slots=True)
class SloTerm:
    """One term of an SLO: ``quantity[stat] op threshold``, judged per request or per level."""

    name: str  # canonical capacity spelling of the quantity: "ttfa_p95_ms", "goodput", "valid_audio"
    quantity: str  # the metric ("ttfa_ms", "continuity_rate", ...), "max_stall_ms" or "valid_audio"
    stat: str | None  # "p95", "mean", "max" for level latency terms; None otherwise
    op: str
    threshold: float
    scope: str  # REQUEST or LEVEL
    implied: bool = False
    derived_from: str | None = None  # the term an implied budget was taken from

    @property
    def key(self) -> str:
        """The term as text, e.g. ``ttfa_p95_ms<=500``; ``valid_audio`` for that implied term."""
        if self.quantity == VALID_AUDIO:
            return VALID_AUDIO
        return f"{self.name}{self.op}{self.threshold:g}"

    @property
    def upper(self) -> bool:
        """True for a bound from above (latencies, RTF, stalls), False for a share bounded from below."""
        return self.op in UPPER_OPS

    def met(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the term; None (no value) never does."""
        if value is None or math.isnan(value):
            return False
        return satisfies(value, self.op, self.threshold)

    def margin(self, value: float | None) -> float:
        """How far beyond the threshold ``value`` lies, relative to it (> 0: violated; inf: no value)."""
        if value is None or math.isnan(value):
            return math.inf
        if math.isinf(value):
            return math.inf if self.upper == (value > 0) else -math.inf
        scale = abs(self.threshold) or 1.0
        return (value - self.threshold) / scale if self.upper else (self.threshold - value) / scale

    def budget(self) -> Budget:
        """A per-request term as the measures layer's budget."""
        return Budget(self.quantity, self.op, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "key": self.key,
            "name": self.name,
            "quantity": self.quantity,
            "stat": self.stat,
            "op": self.op,
            "threshold": self.threshold,
            "scope": self.scope,
            "implied": self.implied,
            "derived_from": self.derived_from,
        }


@dataclass(frozen=True, slots=True)
class Slo:
    """A validated SLO: the terms as written plus the implied per-request ones, at one pre-roll."""

    text: str
    preroll_ms: int
    terms: tuple[SloTerm, ...]

    @property
    def request_terms(self) -> tuple[SloTerm, ...]:
        """What each request is judged on (goodput): valid audio, TTFA budget, stall budget, explicit ones."""
        return tuple(t for t in self.terms if t.scope == REQUEST)

    @property
    def level_terms(self) -> tuple[SloTerm, ...]:
        """What a level is judged on."""
        return tuple(t for t in self.terms if t.scope == LEVEL)

    @property
    def stall_term(self) -> SloTerm:
        """The stall budget (explicit or implied)."""
        return next(t for t in self.terms if t.quantity == "max_stall_ms")

    def budgets(self) -> tuple[Budget, ...]:
        """The per-request budgets a request must meet besides valid audio."""
        return tuple(t.budget() for t in self.request_terms if t.quantity != VALID_AUDIO)

    def query(self, term: SloTerm) -> Query:
        """The measures layer's query of a level term (failures count as the worst value, as in every rule)."""
        if term.quantity == "goodput":
            return Query("goodput", preroll_ms=self.preroll_ms, budgets=self.budgets())
        if term.quantity == "continuity_rate":
            return Query("continuity_rate", preroll_ms=self.preroll_ms, stall_budget_ms=self.stall_term.threshold)
        return Query(term.quantity, term.stat, failed=WORST)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (text, pre-roll and every term, implied ones marked)."""
        return {"text": self.text, "preroll_ms": self.preroll_ms, "terms": [t.to_dict() for t in self.terms]}


def _bad(message: str) -> ConfigError:
    return ConfigError("slo", message)


def _slo_term(raw: str) -> SloTerm:
    text = raw.strip()
    try:
        term: Term = parse_term(text.replace("==", "=").replace("=", "==") if _bare_equals(text) else text)
    except ValueError as exc:
        raise _bad(f"{text!r}: {exc}; {_HELP}") from None
    q = term.query
    op = term.op
    if op in ("==", "!="):
        raise _bad(f"{text!r}: an SLO bounds a quantity; use <=, <, >= or >")
    if isinstance(term.threshold, bool):
        raise _bad(f"{text!r}: the threshold must be a number")
    value = float(term.threshold)
    if q.metric in SHARES:
        if op not in LOWER_OPS:
            raise _bad(f"{q.metric} is a share where higher is better: use >= or >")
        if not 0.0 <= value <= 1.0:
            raise _bad(f"{q.metric} is a share between 0 and 1 (0.99 or 99% for 99 percent), not {value:g}")
        name = "continuity" if q.metric == "continuity_rate" else q.metric
        return SloTerm(name, q.metric, None, op, value, LEVEL)
    if q.metric == "max_stall_ms":
        if op not in UPPER_OPS or value < 0:
            raise _bad("max_stall_ms bounds the longest stall from above: use <= or < with a value >= 0")
        return SloTerm(q.metric, q.metric, None, op, value, REQUEST)
    if q.metric not in REQUEST_QUANTITIES:
        raise _bad(f"unknown term {q.metric!r}; {_HELP}")
    if op not in UPPER_OPS:
        raise _bad(f"{q.metric} is a latency where lower is better: use <= or <")
    if value <= 0:
        raise _bad(f"{text}: the threshold must be > 0")
    if q.stat is None:
        return SloTerm(q.metric, q.metric, None, op, value, REQUEST)
    compact = Term(Query(q.metric, q.stat), op, value).compact()
    name = compact[: len(compact) - len(op) - len(f"{value:g}")]
    return SloTerm(name, q.metric, q.stat, op, value, LEVEL)


def _bare_equals(text: str) -> bool:
    # "goodput=0.95" is a single "=": say that an SLO needs a bound, rather than "not a number".
    return "=" in text and not any(op in text for op in ("<=", ">=", "==", "!="))


def _stat_rank(stat: str | None) -> float:
    if stat == "max":
        return 101.0
    if stat == "mean":
        return 0.0
    return float(stat[1:]) if stat else -1.0


def parse_slo(text: str, *, preroll_ms: int = DEFAULT_PREROLL_MS) -> Slo:
    """Parse and validate ``text`` (see the module docstring); the first problem raises `ConfigError`."""
    if preroll_ms < 0:
        raise ConfigError("preroll_ms", "the pre-roll must be >= 0 ms")
    parts = [p for p in (text or "").split(",") if p.strip()]
    if not parts:
        raise _bad("empty SLO; e.g. 'ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99'")
    terms: list[SloTerm] = []
    for part in parts:
        term = _slo_term(part)
        if any(t.name == term.name for t in terms):
            raise _bad(f"{term.name} is given twice")
        terms.append(term)
    if not any(t.scope == LEVEL for t in terms):
        raise _bad(
            "every term judges single requests; add a level term that says what share must meet them, "
            "e.g. goodput>=0.95"
        )
    implied = [SloTerm(VALID_AUDIO, VALID_AUDIO, None, ">=", 1.0, REQUEST, implied=True)]
    if not any(t.quantity == "ttfa_ms" and t.scope == REQUEST for t in terms):
        ttfa_levels = [t for t in terms if t.quantity == "ttfa_ms"]
        if ttfa_levels:
            # The tail term is the hard ceiling a user accepts; a request past it missed its budget.
            source = max(ttfa_levels, key=lambda t: _stat_rank(t.stat))
            implied.append(SloTerm("ttfa_ms", "ttfa_ms", None, source.op, source.threshold, REQUEST, True, source.key))
    if not any(t.quantity == "max_stall_ms" for t in terms):
        implied.append(SloTerm("max_stall_ms", "max_stall_ms", None, "<=", 0.0, REQUEST, implied=True))
    canonical = ",".join(t.key for t in terms)
    return Slo(text=canonical, preroll_ms=int(preroll_ms), terms=tuple(implied + terms))


# ---- per-request verdicts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    """One request judged on the per-request terms; ``failed`` lists the keys of the terms it missed."""

    good: bool
    failed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """What the merged records carry in ``extra["slo"]``."""
        return {"good": self.good, "failed": list(self.failed)}


def _term_misses(table: LevelTable, slo: Slo) -> dict[str, np.ndarray]:
    """For each per-request term, which counted rows missed it (the same columns as goodput's)."""
    valid = (table.success > 0) & (table.invalid_codes == 0)
    out = {VALID_AUDIO: ~valid}
    for term in slo.request_terms:
        if term.quantity == VALID_AUDIO:
            continue
        met = metrics.good_rows(table, Query("goodput", preroll_ms=slo.preroll_ms, budgets=(term.budget(),))) > 0
        # good_rows also demands valid audio; a request without it missed every budget, as the SLO says.
        out[term.key] = ~met
    return out


def judge_rows(table: LevelTable, slo: Slo) -> list[RequestVerdict]:
    """Every counted request of a level judged on every per-request term, in row order."""
    misses = _term_misses(table, slo)
    verdicts = []
    for i in range(table.n):
        failed = tuple(key for key, miss in misses.items() if miss[i])
        verdicts.append(RequestVerdict(not failed, failed))
    return verdicts


def judge_request(record: RequestRecord, slo: Slo) -> RequestVerdict:
    """One request judged on every per-request term (a cancelled or warmup request meets none)."""
    probe = replace(record, warmup=False)
    (table,) = level_tables([probe])
    if table.n == 0:
        return RequestVerdict(False, tuple(t.key for t in slo.request_terms))
    return judge_rows(table, slo)[0]


def counted_records(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """The records a level is judged on: measured (not warmup) and not cancelled by the harness."""
    return [r for r in records if not r.warmup and r.status is not Status.CANCELLED]


# ---- level evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TermResult:
    """A level term's statistic with its bootstrap interval; None stands for "no value" (nothing counted);
    an infinite value says the statistic lands on failed requests."""

    key: str
    value: float | None
    low: float | None
    high: float | None
    met: bool
    margin: float  # relative distance beyond the threshold (> 0: violated)
    share_met: float | None  # share of bootstrap resamples in which the term holds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (an infinite margin or value becomes None)."""
        return {
            "key": self.key,
            "value": _finite(self.value),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "met": self.met,
            "margin": self.margin if math.isfinite(self.margin) else None,
            "share_met": self.share_met,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TermResult:
        """The inverse of `to_dict`."""
        margin = data.get("margin")
        return cls(
            key=str(data["key"]),
            value=_opt(data.get("value")),
            low=_opt(data.get("low")),
            high=_opt(data.get("high")),
            met=bool(data.get("met")),
            margin=math.inf if margin is None else float(margin),
            share_met=_opt(data.get("share_met")),
        )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class LevelEvaluation:
    """A load level judged on an SLO (see the module docstring)."""

    n: int  # measured requests that count (warmup and cancelled dropped)
    ok: int  # requests with valid audio (a complete utterance, no invalid code)
    good: int
    request_failures: dict[str, int]  # per-request term key -> requests that missed it
    terms: tuple[TermResult, ...]  # one per level term, in SLO order
    meets: bool
    pass_share: float | None  # share of bootstrap resamples meeting every level term
    resamples: int
    confidence: float

    @property
    def goodput(self) -> float | None:
        """Share of counted requests that met every per-request term."""
        return self.good / self.n if self.n else None

    @property
    def failed_terms(self) -> tuple[TermResult, ...]:
        """Level terms violated on the point estimate, the furthest beyond its threshold first."""
        return tuple(sorted((t for t in self.terms if not t.met), key=lambda t: -t.margin))

    @property
    def tightest_term(self) -> TermResult | None:
        """The level term closest to (or furthest beyond) its threshold."""
        return max(self.terms, key=lambda t: t.margin, default=None)

    def term(self, key: str) -> TermResult | None:
        """The result of one level term by its key."""
        return next((t for t in self.terms if t.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "n": self.n,
            "ok": self.ok,
            "good": self.good,
            "goodput": self.goodput,
            "request_failures": dict(self.request_failures),
            "terms": [t.to_dict() for t in self.terms],
            "meets": self.meets,
            "pass_share": self.pass_share,
            "resamples": self.resamples,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LevelEvaluation:
        """The inverse of `to_dict`."""
        return cls(
            n=int(data["n"]),
            ok=int(data["ok"]),
            good=int(data["good"]),
            request_failures={str(k): int(v) for k, v in (data.get("request_failures") or {}).items()},
            terms=tuple(TermResult.from_dict(t) for t in data.get("terms") or []),
            meets=bool(data["meets"]),
            pass_share=_opt(data.get("pass_share")),
            resamples=int(data.get("resamples", 0)),
            confidence=float(data.get("confidence", DEFAULT_CONFIDENCE)),
        )


def _met_array(term: SloTerm, values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(COMPARE[term.op](values, term.threshold))


def evaluate_table(
    table: LevelTable,
    slo: Slo,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> LevelEvaluation:
    """Judge one level's table on ``slo``: the same estimates and intervals a gate rule of the same words gets."""
    misses = _term_misses(table, slo)
    failures = {t.key: int(misses[t.key].sum()) for t in slo.request_terms}
    n = table.n
    ok = n - failures[VALID_AUDIO]
    good = n - int(np.any(np.stack(list(misses.values())), axis=0).sum()) if n else 0
    if n == 0:
        terms = tuple(TermResult(t.key, None, None, None, False, math.inf, None) for t in slo.level_terms)
        return LevelEvaluation(0, 0, 0, failures, terms, False, None, resamples, confidence)
    level_seed = bootstrap.level_seed(seed, table.level)
    all_met = np.ones(resamples, dtype=bool)
    results: list[TermResult] = []
    for term in slo.level_terms:
        q = slo.query(term)
        matrix, stat = metrics.inputs(table, q)
        value = float(bootstrap.point(matrix, stat))
        low = high = share = None
        if resamples > 0:
            draws = bootstrap.draws(matrix, stat, n_resamples=resamples, seed=level_seed)
            met = _met_array(term, draws)
            all_met &= met
            share = float(met.mean())
            low, high = bootstrap.percentile_interval(draws, confidence)
        shown = None if math.isnan(value) else value
        results.append(TermResult(term.key, shown, low, high, term.met(shown), term.margin(shown), share))
    meets = all(t.met for t in results)
    pass_share = float(all_met.mean()) if resamples > 0 else None
    return LevelEvaluation(n, ok, good, failures, tuple(results), meets, pass_share, resamples, confidence)


def evaluate_level(
    records: Iterable[RequestRecord],
    slo: Slo,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: int | None = None,
    run_json: dict[str, Any] | None = None,
) -> LevelEvaluation:
    """Judge the records of one load level on ``slo`` (warmup and cancelled records are dropped).

    Intervals are two-sided percentile-bootstrap intervals at ``confidence``; the resamples depend on ``seed``
    and the level number, so the same records always give the same evaluation.
    """
    recs = list(records)
    if level is not None:
        recs = [replace(r, level=level) for r in recs]
    elif len({r.level for r in recs}) > 1:
        first = recs[0].level
        recs = [replace(r, level=first) for r in recs]
    tables = level_tables(recs, run_json or {})
    if not tables:
        terms = tuple(TermResult(t.key, None, None, None, False, math.inf, None) for t in slo.level_terms)
        failures = {t.key: 0 for t in slo.request_terms}
        return LevelEvaluation(0, 0, 0, failures, terms, False, None, resamples, confidence)
    return evaluate_table(tables[0], slo, confidence=confidence, resamples=resamples, seed=seed)


__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_PREROLL_MS",
    "DEFAULT_RESAMPLES",
    "LEVEL",
    "REQUEST",
    "VALID_AUDIO",
    "LevelEvaluation",
    "RequestVerdict",
    "Slo",
    "SloTerm",
    "TermResult",
    "counted_records",
    "evaluate_level",
    "evaluate_table",
    "judge_request",
    "judge_rows",
    "parse_slo",
]
