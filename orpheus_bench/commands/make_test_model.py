"""`orpheus-bench make-test-model`: write the tiny Orpheus-format GGUF (or print the cached one's path).

The model speaks valid Orpheus audio tokens at CPU speed, so llama-server, the harness and CI can be tested
without Orpheus weights. By default it ends speech (`<custom_token_2>`) after about `--frames-per-word` frames per
word of the prompt, like Orpheus; `--speech fixed` builds one that never does, so every request runs to
`n_predict`. See `orpheus_bench.server.model_builder` for how it is built and how it decides to stop.
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
    p.add_argument(
        "--speech",
        choices=("ends", "fixed"),
        default=defaults.speech,
        help="ends: end of speech after about --frames-per-word frames a word; fixed: never (runs to n_predict).",
    )
    p.add_argument(
        "--frames-per-word",
        type=float,
        default=defaults.frames_per_word,
        help=f"Frames spoken per word of the prompt (default {defaults.frames_per_word:g}, like Orpheus).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the model; print its path and size."""
    try:
        spec = TinyModelSpec(
            hidden=args.hidden,
            layers=args.layers,
            ffn=args.ffn,
            context_length=args.context_length,
            seed=args.seed,
            speech=args.speech,
            frames_per_word=args.frames_per_word,
        )
    except ValueError as exc:
        raise ConfigError("make-test-model", str(exc)) from exc
    t0 = time.perf_counter()
    path = write_test_model(args.out, spec) if args.out else cached_test_model(spec)
    size_mb = os.path.getsize(path) / 1e6
    print(f"{path}  ({size_mb:.1f} MB, {time.perf_counter() - t0:.1f}s)")
    return 0
