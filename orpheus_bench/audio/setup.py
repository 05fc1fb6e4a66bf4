"""One place that turns a scenario's `Decode` settings into a running `DecodeService` and its run.json entry.

Shared by the aiohttp run session and the Locust users, so both drivers load SNAC the same way and describe it
the same way (``snac`` in run.json: model, device, whether the weights are random, the decode backend (torch or
onnx), window settings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from orpheus_bench.audio.service import DecodeService, default_batching
from orpheus_bench.scenario import Decode

DecoderFactory = Callable[[], Any]


def build_decode_service(decode: Decode, factory: DecoderFactory | None = None) -> tuple[DecodeService, dict[str, Any]]:
    """The decode service for `decode` (none loaded when decoding is off) and its description for run.json.

    `factory` replaces SNAC with any object that has the `SnacDecoder` methods (tests use slow fakes).
    """
    window: dict[str, Any] = {"decode": dataclasses.asdict(decode.spec()), "workers": decode.workers}
    if decode.preset == "off":
        info = {
            "spec": None,
            "device": None,
            "random_weights": False,
            "description": "decoding off: audio seconds are what the tokens encode, as if decoding were free",
            **window,
        }
        return DecodeService(None), info
    device = None
    if factory is not None:
        decoder = factory()
        info = {
            "spec": "custom",
            "device": None,
            "random_weights": None,
            "description": f"custom decoder {type(decoder).__name__}",
            **window,
        }
    else:
        from orpheus_bench.audio.decoder import SnacDecoder
        from orpheus_bench.audio.snac_loader import load_snac

        loaded = load_snac(
            decode.snac_model,
            decode.device,
            noise=decode.noise,
            torch_threads=decode.threads,
            backend=decode.backend,
        )
        decoder = SnacDecoder(loaded)
        device = loaded.device
        info = {
            "spec": loaded.spec,
            "device": loaded.device,
            "random_weights": loaded.random_weights,
            "description": loaded.description,
            "torch_threads": loaded.torch_threads,
            "backend": loaded.backend,
            **window,
        }
    batch, wait_ms = default_batching(device or "cpu")
    max_batch = decode.max_batch if decode.max_batch is not None else batch
    max_wait_ms = decode.max_wait_ms if decode.max_wait_ms is not None else wait_ms
    info.update(max_batch=max_batch, max_wait_ms=max_wait_ms)
    service = DecodeService(decoder, max_batch=max_batch, max_wait_ms=max_wait_ms, threads=decode.workers)
    return service, info
