"""`orpheus-bench make-test-model`: write the tiny Orpheus-format GGUF (or print the cached one's path).

The model speaks valid Orpheus audio tokens at CPU speed, so llama-server, the harness and CI can be tested
without Orpheus weights; see `orpheus_bench.server.model_builder` for how it is built.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from orpheus_bench.errors import ConfigError
from orpheus_bench.server.model_builder import TinyModelSpec, cached_test_model, write_test_model


def register(subparsers: Any) -> None:
    """Add the `make-test-model` subcommand."""
    p = subparsers.add_parser(
        "make-test-model",
        help="Write the tiny Orpheus-format GGUF test model.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", nargs="?", help="Output .gguf path (default: build into the cache, print its path).")
    defaults = TinyModelSpec()
    p.add_argument("--hidden", type=int, default=defaults.hidden, help="Embedding width (multiple of 32).")
    p.add_argument("--layers", type=int, default=defaults.layers, help="Transformer blocks.")
    p.add_argument("--ffn", type=int, default=defaults.ffn, help="Feed-forward width.")
    p.add_argument("--context-length", type=int, default=defaults.context_length, help="Training context in the GGUF.")
    p.add_argument("--seed", type=int, default=defaults.seed, help="Seed of the random (inert) weights.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the model; print its path and size."""
    knobs = {
        "hidden": args.hidden,
        "layers": args.layers,
        "ffn": args.ffn,
        "context_length": args.context_length,
        "seed": args.seed,
    }
    try:
        spec = TinyModelSpec(**knobs)
    except ValueError as exc:
        raise ConfigError("make-test-model", str(exc)) from exc
    t0 = time.perf_counter()
    path = write_test_model(args.out, spec) if args.out else cached_test_model(**knobs)
    size_mb = os.path.getsize(path) / 1e6
    print(f"{path}  ({size_mb:.1f} MB, {time.perf_counter() - t0:.1f}s)")
    return 0
