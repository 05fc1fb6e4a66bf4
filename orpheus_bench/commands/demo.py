"""`orpheus-bench demo`: the seed's experiment, repeated end to end on this machine in one command.

It builds the tiny Orpheus-format GGUF (cached), starts a real llama-server with the ``seed-before`` profile and
runs the seed's "before" client against it (blocking requests, temperature 0.8, top_k 40, max_tokens 2048, one
decode at the end), stops it, does the same with the ``seed-after`` profile and the "after" client (streaming,
28-token window, temperature 0.3, top_k 30, max_tokens 512), then writes one before/after report. The client
settings below are the ones in ``scenarios/seed-before.yaml`` and ``scenarios/seed-after.yaml`` (a unit test
keeps them equal). The model is tiny and the SNAC weights are random, so the numbers describe this harness and
this machine's llama-server, not Orpheus 3B on a GPU; the report says so.

The tiny model never ends speech on its own (a real Orpheus model stops after the utterance, usually long before
max_tokens), so both clients' generations are capped at ``--utterance-tokens`` (default 280 tokens = 40 frames =
3.4 s of audio): before and after then produce the same audio per request, and what differs is what the seed
changed: blocking vs streaming, one slot vs thirty, the decode strategy and sampling settings.
"""

from __future__ import annotations

import argparse
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
        help="Concurrency levels (default 1,2,4,8,12).",
    )
    p.add_argument("--requests-per-level", type=int, default=8, help="Measured requests per level (default 8).")
    p.add_argument(
        "--utterance-tokens",
        type=int,
        default=280,
        help="Tokens generated per request by both clients (the tiny model never ends speech itself).",
    )
    p.add_argument("--model", default="test", help="GGUF to serve ('test' = the tiny Orpheus-format model).")
    p.add_argument("--runs-dir", default="runs/demo", help="Where the two run directories go.")
    p.add_argument("--report", default="reports/demo/index.html", help="The report file.")
    p.add_argument("--keep-audio", type=int, default=1, help="Sample WAVs kept per level (default 1).")
    p.add_argument("--device", default="auto", help="SNAC device: auto, cpu, cuda.")
    p.add_argument(
        "--decode",
        choices=["seed", "chunked", "off"],
        default="seed",
        help="Client decoding: seed (the seed's clients: blocking decode before, 28-token window after), chunked "
        "(after decodes 4 new frames with context: 2.4x cheaper per audio second on a CPU), off (tokens only: "
        "the server's side of the experiment without the client's SNAC cost).",
    )
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    p.set_defaults(func=main)


def demo_scenarios(args: argparse.Namespace) -> tuple[Scenario, Scenario]:
    """The before and after scenarios, each starting its own server."""
    common = {
        "load.concurrency": args.levels,
        "load.requests_per_level": args.requests_per_level,
        "keep_audio": 0 if getattr(args, "decode", "seed") == "off" else args.keep_audio,
        "decode.device": args.device,
        "server.model": args.model,
        "sampling.max_tokens": args.utterance_tokens,
    }
    decode = getattr(args, "decode", "seed")
    before_over: dict[str, Any] = {"decode.preset": "off"} if decode == "off" else {}
    after_over: dict[str, Any] = {"decode.preset": decode} if decode in ("chunked", "off") else {}
    before = scenario_from_dict(
        merge_overrides(BEFORE_CLIENT, {**common, **before_over, "server.profile": "seed-before"})
    )
    after = scenario_from_dict(merge_overrides(AFTER_CLIENT, {**common, **after_over, "server.profile": "seed-after"}))
    return before, after


def main(args: argparse.Namespace) -> int:
    """Entry point of `orpheus-bench demo`."""
    from rich.console import Console

    from orpheus_bench.client.progress import RichProgress
    from orpheus_bench.client.whole_run import execute_run
    from orpheus_bench.errors import LaunchError
    from orpheus_bench.server.binary import find_llama_server

    console = Console()
    before, after = demo_scenarios(args)
    try:
        binary = find_llama_server()
        console.print(f"llama-server: {binary}")
    except LaunchError:
        console.print(
            "[yellow]llama-server is not installed: run `scripts/install-llama-server.sh` (or `make demo`, which "
            "does it): the first build compiles llama.cpp from source, about 9 minutes on 2 cores."
        )
        raise
    runs = Path(args.runs_dir)
    t0 = time.monotonic()
    for label, sc in (("before", before), ("after", after)):
        console.rule(f"[bold]{label}: server profile {sc.server.profile}, client {sc.name}")
        hooks = RichProgress(console, quiet=args.quiet)
        with hooks:
            run_async_with_signals(
                execute_run(sc, runs / label, force=True, hooks=hooks, cli_args={"argv": ["demo", label]})
            )
    report = write_report(runs / "before", runs / "after", Path(args.report), console)
    console.print(f"demo finished in {time.monotonic() - t0:.0f} s; report: {report}")
    return 0


def write_report(before_dir: Path, after_dir: Path, out: Path, console: Any) -> Path:
    """The before/after report, made exactly as `orpheus-bench report --before ... --after ...` makes it."""
    from orpheus_bench.cli import main as cli_main

    code = cli_main(["report", "--before", str(before_dir), "--after", str(after_dir), "-o", str(out)])
    if code != 0:
        raise RuntimeError(f"report failed with exit code {code}")
    return out
