"""`orpheus-bench demo`: the seed's experiment, repeated end to end on this machine in one command, honestly.

It builds the tiny Orpheus-format GGUF (cached; it ends each utterance itself after about 4.7 frames per word),
starts a real llama-server with the ``seed-before`` profile and runs the seed's "before" client against it
(blocking requests, temperature 0.8, top_k 40, max_tokens 2048), stops it, does the same with the
``seed-after`` profile and the "after" client (streaming, temperature 0.3, top_k 30, max_tokens 512), then
writes one before/after report. The client settings are the ones in ``scenarios/seed-before.yaml`` and
``scenarios/seed-after.yaml`` (a unit test keeps them equal); the server profiles are the seed's own, so the
after server's ``-c 2048`` over 30 slots cuts utterances short exactly as the seed's did, and the report says so.

What the headline compares depends on where the client can hold the seed's pipeline (``--decode auto``):

* with a CUDA GPU, the seed's full pipeline: SNAC decoding on the GPU, the before client decoding once at the
  end, the after client with the 28-token window;
* on a CPU-only machine, SNAC decoding (random weights: the same cost as the real model) is slower than the
  tiny model generates audio, so every level of the full pipeline would be client-bound and its comparison
  invalid. The headline therefore compares the server side with decoding off (first audio = the first decode
  window's tokens), which the client holds at every level, and a second run measures the after client's full
  pipeline at a few levels (``--pipeline-levels``), written as its own report, saying at which levels the client
  held and why it stopped.

The model is tiny and the SNAC weights are random, so the numbers describe this harness and this machine's
llama-server, not Orpheus 3B on a GPU; the reports say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from orpheus_bench.cli_options import int_list
from orpheus_bench.commands.run import run_async_with_signals
from orpheus_bench.scenario import Scenario, merge_overrides, scenario_from_dict

BEFORE_CLIENT: dict[str, Any] = {
    "name": "seed-before",
    "protocol": "native",
    "mode": "blocking",
    "prompts": {"set": "seed-lengths", "voice": "tara"},
    "sampling": {"temperature": 0.8, "top_k": 40, "max_tokens": 2048, "repeat_penalty": 1.1},
    "decode": {"preset": "blocking", "snac_model": "random", "device": "auto"},
}
AFTER_CLIENT: dict[str, Any] = {
    "name": "seed-after",
    "protocol": "native",
    "mode": "stream",
    "prompts": {"set": "seed-lengths", "voice": "tara"},
    "sampling": {"temperature": 0.3, "top_k": 30, "max_tokens": 512, "repeat_penalty": 1.1},
    "decode": {"preset": "reference", "snac_model": "random", "device": "auto"},
}
DECODE_CHOICES = ("auto", "seed", "chunked", "off")


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    p = sub.add_parser(
        "demo",
        help="Before/after on a real llama-server with a tiny model, one report.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--levels",
        type=int_list("load.concurrency"),
        default=[1, 2, 4, 8, 12],
        help="Concurrency levels of the headline comparison (default 1,2,4,8,12).",
    )
    # 27 = each of the seed-lengths set's 9 prompts 3 times at every level, whatever the warmups took first: the
    # levels (and before and after) then do the same mix of work, and a level's throughput rests on 27 requests, so
    # the prompt mix of the few requests ahead of them (warmups) moves it little (at 8 requests per level the
    # 1-slot server's tokens per second visibly moved between levels with that mix).
    p.add_argument("--requests-per-level", type=int, default=27, help="Measured requests per level (default 27).")
    p.add_argument("--model", default="test", help="GGUF to serve ('test' = the tiny Orpheus-format model).")
    p.add_argument("--runs-dir", default="runs/demo", help="Where the run directories go.")
    p.add_argument("--report", default="reports/demo/index.html", help="The before/after report file.")
    p.add_argument("--keep-audio", type=int, default=1, help="Sample WAVs kept per level of decoding runs.")
    p.add_argument("--device", default="auto", help="SNAC device: auto, cpu, cuda.")
    p.add_argument(
        "--decode",
        choices=DECODE_CHOICES,
        default="auto",
        help="What the headline compares: auto (the seed's full pipeline on a CUDA GPU; on a CPU, decoding off "
        "plus a separate full-pipeline run), seed (the seed's clients: blocking decode before, 28-token window "
        "after), chunked (after decodes 4 new frames with context), off (tokens only: the server's side).",
    )
    p.add_argument(
        "--pipeline-levels",
        type=int_list("pipeline_levels"),
        default=[1, 2],
        help="CPU only: levels of the after client's full-pipeline run (default 1,2; empty: no such run).",
    )
    p.add_argument(
        "--pipeline-requests",
        type=int,
        default=4,
        help="CPU only: measured requests per level of that run (default 4: SNAC on a CPU is slow).",
    )
    p.add_argument(
        "--pipeline-decode",
        choices=["reference", "chunked"],
        default="reference",
        help="CPU only: the decoder of that run (reference: the seed's 28-token window).",
    )
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    p.set_defaults(func=main)


def resolve_decode(decode: str, device: str) -> str:
    """``auto`` -> ``seed`` when SNAC would run on a CUDA GPU, else ``off`` (see the module docstring)."""
    if decode != "auto":
        return decode
    if device.startswith("cuda"):
        return "seed"
    if device == "auto":
        import torch

        return "seed" if torch.cuda.is_available() else "off"
    return "off"


def _client(base: dict[str, Any], overrides: dict[str, Any]) -> Scenario:
    return scenario_from_dict(merge_overrides(base, overrides))


def demo_scenarios(args: argparse.Namespace) -> tuple[Scenario, Scenario]:
    """The headline's before and after scenarios, each starting its own server from the seed's profile."""
    decode = resolve_decode(getattr(args, "decode", "auto"), args.device)
    common = {
        "load.concurrency": args.levels,
        "load.requests_per_level": args.requests_per_level,
        "keep_audio": 0 if decode == "off" else args.keep_audio,
        "decode.device": args.device,
        "server.model": args.model,
    }
    before_over: dict[str, Any] = {"decode.preset": "off"} if decode == "off" else {}
    after_over: dict[str, Any] = {"decode.preset": decode} if decode in ("chunked", "off") else {}
    before = _client(BEFORE_CLIENT, {**common, **before_over, "server.profile": "seed-before"})
    after = _client(AFTER_CLIENT, {**common, **after_over, "server.profile": "seed-after"})
    return before, after


def pipeline_scenario(args: argparse.Namespace) -> Scenario | None:
    """The after client's full pipeline at ``--pipeline-levels`` (CPU only; None when the headline decodes)."""
    if resolve_decode(getattr(args, "decode", "auto"), args.device) != "off" or not args.pipeline_levels:
        return None
    if getattr(args, "decode", "auto") == "off":
        return None  # asked for the server side only
    return _client(
        AFTER_CLIENT,
        {
            "name": "seed-after-full-pipeline",
            "load.concurrency": args.pipeline_levels,
            "load.requests_per_level": getattr(args, "pipeline_requests", 4),
            "keep_audio": args.keep_audio,
            "decode.preset": args.pipeline_decode,
            "decode.device": args.device,
            "server.model": args.model,
            "server.profile": "seed-after",
        },
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of `orpheus-bench demo`."""
    from rich.console import Console

    from orpheus_bench.client.progress import RichProgress
    from orpheus_bench.client.whole_run import execute_run
    from orpheus_bench.errors import LaunchError
    from orpheus_bench.server.binary import find_llama_server

    console = Console()
    before, after = demo_scenarios(args)
    pipeline = pipeline_scenario(args)
    try:
        binary = find_llama_server()
        console.print(f"llama-server: {binary}")
    except LaunchError:
        console.print(
            "[yellow]llama-server is not installed: run `scripts/install-llama-server.sh` (or `make demo`, which "
            "does it): the first build compiles llama.cpp from source, about 9 minutes on 2 cores."
        )
        raise
    decode = resolve_decode(args.decode, args.device)
    if decode == "off" and args.decode == "auto":
        console.print(
            "[bold]No CUDA GPU: SNAC decoding on this CPU cannot keep up with the server, so the headline compares "
            "the server side with decoding off; the after client's full pipeline is measured on its own after it."
        )
    runs = Path(args.runs_dir)
    t0 = time.monotonic()
    plan = [("before", before), ("after", after)] + ([("after-full-pipeline", pipeline)] if pipeline else [])
    for label, sc in plan:
        assert sc is not None
        console.rule(f"[bold]{label}: server profile {sc.server.profile}, client {sc.name}, decode {sc.decode.preset}")
        hooks = RichProgress(console, quiet=args.quiet)
        with hooks:
            run_async_with_signals(
                execute_run(sc, runs / label, force=True, hooks=hooks, cli_args={"argv": ["demo", label]})
            )
    report = Path(args.report)
    write_report(runs / "before", runs / "after", report)
    verdict = None
    if pipeline is not None:
        pipeline_report = report.with_name("full-pipeline.html")
        write_report(None, runs / "after-full-pipeline", pipeline_report)
        verdict = pipeline_verdict(runs / "after-full-pipeline")
        console.print(verdict)
        console.print(f"full-pipeline report: {pipeline_report}")
    elapsed = time.monotonic() - t0
    summary = report.with_name("demo.json")
    write_summary(summary, args, before, after, pipeline, verdict, elapsed)
    console.print(f"demo finished in {elapsed:.0f} s; report: {report} (what ran: {summary})")
    return 0


def write_summary(
    path: Path,
    args: argparse.Namespace,
    before: Scenario,
    after: Scenario,
    pipeline: Scenario | None,
    verdict: str | None,
    elapsed_s: float,
) -> None:
    """``demo.json`` beside the report: what the demo ran, where, for how long, and its full-pipeline verdict, so
    the docs quote these from a file (the figures themselves are in the reports' JSON)."""

    def run(sc: Scenario) -> dict[str, Any]:
        return {
            "client": sc.name,
            "server_profile": sc.server.profile,
            "decode": sc.decode.preset,
            "levels": list(sc.load.concurrency or []),
            "requests_per_level": sc.load.requests_per_level,
        }

    data = {
        "decode": resolve_decode(getattr(args, "decode", "auto"), args.device),
        "device": args.device,
        "duration_s": round(elapsed_s, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "before": run(before),
        "after": run(after),
        "pipeline": None if pipeline is None else {**run(pipeline), "verdict": verdict},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def pipeline_verdict(run_dir: Path) -> str:
    """One paragraph: at which levels the client held the full pipeline, and why it stopped holding."""
    from orpheus_bench.results.compile import compile_run

    results = compile_run(run_dir)
    held = [lv.label for lv in results.levels if lv.n and not lv.client_bound]
    bound = [lv for lv in results.levels if lv.client_bound]
    if not bound:
        return f"Full client pipeline: the client held every level measured ({', '.join(held)})."
    first = bound[0]
    why = "; ".join(first.client_bound_reasons) or "client-bound"
    holds = f"held {', '.join(held)}; " if held else "did not hold even at the first level; "
    return (
        f"Full client pipeline on this machine: the client {holds}client-bound from {first.label} ({why}). SNAC "
        "decoding on this CPU is slower than the server generates audio, so those levels measure the client, not "
        "the server; the headline comparison leaves decoding out for that reason."
    )


def write_report(before_dir: Path | None, after_dir: Path, out: Path) -> Path:
    """The report, made exactly as `orpheus-bench report` makes it, in HTML, Markdown and JSON beside it."""
    from orpheus_bench.cli import main as cli_main

    pair = ["--before", str(before_dir), "--after", str(after_dir)] if before_dir else [str(after_dir)]
    # The HTML pass prints the console tables (first lines first); Markdown and JSON are the same report again.
    for path, quiet in ((out, []), (out.with_suffix(".md"), ["--quiet"]), (out.with_suffix(".json"), ["--quiet"])):
        code = cli_main(["report", *pair, "-o", str(path), *quiet])
        if code != 0:
            raise RuntimeError(f"report failed with exit code {code}")
    return out
