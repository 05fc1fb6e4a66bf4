"""The capacity search policy: given what was measured so far, which load to measure next. Pure: no I/O.

`next_step(observations, config)` returns either a `Measure` (a load and how many more measured requests to
send there) or `Finished` (the answer). It is a function of the observations alone, so a search interrupted
midway resumes by replaying what its run directory holds. The phases, all derived from the observations:

1. **Grow**: start at ``config.start`` and multiply the load by ``growth`` until a level misses the SLO, the
   load reaches ``max_load``, or the server saturates (below).
2. **Bisect**: between the highest passing load ``lo`` below the lowest failing load ``hi``, measure the
   midpoint until they are one step apart (concurrency: 1 stream; rate: ``hi / lo <= 1 + resolution``). A
   passing load above a failing one (noise) is ignored: capacity is the edge below the first failure.
3. **Confirm**: re-measure ``lo`` and then ``hi`` until each verdict is *confident*: at least
   ``edge_requests`` requests (the gate's minimum) and a bootstrap pass share of at least ``confidence``
   (``lo``) or at most ``1 - confidence`` (``hi``). A level stops being re-measured at ``max_requests``;
   its verdict then stands as measured, marked not confident. A re-measured level whose verdict flips moves
   the bracket and the search goes on.
4. **Saturation** (grow phase only): when the last growth step raised throughput by less than
   ``saturation_gain`` of the load increase while TTFA p50 rose by more than ``saturation_ttfa`` of it,
   the server is queueing rather than serving more: growing further only adds waiting. The search stops with
   the highest passing load as an open-ended ("at least") answer.

If the lowest load already misses the SLO the search steps down (``start / growth``, ...) to ``min_load``;
if that misses too, the answer is "no capacity" (`Finished.capacity` None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orpheus_bench.errors import ConfigError
from orpheus_bench.measures.metrics import DEFAULT_MIN_REQUESTS

CONCURRENCY = "concurrency"
RATE = "rate"
# A confident verdict at the edge needs as many requests as a gate check does by default.
EDGE_REQUESTS = DEFAULT_MIN_REQUESTS


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """How the search moves; every field is validated (`ConfigError` naming the CLI option)."""

    kind: str = CONCURRENCY  # CONCURRENCY (closed loop) or RATE (open loop, arrivals per second)
    start: float = 1.0
    growth: float = 2.0
    max_load: float = 64.0
    min_load: float = 1.0  # the lowest load stepped down to when ``start`` misses the SLO
    resolution: float = 0.1  # rate only: the bracket is resolved when hi / lo <= 1 + resolution
    probe_requests: int = 20  # measured requests of a first measurement
    edge_requests: int = EDGE_REQUESTS  # measured requests a confident verdict needs
    max_requests: int = 120  # re-measuring a level stops here
    confidence: float = 0.95
    saturation_gain: float = 0.1
    saturation_ttfa: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in (CONCURRENCY, RATE):
            raise ConfigError("search", f"kind must be {CONCURRENCY!r} or {RATE!r}, not {self.kind!r}")
        if self.kind == CONCURRENCY:
            for name in ("start", "max_load", "min_load"):
                value = getattr(self, name)
                if value != int(value) or value < 1:
                    raise ConfigError(_flag(name), f"a concurrency must be a whole number >= 1, not {value:g}")
        if not 0 < self.min_load <= self.start <= self.max_load:
            raise ConfigError("start", "need 0 < min load <= --start <= --max-load")
        if self.growth <= 1.0:
            raise ConfigError("growth", "the growth factor must be > 1")
        if self.resolution <= 0:
            raise ConfigError("resolution", "the rate resolution must be > 0")
        if self.probe_requests < 1 or self.edge_requests < 1:
            raise ConfigError("requests-per-level", "request counts must be >= 1")
        if self.max_requests < max(self.probe_requests, self.edge_requests):
            raise ConfigError("max-requests-per-level", "must be >= --requests-per-level and --edge-requests")
        if not 0.5 < self.confidence < 1.0:
            raise ConfigError("confidence", "must lie between 0.5 and 1")
        if self.saturation_gain < 0 or self.saturation_ttfa < 0:
            raise ConfigError("saturation", "saturation thresholds must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (stored in the search state, compared on resume)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchConfig:
        """The inverse of `to_dict` (unknown keys ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__slots__})

    def label(self, load: float) -> str:
        """Display label of a load: ``c=4`` or ``rate=1.5/s``."""
        return f"c={int(load)}" if self.kind == CONCURRENCY else f"rate={load:g}/s"


def _flag(name: str) -> str:
    return name.replace("_", "-")


@dataclass(frozen=True, slots=True)
class LoadObservation:
    """What the policy needs to know about one load, all its measurements pooled."""

    load: float
    n: int  # measured requests that count
    meets: bool
    pass_share: float | None
    throughput_rps: float | None = None
    ttfa_p50_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Measure:
    """Measure ``load`` with ``requests`` more measured requests (pooled with earlier ones at that load)."""

    load: float
    requests: int
    phase: str  # "grow" | "shrink" | "bisect" | "confirm"
    reason: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The answer: the largest load meeting the SLO (None: not even the lowest) and where it broke."""

    capacity: float | None
    break_load: float | None
    stop_reason: str  # "bracketed" | "max_load" | "saturation" | "below_min"
    open_ended: bool  # True: capacity is a lower bound (the search never saw it break)
    saturated_at: float | None = None


Step = Measure | Finished


def confident(obs: LoadObservation, config: SearchConfig) -> bool:
    """Whether the verdict at ``obs`` is settled (see the module docstring, phase 3)."""
    if obs.n < config.edge_requests or obs.pass_share is None:
        return False
    if obs.meets:
        return obs.pass_share >= config.confidence
    return obs.pass_share <= 1.0 - config.confidence


def bracket(observations: Mapping[float, LoadObservation]) -> tuple[float | None, float | None]:
    """(``lo``, ``hi``): the lowest failing load and the highest passing load below it (None when absent)."""
    failing = [load for load, o in observations.items() if not o.meets]
    hi = min(failing) if failing else None
    passing = [load for load, o in observations.items() if o.meets and (hi is None or load < hi)]
    return (max(passing) if passing else None), hi


def saturation(observations: Mapping[float, LoadObservation], config: SearchConfig) -> float | None:
    """The load at which the last growth step showed saturation (see the module docstring), else None."""
    loads = sorted(observations)
    if len(loads) < 2:
        return None
    a, b = observations[loads[-2]], observations[loads[-1]]
    if not (a.throughput_rps and b.throughput_rps and a.ttfa_p50_ms and b.ttfa_p50_ms):
        return None
    growth = b.load / a.load - 1.0
    if growth <= 0:
        return None
    gain = b.throughput_rps / a.throughput_rps - 1.0
    rise = b.ttfa_p50_ms / a.ttfa_p50_ms - 1.0
    if gain < config.saturation_gain * growth and rise > config.saturation_ttfa * growth:
        return b.load
    return None


def _round_rate(value: float) -> float:
    """Three significant digits, so labels and directory names stay readable."""
    if value <= 0:
        return value
    digits = 2 - math.floor(math.log10(value))
    return round(value, digits)


def grow(load: float, config: SearchConfig) -> float:
    """The next load up from ``load`` (capped at ``max_load``)."""
    if config.kind == CONCURRENCY:
        return float(min(config.max_load, max(load + 1, math.ceil(load * config.growth))))
    return min(config.max_load, _round_rate(load * config.growth))


def shrink(load: float, config: SearchConfig) -> float:
    """The next load down from ``load`` (not below ``min_load``)."""
    if config.kind == CONCURRENCY:
        return float(max(config.min_load, min(load - 1, math.floor(load / config.growth))))
    return max(config.min_load, _round_rate(load / config.growth))


def midpoint(lo: float, hi: float, config: SearchConfig) -> float | None:
    """The load halfway between ``lo`` and ``hi``, or None when they are one step apart (resolved)."""
    if config.kind == CONCURRENCY:
        return float((int(lo) + int(hi)) // 2) if hi - lo > 1 else None
    if hi / lo <= 1.0 + config.resolution:
        return None
    mid = _round_rate(math.sqrt(lo * hi))
    return mid if lo < mid < hi else None


def _confirm(load: float, observations: Mapping[float, LoadObservation], config: SearchConfig) -> Measure | None:
    obs = observations[load]
    if confident(obs, config) or obs.n >= config.max_requests:
        return None
    target = config.edge_requests if obs.n < config.edge_requests else min(config.max_requests, 2 * obs.n)
    verdict = "meets" if obs.meets else "misses"
    share = "-" if obs.pass_share is None else f"{obs.pass_share:.0%}"
    return Measure(
        load,
        target - obs.n,
        "confirm",
        f"{config.label(load)} {verdict} the SLO on {obs.n} requests (pass share {share}); re-measure to {target}",
    )


def next_step(observations: Mapping[float, LoadObservation], config: SearchConfig) -> Step:
    """What to do next (see the module docstring)."""
    if not observations:
        return Measure(config.start, config.probe_requests, "grow", "first level")
    lo, hi = bracket(observations)
    if hi is None:
        assert lo is not None
        saturated = saturation(observations, config)
        if saturated is not None:
            return _confirm(lo, observations, config) or Finished(lo, None, "saturation", True, saturated)
        if lo >= config.max_load:
            return _confirm(lo, observations, config) or Finished(lo, None, "max_load", True)
        nxt = grow(lo, config)
        return Measure(nxt, config.probe_requests, "grow", f"{config.label(lo)} meets the SLO")
    if lo is None:
        if hi <= config.min_load:
            return _confirm(hi, observations, config) or Finished(None, hi, "below_min", False)
        nxt = shrink(hi, config)
        return Measure(nxt, config.probe_requests, "shrink", f"{config.label(hi)} misses the SLO")
    mid = midpoint(lo, hi, config)
    if mid is not None:
        reason = f"between {config.label(lo)} (meets) and {config.label(hi)} (misses)"
        return Measure(mid, config.probe_requests, "bisect", reason)
    return (
        _confirm(lo, observations, config) or _confirm(hi, observations, config) or Finished(lo, hi, "bracketed", False)
    )


__all__ = [
    "CONCURRENCY",
    "EDGE_REQUESTS",
    "RATE",
    "Finished",
    "LoadObservation",
    "Measure",
    "SearchConfig",
    "Step",
    "bracket",
    "confident",
    "grow",
    "midpoint",
    "next_step",
    "saturation",
    "shrink",
]
