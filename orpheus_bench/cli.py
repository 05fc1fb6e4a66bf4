"""The `orpheus-bench` command line: one subcommand per module under `orpheus_bench.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Errors the user can fix (`ConfigError`) print one line naming the field and exit 2; whole-run server faults
exit 3; nothing else is caught here, so a bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from orpheus_bench import __version__
from orpheus_bench.errors import ConfigError, LaunchError, ServerError

# Order is the order of `--help`.
COMMANDS: list[str] = [
    "run",
    "capacity",
    "simulate",
    "report",
    "demo",
    "export",
    "gate",
    "doctor",
    "server",
    "make_test_model",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVER = 3


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="orpheus-bench",
        description="Load testing and benchmarking for Orpheus TTS on llama.cpp's llama-server.",
    )
    parser.add_argument("--version", action="version", version=f"orpheus-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"orpheus_bench.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"orpheus-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ServerError, LaunchError) as exc:
        print(f"orpheus-bench: server error: {exc}", file=sys.stderr)
        return EXIT_SERVER
    except KeyboardInterrupt:
        print("orpheus-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
