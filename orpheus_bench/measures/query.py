"""The one rule language: a gate rule and a capacity SLO term both parse into a `Term` (a `Query` plus a bound).

A `Query` says what to measure: a metric, a statistic (for per-request metrics), a pre-roll (for stall
metrics), a stall budget, and what a failed request counts as. A `Term` adds the comparison and the threshold
and, for gates, the level. Both spellings people already use parse to the same thing::

    ttfa_ms p95 <= 500 at c=4          # gate spelling: metric [statistic] op value [at LEVEL] [preroll N ms]
    ttfa_p95_ms<=500                   # capacity spelling: the statistic inside the name
    rtf_p95 < 1                        # the same for a unitless metric
    continuity >= 0.99                 # capacity's name for continuity_rate
    stall_rate at preroll 250 ms <= 0.01
    ttfa_ms p95 <= 500 failed=exclude  # a rule over successful requests only

*Failed requests* (errors, and utterances cut short by a length limit): by default (``failed=worst``) a
per-request statistic counts every counted request and a failed one as +inf, "beyond every bound", and a share
counts it as not meeting the share (a failed request did not play without stalling); so a failure never helps
a rule pass, in a gate or a capacity SLO alike. ``failed=exclude`` describes the successful requests only.
Throughput, success and cut-short rates count successes and failures by definition. Every output that shows
a rule shows this choice.

A per-request metric without a statistic (``ttfa_ms <= 500``) is a *per-request budget*: capacity judges each
request on it (goodput); a gate needs a statistic. Parsing is pure and raises ``ValueError`` with the reason;
callers turn it into a `ConfigError` naming their field.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

STATISTICS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99", "min", "max")
OPS: tuple[str, ...] = ("<=", "<", ">=", ">", "==", "!=")
WORST = "worst"
EXCLUDE = "exclude"
FAILED_CHOICES = (WORST, EXCLUDE)
# Capacity spellings of metric names (the gate's names are canonical).
ALIASES = {"continuity": "continuity_rate", "goodput_rate": "goodput"}
_INNER_STAT = re.compile(
    r"^(?P<base>ttfa|total|first_token|first_window|rtf)_(?P<stat>mean|min|max|p\d+(?:\.\d+)?)(?P<ms>_ms)?$"
)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


def satisfies(value: float, op: str, threshold: float) -> bool:
    """``value op threshold`` for one of `OPS` (numpy arrays compare elementwise)."""
    return bool(COMPARE[op](value, threshold))


@dataclass(frozen=True, slots=True)
class Budget:
    """A per-request bound, ``quantity op threshold`` (``ttfa_ms <= 500``, ``max_stall_ms <= 0``)."""

    quantity: str  # a per-request metric (ttfa_ms, total_ms, first_token_ms, rtf) or max_stall_ms
    op: str
    threshold: float

    @property
    def key(self) -> str:
        """``ttfa_ms<=500``."""
        return f"{self.quantity}{self.op}{self.threshold:g}"


@dataclass(frozen=True, slots=True)
class Query:
    """What to measure at a level (see the module docstring)."""

    metric: str
    stat: str | None = None
    preroll_ms: int | None = None
    stall_budget_ms: float = 0.0  # stall metrics: only stalls longer than this count
    failed: str = WORST
    budgets: tuple[Budget, ...] = ()  # goodput: the per-request budgets a request must meet

    def describe(self, level: int | str | None = None) -> str:
        """The query in words, e.g. ``ttfa_ms p95``, ``stall_rate preroll 250 ms`` or ``ttfa_ms p50 at c=2``."""
        parts = [self.metric]
        if self.stat:
            parts.append(self.stat)
        if self.preroll_ms is not None:
            parts.append(f"preroll {self.preroll_ms} ms")
        if self.stall_budget_ms:
            parts.append(f"stalls > {self.stall_budget_ms:g} ms")
        if level is not None:
            parts.append(f"at {'c=' + str(level) if isinstance(level, int) else level}")
        if self.failed != WORST:
            parts.append(f"failed={self.failed}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Term:
    """A query with a bound: ``query op threshold`` (``level`` None: every level)."""

    query: Query
    op: str
    threshold: float | bool
    level: int | str | None = None
    text: str = ""  # as written (whitespace normalised)

    def compact(self) -> str:
        """The capacity spelling of the term, e.g. ``ttfa_p95_ms<=500`` or ``goodput>=0.95``."""
        q = self.query
        name = q.metric
        if q.stat and q.metric.endswith("_ms"):
            name = f"{q.metric[:-3]}_{q.stat}_ms"
        elif q.stat:
            name = f"{q.metric}_{q.stat}"
        if name == "continuity_rate":
            name = "continuity"
        value = str(self.threshold).lower() if isinstance(self.threshold, bool) else f"{self.threshold:g}"
        return f"{name}{self.op}{value}"


def _tokens(text: str) -> list[str]:
    # Operators may be written without spaces ("p50<=300"); split them out first.
    spaced = re.sub(r"(<=|>=|==|!=|<|>)", r" \1 ", text)
    return spaced.replace(",", " ").split()


def split_metric(name: str) -> tuple[str, str | None]:
    """``ttfa_p95_ms`` -> (``ttfa_ms``, ``p95``); ``rtf_p95`` -> (``rtf``, ``p95``); aliases resolved."""
    name = ALIASES.get(name, name)
    m = _INNER_STAT.match(name)
    if m is None:
        return name, None
    base, stat, ms = m.group("base"), m.group("stat"), m.group("ms")
    if base == "rtf":
        if ms:
            raise ValueError(f"{name}: RTF has no unit (wall seconds per audio second); write {name[:-3]}")
        return "rtf", stat
    if not ms:
        raise ValueError(f"{name}: say the unit, {base}_{stat}_ms")
    return f"{base}_ms", stat


def _check_stat(stat: str) -> str:
    if stat in STATISTICS:
        return stat
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if m and not 0.0 < float(m.group(1)) <= 100.0:
        raise ValueError(f"{stat}: a percentile must lie in (0, 100]")
    if m:
        return stat
    raise ValueError(f"unknown statistic {stat!r}; known: {', '.join(STATISTICS)} (or any pNN)")


def parse_words(text: str, *, relative: bool = False) -> dict[str, Any]:
    """The fields of one rule written in either spelling (see the module docstring), as a mapping.

    Returns ``metric``, optional ``stat``, ``level``, ``preroll_ms``, ``failed``, and ``op`` + ``threshold``
    (absolute) or ``tolerance`` + ``compare`` (relative, ``regress <= 10%``).
    """
    out: dict[str, Any] = {}
    rest: list[str] = []
    tokens = _tokens(text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.lower()
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if low == "at":
            pass
        elif low in STATISTICS and "stat" not in out:
            out["stat"] = low
        elif re.fullmatch(r"p\d+(?:\.\d+)?", low) and "stat" not in out and "metric" in out:
            out["stat"] = _check_stat(low)
        elif low.startswith("c=") or low.startswith("rate=") or low in ("all", "top"):
            out["level"] = low
        elif low in ("level", "c") and nxt:
            out["level"] = nxt
            i += 1
        elif low.startswith("failed="):
            out["failed"] = low.partition("=")[2]
        elif low == "failed" and nxt:
            out["failed"] = nxt.lower()
            i += 1
        elif low.startswith("preroll"):
            value = low.partition("=")[2] if "=" in low else nxt.lower()
            if "=" not in low:
                i += 1
            m = re.fullmatch(r"(\d+)(ms)?", value)
            if not m:
                raise ValueError(f"{text!r}: preroll needs a number of milliseconds")
            out["preroll_ms"] = int(m.group(1))
            if i + 1 < len(tokens) and tokens[i + 1].lower() == "ms":
                i += 1
        elif "metric" not in out and _NAME.fullmatch(low) and low not in ("regress", "regression"):
            metric, stat = split_metric(low)
            out["metric"] = metric
            if stat is not None:
                out["stat"] = _check_stat(stat)
        else:
            rest.append(tok)
        i += 1
    if "metric" not in out:
        raise ValueError(f"{text!r}: no metric name")
    if out.get("failed", WORST) not in FAILED_CHOICES:
        raise ValueError(f"{text!r}: failed= takes {' or '.join(FAILED_CHOICES)}")
    if relative:
        rest = [t for t in rest if t.lower() not in ("regress", "regression")]
        if rest and rest[0] == "<=":
            rest = rest[1:]
        if len(rest) != 1:
            raise ValueError(f"{text!r}: expected 'metric [stat] regress <= 10% [at c=N]'")
        tok = rest[0]
        try:
            if tok.endswith("%"):
                out["tolerance"], out["compare"] = float(tok[:-1]) / 100.0, "ratio"
            else:
                out["tolerance"], out["compare"] = float(tok), "difference"
        except ValueError:
            raise ValueError(f"{text!r}: {tok!r} is not a tolerance (10% or 0.01)") from None
        return out
    if len(rest) != 2 or rest[0] not in OPS:
        raise ValueError(f"{text!r}: expected 'metric [stat] OP VALUE [at c=N] [preroll N ms]'")
    out["op"] = rest[0]
    out["threshold"] = number_or_bool(rest[1], text)
    return out


def number_or_bool(tok: str, text: str) -> float | bool:
    """A threshold: ``true``/``false``, a number, or a percentage (``99%`` is 0.99)."""
    low = tok.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        value = float(tok[:-1]) / 100.0 if tok.endswith("%") else float(tok)
    except ValueError:
        raise ValueError(f"{text!r}: {tok!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r}: the threshold must be a finite number")
    return value


def parse_term(text: str) -> Term:
    """One absolute rule or SLO term, in either spelling."""
    fields = parse_words(text)
    query = Query(
        metric=fields["metric"],
        stat=fields.get("stat"),
        preroll_ms=fields.get("preroll_ms"),
        failed=fields.get("failed", WORST),
    )
    return Term(query, fields["op"], fields["threshold"], fields.get("level"), " ".join(text.split()))


def with_preroll(term: Term, preroll_ms: int) -> Term:
    """The term with a pre-roll filled in (capacity gives stall terms the SLO's pre-roll)."""
    return replace(term, query=replace(term.query, preroll_ms=preroll_ms))


__all__ = [
    "ALIASES",
    "COMPARE",
    "EXCLUDE",
    "FAILED_CHOICES",
    "OPS",
    "STATISTICS",
    "WORST",
    "Budget",
    "Query",
    "Term",
    "number_or_bool",
    "parse_term",
    "parse_words",
    "satisfies",
    "split_metric",
    "with_preroll",
]
