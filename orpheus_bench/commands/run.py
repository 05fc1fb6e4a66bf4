"""`orpheus-bench run`: a sweep against a server (or one it starts), into a run directory.

Flags override the scenario file's fields; everything is validated before any request is sent. Exit codes:
0 run complete (and gates passed), 1 a gate failed, 2 bad input, 3 server unusable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
from typing import Any

from orpheus_bench.errors import ConfigError
from orpheus_bench.scenario import describe_fields, load_scenario, merge_overrides, scenario_from_dict

API_KEY_ENV = "ORPHEUS_BENCH_API_KEY"


def _int_list(field: str) -> Any:
    def parse(text: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field}: expected comma-separated integers, got {text!r}") from None

    return parse


def _float_list(field: str) -> Any:
    def parse(text: str) -> list[float]:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field}: expected comma-separated numbers, got {text!r}") from None

    return parse


def add_scenario_options(p: argparse.ArgumentParser, *, include_host: bool = True) -> None:
    """Options shared by run-like commands (run, capacity, the Locust adapter, which has its own --host)."""
    p.add_argument("--scenario", help="Scenario YAML; flags below override its fields.")
    if include_host:
        p.add_argument("--host", help="Base URL of llama-server (default http://127.0.0.1:8080).")
    p.add_argument("--protocol", choices=["native", "openai"], help="/completion (native) or /v1/completions.")
    p.add_argument("--mode", choices=["stream", "blocking"], help="Streaming (SSE) or blocking requests.")
    p.add_argument("--model-name", dest="model_name", help="Model name for the openai protocol.")
    p.add_argument("--voice", help="Orpheus voice (tara, leah, jess, leo, dan, mia, zac, zoe); 'none' for none.")
    p.add_argument("--prompts", dest="prompts_file", help="File with one prompt per line.")
    p.add_argument("--prompt-set", help="Built-in prompt set (seed-lengths, short, medium).")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--repeat-penalty", type=float)
    p.add_argument("--seed", type=int, help="Sampling seed sent to the server.")
    p.add_argument("--decode", choices=["reference", "reference-14", "chunked", "blocking", "off"])
    p.add_argument("--snac-model", help="random | hub id (hubertsiuzdak/snac_24khz) | local directory.")
    p.add_argument("--device", help="auto | cpu | cuda[:N] for SNAC decoding.")
    p.add_argument("--decode-batch", type=int, help="Decode service: windows per batch at most.")
    p.add_argument("--decode-wait-ms", type=float, help="Decode service: wait to fill a batch.")
    p.add_argument("--decode-workers", type=int, help="Decode service worker threads (default 1).")
    p.add_argument(
        "--decode-backend", choices=["torch", "onnx"], help="SNAC decode on torch (default) or ONNX Runtime (CPU)."
    )
    p.add_argument("--timeout", type=float, help="Per-request limit in seconds.")
    p.add_argument("--token-timeout", type=float, help="Longest silence between stream chunks in seconds.")
    p.add_argument("--server-profile", help="Start llama-server from this profile for the run.")
    p.add_argument("--model", help="GGUF for --server-profile ('test' = the tiny Orpheus-format model).")
    p.add_argument("--api-key", help=f"Bearer token for llama-server --api-key (or ${API_KEY_ENV}).")


def register(sub: Any) -> None:
    """Add the `run` subcommand."""
    p = sub.add_parser(
        "run",
        help="Run a load sweep and write a run directory.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scenario_options(p)
    p.add_argument("--concurrency", type=_int_list("load.concurrency"), help="Levels, e.g. 1,2,4,8,12.")
    p.add_argument("--rate", type=_float_list("load.rate"), help="Open loop: arrivals/s per level, e.g. 0.5,1,2.")
    p.add_argument("--burstiness", type=float, help="Open loop: gamma shape (1 = Poisson).")
    p.add_argument("--requests-per-level", type=int, help="Measured requests per level (after warmup).")
    p.add_argument("--duration-per-level", type=float, help="Seconds per level instead of a request count.")
    p.add_argument("--no-warmup", action="store_true", help="Do not send warmup requests.")
    p.add_argument("--keep-audio", type=int, help="Keep N sample WAVs per level.")
    p.add_argument("--gate", help="Gate rules YAML checked at the end (exit 1 when a rule fails).")
    p.add_argument("--out", help="Run directory (default runs/<timestamp>).")
    p.add_argument("--force", action="store_true", help="Replace an existing run directory.")
    p.add_argument("--no-doctor", action="store_true", help="Skip the server checks before the run.")
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    p.add_argument("--help-scenario", action="store_true", help="List every scenario field and exit.")
    p.set_defaults(func=main)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted scenario keys from the flags that were given."""
    voice = getattr(args, "voice", None)
    o: dict[str, Any] = {
        "host": getattr(args, "host", None),
        "protocol": args.protocol,
        "mode": args.mode,
        "model": args.model_name,
        "prompts.file": args.prompts_file,
        "prompts.set": args.prompt_set,
        "sampling.temperature": args.temperature,
        "sampling.top_k": args.top_k,
        "sampling.top_p": args.top_p,
        "sampling.max_tokens": args.max_tokens,
        "sampling.repeat_penalty": args.repeat_penalty,
        "sampling.seed": args.seed,
        "decode.preset": args.decode,
        "decode.snac_model": args.snac_model,
        "decode.device": args.device,
        "decode.max_batch": args.decode_batch,
        "decode.max_wait_ms": args.decode_wait_ms,
        "decode.workers": getattr(args, "decode_workers", None),
        "decode.backend": getattr(args, "decode_backend", None),
        "timeouts.request_s": args.timeout,
        "timeouts.between_tokens_s": args.token_timeout,
        "server.profile": args.server_profile,
        "server.model": args.model,
    }
    if voice is not None:
        o["prompts.voice"] = None if voice.lower() == "none" else voice
        if voice.lower() == "none":
            o.pop("prompts.voice")
    for name, key in (
        ("concurrency", "load.concurrency"),
        ("rate", "load.rate"),
        ("burstiness", "load.burstiness"),
        ("requests_per_level", "load.requests_per_level"),
        ("duration_per_level", "load.duration_per_level_s"),
        ("keep_audio", "keep_audio"),
        ("gate", "gate"),
    ):
        if hasattr(args, name):
            o[key] = getattr(args, name)
    if getattr(args, "duration_per_level", None):
        o["load.requests_per_level"] = None
    if getattr(args, "no_warmup", False):
        o["load.warmup"] = False
    if args.prompts_file:
        o["prompts.set"] = None
    return o


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The validated scenario: file (if any) plus flag overrides."""
    overrides = overrides_from_args(args)
    if args.scenario:
        sc = load_scenario(args.scenario, overrides)
    else:
        sc = scenario_from_dict(merge_overrides({}, overrides))
    if getattr(args, "voice", None) and args.voice.lower() == "none":
        sc = sc.model_copy(update={"prompts": sc.prompts.model_copy(update={"voice": None})})
    if getattr(args, "duration_per_level", None):
        sc = sc.model_copy(update={"load": sc.load.model_copy(update={"requests_per_level": None})})
    return sc


def api_key_from(args: argparse.Namespace) -> str | None:
    """--api-key, else the environment variable."""
    return getattr(args, "api_key", None) or os.environ.get(API_KEY_ENV) or None


def safe_cli_args(argv: list[str]) -> list[str]:
    """The command line with the API key's value masked, for run.json."""
    out: list[str] = []
    mask = False
    for a in argv:
        if mask:
            out.append("***")
            mask = False
        elif a == "--api-key":
            out.append(a)
            mask = True
        elif a.startswith("--api-key="):
            out.append("--api-key=***")
        else:
            out.append(a)
    return out


def run_async_with_signals(coro: Any) -> Any:
    """Run a coroutine; SIGINT/SIGTERM cancel it (so in-flight requests are recorded as cancelled)."""

    async def wrapper() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        interrupted: list[int] = []

        def on_signal(signum: int) -> None:
            interrupted.append(signum)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await coro
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise

    return asyncio.run(wrapper())


def main(args: argparse.Namespace) -> int:
    """Entry point of `orpheus-bench run`."""
    if args.help_scenario:
        for name, default, desc in describe_fields():
            print(f"{name:32} {default:24} {desc}")
        return 0
    from rich.console import Console

    from orpheus_bench.client.progress import RichProgress
    from orpheus_bench.client.session import execute_run

    sc = scenario_from_args(args)
    gate_rules = load_gate(sc.gate) if sc.gate else None
    out = args.out or os.path.join("runs", dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    console = Console()
    hooks = RichProgress(Console(stderr=True), quiet=args.quiet)
    with hooks:
        try:
            outcome = run_async_with_signals(
                execute_run(
                    sc,
                    out,
                    api_key=api_key_from(args),
                    force=args.force,
                    hooks=hooks,
                    cli_args={"argv": safe_cli_args(sys.argv[1:])},
                    doctor=not args.no_doctor,
                )
            )
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted: partial run kept in {out} (run.json says complete: false)")
            _print_results(out, console)
            return 130
    _print_results(out, console)
    console.print(f"records: {outcome.records}  run directory: {outcome.run_dir}")
    if gate_rules is not None:
        return apply_gate(gate_rules, outcome.run_dir, console)
    return 0


def _print_results(out: str, console: Any) -> None:
    from orpheus_bench.report.console import render_console
    from orpheus_bench.results.compile import compile_run

    try:
        results = compile_run(out)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]no results to show: {exc}")
        return
    render_console(results, console)


def load_gate(path: str) -> Any:
    """Load and validate gate rules (ConfigError naming the field on bad input)."""
    try:
        from orpheus_bench.gate.rules import load_rules
    except ImportError as exc:
        raise ConfigError("gate", "gates are not available in this build") from exc
    return load_rules(path)


def apply_gate(rules: Any, run_dir: Any, console: Any) -> int:
    """Evaluate gate rules on a finished run directory; returns the gate's exit code."""
    from orpheus_bench.gate.engine import evaluate_and_print

    return int(evaluate_and_print(rules, run_dir, console=console))
