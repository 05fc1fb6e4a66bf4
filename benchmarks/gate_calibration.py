"""Gate calibration: how often does the gate cry wolf (A/A), and how often does it catch a slowdown (A/B)?

Runs many pairs (baseline, candidate) against the simulator's timing model with random jitter:

- A/A: the same configuration twice (fresh jitter seeds): every failed gate is a false alarm;
- A/B: the candidate's per-token time slowed by 10% and 20%: every failed gate is a detection.

and prints both rates with 95% Wilson intervals, per rule and for "any rule", at the rules' own tolerances and
at the tolerances given with ``--tolerances`` (re-decided from the same intervals, which do not depend on the
tolerance). Two modes (see `orpheus_bench.gate.calibrate`):

    # fast: discrete-event replay of the simulator's timing model (hundreds of pairs in minutes on 2 cores)
    python benchmarks/gate_calibration.py --pairs 400 --requests 40
    # end to end: the real aiohttp runner against the real simulator over HTTP (slow; fewer pairs)
    python benchmarks/gate_calibration.py --mode live --pairs 20 --token-ms 3 --audio-frames 8

``--json FILE`` writes every rate. The tables of docs/gates.md are generated from committed JSON files:

    # the documented plan: every replay row, its exact settings, one JSON file each (about 10 minutes here)
    python benchmarks/gate_calibration.py --plan benchmarks/results/gate-calibration
    # the tables, from those files (docs/gates.md embeds exactly this output; a test checks it)
    python benchmarks/gate_calibration.py --summarize benchmarks/results/gate-calibration/*.json

This is a benchmark, not a test: a fast fixed-seed version lives in tests/unit/gate/test_gate_calibration.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from orpheus_bench.gate.calibrate import Calibration, calibrate, format_calibration, replay_pairs, replay_run
from orpheus_bench.gate.engine import GateReport, evaluate_runs, load_run
from orpheus_bench.gate.rules import GateRules, load_rules
from orpheus_bench.measures.metrics import RunView
from orpheus_bench.prompts import builtin
from orpheus_bench.sim.config import SimConfig


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["replay", "live"], default="replay")
    p.add_argument("--rules", default="scenarios/gates/regression.yaml", help="Rules with relative rules.")
    p.add_argument("--pairs", type=int, default=200, help="Pairs of each kind (A/A, each slowdown).")
    p.add_argument("--requests", type=int, default=40, help="Measured requests per level.")
    p.add_argument("--levels", type=_ints, default=[2, 8], help="Concurrency levels of each run.")
    p.add_argument("--slowdowns", type=_floats, default=[0.1, 0.2], help="Per-token slowdowns of A/B pairs.")
    p.add_argument("--tolerances", type=_floats, default=[0.0, 0.02, 0.05, 0.10], help="Also decide at these.")
    p.add_argument("--jitter", type=float, default=0.5, help="Simulator jitter (lognormal sigma per delay).")
    p.add_argument("--token-ms", type=float, default=10.0, help="Simulator ms per token (one busy slot).")
    p.add_argument("--audio-frames", type=int, default=24, help="Audio frames per request.")
    p.add_argument("--slots", type=int, default=4, help="Simulator slots.")
    p.add_argument("--prompt-set", default="seed-lengths", help="Built-in prompt set.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the whole calibration.")
    p.add_argument("--min-requests", type=int, help="Override settings.min_requests of the rules.")
    p.add_argument("--confidence", type=float, help="Override settings.confidence of the rules.")
    p.add_argument("--json", help="Write the rates as JSON here.")
    p.add_argument("--workdir", help="Live mode: keep run directories here (default: a temporary folder).")
    p.add_argument("--summarize", nargs="+", metavar="JSON", help="Print Markdown tables of earlier --json files.")
    p.add_argument("--plan", metavar="DIR", help="Run the documented plan (PLAN) into DIR, one JSON file per row.")
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(token_ms=args.token_ms, audio_frames=args.audio_frames, jitter=args.jitter, slots=args.slots)


def _noise(run: RunView) -> dict[str, float]:
    """Per-request coefficient of variation of TTFA at each level: how noisy the runs are."""
    out = {}
    for level, table in run.tables.items():
        ttfa = np.array([r.ttfa_s for r in table.rows if r.ok and r.ttfa_s is not None])
        if ttfa.size > 1:
            out[f"c={level}"] = float(ttfa.std(ddof=1) / ttfa.mean())
    return out


# ---- live mode -------------------------------------------------------------------------------------------


async def _live_run(config: SimConfig, args: argparse.Namespace, out: Path) -> RunView:
    from orpheus_bench.client.whole_run import execute_run
    from orpheus_bench.scenario import scenario_from_dict
    from orpheus_bench.sim.app import start_simulator

    async with await start_simulator(config) as server:
        scenario = scenario_from_dict(
            {
                "host": server.url,
                "decode": {"preset": "off"},
                "sampling": {"max_tokens": 7 * args.audio_frames + 16},
                "prompts": {"set": args.prompt_set},
                "load": {"concurrency": args.levels, "requests_per_level": args.requests},
            }
        )
        await execute_run(scenario, out, force=True, doctor=False)
    return load_run(out)


def live_pairs(
    rules: GateRules, args: argparse.Namespace, workdir: Path
) -> tuple[dict[float, list[GateReport]], RunView]:
    """Gate reports of live pairs by slowdown (0.0 = A/A), and the first baseline run."""
    base_cfg = _config(args)
    kinds = [0.0, *args.slowdowns]
    reports: dict[float, list[GateReport]] = {s: [] for s in kinds}
    first: RunView | None = None
    for i in range(args.pairs):
        seed = args.seed * 1_000_003 + i * (len(kinds) + 1)
        baseline = asyncio.run(_live_run(base_cfg.model_copy(update={"seed": seed}), args, workdir / f"{i}-A"))
        first = first or baseline
        for j, slowdown in enumerate(kinds):
            cfg = base_cfg.model_copy(update={"seed": seed + 1 + j, "token_ms": args.token_ms * (1 + slowdown)})
            candidate = asyncio.run(_live_run(cfg, args, workdir / f"{i}-B{j}"))
            reports[slowdown].append(evaluate_runs(rules, candidate, baseline, seed=i))
        print(f"pair {i + 1}/{args.pairs}", file=sys.stderr, flush=True)
    assert first is not None
    return reports, first


# ---- main ------------------------------------------------------------------------------------------------


def _as_json(results: list[Calibration]) -> list[dict[str, Any]]:
    out = []
    for c in results:
        out.append(
            {
                "label": c.label,
                "slowdown": c.slowdown,
                "tolerance": c.tolerance,
                "pairs": c.pairs,
                "any_rule": {"rate": c.any_rule.value, "ci95": c.any_rule.interval, "k": c.any_rule.k},
                "per_rule": {t: {"rate": r.value, "ci95": r.interval, "k": r.k} for t, r in c.per_rule.items()},
                "unusable": c.unusable,
                "preconditions": c.preconditions,
            }
        )
    return out


def _pct(entry: dict[str, Any]) -> str:
    low, high = entry["ci95"]
    return f"{entry['rate']:.1%} [{low:.1%}, {high:.1%}]"


def summarize(paths: list[str]) -> str:
    """Markdown tables from --json files: rates at the rules' own tolerances, then a tolerance sweep."""
    runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    runs.sort(key=lambda d: (d["args"]["mode"], d["args"]["jitter"], d["args"]["requests"]))
    lines = [
        "| mode | jitter | requests/level | min requests | pairs | precondition failed | TTFA CV | A/A false alarms | "
        "+10%: gate fails | +10%: TTFA rule | +20%: gate fails | +20%: TTFA rule |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | --- |",
    ]
    sweep = [
        "| mode | jitter | requests/level | TTFA CV | tolerance | A/A false alarms | +10%: gate fails | "
        "+10%: TTFA rule |",
        "| --- | ---: | ---: | --- | ---: | --- | --- | --- |",
    ]
    for d in runs:
        a = d["args"]
        cv = ", ".join(f"{k} {v:.0%}" for k, v in d["ttfa_cv"].items())
        own = {r["slowdown"]: r for r in d["results"] if r["tolerance"] is None}
        ttfa = next(k for k in own[0.0]["per_rule"] if k.startswith("ttfa_ms"))
        min_requests = a.get("min_requests") or "rules' (30)"
        # A pair whose level was client-bound or short of values fails the gate on a precondition: counted in
        # every rate above (a team's CI would fail too), and shown so a reader sees why a rate is not zero.
        failed = max(r["preconditions"] for r in own.values())
        cells = [a["mode"], f"{a['jitter']:g}", str(a["requests"]), str(min_requests), str(a["pairs"]), str(failed),
                 cv, _pct(own[0.0]["any_rule"])]  # fmt: skip
        for slowdown in (0.1, 0.2):
            if slowdown in own:
                cells += [_pct(own[slowdown]["any_rule"]), _pct(own[slowdown]["per_rule"][ttfa])]
            else:
                cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
        if a["requests"] != 40:
            continue  # the tolerance sweep is shown at the recommended 40 requests per level
        for tol in sorted(r["tolerance"] for r in d["results"] if r["tolerance"] is not None and r["slowdown"] == 0.0):
            by = {r["slowdown"]: r for r in d["results"] if r["tolerance"] == tol}
            if 0.1 in by:
                sweep.append(
                    f"| {a['mode']} | {a['jitter']:g} | {a['requests']} | {cv} | {tol:.0%} | "
                    f"{_pct(by[0.0]['any_rule'])} | {_pct(by[0.1]['any_rule'])} | {_pct(by[0.1]['per_rule'][ttfa])} |"
                )
    return "\n".join([*lines, "", *sweep])


# The rows of docs/gates.md: (file name, arguments). Every row uses scenarios/gates/regression.yaml, 300 pairs,
# levels 2 and 8, the simulator's defaults otherwise; min_requests follows the row's requests per level so the
# 20-request rows are decided, not failed on the precondition. Jitter 0.5 gives a per-request TTFA coefficient
# of variation of about 9% at c=2, jitter 1.0 about 20%.
_REPLAY_ROWS = tuple(
    (f"replay-r{requests}-j{jitter}", ["--pairs", "300", "--requests", str(requests), "--jitter", str(jitter),
                                        "--min-requests", str(min(requests, 30)), "--seed", "1"])
    for jitter in (0.5, 1.0)
    for requests in (20, 40, 80)
)  # fmt: skip
# End to end: the real aiohttp runner against the real simulator over HTTP; 3 ms tokens and 8 frames keep a run
# near 10 s, 20 pairs keep the row near 12 minutes on 2 cores (so its intervals are wide).
_LIVE_ROW = ("live-r40-j0.5", ["--mode", "live", "--pairs", "20", "--requests", "40", "--jitter", "0.5",
                               "--token-ms", "3", "--audio-frames", "8", "--seed", "1"])  # fmt: skip
PLAN: tuple[tuple[str, list[str]], ...] = (*_REPLAY_ROWS, _LIVE_ROW)


def run_plan(directory: str) -> int:
    """Every row of `PLAN` into ``directory`` (one JSON file each); a row whose file exists is kept."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, row in PLAN:
        path = out / f"{name}.json"
        if path.exists():
            print(f"{path}: kept", file=sys.stderr)
            continue
        print(f"{path}: python benchmarks/gate_calibration.py {' '.join(row)}", file=sys.stderr)
        code = main([*row, "--json", str(path)])
        if code:
            return code
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the calibration and print the rates."""
    args = parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return 0
    if args.plan:
        return run_plan(args.plan)
    rules = load_rules(args.rules)
    overrides = {"min_requests": args.min_requests, "confidence": args.confidence}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        rules = rules.model_copy(update={"settings": rules.settings.model_copy(update=overrides)})
    if not rules.relative:
        print("the rules file has no relative rule to calibrate", file=sys.stderr)
        return 2
    prompts = [p.text for p in builtin(args.prompt_set)]
    started = time.perf_counter()
    if args.mode == "replay":
        reports = replay_pairs(
            rules, _config(args), prompts, levels=args.levels, requests=args.requests, pairs=args.pairs,
            slowdowns=args.slowdowns, seed=args.seed,
            progress=lambda i: print(f"pair {i}/{args.pairs}", file=sys.stderr, flush=True) if i % 50 == 0 else None,
        )  # fmt: skip
        sample = replay_run(_config(args), prompts, levels=args.levels, requests=args.requests)
    else:
        if args.workdir:
            reports, sample = live_pairs(rules, args, Path(args.workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="gate-calibration-") as tmp:
                reports, sample = live_pairs(rules, args, Path(tmp))
    elapsed = time.perf_counter() - started
    results = calibrate(reports, [None, *args.tolerances])
    noise = _noise(sample)
    s = rules.settings
    print(
        f"mode {args.mode}; {args.pairs} pairs per kind; {args.requests} requests per level at c={args.levels}; "
        f"sim token_ms {args.token_ms} jitter {args.jitter} slots {args.slots} frames {args.audio_frames}; "
        f"gate confidence {s.confidence} resamples {s.resamples} min_requests {s.min_requests}; "
        f"{elapsed:.0f} s"
    )
    print("per-request TTFA coefficient of variation: " + ", ".join(f"{k} {v:.1%}" for k, v in noise.items()))
    print(format_calibration(results))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"args": {k: v for k, v in vars(args).items()}, "elapsed_s": elapsed, "ttfa_cv": noise,
                 "results": _as_json(results)},
                indent=2,
            ),
            encoding="utf-8",
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
