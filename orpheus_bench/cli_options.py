"""Command-line options that describe a run's requests, shared by every entry point that sends them.

`orpheus-bench run`, `orpheus-bench capacity` and the Locust adapter register the same flags here and map them to
the same scenario fields (`scenario_from_args`), so a flag means one thing wherever it is typed. The API key comes
from ``--api-key`` or ``$ORPHEUS_BENCH_API_KEY``; `safe_cli_args` masks it before a command line is stored.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from orpheus_bench.scenario import load_scenario, merge_overrides, scenario_from_dict

API_KEY_ENV = "ORPHEUS_BENCH_API_KEY"


def int_list(field: str) -> Any:
    def parse(text: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field}: expected comma-separated integers, got {text!r}") from None

    return parse


def float_list(field: str) -> Any:
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


def processes_value(text: str) -> int | str:
    """``auto`` or a positive integer (``--processes``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"client.processes: expected 'auto' or an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"client.processes: must be >= 1, got {n}")
    return n


def add_client_options(p: argparse.ArgumentParser) -> None:
    """How the asyncio client runs (not for the Locust adapter: Locust has its own --processes)."""
    p.add_argument(
        "--processes",
        dest="client_processes",  # not `processes`: Locust's own flag of that name must never land here
        metavar="N|auto",
        type=processes_value,
        help="Client worker processes the level's streams are spread over: auto (default: one per core, at most "
        "one per 32 streams and 8 in all) or N; 1 keeps everything in this process.",
    )
    p.add_argument(
        "--transport",
        dest="client_transport",
        choices=["stream", "aiohttp"],
        help="HTTP client: stream (default; bytes parsed as they arrive) or aiohttp (one readany() per chunk).",
    )


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
        "client.processes": getattr(args, "client_processes", None),
        "client.transport": getattr(args, "client_transport", None),
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
