"""Measuring the gate's error rates: A/A false alarms and A/B detection, on simulated runs.

Two sources of runs, both driven by the simulator's timing model (`orpheus_bench.sim.timing`):

- *replay* (here, pure and fast): a closed loop run through the simulator's own discrete-event model
  (`sim.timing.simulate_schedule`: slots, FIFO queue, prefill, per-token cost, cold start and per-request
  lognormal jitter), producing the `RequestRecord`s a streaming client with the reference 28-token first window
  would write (decode off: PCM credited when a window's tokens are in). It leaves out network and event-loop
  noise, and runs thousands of pairs a minute;
- *live* (``benchmarks/gate_calibration.py --mode live``): the real runner against the real simulator over
  HTTP, slower, for checking that replay rates hold end to end.

A pair is (baseline, candidate). A/A pairs run one configuration twice with different jitter seeds; A/B pairs
slow the candidate's per-token time by a factor. The false-positive rate is the share of A/A pairs the gate
fails; the detection rate the share of A/B pairs it fails; both come with Wilson score intervals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orpheus_bench.core.prompt import format_prompt
from orpheus_bench.gate.decide import Verdict, decide_relative
from orpheus_bench.gate.engine import GateReport, RuleResult, evaluate_runs, run_from_records
from orpheus_bench.gate.rules import GateRules
from orpheus_bench.measures.bootstrap import Interval
from orpheus_bench.measures.metrics import RunView
from orpheus_bench.records import AudioChunk, RequestRecord
from orpheus_bench.sim.config import SimConfig
from orpheus_bench.sim.timing import Arrival, estimate_prompt_tokens, simulate_schedule

FRAME_TOKENS = 7
FIRST_WINDOW_FRAMES = 4  # the reference decode window: PCM starts once 4 frames (28 tokens) are in
SAMPLES_PER_FRAME = 2048
WILSON_Z = 1.959963984540054  # 95%


@dataclass(frozen=True)
class Rate:
    """``k`` events in ``n`` trials with a 95% Wilson score interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        """k / n (0 when there were no trials)."""
        return self.k / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson score interval of the rate."""
        if self.n == 0:
            return (0.0, 1.0)
        z2 = WILSON_Z**2
        p = self.value
        centre = (p + z2 / (2 * self.n)) / (1 + z2 / self.n)
        half = WILSON_Z * math.sqrt(p * (1 - p) / self.n + z2 / (4 * self.n**2)) / (1 + z2 / self.n)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.value:6.1%} [{low:5.1%}, {high:5.1%}] ({self.k}/{self.n})"


# ---- replayed runs ---------------------------------------------------------------------------------------


def _record(
    *,
    level: int,
    seq: int,
    worker: int,
    warmup: bool,
    prompt: str,
    sent: float,
    steps: Sequence[float],
    audio_tokens: int,
    prompt_id: str,
) -> RequestRecord:
    rel = [t - sent for t in steps]
    frames = audio_tokens // FRAME_TOKENS
    first_window = FIRST_WINDOW_FRAMES * FRAME_TOKENS
    chunks = []
    # Reference window: the first chunk once 4 frames are in, then one frame's samples per new frame.
    for window, frame in enumerate(range(FIRST_WINDOW_FRAMES, frames + 1)):
        t = rel[frame * FRAME_TOKENS - 1]
        chunks.append(AudioChunk(t_ready_s=t, samples=SAMPLES_PER_FRAME, t_tokens_s=t, window=window))
    return RequestRecord(
        request_id=f"r{level}-{seq}",
        level=level,
        worker=worker,
        seq=seq,
        warmup=warmup,
        prompt_id=prompt_id,
        prompt=prompt,
        voice="tara",
        mode="stream",
        protocol="native",
        driver="replay",
        wall_start=0.0,
        run_offset_s=sent,
        level_label=f"c={level}",
        t_headers_s=rel[0],
        t_first_byte_s=rel[0],
        t_first_token_s=rel[0],
        t_first_audio_token_s=rel[0],
        t_first_frame_s=rel[FRAME_TOKENS - 1] if audio_tokens >= FRAME_TOKENS else None,
        t_first_window_s=rel[first_window - 1] if audio_tokens >= first_window else None,
        t_first_pcm_s=rel[first_window - 1] if audio_tokens >= first_window else None,
        t_last_token_s=rel[audio_tokens - 1] if audio_tokens else None,
        t_end_s=rel[-1],
        prompt_chars=len(prompt),
        tokens_generated=audio_tokens,
        audio_tokens=audio_tokens,
        frames=frames,
        end_of_speech=True,
        pcm_samples=sum(c.samples for c in chunks),
        chunks=chunks,
        stop_reason="word",
    )


def replay_level(
    config: SimConfig,
    prompts: Sequence[str],
    *,
    level: int,
    requests: int,
    warmup: bool = True,
    start_s: float = 0.0,
    first_request_number: int = 1,
    load_seed: int = 0,
    voice: str | None = "tara",
) -> list[RequestRecord]:
    """Closed loop of ``level`` workers against the simulator's timing model (`sim.timing.simulate_schedule`):
    ``level`` warmups then ``requests`` measured, each worker sending its next request when its last one ends.

    Request number ``first_request_number + i`` (the i-th sent) draws the simulator's jitter of that number and
    request number 1 pays the cold start, as the live server numbers requests in arrival order.
    """
    order = list(prompts)
    random.Random(load_seed).shuffle(order)
    total = requests + (level if warmup else 0)
    audio_tokens = FRAME_TOKENS * config.audio_frames
    steps = audio_tokens + 1  # the end-of-speech stop word costs a step and is not streamed
    texts: list[str] = []
    workers: list[int] = []

    def arrival(worker: int, t: float) -> Arrival | None:
        seq = len(texts)
        if seq >= total:
            return None
        texts.append(order[seq % len(order)])
        workers.append(worker)
        prompt = format_prompt(texts[-1], voice)
        return Arrival(t, estimate_prompt_tokens(prompt), steps, prompt)

    first = [a for w in range(min(level, total)) if (a := arrival(w, start_s)) is not None]
    schedule = simulate_schedule(
        config.timing(), config.slots, first, seed=config.seed, similarity=config.slot_prompt_similarity,
        next_arrival=lambda index, t: arrival(workers[index], t), first_request_number=first_request_number,
    )  # fmt: skip
    records = []
    for s in sorted(schedule, key=lambda s: s.t_end_s):
        record = _record(
            level=level, seq=s.index, worker=workers[s.index], warmup=warmup and s.index < level,
            prompt=texts[s.index], sent=s.t_arrival_s, steps=s.step_times_s,
            audio_tokens=audio_tokens, prompt_id=f"p{s.index % len(order)}",
        )  # fmt: skip
        records.append(record)
    return records


def replay_run(
    config: SimConfig,
    prompts: Sequence[str],
    *,
    levels: Sequence[int],
    requests: int,
    name: str = "replay",
    load_seed: int = 0,
) -> RunView:
    """A whole closed-loop sweep replayed level after level, as a complete run."""
    records: list[RequestRecord] = []
    level_info = []
    t = 0.0
    number = 1
    for level in levels:
        recs = replay_level(
            config, prompts, level=level, requests=requests, start_s=t, first_request_number=number,
            load_seed=load_seed,
        )  # fmt: skip
        number += len(recs)
        end = max(r.end_offset_run_s or t for r in recs)
        level_info.append(
            {"level": level, "label": f"c={level}", "client_bound": False, "started_s": t, "ended_s": end}
        )
        records.extend(recs)
        t = end
    run_json = {"name": name, "complete": True, "levels": level_info, "driver": "replay"}
    return run_from_records(records, run_json, name=name)


# ---- error rates -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Alarm counts of one kind of pair (A/A, or A/B at one slowdown) at one tolerance, overall and per rule."""

    label: str
    slowdown: float
    tolerance: float | None  # None: each rule's own tolerance
    pairs: int
    any_rule: Rate
    per_rule: dict[str, Rate]
    unusable: int  # pairs whose gate reported an input error (should be 0)
    preconditions: int = 0  # pairs failed by a precondition (client-bound level, too few values), not a decision


def _subject(rule: RuleResult) -> str:
    return rule.title.split(" regress")[0]


def rule_alarms(report: GateReport, tolerance: float | None = None) -> dict[str, bool]:
    """Which relative rules failed; with ``tolerance``, decided again as if every rule had that tolerance.

    Re-deciding from the stored interval is exact: the interval does not depend on the tolerance.
    """
    out: dict[str, bool] = {}
    for rule in report.rules:
        if rule.kind != "relative":
            continue
        fired = False
        for check in rule.checks:
            if tolerance is not None and check.decided:
                better = "lower" if rule.op == "<=" else "higher"
                effect = Interval(rule.compare, check.estimate, check.low, check.high, 0.0, 0)
                fired |= decide_relative(effect, better, tolerance).verdict is Verdict.FAIL
            else:
                fired |= check.verdict in (Verdict.FAIL, Verdict.ERROR)
        out[_subject(rule)] = fired
    return out


def tally(label: str, slowdown: float, reports: Sequence[GateReport], tolerance: float | None = None) -> Calibration:
    """Count alarms over the gate reports of pairs of one kind."""
    k = bad = pre = 0
    rule_k: dict[str, int] = {}
    for report in reports:
        per_rule = rule_alarms(report, tolerance)
        k += any(per_rule.values())
        bad += report.exit_code == 2
        pre += any(c.verdict is Verdict.FAIL and not c.decided for r in report.rules for c in r.checks)
        for title, fired in per_rule.items():
            rule_k[title] = rule_k.get(title, 0) + int(fired)
    n = len(reports)
    per = {t: Rate(c, n) for t, c in rule_k.items()}
    return Calibration(label, slowdown, tolerance, n, Rate(k, n), per, bad, pre)


def replay_pairs(
    rules: GateRules,
    config: SimConfig,
    prompts: Sequence[str],
    *,
    levels: Sequence[int],
    requests: int,
    pairs: int,
    slowdowns: Sequence[float] = (0.1, 0.2),
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[float, list[GateReport]]:
    """Gate reports of replayed pairs by slowdown (0.0 = A/A); each pair index uses fresh jitter seeds."""
    kinds = [0.0, *slowdowns]
    reports: dict[float, list[GateReport]] = {s: [] for s in kinds}
    for i in range(pairs):
        base_seed = seed * 1_000_003 + i * (len(kinds) + 1)
        baseline = replay_run(
            config.model_copy(update={"seed": base_seed}), prompts, levels=levels, requests=requests, name="A"
        )
        for j, slowdown in enumerate(kinds):
            update = {"seed": base_seed + 1 + j, "token_ms": config.token_ms * (1.0 + slowdown)}
            candidate = replay_run(config.model_copy(update=update), prompts, levels=levels, requests=requests)
            reports[slowdown].append(evaluate_runs(rules, candidate, baseline, seed=seed * 1_000_003 + i))
        if progress is not None:
            progress(i + 1)
    return reports


def pair_label(slowdown: float) -> str:
    """``A/A`` or ``A/B +10%``."""
    return "A/A" if slowdown == 0.0 else f"A/B +{slowdown:.0%}"


def calibrate(
    reports: dict[float, list[GateReport]], tolerances: Sequence[float | None] = (None,)
) -> list[Calibration]:
    """Rates of every kind of pair at every tolerance."""
    return [tally(pair_label(s), s, reps, tol) for tol in tolerances for s, reps in sorted(reports.items())]


def format_calibration(results: Sequence[Calibration]) -> str:
    """A plain-text table of the rates."""
    lines = []
    for c in results:
        what = "false alarms" if c.slowdown == 0.0 else "detected"
        tol = "rules' own" if c.tolerance is None else f"{c.tolerance:.0%}"
        lines.append(f"tolerance {tol:>10}  {c.label:10} {what:13} any rule: {c.any_rule}")
        for title, rate in c.per_rule.items():
            lines.append(f"{'':22} {'':10} {'':13} {title:24} {rate}")
        if c.unusable:
            lines.append(f"{'':22} {c.unusable} pair(s) were unusable (exit 2)")
        if c.preconditions:
            lines.append(
                f"{'':22} {c.preconditions} pair(s) failed a precondition (client-bound level, too few values)"
            )
    return "\n".join(lines)


__all__ = [
    "Calibration",
    "Rate",
    "calibrate",
    "format_calibration",
    "pair_label",
    "replay_level",
    "replay_pairs",
    "replay_run",
    "rule_alarms",
    "tally",
]
