"""Service-level objectives for the capacity search: parsing, per-request verdicts and per-level goodput. Pure.

An SLO is written as comma-separated terms, ``"ttfa_p95_ms<=500,rtf_p95<1,continuity>=0.99"``. A term names a
quantity, an optional statistic, a comparison and a threshold:

* per-request terms judge one request: ``ttfa_ms<=X`` (time to first audio), ``total_ms<=X``, ``rtf<X``,
  ``max_stall_ms<=X`` (longest playback stall at the SLO's pre-roll);
* level terms judge a load level: a statistic of a latency (``ttfa_p95_ms``, ``total_p99_ms``, ``rtf_p95``,
  ``ttfa_mean_ms``, ``rtf_max``; any ``pNN``), or a share: ``goodput``, ``continuity``, ``success_rate``.

Every SLO also judges each request on three implied terms, which together define *goodput*:

* ``valid_audio``: the request ended ok with no out-of-range audio code;
* a TTFA budget: the ``ttfa_ms`` term when given, else the threshold of the level TTFA term with the highest
  statistic (``ttfa_p95_ms<=500`` means a request that waited more than 500 ms missed its budget);
* a stall budget: the ``max_stall_ms`` term when given, else ``max_stall_ms<=0`` (no stall at all), played by
  the virtual player of `orpheus_bench.measures.playback` at the SLO's pre-roll.

Goodput of a level = the share of its measured requests (warmup and cancelled ones dropped) that met every
per-request term. Level statistics count *every* measured request: a failed request has no audio, so it sits
beyond every latency budget (its TTFA, total and RTF are infinite) and is not continuous. ``continuity`` is the
share of measured requests that played without a stall longer than the stall budget (with the default budget,
the report's continuity rate at that pre-roll, except that failed requests count against it).

A level *meets* the SLO when every level term holds on the point estimate. Its *pass share* is the share of
bootstrap resamples (requests drawn with replacement) in which every level term holds: the confidence that the
level meets the SLO. Which term failed first is the one furthest beyond its threshold (`TermResult.margin`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.playback import record_playback
from orpheus_bench.records import RequestRecord, Status

DEFAULT_PREROLL_MS = 250
DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95

REQUEST = "request"
LEVEL = "level"
UPPER_OPS = ("<=", "<")
LOWER_OPS = (">=", ">")
SHARES = ("goodput", "continuity", "success_rate")
VALID_AUDIO = "valid_audio"

_TERM_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_.]*)\s*(?P<op><=|>=|<|>|==|=)\s*(?P<value>\S+)$")
_LATENCY_RE = re.compile(r"^(?P<q>ttfa|total|rtf)(?:_(?P<stat>mean|max|p\d+(?:\.\d+)?))?(?P<ms>_ms)?$")
_HELP = (
    "known terms: ttfa_ms, total_ms, rtf, max_stall_ms (per request); ttfa_pNN_ms, total_pNN_ms, rtf_pNN, "
    "*_mean, *_max, goodput, continuity, success_rate (per level)"
)

# Columns of the per-request matrix the level statistics (and their bootstrap) read.
_COL = {"ttfa_ms": 0, "total_ms": 1, "rtf": 2, "good": 3, "continuous": 4, "ok": 5}


@dataclass(frozen=True, slots=True)
class SloTerm:
    """One term of an SLO: ``quantity[stat] op threshold``, judged per request or per level."""

    name: str  # as written (canonical spelling): "ttfa_p95_ms", "goodput", "valid_audio"
    quantity: str  # "ttfa_ms" | "total_ms" | "rtf" | "max_stall_ms" | a share | "valid_audio"
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
        return _compare(value, self.op, self.threshold)

    def margin(self, value: float | None) -> float:
        """How far beyond the threshold ``value`` lies, relative to it (> 0: violated; inf: no value)."""
        if value is None or math.isnan(value):
            return math.inf
        if math.isinf(value):
            return math.inf if self.upper == (value > 0) else -math.inf
        scale = abs(self.threshold) or 1.0
        return (value - self.threshold) / scale if self.upper else (self.threshold - value) / scale

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


def _compare(value: float, op: str, threshold: float) -> bool:
    if op == "<=":
        return value <= threshold
    if op == "<":
        return value < threshold
    if op == ">=":
        return value >= threshold
    return value > threshold


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (text, pre-roll and every term, implied ones marked)."""
        return {"text": self.text, "preroll_ms": self.preroll_ms, "terms": [t.to_dict() for t in self.terms]}


def _bad(message: str) -> ConfigError:
    return ConfigError("slo", message)


def _parse_number(raw: str, term: str) -> float:
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise _bad(f"{term!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise _bad(f"{term!r}: the threshold must be a finite number")
    return value / 100.0 if raw.endswith("%") else value


def _parse_term(raw: str) -> SloTerm:
    m = _TERM_RE.match(raw.strip())
    if m is None:
        raise _bad(f"{raw.strip()!r} is not 'name<=value' (operators: <=, <, >=, >)")
    name, op, value = m.group("name").lower(), m.group("op"), _parse_number(m.group("value"), raw.strip())
    if op in ("=", "=="):
        raise _bad(f"{raw.strip()!r}: an SLO bounds a quantity; use <=, <, >= or >")
    if name in SHARES:
        if op not in LOWER_OPS:
            raise _bad(f"{name} is a share where higher is better: use >= or >")
        if not 0.0 <= value <= 1.0:
            raise _bad(f"{name} is a share between 0 and 1 (0.99 or 99% for 99 percent), not {value:g}")
        return SloTerm(name, name, None, op, value, LEVEL)
    if name == "max_stall_ms":
        if op not in UPPER_OPS or value < 0:
            raise _bad("max_stall_ms bounds the longest stall from above: use <= or < with a value >= 0")
        return SloTerm(name, name, None, op, value, REQUEST)
    lat = _LATENCY_RE.match(name)
    if lat is None:
        raise _bad(f"unknown term {name!r}; {_HELP}")
    q, stat, ms = lat.group("q"), lat.group("stat"), lat.group("ms")
    if q == "rtf" and ms:
        raise _bad(f"{name}: RTF has no unit (wall seconds per audio second); write {name.removesuffix('_ms')}")
    if q != "rtf" and not ms:
        spelled = f"{q}_{stat}_ms" if stat else f"{q}_ms"
        raise _bad(f"{name}: say the unit, {spelled}")
    if stat and stat.startswith("p"):
        pct = float(stat[1:])
        if not 0.0 < pct <= 100.0:
            raise _bad(f"{name}: a percentile must lie in (0, 100]")
    if op not in UPPER_OPS:
        raise _bad(f"{name} is a latency where lower is better: use <= or <")
    if value <= 0:
        raise _bad(f"{name}: the threshold must be > 0")
    quantity = "rtf" if q == "rtf" else f"{q}_ms"
    return SloTerm(name, quantity, stat, op, value, LEVEL if stat else REQUEST)


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
        term = _parse_term(part)
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
    ttfa_ms: float | None
    total_ms: float | None
    rtf: float | None
    max_stall_ms: float | None  # None when the request has no audio to play
    continuous: bool  # played without a stall beyond the stall budget

    def to_dict(self) -> dict[str, Any]:
        """What the merged records carry in ``extra["slo"]``."""
        return {"good": self.good, "failed": list(self.failed)}


def judge_request(record: RequestRecord, slo: Slo) -> RequestVerdict:
    """Judge one request on every per-request term of ``slo`` (failed requests miss every budget)."""
    valid = record.ok and record.invalid_code_count == 0
    ttfa_ms = record.ttfa_s * 1000.0 if valid and record.ttfa_s is not None else None
    total_ms = record.total_s * 1000.0 if valid and record.total_s is not None else None
    rtf = record.rtf if valid else None
    playback = record_playback(record, slo.preroll_ms / 1000.0) if valid else None
    max_stall_ms = playback.max_stall_s * 1000.0 if playback is not None else (0.0 if valid else None)
    continuous = valid and slo.stall_term.met(max_stall_ms)
    values = {"ttfa_ms": ttfa_ms, "total_ms": total_ms, "rtf": rtf, "max_stall_ms": max_stall_ms}
    failed: list[str] = []
    for term in slo.request_terms:
        ok = valid if term.quantity == VALID_AUDIO else term.met(values[term.quantity])
        if not ok:
            failed.append(term.key)
    return RequestVerdict(not failed, tuple(failed), ttfa_ms, total_ms, rtf, max_stall_ms, continuous)


def counted_records(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """The records a level is judged on: measured (not warmup) and not cancelled by the harness."""
    return [r for r in records if not r.warmup and r.status is not Status.CANCELLED]


# ---- level statistics ----------------------------------------------------------------------------------


def _matrix(verdicts: Sequence[RequestVerdict]) -> np.ndarray:
    inf = math.inf
    rows = [
        (
            inf if v.ttfa_ms is None else v.ttfa_ms,
            inf if v.total_ms is None else v.total_ms,
            inf if v.rtf is None else v.rtf,
            1.0 if v.good else 0.0,
            1.0 if v.continuous else 0.0,
            0.0 if VALID_AUDIO in v.failed else 1.0,
        )
        for v in verdicts
    ]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(_COL))


def row_statistic(x: np.ndarray, stat: str) -> np.ndarray:
    """``stat`` along the last axis of ``x`` where +inf marks a request that missed every budget.

    Percentiles interpolate linearly between closest ranks (as `orpheus_bench.measures.stats` does); a
    percentile whose rank reaches into the infinite values is infinite. ``x`` must have at least one column.
    """
    if stat == "mean":
        return np.asarray(x.mean(axis=-1))
    if stat == "max":
        return np.asarray(x.max(axis=-1))
    return row_quantile(x, float(stat[1:]))


def row_quantile(x: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-th percentile (0..100) along the last axis, +inf-aware (see `row_statistic`)."""
    n = x.shape[-1]
    ordered = np.sort(x, axis=-1)
    pos = q / 100.0 * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    v_lo, v_hi = ordered[..., lo], ordered[..., hi]
    if frac == 0.0:
        return np.asarray(v_lo)
    finite = np.isfinite(v_lo) & np.isfinite(v_hi)
    safe_lo, safe_hi = np.where(finite, v_lo, 0.0), np.where(finite, v_hi, 0.0)
    return np.where(finite, safe_lo + (safe_hi - safe_lo) * frac, math.inf)


def _term_values(term: SloTerm, data: np.ndarray) -> np.ndarray:
    """The term's statistic for each row of ``data`` shaped ``(B, n, columns)``."""
    if term.quantity == "goodput":
        return np.asarray(data[..., _COL["good"]].mean(axis=-1))
    if term.quantity == "continuity":
        return np.asarray(data[..., _COL["continuous"]].mean(axis=-1))
    if term.quantity == "success_rate":
        return np.asarray(data[..., _COL["ok"]].mean(axis=-1))
    assert term.stat is not None
    return row_statistic(data[..., _COL[term.quantity]], term.stat)


def _met_array(term: SloTerm, values: np.ndarray) -> np.ndarray:
    if term.op == "<=":
        return values <= term.threshold
    if term.op == "<":
        return values < term.threshold
    if term.op == ">=":
        return values >= term.threshold
    return values > term.threshold


@dataclass(frozen=True, slots=True)
class TermResult:
    """A level term's statistic with its bootstrap interval; None stands for "no finite value" (the statistic
    lands on failed requests, or the level has no request)."""

    key: str
    value: float | None
    low: float | None
    high: float | None
    met: bool
    margin: float  # relative distance beyond the threshold (> 0: violated)
    share_met: float | None  # share of bootstrap resamples in which the term holds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (an infinite margin becomes None)."""
        return {
            "key": self.key,
            "value": self.value,
            "low": self.low,
            "high": self.high,
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


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class LevelEvaluation:
    """A load level judged on an SLO (see the module docstring)."""

    n: int  # measured requests that count (warmup and cancelled dropped)
    ok: int
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


def evaluate_level(
    records: Iterable[RequestRecord],
    slo: Slo,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> LevelEvaluation:
    """Judge the records of one load level on ``slo`` (warmup and cancelled records are dropped here).

    Intervals are two-sided percentile-bootstrap intervals at ``confidence``; the resamples use ``seed``, so
    the same records always give the same evaluation.
    """
    verdicts = [judge_request(r, slo) for r in counted_records(records)]
    n = len(verdicts)
    failures = {t.key: sum(1 for v in verdicts if t.key in v.failed) for t in slo.request_terms}
    good = sum(1 for v in verdicts if v.good)
    ok = sum(1 for v in verdicts if VALID_AUDIO not in v.failed)
    if n == 0:
        terms = tuple(TermResult(t.key, None, None, None, False, math.inf, None) for t in slo.level_terms)
        return LevelEvaluation(0, 0, 0, failures, terms, False, None, resamples, confidence)
    matrix = _matrix(verdicts)
    rng = np.random.default_rng(seed)
    boot = matrix[rng.integers(0, n, size=(resamples, n))] if resamples > 0 else None
    tail = (1.0 - confidence) / 2.0 * 100.0
    results: list[TermResult] = []
    all_met = np.ones(resamples, dtype=bool)
    for term in slo.level_terms:
        value = float(_term_values(term, matrix[None])[0])
        low = high = share = None
        if boot is not None:
            draws = _term_values(term, boot)
            met = _met_array(term, draws)
            all_met &= met
            share = float(met.mean())
            low = _finite(float(row_quantile(draws, tail)))
            high = _finite(float(row_quantile(draws, 100.0 - tail)))
        finite = _finite(value)
        results.append(TermResult(term.key, finite, low, high, term.met(value), term.margin(value), share))
    meets = all(t.met for t in results)
    pass_share = float(all_met.mean()) if resamples > 0 else None
    return LevelEvaluation(n, ok, good, failures, tuple(results), meets, pass_share, resamples, confidence)


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
    "judge_request",
    "parse_slo",
    "row_quantile",
    "row_statistic",
]
