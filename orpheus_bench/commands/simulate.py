"""``orpheus-bench simulate``: serve the llama-server simulator in the foreground until Ctrl-C or SIGTERM.

Settings come from `SimConfig` defaults, then ``--config FILE`` (YAML or JSON), then ``--config-json``,
then the flags given on the command line. ``--stamp`` also zeroes every delay the command line did not set.
The one line printed at start says plainly that this is a simulator; its numbers measure nothing real.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orpheus_bench.errors import ConfigError
from orpheus_bench.sim.app import start_simulator
from orpheus_bench.sim.config import SimConfig
from orpheus_bench.sim.faults import FaultKind, parse_fault

# flag dest -> SimConfig field, for the plain numeric/string options
_FIELDS = {
    "slots": "slots",
    "ctx_size": "ctx_size",
    "token_ms": "token_ms",
    "busy_alpha": "busy_alpha",
    "prefill_base_ms": "prefill_base_ms",
    "prefill_ms_per_token": "prefill_ms_per_token",
    "cold_start_ms": "cold_start_ms",
    "jitter": "jitter",
    "seed": "seed",
    "audio_frames": "audio_frames",
    "audio_frames_per_char": "audio_frames_per_char",
    "loading_s": "loading_s",
    "api_key": "api_key",
}
_DELAYS = ("token_ms", "busy_alpha", "prefill_base_ms", "prefill_ms_per_token", "cold_start_ms", "jitter")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The simulate options (shared by the CLI subcommand and ``python -m orpheus_bench.sim``)."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one (default 8080)")
    p.add_argument("--config", metavar="FILE", help="SimConfig as YAML or JSON")
    p.add_argument("--config-json", metavar="JSON", help="SimConfig as JSON text, or '-' to read it from stdin")
    p.add_argument("--slots", type=int, help="parallel slots (default 4)")
    p.add_argument("--ctx-size", type=int, help="total context, divided among slots (default 8192)")
    p.add_argument("--token-ms", type=float, help="ms per generated token with one busy slot (default 10)")
    p.add_argument("--busy-alpha", type=float, help="per-token slowdown per extra busy slot (default 0.15)")
    p.add_argument("--prefill-base-ms", type=float, help="fixed prompt processing ms (default 2)")
    p.add_argument("--prefill-ms-per-token", type=float, help="ms per evaluated prompt token (default 0.5)")
    p.add_argument("--cold-start-ms", type=float, help="extra ms on the first request (default 0)")
    p.add_argument("--jitter", type=float, help="sigma of a mean-one lognormal delay factor (default 0)")
    p.add_argument("--seed", type=int, help="seed of jitter and audio codes (default 0)")
    p.add_argument("--audio-frames", type=int, help="audio frames per request, 7 tokens each (default 24)")
    p.add_argument("--audio-frames-per-char", type=float, help="extra frames per prompt character (default 0)")
    p.add_argument("--loading-s", type=float, help="answer 503 'Loading model' for this long (default 0)")
    p.add_argument("--api-key", help="require this Bearer token, like llama-server --api-key")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:k=v,...]",
        help=f"fault mode, repeatable; KIND one of: {', '.join(k.value for k in FaultKind)}",
    )
    p.add_argument("--stamp", action="store_true", help="stamp every event with its send time; zero delays")


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand."""
    p = subparsers.add_parser(
        "simulate",
        help="Run a simulated llama-server (synthetic timings, for tests and trying the harness).",
        description=__doc__,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build the `SimConfig` from files and flags; raises `ConfigError` naming the bad field."""
    data: dict[str, Any] = {}
    if args.config:
        data.update(_load_file(Path(args.config)))
    if args.config_json:
        text = sys.stdin.read() if args.config_json == "-" else args.config_json
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("--config-json", f"not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("--config-json", "must be a JSON object")
        data.update(loaded)
    for dest, name in _FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            data[name] = value
    if args.fault:
        data["faults"] = [parse_fault(text).model_dump() for text in args.fault]
    if args.stamp:
        data["stamp"] = True
        for name in _DELAYS:
            if getattr(args, name, None) is None:
                data[name] = 0.0
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(where, first["msg"]) from None


def _load_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path}: not valid YAML/JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError("--config", f"{path}: must hold a mapping of SimConfig fields")
    return loaded


def banner(config: SimConfig, url: str) -> str:
    """The startup line: what this is, where it listens, and its main settings."""
    faults = ",".join(f.kind.value for f in config.faults) or "none"
    return (
        "orpheus-bench simulate: SIMULATED llama-server (synthetic timings, not a measurement of anything "
        f"real) listening on {url} slots={config.slots} n_ctx_slot={config.n_ctx_slot} "
        f"token_ms={config.token_ms:g} busy_alpha={config.busy_alpha:g} jitter={config.jitter:g} "
        f"faults={faults}"
        f"{' stamp=on' if config.stamp else ''}{' api_key=set' if config.api_key else ''}"
    )


async def serve(config: SimConfig, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation)."""
    server = await start_simulator(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    print(banner(config, server.url), flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        stats = server.stats
        print(
            f"orpheus-bench simulate: stopped after {stats.requests_total} completion requests "
            f"({stats.completed} completed)",
            flush=True,
        )


def run(args: argparse.Namespace) -> int:
    """Entry point of the subcommand; returns the exit code."""
    config = config_from_args(args)
    try:
        asyncio.run(serve(config, args.host, args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise ConfigError("--port", f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (``python -m orpheus_bench.sim``), without the other subcommands."""
    parser = argparse.ArgumentParser(prog="python -m orpheus_bench.sim", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"orpheus-bench simulate: error: {exc}", file=sys.stderr)
        return 2
